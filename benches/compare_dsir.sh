#!/usr/bin/env bash
# Whole-command comparison of `syllabus select dsir` with the reference (data-selection 1.0.3),
# side by side on the same lake, the same cores and the same k. Prints a markdown table row.
#
#   benches/compare_dsir.sh            # builds /tmp/bench-lake and /tmp/refvenv if missing
#
# Env: CORES (default 2: threads for syllabus, num_proc for the reference), K (default 10000),
# RUNS (default 3, the median is reported), REF_VENV (default /tmp/refvenv).
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${CORES:-2}
k=${K:-10000}
runs=${RUNS:-3}
venv=${REF_VENV:-/tmp/refvenv}
lake=${LAKE:-/tmp/bench-lake}

source benches/common.sh
setup "$venv" data-selection==1.0.3 nltk==3.9.4 pyarrow zstandard

time_cmd ref "$venv/bin/python" benches/reference_dsir.py "$lake/lake.jsonl" "$lake/target.jsonl" "$k" "$cores" "$tmp/out_ref"
time_cmd syl "${CARGO_TARGET_DIR:-target}"/release/syllabus select dsir -q --threads "$cores" --target "$lake/target.jsonl" --k "$k" --seed 0 \
    --out "$tmp/out_syl/selected.parquet" "$lake/lake.jsonl"

ref_s=$(cut -d' ' -f1 "$tmp/ref" | median); syl_s=$(cut -d' ' -f1 "$tmp/syl" | median)
ref_m=$(cut -d' ' -f2 "$tmp/ref" | median); syl_m=$(cut -d' ' -f2 "$tmp/syl" | median)
mb=$(du -m "$lake/lake.jsonl" | cut -f1)
docs=$(wc -l < "$lake/lake.jsonl")
ratio=$(awk -v a="$ref_s" -v b="$syl_s" 'BEGIN {printf "%.1f", a / b}')
echo "| $docs docs, $mb MB jsonl, k=$k, $cores cores | $ref_s s, $((ref_m / 1024)) MB | $syl_s s, $((syl_m / 1024)) MB | ${ratio}x |"
