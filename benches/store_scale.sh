#!/usr/bin/env bash
# Object stores at lake scale: `score dsir` of the 10x scale lake (40 jsonl.zst objects, 2.3 GB
# of jsonl) from a local S3-compatible server (s3s-fs on 127.0.0.1, objects uploaded with
# boto3), output written to the store, against the same command on local files; then a kill -9
# at 75% of the store run's time and the same command again: its time as a share of a clean
# run's, and its output compared byte for byte with the clean one. Prints markdown rows.
#
#   benches/store_scale.sh           # builds /tmp/scale-lake if missing (benches/scale.sh's)
#
# Env: LAKE (/tmp/scale-lake), THREADS (2), S3S_FS (default: the one `make test` installs).
set -euo pipefail
cd "$(dirname "$0")/.."
lake=${LAKE:-/tmp/scale-lake}
t=${THREADS:-2}
target_dir=${CARGO_TARGET_DIR:-target}
s3s=${S3S_FS:-$target_dir/tools/bin/s3s-fs}
bin=$target_dir/release/syllabus
cargo build --release -q --locked
[ -x "$s3s" ] || make s3s-fs
[ -f "$lake/part-0039.jsonl.zst" ] || { RESUME=0 STAGES=none benches/scale.sh >/dev/null; }
[ -x /tmp/refvenv/bin/python ] || python3 -m venv /tmp/refvenv
/tmp/refvenv/bin/python -c "import boto3" 2>/dev/null || /tmp/refvenv/bin/pip install -q boto3
tmp=$(mktemp -d)
mkdir -p "$tmp/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$s3s" --host 127.0.0.1 --port "$port" --access-key BENCHKEY --secret-key BENCHSECRET "$tmp/data" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=BENCHKEY AWS_SECRET_ACCESS_KEY=BENCHSECRET AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1
export SYLLABUS_STAGE_DIR=$tmp/stage
/tmp/refvenv/bin/python benches/s3_upload.py s3://lake/scale "$lake"/part-*.jsonl.zst
/tmp/refvenv/bin/python benches/s3_upload.py s3://lake/scale-target "$lake/target.jsonl"

timed() { /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }; cat "$tmp/time"; }
local_cmd="$bin score dsir -q --threads $t --target $lake/target.jsonl --out $tmp/local.parquet $lake/part-*.jsonl.zst"
s3_cmd="$bin score dsir -q --threads $t --target s3://lake/scale-target/target.jsonl --out s3://out/scores.parquet s3://lake/scale"
read -r l_s l_m < <(timed $local_cmd)
read -r s_s s_m < <(timed $s3_cmd)
cmp "$tmp/local.parquet" "$tmp/data/out/scores.parquet"
cp "$tmp/data/out/scores.parquet" "$tmp/clean.parquet"
mb=2300
echo "| score dsir, 10x lake (40 objects), $t threads | local: $l_s s, $((l_m / 1024)) MB | s3: $s_s s, $((s_m / 1024)) MB | $(awk -v a="$l_s" -v b="$s_s" 'BEGIN {printf "%.0f%%", 100 * a / b}') |"

# kill -9 at 75% of the store run, then again.
rm -rf "$tmp/data/out" "$tmp/stage"
$s3_cmd >/dev/null 2>&1 &
pid=$!
kill_at=$(awk -v c="$s_s" 'BEGIN {printf "%.2f", c * 0.75}')
sleep "$kill_at"
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[ ! -e "$tmp/data/out/scores.parquet" ] || { echo "a killed run left its output in the store"; exit 1; }
read -r r_s _ < <(timed $s3_cmd)
cmp "$tmp/clean.parquet" "$tmp/data/out/scores.parquet"
echo "| resumed after kill -9 at $kill_at s | $r_s s | $(awk -v r="$r_s" -v c="$s_s" 'BEGIN {printf "%.0f%%", 100 * r / c}') of a clean run | output byte-identical |"
