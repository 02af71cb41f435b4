#!/usr/bin/env bash
# The cluster mode at lake scale: `select dsir` of the 10x scale lake (40 jsonl.zst files, 2.3 GB
# of jsonl) locally and on a scheduler + EXECUTORS executors on this machine: wall time, the
# client's and each executor's peak RSS, outputs compared byte for byte; then the client killed
# (kill -9) at 75% of the cluster run's time and the command run again: its time as a share of
# a clean run's. Prints markdown rows.
#
#   benches/cluster_scale.sh        # builds /tmp/scale-lake if missing (benches/scale.sh's)
#
# Env: LAKE (/tmp/scale-lake), EXECUTORS (1), K (100000).
set -euo pipefail
cd "$(dirname "$0")/.."
lake=${LAKE:-/tmp/scale-lake}
n=${EXECUTORS:-1}
k=${K:-100000}
bin=${CARGO_TARGET_DIR:-target}/release/syllabus
cargo build --release -q --locked
[ -f "$lake/part-0039.jsonl.zst" ] || { RESUME=0 STAGES=none benches/scale.sh >/dev/null; }
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" cluster scheduler --bind 127.0.0.1:$port 2>"$tmp/sched.log" & pids+=($!)
sleep 1
for i in $(seq 1 "$n"); do
  "$bin" cluster executor --scheduler 127.0.0.1:$port --bind 127.0.0.1:$((port + 2 * i)) --work-dir "$tmp" 2>"$tmp/exec$i.log" & pids+=($!)
done
sleep 3
timed() { /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }; cat "$tmp/time"; }
args=(select dsir -q --k "$k" --seed 0 --target "$lake/target.jsonl")
read -r l_s l_m < <(timed "$bin" "${args[@]}" --out "$tmp/local.parquet" "$lake")
read -r c_s c_m < <(timed "$bin" "${args[@]}" --out "$tmp/cluster.parquet" "$lake" --cluster df://127.0.0.1:$port)
cmp "$tmp/local.parquet" "$tmp/cluster.parquet"
exec_rss=$(for p in "${pids[@]:1}"; do awk '/VmHWM/ {printf "%d MB ", $2/1024}' /proc/$p/status; done)
echo "| lake | local | cluster ($n executor(s)) | client peak RSS | executor peak RSS |"
echo "|---|---|---|---|---|"
echo "| $(du -sh "$lake" | cut -f1) ($lake) | ${l_s} s, $((l_m / 1024)) MB | ${c_s} s | $((c_m / 1024)) MB | ${exec_rss}|"
# kill -9 of the client at 75%, then the same command again.
rm -f "$tmp/cluster.parquet"
"$bin" "${args[@]}" --out "$tmp/cluster.parquet" "$lake" --cluster df://127.0.0.1:$port >/dev/null 2>&1 &
client=$!
sleep "$(echo "$c_s * 0.75" | bc)"
kill -9 $client 2>/dev/null || true
wait $client 2>/dev/null || true
[ ! -e "$tmp/cluster.parquet" ] && echo "killed at 75%: no output written"
read -r r_s r_m < <(timed "$bin" "${args[@]}" --out "$tmp/cluster.parquet" "$lake" --cluster df://127.0.0.1:$port)
cmp "$tmp/local.parquet" "$tmp/cluster.parquet"
echo "rerun after kill -9 at 75%: ${r_s} s ($(echo "scale=0; 100 * $r_s / $c_s" | bc)% of a clean run), output identical"
