#!/usr/bin/env bash
# Tokens per second end to end (source to shards) and peak memory of `syllabus curriculum`,
# side by side with what Megatron users run today (benches/reference_curriculum.py: the
# preprocess_data.py recipe with the Hugging Face tokenizers library), on the same lake, the same
# tokenizer and the same cores. Prints markdown table rows.
#
#   benches/compare_curriculum.sh       # builds /tmp/bench-lake and /tmp/refvenv if missing
#
# Env: CORES (default 2), RUNS (default 3, the median is reported), REF_VENV, LAKE.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${CORES:-2}
runs=${RUNS:-3}
venv=${REF_VENV:-/tmp/refvenv}
lake=${LAKE:-/tmp/bench-lake}
tokenizer=fixtures/tokenizer.json

source benches/common.sh
setup "$venv" tokenizers numpy
export RAYON_NUM_THREADS=$cores

time_cmd ref "$venv/bin/python" benches/reference_curriculum.py "$lake/lake.jsonl" "$tokenizer" "$cores" "$tmp/out_ref/data"
tokens=$(tail -n 1 "$tmp/stdout_ref")
time_cmd syl "${CARGO_TARGET_DIR:-target}"/release/syllabus curriculum -q --threads "$cores" --tokenizer "$tokenizer" --seq-len 2048 \
    --format megatron --out "$tmp/out_syl" "$lake/lake.jsonl"
time_cmd full "${CARGO_TARGET_DIR:-target}"/release/syllabus curriculum -q --threads "$cores" --tokenizer "$tokenizer" --seq-len 2048 \
    --order random --format syllabus,megatron --out "$tmp/out_full" "$lake/lake.jsonl"
syl_tokens=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['tokens'])" "$tmp/out_syl/manifest.json")
[ "$tokens" = "$syl_tokens" ] || { echo "token counts differ: reference $tokens, syllabus $syl_tokens"; exit 1; }

mb=$(du -m "$lake/lake.jsonl" | cut -f1)
row() { # label, what
    local s m
    s=$(cut -d' ' -f1 "$tmp/$1" | median); m=$(cut -d' ' -f2 "$tmp/$1" | median)
    awk -v s="$s" -v m="$m" -v t="$tokens" -v r="$ref_s" -v what="$2" \
        'BEGIN {printf "| %s | %.2f s | %.2f M tokens/s | %d MB | %.1fx |\n", what, s, t / s / 1e6, m / 1024, r / s}'
}
ref_s=$(cut -d' ' -f1 "$tmp/ref" | median)
echo "lake: $mb MB jsonl, $tokens tokens (EOS included), $cores cores, median of $runs"
echo "| command | time | throughput | peak RSS | vs reference |"
echo "|---|---|---|---|---|"
row ref "reference: HF tokenizers + Megatron .bin/.idx (Python)"
row syl "syllabus curriculum --format megatron (input order)"
row full "syllabus curriculum --order random --format syllabus,megatron"
