#!/usr/bin/env bash
# Whole-command comparison of syllabus's fastText-compatible classifiers with fastText 0.9's
# Python bindings (fasttext-wheel 0.9.2), same data, same model, same cores:
#   training: `syllabus classifier train` against `fasttext.train_supervised` at the same
#             hyperparameters (fastText's defaults, DCLM's word bigrams, 2M buckets), held-out
#             AUROC of each model (benches/reference_classifier.py says the task);
#   scoring:  `syllabus score classifier` against the bindings' batch `predict` (k=-1) over
#             the whole 73 MB bench lake, both applying the model fastText trained.
#
#   benches/compare_classifier.sh
#
# Env: CORES (default 2), RUNS (default 3, medians), REF_VENV (default /tmp/ftbenchvenv),
# LAKE (default /tmp/bench-lake).
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${CORES:-2}
runs=${RUNS:-3}
venv=${REF_VENV:-/tmp/ftbenchvenv}
lake=${LAKE:-/tmp/bench-lake}

source benches/common.sh
setup "$venv" fasttext-wheel==0.9.2 "numpy<2" "pyarrow<18" scikit-learn
cpus=$(seq -s, 0 $((cores - 1)))
bin=${CARGO_TARGET_DIR:-target}/release/syllabus
py=$venv/bin/python

"$py" benches/reference_classifier.py prepare "$lake/lake.jsonl" "$tmp" > "$tmp/sizes"
read -r npos nneg ntest < "$tmp/sizes"

# Training, side by side (the last run's models are kept for the AUROC and the scoring).
time_cmd ft_train taskset -c "$cpus" "$py" benches/reference_classifier.py train "$tmp" "$cores"
time_cmd syl_train taskset -c "$cpus" "$bin" -q --threads "$cores" classifier train \
    --positive "$tmp/positive.jsonl" --negative "$tmp/negative.jsonl" \
    --word-ngrams 2 --out "$tmp/syl.bin"

# Scoring the test split with each tool's own model: quality.
"$py" benches/reference_classifier.py score "$tmp/ft.bin" "$tmp/test.jsonl" "$tmp/ft_test.tsv" 2>/dev/null
"$bin" -q score classifier --model "$tmp/syl.bin" --out "$tmp/syl_test.parquet" "$tmp/test.jsonl"
read -r auc_ft auc_syl npos_test _ < <("$py" benches/reference_classifier.py auroc "$tmp" "$tmp/ft_test.tsv" "$tmp/syl_test.parquet")

# Scoring the whole lake with fastText's model: speed.
time_cmd ft_score taskset -c "$cpus" "$py" benches/reference_classifier.py score "$tmp/ft.bin" "$lake/lake.jsonl" "$tmp/ft_lake.tsv"
time_cmd syl_score taskset -c "$cpus" "$bin" -q --threads "$cores" score classifier --model "$tmp/ft.bin" \
    --out "$tmp/syl_lake.parquet" "$lake/lake.jsonl"

docs=$(wc -l < "$lake/lake.jsonl")
mb=$(du -m "$lake/lake.jsonl" | cut -f1)
row() { echo "$(cut -d' ' -f1 "$tmp/$1" | median) s | $(( $(cut -d' ' -f2 "$tmp/$1" | median) / 1024 )) MB"; }
echo "| training ($npos positives, $nneg negatives; held-out AUROC on $ntest docs, $npos_test positive) | fastText train_supervised | $(row ft_train) | $auc_ft |"
echo "| | syllabus classifier train | $(row syl_train) | $auc_syl |"
echo "| scoring the lake ($docs docs, $mb MB) with fastText's model | fastText predict (batch) | $(row ft_score) | |"
echo "| | syllabus score classifier | $(row syl_score) | |"
for w in train score; do
    a=$(cut -d' ' -f1 "$tmp/ft_$w" | median); b=$(cut -d' ' -f1 "$tmp/syl_$w" | median)
    awk -v a="$a" -v b="$b" -v w="$w" 'BEGIN {printf "%s speed-up: %.1fx\n", w, a / b}'
done
