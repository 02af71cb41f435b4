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

# Training, side by side, on two tasks: natural language (Python docs and prose) against the
# lake, and code against the lake (ten times the data); the models of the last run are kept.
train_task() {
    local name=$1 domains=$2 dir=$tmp/$1
    mkdir -p "$dir"
    "$py" benches/reference_classifier.py prepare "$lake/lake.jsonl" "$dir" "$domains" > "$dir/sizes"
    read -r npos nneg ntest < "$dir/sizes"
    time_cmd "ft_train_$name" taskset -c "$cpus" "$py" benches/reference_classifier.py train "$dir" "$cores"
    time_cmd "syl_train_$name" taskset -c "$cpus" "$bin" -q --threads "$cores" classifier train \
        --positive "$dir/positive.jsonl" --negative "$dir/negative.jsonl" --word-ngrams 2 --out "$dir/syl.bin"
    # Each tool's own model on the held-out fifth: quality.
    "$py" benches/reference_classifier.py score "$dir/ft.bin" "$dir/test.jsonl" "$dir/ft_test.tsv" 2>/dev/null
    "$bin" -q score classifier --model "$dir/syl.bin" --out "$dir/syl_test.parquet" "$dir/test.jsonl"
    read -r auc_ft auc_syl npos_test _ < <("$py" benches/reference_classifier.py auroc "$dir" "$dir/ft_test.tsv" "$dir/syl_test.parquet" "$domains")
    echo "| training: $domains vs lake ($npos + $nneg docs, $(du -m "$dir/train.txt" | cut -f1) MB); held-out AUROC on $ntest docs, $npos_test positive | fastText train_supervised | $(row "ft_train_$name") | $auc_ft |" >> "$tmp/table"
    echo "| | syllabus classifier train | $(row "syl_train_$name") | $auc_syl |" >> "$tmp/table"
}
row() { echo "$(cut -d' ' -f1 "$tmp/$1" | median) s | $(( $(cut -d' ' -f2 "$tmp/$1" | median) / 1024 )) MB"; }
: > "$tmp/table"
train_task nl docs,prose
train_task code code

# Scoring the whole lake with fastText's model: speed.
time_cmd ft_score taskset -c "$cpus" "$py" benches/reference_classifier.py score "$tmp/nl/ft.bin" "$lake/lake.jsonl" "$tmp/ft_lake.tsv"
time_cmd syl_score taskset -c "$cpus" "$bin" -q --threads "$cores" score classifier --model "$tmp/nl/ft.bin" --label positive \
    --out "$tmp/syl_lake.parquet" "$lake/lake.jsonl"
# Per core: one thread on one core (fastText's predict uses one).
time_cmd syl_score1 taskset -c 0 "$bin" -q --threads 1 score classifier --model "$tmp/nl/ft.bin" --label positive \
    --out "$tmp/syl_lake1.parquet" "$lake/lake.jsonl"
cmp -s "$tmp/syl_lake.parquet" "$tmp/syl_lake1.parquet" || { echo "1 and $cores threads differ"; exit 1; }

docs=$(wc -l < "$lake/lake.jsonl")
mb=$(du -m "$lake/lake.jsonl" | cut -f1)
cat "$tmp/table"
echo "| scoring the lake ($docs docs, $mb MB) with fastText's docs,prose model | fastText predict (batch) | $(row ft_score) | |"
echo "| | syllabus score classifier | $(row syl_score) | |"
echo "| | syllabus score classifier, 1 thread on 1 core | $(row syl_score1) | |"
for w in train_nl train_code score; do
    a=$(cut -d' ' -f1 "$tmp/ft_$w" | median); b=$(cut -d' ' -f1 "$tmp/syl_$w" | median)
    awk -v a="$a" -v b="$b" -v w="$w" 'BEGIN {printf "%s speed-up: %.1fx\n", w, a / b}'
done
a=$(cut -d' ' -f1 "$tmp/ft_score" | median); b=$(cut -d' ' -f1 "$tmp/syl_score1" | median)
awk -v a="$a" -v b="$b" 'BEGIN {printf "score speed-up per core (1 thread): %.1fx\n", a / b}'
# fastText's and syllabus's probabilities of the same model on the whole lake.
"$py" - "$tmp/ft_lake.tsv" "$tmp/syl_lake.parquet" <<'PY'
import sys, pyarrow.parquet as pq
ft = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[1]))
t = pq.read_table(sys.argv[2])
d = max(abs(float(ft[i]) - p) for i, p in zip(t.column("id").to_pylist(), t.column("clf_prob").to_pylist()))
print(f"largest |clf_prob - fastText's| over the lake: {d:.3g}")
PY
