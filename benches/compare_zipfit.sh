#!/usr/bin/env bash
# Whole-command comparison of `syllabus select zipfit` with the reference (zip-fit 1.0.9),
# side by side on the fixture lake (plain jsonl, as the reference reads it), the same target
# rows, the same k and the same cores; plus how well the fast mode selects: the share of the
# target's domain (math) among the top k, for each mode.
#
#   benches/compare_zipfit.sh          # needs /tmp/refvenv (see tests/golden/make_zipfit_golden.py)
#
# Env: CORES (default 2), M (target rows, default 50), K (default 280: the lake's math rows),
# RUNS (default 3, the median is reported), REF_VENV (default /tmp/refvenv).
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${CORES:-2}
m=${M:-50}
k=${K:-280}
runs=${RUNS:-3}
venv=${REF_VENV:-/tmp/refvenv}
cpus=$(seq -s, 0 $((cores - 1)))
cargo build --release -q --locked
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The lake as one plain jsonl file (the reference reads nothing else), and M target rows.
"${CARGO_TARGET_DIR:-target}"/release/syllabus select zipfit -q --k 1000000 --target fixtures/target/math.jsonl --compressor zstd --fast \
    --out "$tmp/lake.jsonl" fixtures/lake 2>/dev/null || true
head -n "$m" fixtures/target/math.jsonl > "$tmp/target.jsonl"
docs=$(wc -l < "$tmp/lake.jsonl")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_cmd() { # label, command...
    local label=$1; shift
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e" -o "$tmp/t" taskset -c "$cpus" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
        cat "$tmp/t" >> "$tmp/time_$label"
    done
    median < "$tmp/time_$label"
}
math_share() { # selection jsonl with a domain column -> percent math
    python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(round(100*sum(x['domain']=='math' for x in r)/len(r),1))" "$1"
}

ref=$(time_cmd ref "$venv/bin/python" benches/reference_zipfit.py "$tmp/lake.jsonl" "$tmp/target.jsonl" "$k" gzip 6 "$tmp/ref.jsonl")
exact=$(time_cmd exact "${CARGO_TARGET_DIR:-target}"/release/syllabus select zipfit -q --threads "$cores" --target "$tmp/target.jsonl" --k "$k" --out "$tmp/exact.jsonl" "$tmp/lake.jsonl")
fast=$(time_cmd fast "${CARGO_TARGET_DIR:-target}"/release/syllabus select zipfit -q --threads "$cores" --compressor zstd --fast --target "$tmp/target.jsonl" --k "$k" --out "$tmp/fast.jsonl" "$tmp/lake.jsonl")
lz4=$(time_cmd lz4 "${CARGO_TARGET_DIR:-target}"/release/syllabus select zipfit -q --threads "$cores" --fast --target "$tmp/target.jsonl" --k "$k" --out "$tmp/lz4.jsonl" "$tmp/lake.jsonl")
zstd3=$(time_cmd zstd "${CARGO_TARGET_DIR:-target}"/release/syllabus select zipfit -q --threads "$cores" --compressor zstd --target "$tmp/target.jsonl" --k "$k" --out "$tmp/zstd.jsonl" "$tmp/lake.jsonl")
# The reference writes only texts: its math share comes from matching texts back to the lake.
ref_share=$(python3 -c "
import json,sys
dom={json.loads(l)['text']: json.loads(l)['domain'] for l in open('$tmp/lake.jsonl')}
r=[dom[json.loads(l)['text']] for l in open('$tmp/ref.jsonl')]
print(round(100*sum(d=='math' for d in r)/len(r),1))")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'; }
echo "| $docs docs x $m targets, k=$k, $cores cores | reference gzip-6 | $ref s | 1.0x | $ref_share% |"
echo "| | syllabus gzip-6 (exact) | $exact s | $(ratio "$ref" "$exact")x | $(math_share "$tmp/exact.jsonl")% |"
echo "| | syllabus zstd-3 (exact) | $zstd3 s | $(ratio "$ref" "$zstd3")x | $(math_share "$tmp/zstd.jsonl")% |"
echo "| | syllabus --fast --compressor zstd (zstd -1, candidate as dictionary) | $fast s | $(ratio "$ref" "$fast")x | $(math_share "$tmp/fast.jsonl")% |"
echo "| | syllabus --fast (lz4, candidate as dictionary) | $lz4 s | $(ratio "$ref" "$lz4")x | $(math_share "$tmp/lz4.jsonl")% |"
