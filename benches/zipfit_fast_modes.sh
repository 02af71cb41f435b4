#!/usr/bin/env bash
# ZIP-FIT's fast modes against exact gzip-6 on four targets of different kinds (math, docs,
# code, prose: benches/make_eval_targets.py): per target and mode, the time of `select zipfit`
# on the fixture lake, the share of exact's top k that the mode recovers, and the validation
# loss `syllabus eval` measures for each selection (and for a random one) on the target's
# held-out half.
#
#   benches/zipfit_fast_modes.sh     # needs the fixture sources: fixtures/fetch_sources.sh /tmp/src
#
# Env: SRC (default /tmp/src/root), K (default 300), TOKENS (default 163840), SEEDS (default 2),
# RUNS (timings, median; default 3), KINDS (default "math docs code prose"), WORK (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${SRC:-/tmp/src/root}
k=${K:-300}
tokens=${TOKENS:-163840}
seeds=${SEEDS:-2}
runs=${RUNS:-3}
kinds=${KINDS:-math docs code prose}
cargo build --release -q --locked
bin="${CARGO_TARGET_DIR:-target}"/release/syllabus
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
python3 benches/make_eval_targets.py "$src" "$work/targets" >&2

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
modes="exact lz4 zstd-1 zstd1 zstd3"
args_of() {
    case $1 in
        exact) echo "" ;;
        lz4) echo "--fast" ;;
        zstd-1) echo "--fast --compressor zstd" ;;
        zstd1) echo "--fast --compressor zstd --level 1" ;;
        zstd3) echo "--fast --compressor zstd --level 3" ;;
    esac
}
overlap() { # a.jsonl b.jsonl -> share of a's ids in b
    python3 -c 'import json,sys
a={json.loads(l)["id"] for l in open(sys.argv[1])}; b={json.loads(l)["id"] for l in open(sys.argv[2])}
print(f"{100*len(a&b)/len(a):.1f}%")' "$1" "$2"
}
"$bin" select random -q --k "$k" --out "$work/random.jsonl" fixtures/lake 2>/dev/null

echo "| target | mode | select time (median of $runs) | share of exact's top $k | final valid loss (mean ± sd of $seeds seeds) |"
echo "|---|---|---|---|---|"
for kind in $kinds; do
    cands=("random=$work/random.jsonl")
    for mode in $modes; do
        out="$work/$kind-$mode.jsonl"
        for _ in $(seq "$runs"); do
            rm -f "$out"
            # shellcheck disable=SC2046
            /usr/bin/time -f "%e" -o "$work/t" "$bin" select zipfit -q --k "$k" --target "$work/targets/$kind-target.jsonl" \
                $(args_of "$mode") --out "$out" fixtures/lake 2>/dev/null
            cat "$work/t" >> "$work/times-$kind-$mode"
        done
        cands+=("$mode=$out")
    done
    "$bin" eval -q --tokenizer fixtures/tokenizer.json --valid "$kind=$work/targets/$kind-valid.jsonl" --tokens "$tokens" \
        --seeds "$seeds" --out "$work/eval-$kind" "${cands[@]}" > "$work/eval-$kind.txt" 2>/dev/null
    for mode in random $modes; do
        loss=$(awk -F, -v c="$mode" '$1 == c { printf "%.3f ± %.3f", $3, $4 }' "$work/eval-$kind/summary.csv")
        if [ "$mode" = random ]; then
            echo "| $kind | random | - | $(overlap "$work/$kind-exact.jsonl" "$work/random.jsonl") | $loss |"
        else
            t=$(median < "$work/times-$kind-$mode")
            echo "| $kind | $mode | ${t} s | $(overlap "$work/$kind-exact.jsonl" "$work/$kind-$mode.jsonl") | $loss |"
        fi
    done
done
echo "(work in $work)" >&2
