#!/usr/bin/env bash
# Whole-command comparison of `syllabus score cluster` with what users run today
# (scikit-learn: HashingVectorizer unigrams+bigrams, TfidfTransformer, MiniBatchKMeans), side
# by side on the same lake, the same cores, the same k and passes. Quality: how well each
# recovers the lake's four sources (NMI, purity). Prints a markdown table row per tool.
#
#   benches/compare_cluster.sh
#
# Env: CORES (default 2), K (default 16), PASSES (default 3), RUNS (default 3, the median is
# reported), REF_VENV (default /tmp/clustervenv), LAKE (default /tmp/bench-lake).
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${CORES:-2}
k=${K:-16}
passes=${PASSES:-3}
runs=${RUNS:-3}
venv=${REF_VENV:-/tmp/clustervenv}
lake=${LAKE:-/tmp/bench-lake}

source benches/common.sh
setup "$venv" scikit-learn==1.9.1 pandas pyarrow
cpus=$(seq -s, 0 $((cores - 1)))

time_cmd ref taskset -c "$cpus" "$venv/bin/python" benches/reference_cluster.py "$lake/lake.jsonl" "$k" "$passes" "$tmp/ref.csv"
time_cmd syl taskset -c "$cpus" "${CARGO_TARGET_DIR:-target}"/release/syllabus score cluster -q --threads "$cores" \
    --k "$k" --passes "$passes" --out "$tmp/syl.parquet" "$lake/lake.jsonl"

docs=$(wc -l < "$lake/lake.jsonl")
mb=$(du -m "$lake/lake.jsonl" | cut -f1)
for label in ref syl; do
    s=$(cut -d' ' -f1 "$tmp/$label" | median); m=$(cut -d' ' -f2 "$tmp/$label" | median)
    out=$([ "$label" = ref ] && echo "$tmp/ref.csv" || echo "$tmp/syl.parquet")
    read -r nmi purity < <("$venv/bin/python" benches/cluster_quality.py "$out")
    name=$([ "$label" = ref ] && echo "scikit-learn MiniBatchKMeans" || echo "syllabus score cluster")
    echo "| $name | $docs docs, $mb MB, k=$k, $passes passes, $cores cores | $s s | $((m / 1024)) MB | $nmi | $purity |"
done
ref_s=$(cut -d' ' -f1 "$tmp/ref" | median); syl_s=$(cut -d' ' -f1 "$tmp/syl" | median)
awk -v a="$ref_s" -v b="$syl_s" 'BEGIN {printf "speed-up: %.1fx\n", a / b}'
