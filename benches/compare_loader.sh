#!/usr/bin/env bash
# The trainer-side client side by side with what trainers read today, on the same tokens:
# syllabus_loader over `syllabus serve`, plain numpy.memmap of the Megatron files (what a
# Megatron trainer does, minus its sample-index build) and mosaicml-streaming over MDS.
# Per-rank sequences/s and GB/s (1 rank, then 4 ranks at once with their memory), and time
# to first batch with 10,000 shards. Prints markdown table rows (benches/README.md).
#
#   benches/compare_loader.sh
#
# Env: BENCH_VENV (default /tmp/benchvenv; gets numpy, torch and mosaicml-streaming),
# RUNS (default 3, the median), TOKENS (default 100000000).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BENCH_VENV:-/tmp/benchvenv}
runs=${RUNS:-3}
tokens=${TOKENS:-100000000}
source benches/common.sh

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import numpy, streaming" 2>/dev/null || "$venv/bin/pip" install -q numpy mosaicml-streaming
"$venv/bin/pip" install -q --no-deps --force-reinstall ./python
cargo build --release -q --locked
tmp=$(mktemp -d)
# A private directory on the shared-memory tmpfs, as serve uses by default.
export SYLLABUS_SHM_DIR=$(mktemp -d -p /dev/shm)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp" "$SYLLABUS_SHM_DIR"' EXIT
py="$venv/bin/python"
bench=benches/loader_bench.py
domains=(--domain prose=fixtures/lake/prose.jsonl --domain code=fixtures/lake/code.jsonl.zst
    --domain math=fixtures/lake/math.jsonl.gz --domain docs=fixtures/lake/docs.parquet
    --phase 0:prose=0.4,code=0.3,math=0.15,docs=0.15)

# serve DIR: start it, wait for its ready line.
serve() {
    rm -f "$tmp/ready"
    "${CARGO_TARGET_DIR:-target}"/release/syllabus -q serve "$@" > "$tmp/ready" &
    pids+=($!)
    until [ -s "$tmp/ready" ]; do sleep 0.05; done
}

# The big curriculum: the fixture lake repeated to TOKENS tokens, 2048-token sequences.
"${CARGO_TARGET_DIR:-target}"/release/syllabus -q curriculum --tokenizer fixtures/tokenizer.json --seq-len 2048 "${domains[@]}" \
    --on-bad-record skip --order random --on-exhausted repeat --budget-tokens "$tokens" \
    --format syllabus,megatron --out "$tmp/big"
shard_bytes=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); s=[x for x in m['shards'] if x['format']=='syllabus']; print(s[0]['bytes'])" "$tmp/big/manifest.json")
"$py" $bench write-mds "$tmp/big" "$tmp/big-mds" "$shard_bytes"
serve "$tmp/big"
serve "$tmp/big" --stage map --name bench-map
seqs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['sequences'])" "$tmp/big/manifest.json")
echo "curriculum: $seqs sequences of 2048 tokens (uint16), $(du -sm "$tmp/big/shards" | cut -f1) MB; median of $runs"

dir_of() { case $1 in mds) echo "$tmp/big-mds" ;; syllabus-map) echo bench-map ;; *) echo "$tmp/big" ;; esac; }
echo
# Every reader copies each sequence once into one batch array (loader_bench.py says how) and
# reads for at least 5 s (passes over the curriculum), timed without imports or setup.
echo "| reader, 1 rank, batch 8 | sequences/s | GB/s | vs numpy.memmap (Megatron) |"
echo "|---|---|---|---|"
for kind in megatron syllabus syllabus-map mds; do
    for _ in $(seq "$runs"); do
        "$py" $bench read $kind "$(dir_of $kind)" 0 1 8 | tee -a "$tmp/r1_$kind" > /dev/null
    done
done
for kind in megatron syllabus syllabus-map mds; do
    "$py" - "$tmp/r1_$kind" "$tmp/r1_megatron" "$kind" <<'EOF'
import json, sys
def median(path):
    rows = sorted((json.loads(l) for l in open(path)), key=lambda r: r["sequences"] / r["seconds"])
    return rows[len(rows) // 2]
r, ref = median(sys.argv[1]), median(sys.argv[2])
rate = r["sequences"] / r["seconds"]
print(f"| {sys.argv[3]} | {rate:,.0f} | {r['bytes'] / r['seconds'] / 1e9:.2f} | {rate / (ref['sequences'] / ref['seconds']):.3g}x |")
EOF
done

echo
echo "| reader, 4 ranks at once, batch 8 | sequences/s per rank | GB/s per rank | RSS per rank | PSS per rank | heap per rank |"
echo "|---|---|---|---|---|---|"
for kind in megatron syllabus syllabus-map mds; do
    rm -f "$tmp/r4_$kind"
    ranks=()
    for r in 0 1 2 3; do
        MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 RANK=$r WORLD_SIZE=4 LOCAL_RANK=$r LOCAL_WORLD_SIZE=4 \
            "$py" $bench read $kind "$(dir_of $kind)" $r 4 8 > "$tmp/r4_${kind}_$r" &
        ranks+=($!)
    done
    wait "${ranks[@]}"
    cat "$tmp"/r4_${kind}_? > "$tmp/r4_$kind"
    "$py" - "$tmp/r4_$kind" "$kind" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = len(rows)
avg = lambda k: sum(r[k] for r in rows) / n
sps = sum(r["sequences"] / r["seconds"] for r in rows) / n
gbs = sum(r["bytes"] / r["seconds"] for r in rows) / n / 1e9
mb = lambda x: f"{x / 2**20:.0f} MB"
print(f"| {sys.argv[2]} ({n} ranks) | {sps:,.0f} | {gbs:.2f} | {mb(avg('rss'))} | {mb(avg('pss'))} | {mb(avg('heap'))} |")
EOF
done
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
pids=()

# 10,000 shards of one 64-token sequence each.
"${CARGO_TARGET_DIR:-target}"/release/syllabus -q curriculum --tokenizer fixtures/tokenizer.json --seq-len 64 --shard-tokens 64 \
    "${domains[@]}" --on-bad-record skip --on-exhausted repeat --budget-tokens 640000 \
    --format syllabus,megatron --out "$tmp/many"
n_shards=$(ls "$tmp/many/shards" | wc -l)
"$py" $bench write-mds "$tmp/many" "$tmp/many-mds" 200
start=$(date +%s%N)
serve "$tmp/many"
staged=$(( ($(date +%s%N) - start) / 1000000 ))
echo
echo "$n_shards shards ($(ls "$tmp/many-mds" | grep -c mds) MDS shards); serve staged them (checksums included) in ${staged} ms"
echo "| reader, $n_shards shards | time to first batch (process start to batch) |"
echo "|---|---|"
for kind in megatron syllabus mds; do
    d=$tmp/many; [ $kind = mds ] && d=$tmp/many-mds
    for _ in $(seq "$runs"); do "$py" $bench read $kind "$d" 0 1 8 --first >> "$tmp/f_$kind"; done
    "$py" - "$tmp/f_$kind" "$kind" <<'EOF'
import json, sys
v = sorted(json.loads(l)["first_batch_s"] for l in open(sys.argv[1]))
print(f"| {sys.argv[2]} | {v[len(v) // 2] * 1000:.0f} ms |")
EOF
done
