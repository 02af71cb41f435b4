#!/usr/bin/env bash
# DSIR scoring of the same files from local disk and from a local S3-compatible server (s3s-fs
# on 127.0.0.1, the files uploaded to it with boto3), interleaved, same cores: seconds, MB/s, peak RSS
# and the throughput ratio S3 / local. Prints a markdown table row.
#
#   benches/store_vs_local.sh                      # the 73 MB bench lake (one jsonl object)
#   LAKE_FILES="/tmp/scale-lake/part-000*.jsonl.zst" benches/store_vs_local.sh   # many objects
#
# Env: CORES (2), RUNS (3, the median is reported), S3S_FS (default: the one `make test`
# installs under the target directory). The server shares the machine's cores with syllabus,
# as a co-located store would not: the ratio is a lower bound on what a real store gives.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${CORES:-2}
runs=${RUNS:-3}
lake=${LAKE:-/tmp/bench-lake}
target_dir=${CARGO_TARGET_DIR:-target}
s3s=${S3S_FS:-$target_dir/tools/bin/s3s-fs}
source benches/common.sh
setup /tmp/refvenv boto3
[ -x "$s3s" ] || make s3s-fs
bin=$target_dir/release/syllabus
# PIN=1: the server on the last core, syllabus (local and S3 runs alike) on the others, as when
# the store is another machine: the comparison then measures what reading from a store costs
# syllabus, not the test server's own CPU.
server_cpus=""; client_cpus=""
if [ "${PIN:-0}" = 1 ]; then
    last=$(($(nproc) - 1))
    server_cpus="taskset -c $last"; client_cpus="taskset -c 0-$((last - 1))"
    cores=$last
fi
files=${LAKE_FILES:-$lake/lake.jsonl}

mkdir -p "$tmp/data" "$tmp/lakedir"
for f in $files; do cp "$f" "$tmp/lakedir/"; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$server_cpus "$s3s" --host 127.0.0.1 --port "$port" --access-key BENCHKEY --secret-key BENCHSECRET "$tmp/data" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=BENCHKEY AWS_SECRET_ACCESS_KEY=BENCHSECRET AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1
export SYLLABUS_STAGE_DIR=$tmp/stage
# Uploaded through the S3 API, as objects in a real store are (s3s-fs then keeps each ETag
# instead of hashing a copied file on every request).
/tmp/refvenv/bin/python benches/s3_upload.py s3://bench/lake $files
# One untimed read of each side first (page cache, connection setup).
"$bin" score dsir -q --threads "$cores" --target "$lake/target.jsonl" --out "$tmp/warm.parquet" "s3://bench/lake" 2>/dev/null
"$bin" score dsir -q --threads "$cores" --target "$lake/target.jsonl" --out "$tmp/warm.parquet" "$tmp/lakedir" 2>/dev/null

# Interleaved: local, then S3, `runs` times; outputs to local disk in both (this measures reads).
for _ in $(seq "$runs"); do
    rm -f "$tmp/local.parquet" "$tmp/s3.parquet"
    /usr/bin/time -f "%e %M" -o "$tmp/t" $client_cpus "$bin" score dsir -q --threads "$cores" --target "$lake/target.jsonl" \
        --out "$tmp/local.parquet" "$tmp/lakedir" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
    cat "$tmp/t" >> "$tmp/local"
    /usr/bin/time -f "%e %M" -o "$tmp/t" $client_cpus "$bin" score dsir -q --threads "$cores" --target "$lake/target.jsonl" \
        --out "$tmp/s3.parquet" "s3://bench/lake" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
    cat "$tmp/t" >> "$tmp/s3"
    cmp "$tmp/local.parquet" "$tmp/s3.parquet" || { echo "the scores differ"; exit 1; }
done
mb=$(du -cm "$tmp/lakedir" | tail -1 | cut -f1)
n=$(ls "$tmp/lakedir" | wc -l)
l_s=$(cut -d' ' -f1 "$tmp/local" | median); s_s=$(cut -d' ' -f1 "$tmp/s3" | median)
l_m=$(cut -d' ' -f2 "$tmp/local" | median); s_m=$(cut -d' ' -f2 "$tmp/s3" | median)
ratio=$(awk -v a="$l_s" -v b="$s_s" 'BEGIN {printf "%.0f%%", 100 * a / b}')
tput() { awk -v m="$mb" -v s="$1" 'BEGIN {printf "%.1f", m / s}'; }
echo "| $n objects, $mb MB, $cores cores | $l_s s ($(tput "$l_s") MB/s), $((l_m / 1024)) MB | $s_s s ($(tput "$s_s") MB/s), $((s_m / 1024)) MB | $ratio |"
