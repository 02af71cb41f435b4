#!/usr/bin/env bash
# The same `select dsir` locally, on a Ballista cluster of 1 executor and of 2 executors, all
# on this machine (so this measures the cluster's overhead, not a speed-up), checking that the
# three outputs are identical. Median of RUNS wall-clock times. CMD replaces the command (its
# words split on spaces; TARGET is then unused), e.g. CMD="score cluster -q --model km.bin".
#   benches/cluster_vs_local.sh LAKE_DIR TARGET [RUNS]
set -euo pipefail
lake=$1; target=$2; runs=${3:-3}
bin=${SYLLABUS_BIN:-${CARGO_TARGET_DIR:-target}/release/syllabus}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -n "${CMD:-}" ]; then read -r -a args <<< "$CMD"; else args=(select dsir -q --k 10000 --seed 0 --target "$target"); fi
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_run() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
start_cluster() { # N executors
  port=$((20000 + RANDOM % 20000))
  "$bin" cluster scheduler --bind 127.0.0.1:$port 2>"$work/sched.log" & sleep 1
  for i in $(seq 1 "$1"); do
    "$bin" cluster executor --scheduler 127.0.0.1:$port --bind 127.0.0.1:$((port + 2 * i)) --work-dir "$work" 2>"$work/exec$i.log" &
  done
  sleep 3
}
stop_cluster() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }
for r in $(seq 1 "$runs"); do time_run "$bin" "${args[@]}" --out "$work/local.parquet" "$lake"; done | median > "$work/t_local"
for n in 1 2; do
  start_cluster $n
  for r in $(seq 1 "$runs"); do time_run "$bin" "${args[@]}" --out "$work/c$n.parquet" "$lake" --cluster df://127.0.0.1:$port; done | median > "$work/t_c$n"
  stop_cluster
  cmp "$work/local.parquet" "$work/c$n.parquet"
done
l=$(cat "$work/t_local"); c1=$(cat "$work/t_c1"); c2=$(cat "$work/t_c2")
echo "local: ${l}s  1 executor: ${c1}s ($(echo "scale=2; $c1 / $l" | bc)x)  2 executors: ${c2}s ($(echo "scale=2; $c2 / $l" | bc)x); outputs identical"
