#!/usr/bin/env bash
# What In-Context Pretraining's related order does, measured with eval (issue #30): the lake's
# documents as one curriculum in related order and one in a seeded random order (both packed
# into sequences of one 512-token context), trained on by the same model for the same tokens,
# validated on held-out text (the fixture target and held-out files, in neither curriculum)
# packed into windows of one context each, once in related order (neighbours by the lake's
# k-means model share a window) and once in random order. A model that learned to use related
# text in its context should gain more on the related windows.
#
#   benches/related_eval.sh             # OUT (default /tmp/related-eval), SEEDS (3), TOKENS
#
# Uses the release binary; prints eval's table (also OUT/eval/summary.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/related-eval}
seeds=${SEEDS:-3}
tokens=${TOKENS:-327680}
context=512
bin=${CARGO_TARGET_DIR:-target}/release/syllabus
tok=fixtures/tokenizer.json
rm -rf "$out" && mkdir -p "$out"
q() { "$bin" -q "$@"; }
# The lake's clusters: the model the related order reads its vectors from.
q score cluster --k 16 --on-bad-record skip --save-model "$out/km.bin" --out "$out/clusters.parquet" fixtures/lake
held=(fixtures/target/math.jsonl fixtures/target/docs.jsonl fixtures/heldout/math.jsonl)
# Held-out windows of one context (context + 1 tokens: every token predicted in one window).
for order in related random; do
    how=(--order "$order" --seed 0)
    [ "$order" = related ] && how+=(--kmeans-model "$out/km.bin")
    q curriculum --tokenizer "$tok" --seq-len $((context + 1)) --packing concat "${how[@]}" \
        --out "$out/valid-$order" "${held[@]}"
    q curriculum --tokenizer "$tok" --seq-len $((context + 1)) --packing concat "${how[@]}" \
        --on-bad-record skip --out "$out/lake-$order" fixtures/lake
done
# 4 windows of 512 a step (2048 predictions), 160 steps; the packed sequences in a seeded
# random order (In-Context Pretraining shuffles its contexts: a related order read as one
# traversal would train cluster after cluster); every held-out window validated.
"$bin" eval --tokenizer "$tok" --context "$context" --batch-size 4 --tokens "$tokens" --seeds "$seeds" \
    --every $((tokens / 4)) --valid-tokens 200000 --shuffle-sequences \
    --valid related-windows="$out/valid-related" --valid random-windows="$out/valid-random" \
    --out "$out/eval" random="$out/lake-random" related="$out/lake-related"
