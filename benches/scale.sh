#!/usr/bin/env bash
# One node at lake scale: DSIR select, ZIP-FIT --fast select, a curriculum and a SQL aggregate
# on a 1x lake (4 files) and a 10x lake (40 files, 2.3 GB of jsonl in jsonl.zst) built by
# benches/make_scale_lake.py, each with 1 and 2 threads (and every core where there are more);
# then what a kill -9 at 75% costs a curriculum of the 1x lake and `score dsir` of the 10x lake
# (40 files: it resumes at the file it was on). Prints
# markdown table rows: time, throughput (MB of jsonl and documents per second), peak RSS.
#
#   benches/scale.sh                 # builds /tmp/scale-lake if missing (needs zstandard)
#
# Env: LAKE (default /tmp/scale-lake), PY (a Python with zstandard, pyarrow), STAGES (default
# "dsir zipfit curriculum sql"), SCALES (default "1 10"), THREADS (default "1 2" plus nproc),
# RESUME (default 1: run the kill -9 measurements; only: nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
lake=${LAKE:-/tmp/scale-lake}
py=${PY:-python3}
stages=${STAGES:-dsir zipfit curriculum sql}
scales=${SCALES:-1 10}
cores=$(nproc)
threads=${THREADS:-$( [ "$cores" -gt 2 ] && echo "1 2 $cores" || echo "1 2")}
bin=${CARGO_TARGET_DIR:-target}/release/syllabus

cargo build --release -q --locked
if [ ! -f "$lake/part-0039.jsonl.zst" ]; then
    src=$(fixtures/fetch_sources.sh /tmp/syllabus-fixture-sources | tail -n 1)
    "$py" benches/make_scale_lake.py "$src" "$lake"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The 1x lake is the first 4 files, the 10x lake all 40 (directories of links).
for s in 1 10; do
    mkdir -p "$tmp/lake$s"
    for f in $(ls "$lake"/part-*.jsonl.zst | head -n $((4 * s))); do ln -s "$f" "$tmp/lake$s/"; done
done
# A 20-row target for ZIP-FIT (its cost is documents x targets).
head -n 20 "$lake/target.jsonl" > "$tmp/target20.jsonl"

mb_of() { # jsonl megabytes of a lake directory
    for f in "$1"/*.jsonl.zst; do zstd -dc < "$f" | wc -c; done | awk '{s+=$1} END {printf "%.0f", s/1e6}'
}
declare -A mb docs
for s in $scales; do
    mb[$s]=$(mb_of "$tmp/lake$s")
done

run() { # label threads command...: one timed run, prints "seconds rss_kb"
    local label=$1 t=$2; shift 2
    rm -rf "$tmp/out"
    mkdir -p "$tmp/out"
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" >"$tmp/stdout" 2>"$tmp/stderr" || { cat "$tmp/stderr"; exit 1; }
    cat "$tmp/time"
}

stage_cmd() { # stage scale threads
    local s=$2 t=$3
    case $1 in
        dsir) echo "$bin select dsir -q --threads $t --target $lake/target.jsonl --k 10000 --out $tmp/out/sel.parquet $tmp/lake$s" ;;
        zipfit) echo "$bin select zipfit -q --fast --threads $t --target $tmp/target20.jsonl --k 10000 --out $tmp/out/sel.parquet $tmp/lake$s" ;;
        curriculum) echo "$bin curriculum -q --threads $t --tokenizer fixtures/tokenizer.json --seq-len 2048 --order random --format syllabus,megatron --out $tmp/out/cur $tmp/lake$s" ;;
        sql) echo "$bin sql -q --threads $t --format csv $tmp/lake$s -c \"select count(*), avg(length(text)) from lake$s\"" ;;
    esac
}

[ "${RESUME:-1}" = only ] && stages=""
echo "| stage | lake | threads | time | MB/s of jsonl | documents/s | peak RSS |"
echo "|---|---|---|---|---|---|---|"
for stage in $stages; do
    for s in $scales; do
        for t in $threads; do
            read -r secs rss < <(eval run "$stage" "$t" "$(stage_cmd "$stage" "$s" "$t")")
            n=$(grep -o "read [0-9]* rows" "$tmp/stderr" | head -n 1 | grep -o "[0-9]*" || true)
            [ -n "$n" ] || n=$(grep -o "curriculum of [0-9]* documents" "$tmp/stderr" | grep -o "[0-9]*" || true)
            [ -n "$n" ] || n=$(sed -n 2p "$tmp/stdout" | cut -d, -f1)
            extra=""
            [ "$stage" != curriculum ] || extra=" ($(grep -o "[0-9]* tokens in" "$tmp/stderr" | grep -o "[0-9]*" | awk -v s="$secs" '{printf "%.2f M tokens/s", $1 / s / 1e6}'))"
            awk -v st="$stage" -v s="$s" -v t="$t" -v secs="$secs" -v rss="$rss" -v mb="${mb[$s]}" -v n="$n" -v x="$extra" \
                'BEGIN {printf "| %s | %dx (%d MB) | %d | %.1f s | %.1f | %.0f%s | %d MB |\n", st, s, mb, t, secs, mb / secs, n / secs, x, rss / 1024}'
        done
    done
done

[ "${RESUME:-1}" != 0 ] || exit 0
# kill -9 at 75% of a clean run's time, then the same command again: its time as a share of
# the clean run's (the goal: about 25%, plus at most one unit of redone work).
echo
echo "| command (2 threads) | clean run | killed at | resumed run | resumed / clean |"
echo "|---|---|---|---|---|"
for stage in curriculum dsir-score; do
    what=$([ $stage = curriculum ] && echo "curriculum, 1x lake" || echo "score dsir, 10x lake")
    case $stage in
        curriculum) cmd="$bin curriculum -q --threads 2 --tokenizer fixtures/tokenizer.json --seq-len 2048 --order random --format syllabus,megatron --out $tmp/out/cur $tmp/lake1" ;;
        dsir-score) cmd="$bin score dsir -q --threads 2 --target $lake/target.jsonl --out $tmp/out/scores.parquet $tmp/lake10" ;;
    esac
    read -r clean _ < <(run clean 2 $cmd)
    rm -rf "$tmp/out"; mkdir -p "$tmp/out"
    $cmd >/dev/null 2>&1 &
    pid=$!
    kill_at=$(awk -v c="$clean" 'BEGIN {printf "%.2f", c * 0.75}')
    sleep "$kill_at"
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    /usr/bin/time -f "%e %M" -o "$tmp/time" $cmd >/dev/null 2>&1
    read -r resumed _ < "$tmp/time"
    awk -v st="$what" -v c="$clean" -v k="$kill_at" -v r="$resumed" \
        'BEGIN {printf "| %s | %.1f s | %.1f s | %.1f s | %.0f%% |\n", st, c, k, r, 100 * r / c}'
done
