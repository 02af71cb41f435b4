#!/usr/bin/env bash
# A small classifier training run, side by side: `syllabus classifier train` against fastText
# 0.9's `train_supervised` + `save_model` (fasttext-wheel 0.9.2) on the fixtures alone (no
# bench lake needed): positives the fixture prose, negatives every other fixture document
# (2.8 MB of text), fastText's defaults with DCLM's word bigrams (dim 100, 5 epochs, 2M
# buckets: an 823 MB model, which is most of the work at this size). Both on the same 2 cores,
# both writing their model to the same disk, alternating, RUNS times each (default 6); prints
# each tool's times, sorted.
#
#   benches/classifier_small.sh            # REF_VENV (default .venv: make test's, which has fasttext-wheel)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-6}
py=${REF_VENV:-.venv}/bin/python
bin=${CARGO_TARGET_DIR:-target}/release/syllabus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" -q select random --k 100000 --on-bad-record skip --out "$tmp/neg.jsonl" \
    fixtures/lake/code.jsonl.zst fixtures/lake/math.jsonl.gz fixtures/lake/docs.parquet fixtures/target fixtures/heldout 2>/dev/null
cp fixtures/lake/prose.jsonl "$tmp/pos.jsonl"
"$py" - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
with open(f"{d}/ft.txt", "w") as out:
    for f, label in [("pos.jsonl", "positive"), ("neg.jsonl", "negative")]:
        for line in open(f"{d}/{f}"):
            out.write(f"__label__{label} " + json.loads(line)["text"].replace("\n", " ") + "\n")
PY
cat > "$tmp/ft_train.py" <<'PY'
import sys, fasttext
m = fasttext.train_supervised(input=sys.argv[1], lr=0.1, dim=100, epoch=5, wordNgrams=2, bucket=2000000, thread=2, verbose=0)
m.save_model(sys.argv[2])
PY
for _ in $(seq "$runs"); do
    /usr/bin/time -f "fasttext %e" taskset -c 0,1 "$py" "$tmp/ft_train.py" "$tmp/ft.txt" "$tmp/ft.bin"
    /usr/bin/time -f "syllabus %e" taskset -c 0,1 "$bin" -q --threads 2 classifier train \
        --positive "$tmp/pos.jsonl" --negative "$tmp/neg.jsonl" --word-ngrams 2 --out "$tmp/syl.bin"
done 2>&1 | grep -E '^(fasttext|syllabus) [0-9.]+$' | sort -k1,1 -k2,2n | awk '{t[$1] = t[$1] " " $2} END {for (k in t) print k ":" t[k]}'
