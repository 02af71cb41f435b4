#!/usr/bin/env bash
# Do two builds of syllabus write the same bytes? Runs every shipped pipeline and the README's
# commands on the fixtures (and, given a lake directory, the main commands on it) with each
# binary, in the same working directory so that paths recorded in outputs are equal, then
# compares every output file byte for byte. For refactors that must not change behaviour.
#
#   cp "$CARGO_TARGET_DIR/release/syllabus" /var/tmp/syllabus-before    # before the change
#   ... change, cargo build --release ...
#   benches/same_outputs.sh /var/tmp/syllabus-before "$CARGO_TARGET_DIR/release/syllabus" [LAKE_DIR]
#
# LAKE_DIR: jsonl / jsonl.zst files (benches/make_scale_lake.py --files 2 makes 116 MB) and a
# target.jsonl. Prints each command's output tree digest; exits 1 on the first difference.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1"); after=$(realpath "$2"); lake=${3:-}
work=$(mktemp -d /var/tmp/same-outputs.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Each command runs in $work/run (cwd: the repository; outputs under $work/run/o), then its
# tree is moved aside. Console output is kept too (stdout only: stderr has progress and timings).
commands=(
    "inspect fixtures/lake"
    "score dsir -q --target fixtures/target/math.jsonl --save-model O/dsir.json --out O/scores.parquet fixtures/lake"
    "score dsir -q --model O/dsir.json --out O/part.parquet fixtures/lake/prose.jsonl"
    "select dsir -q --target fixtures/target/math.jsonl --k 300 --seed 0 --out O/picked.jsonl.zst fixtures/lake"
    "score zipfit -q --target fixtures/target/math.jsonl --out O/zipfit.parquet fixtures/lake"
    "select zipfit -q --target fixtures/target/math.jsonl --k 300 --out O/picked.parquet fixtures/lake"
    "select zipfit -q --fast --target fixtures/target/math.jsonl --k 300 --out O/picked.parquet fixtures/lake"
    "run -q pipelines/quickstart.toml --out O/quickstart"
    "run -q pipelines/zipfit.toml --out O/zipfit"
    "run -q pipelines/domain_upsampling.toml --out O/domain_upsampling"
    "run -q pipelines/folding.toml --out O/folding"
    "run -q pipelines/el2n_pruned.toml --out O/el2n_pruned"
    "run -q pipelines/perplexity_reweighted.toml --out O/perplexity_reweighted"
    "run -q pipelines/steered.toml --out O/steered"
    "run -q pipelines/compare.toml --out O/compare"
    "curriculum -q --tokenizer fixtures/tokenizer.json --seq-len 256 --domain prose=fixtures/lake/prose.jsonl --domain code=fixtures/lake/code.jsonl.zst --budget-tokens 200000 --phase 0:prose=0.8,code=0.2 --phase 0.8:prose=0.4,code=0.6 --on-exhausted repeat --format syllabus,megatron --out O/cur"
    "score el2n -q --proxy lm --tokenizer fixtures/tokenizer.json --out O/el2n.parquet fixtures/lake"
    "score loss -q --proxy lm --tokenizer fixtures/tokenizer.json --train-on fixtures/target/math.jsonl --out O/ppl.parquet fixtures/lake"
    "score grand -q --proxy mlp --features pixels --label label --out O/grand.parquet fixtures/digits/train.parquet"
    "score grand -q --proxy mlp --features pixels --label label --last-layer --out O/grand.parquet fixtures/digits/train.parquet"
    "select random -q --k 300 --out O/random.parquet fixtures/lake"
    "sql fixtures/lake --zipfit-target fixtures/target/math.jsonl -c 'select id, zipfit(text) as z, n_words(text) from lake order by z desc, id limit 10'"
    "tokenizer train -q --vocab-size 600 --out O/tokenizer.json fixtures/lake"
)
# Commands over the outputs of the ones before (same working tree).
followups=(
    "verify O/quickstart"
    "verify O/cur"
    "sql O/quickstart fixtures/lake -c 'select id, dsir_logw(text) from lake order by 2 desc, id limit 10'"
    "sql O/quickstart -c 'select domain, count(*), avg(dsir_logw) from selected group by domain order by domain'"
    "sql O/quickstart fixtures/lake -f sql/selection_dropped.sql --format csv"
    "sql O/domain_upsampling --format parquet -o O/per-phase.parquet -f sql/tokens_per_domain_per_phase.sql"
    "select -q --scores O/el2n.parquet --by el2n --keep-max 0.5 --out O/hardest-half.parquet fixtures/lake"
    "select -q --scores O/el2n.parquet --by el2n --offset 20 --k 500 --out O/pruned.parquet fixtures/lake"
    "select -q --scores O/ppl.parquet --by loss --band 0.1 0.9 --out O/middle.parquet fixtures/lake"
    "eval -q --tokenizer fixtures/tokenizer.json --valid math=fixtures/heldout/math.jsonl --tokens 40960 --raw fixtures/lake --out O/eval random=O/random.parquet dsir=O/quickstart/selected.parquet"
)
if [ -n "$lake" ]; then
    files=$(find "$lake" -maxdepth 1 \( -name '*.jsonl' -o -name '*.jsonl.zst' -o -name '*.jsonl.gz' \) ! -name target.jsonl | sort | tr '\n' ' ')
    commands+=(
        "score dsir -q --target $lake/target.jsonl --out O/big-dsir.parquet $files"
        "select dsir -q --target $lake/target.jsonl --k 20000 --seed 1 --out O/big-picked.parquet $files"
        "select zipfit -q --fast --target $lake/target.jsonl --k 20000 --out O/big-zipfit.parquet $files"
        "select random -q --k 20000 --seed 2 --out O/big-random.parquet $files"
    )
    followups+=(
        "curriculum -q --tokenizer fixtures/tokenizer.json --seq-len 2048 --order ascending --by dsir_logw --format syllabus,megatron --out O/big-cur O/big-picked.parquet"
    )
fi

run_all() {  # BIN DEST
    local bin=$1 dest=$2 i=0
    mkdir -p "$work/run/o" "$dest"
    for c in "${commands[@]}" "${followups[@]}"; do
        i=$((i + 1))
        local cmd=${c//O\//$work/run/o/}
        if ! eval "\"$bin\" $cmd" > "$dest/stdout.$i" 2> "$work/stderr"; then
            echo "failed ($bin): syllabus $cmd" >&2; cat "$work/stderr" >&2; exit 1
        fi
    done
    mv "$work/run/o" "$dest/o"
}

# A work directory's KEY holds its inputs' modification times: outputs of an earlier command
# (made at another time by each binary) give different keys, and nothing else differs.
digest() {  # DIR: one line per file, path and sha256, sorted
    (cd "$1" && find . -type f ! -path '*/work/KEY' -print0 | sort -z | xargs -0 sha256sum)
}

echo "before: $before"; run_all "$before" "$work/before"
echo "after:  $after";  run_all "$after" "$work/after"
digest "$work/before" > "$work/before.sha"
digest "$work/after" > "$work/after.sha"
n=$(wc -l < "$work/before.sha")
if diff "$work/before.sha" "$work/after.sha"; then
    echo "identical: $n files from $(( ${#commands[@]} + ${#followups[@]} )) commands"
else
    echo "DIFFERENT (above: < before, > after)"; exit 1
fi
