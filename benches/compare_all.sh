#!/usr/bin/env bash
# Every side-by-side comparison syllabus keeps, each on a short workload, in one table of
# ratios beside the last recorded ones (benches/ratios.tsv); a ratio that fell by more than
# 25% from its recorded value is marked FELL and the script exits 1. `make compare` runs it
# (and makes the bench venv from benches/requirements.txt). Run it for any change to
# dependencies, the allocator or a hot path; `RECORD=1 make compare` writes the new ratios as
# the recorded ones (commit them with the change that moved them).
#
# A ratio is how many times faster syllabus is than what its users run today: the other
# tool's median time over syllabus's (or syllabus's rate over the other's, for tokens/s and
# sequences/s), same data, same cores (taskset), whole commands. The workloads are smaller
# than the full benches in benches/README.md (seconds each), so start-up weighs more and the
# ratios differ from those tables; they are for catching regressions, not for quoting.
#
#   make compare                       # all of them, about 5 minutes on 2 cores
#   ONLY=zipfit-exact,dsir make compare
#
# Env: BENCH_VENV (default .bench-venv), CORES (2), RUNS (3, medians), ONLY (names, comma-
# separated), DATA (workloads, made once: /tmp/syllabus-compare), RECORD (1: save the ratios),
# SYLLABUS_BIN (a syllabus binary to measure instead of building this tree's).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BENCH_VENV:-.bench-venv}
cores=${CORES:-2}
runs=${RUNS:-3}
only=${ONLY:-}
data=${DATA:-/tmp/syllabus-compare}
py=$venv/bin/python
[ -x "$py" ] || { echo "no bench venv at $venv: run \`make bench-venv\` (or set BENCH_VENV)"; exit 2; }
if [ -n "${SYLLABUS_BIN:-}" ]; then
    bin=$SYLLABUS_BIN   # another build, e.g. the commit before a change, for a before/after table
else
    cargo build --release -q --locked
    target=${CARGO_TARGET_DIR:-target}
    case $target in /*) ;; *) target=$(pwd)/$target ;; esac
    bin=$target/release/syllabus
fi
cpus=$(seq -s, 0 $((cores - 1)))
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp" "${SYLLABUS_SHM_DIR:-}"
}
trap cleanup EXIT
export RAYON_NUM_THREADS=$cores

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wanted() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
# secs LABEL COMMAND...: the median wall time of `runs` runs on the pinned cores; $tmp/o_LABEL
# (the command's output, if it writes one there) is removed before each run.
secs() {
    local label=$1; shift
    rm -f "$tmp/t_$label"
    # One run unmeasured first, so the page cache is warm for every measured one.
    rm -rf "$tmp/o_$label"
    taskset -c "$cpus" "$@" >/dev/null 2>&1 || true
    for _ in $(seq "$runs"); do
        rm -rf "$tmp/o_$label"
        /usr/bin/time -f "%e" -o "$tmp/t" taskset -c "$cpus" "$@" >"$tmp/stdout_$label" 2>"$tmp/err_$label" || {
            echo "failed: $*" >&2; cat "$tmp/err_$label" >&2; exit 1; }
        cat "$tmp/t" >> "$tmp/t_$label"
    done
    median < "$tmp/t_$label"
}
results=()
# row NAME WHAT OTHER SYLLABUS RATIO
row() { results+=("$1|$2|$3|$4|$5"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# Workloads, made once into $data.
mkdir -p "$data"
if [ ! -f "$data/lake.jsonl" ]; then
    # The fixture lake four times over (new ids), as one plain jsonl file: 4,900 documents.
    "$bin" select random -q --k 1000000000 --out "$tmp/fixture.jsonl" fixtures/lake 2>/dev/null
    "$py" - "$tmp/fixture.jsonl" "$data/lake.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as w:
    for copy in range(4):
        for r in rows:
            w.write(json.dumps({"id": f"{copy}-{r['id']}", "text": r["text"], "domain": r["domain"]}) + "\n")
EOF
fi
if [ ! -d "$data/zstlake" ]; then
    mkdir -p "$data/zstlake"
    split -n l/4 -d --additional-suffix=.jsonl "$data/lake.jsonl" "$data/zstlake/part-"
    zstd -q --rm "$data"/zstlake/part-*.jsonl
fi
[ -f "$data/zf/lake.jsonl" ] || python3 benches/make_zipfit_real.py "$data/zf" 600 40 >/dev/null
[ -f "$data/scores-8m.parquet" ] || "$py" benches/make_sql_bench.py "$data/scores-8m.parquet" 8000000

if wanted dsir; then
    o=$(secs dsir_ref "$py" benches/reference_dsir.py "$data/lake.jsonl" fixtures/target/math.jsonl 1000 "$cores" "$tmp/o_dsir_ref")
    s=$(secs dsir_syl "$bin" select dsir -q --threads "$cores" --target fixtures/target/math.jsonl --k 1000 --out "$tmp/o_dsir_syl/selected.parquet" "$data/lake.jsonl")
    row dsir "select dsir, 4,900 docs, k=1000 vs data-selection 1.0.3" "$o s" "$s s" "$(ratio "$o" "$s")"
fi

if wanted zipfit-exact || wanted zipfit-fast; then
    o=$(secs zf_ref "$py" benches/reference_zipfit.py "$data/zf/lake.jsonl" "$data/zf/target.jsonl" 60 gzip 6 "$tmp/o_zf_ref.jsonl")
    if wanted zipfit-exact; then
        s=$(secs zf_syl "$bin" select zipfit -q --threads "$cores" --compressor gzip --level 6 --target "$data/zf/target.jsonl" --k 60 \
            --out "$tmp/o_zf_syl.jsonl" "$data/zf/lake.jsonl")
        row zipfit-exact "select zipfit gzip-6, 600 docs x 40 targets (real text) vs zip-fit 1.0.9" "$o s" "$s s" "$(ratio "$o" "$s")"
    fi
    if wanted zipfit-fast; then
        s=$(secs zf_fast "$bin" select zipfit -q --threads "$cores" --fast --target "$data/zf/target.jsonl" --k 60 \
            --out "$tmp/o_zf_fast.jsonl" "$data/zf/lake.jsonl")
        row zipfit-fast "select zipfit --fast (lz4), same data, vs zip-fit 1.0.9 gzip-6" "$o s" "$s s" "$(ratio "$o" "$s")"
    fi
fi

if wanted sql-parquet; then
    q="SELECT domain, count(*), avg(dsir_logw), sum(n_tokens) FROM TABLE GROUP BY domain ORDER BY domain"
    s=$(secs sqlp_syl "$bin" sql -q --threads "$cores" --format csv "$data/scores-8m.parquet" -c "${q//TABLE/scores_8m}")
    o=$(secs sqlp_duck "$py" -c "
import duckdb
con = duckdb.connect(); con.execute('SET threads = $cores')
print(con.execute(\"${q//TABLE/read_parquet(\'$data/scores-8m.parquet\')}\").fetchall())")
    row sql-parquet "sql group-by, 8M rows of Parquet vs DuckDB 2.0.1" "$o s" "$s s" "$(ratio "$o" "$s")"
fi

if wanted sql-jsonl; then
    s=$(secs sqlj_syl "$bin" sql -q --threads "$cores" --format csv "$data/zstlake" -c "select count(*), avg(length(text)) from zstlake")
    o=$(secs sqlj_duck "$py" -c "
import duckdb
con = duckdb.connect(); con.execute('SET threads = $cores'); con.execute('SET enable_progress_bar = false')
print(con.execute(\"select count(*), avg(length(text)) from read_json('$data/zstlake/*.jsonl.zst', format='newline_delimited')\").fetchall())")
    row sql-jsonl "sql over 4 jsonl.zst files (4,900 docs) vs DuckDB read_json" "$o s" "$s s" "$(ratio "$o" "$s")"
fi

if wanted classifier-score; then
    # fastText's own model of the fixture lake (word bigrams), over the 4,900 documents.
    o=$(secs clf_ref "$py" benches/reference_classifier.py score fixtures/classifier/bigrams.bin "$data/lake.jsonl" "$tmp/o_clf_ref.tsv")
    s=$(secs clf_syl "$bin" score classifier -q --threads "$cores" --model fixtures/classifier/bigrams.bin \
        --out "$tmp/o_clf_syl.parquet" "$data/lake.jsonl")
    row classifier-score "score classifier (fastText's own bigram model), 4,900 docs vs fastText 0.9.2 predict" "$o s" "$s s" "$(ratio "$o" "$s")"
fi

if wanted curriculum; then
    o=$(secs cur_ref "$py" benches/reference_curriculum.py "$data/lake.jsonl" fixtures/tokenizer.json "$cores" "$tmp/o_cur_ref/data")
    s=$(secs cur_syl "$bin" curriculum -q --threads "$cores" --tokenizer fixtures/tokenizer.json --seq-len 2048 --format megatron \
        --out "$tmp/o_cur_syl" "$data/lake.jsonl")
    row curriculum "curriculum --format megatron vs the preprocess_data.py recipe (HF tokenizers)" "$o s" "$s s" "$(ratio "$o" "$s")"
fi

if wanted proxy-train || wanted proxy-score; then
    "$bin" select random -q --k 1000000000 --out "$tmp/fixture.jsonl" fixtures/lake 2>/dev/null
    for _ in $(seq "$runs"); do
        taskset -c "$cpus" "$bin" score loss --proxy lm --tokenizer fixtures/tokenizer.json --seeds 1 --epochs 0.5 --threads "$cores" \
            --out "$tmp/proxy.parquet" "$tmp/fixture.jsonl" 2>&1 | grep "trained on" |
            sed -E 's/.*\(([0-9]+) tokens\/s\).*\(([0-9]+) tokens\/s\).*/\1 \2/' >> "$tmp/proxy_syl"
        taskset -c "$cpus" "$py" benches/proxy_lm_torch.py "$tmp/fixture.jsonl" fixtures/tokenizer.json "$tmp/torch.jsonl" --threads "$cores" --epochs 0.5 |
            "$py" -c 'import json,sys; d=json.load(sys.stdin); print(round(d["train_tokens_per_s"]), round(d["score_tokens_per_s"]))' >> "$tmp/proxy_torch"
    done
    st=$(cut -d' ' -f1 "$tmp/proxy_syl" | median); ss=$(cut -d' ' -f2 "$tmp/proxy_syl" | median)
    pt=$(cut -d' ' -f1 "$tmp/proxy_torch" | median); ps=$(cut -d' ' -f2 "$tmp/proxy_torch" | median)
    wanted proxy-train && row proxy-train "lm proxy training, tokens/s, vs the same model in PyTorch eager" "$pt/s" "$st/s" "$(ratio "$st" "$pt")"
    wanted proxy-score && row proxy-score "lm proxy scoring, tokens/s, vs PyTorch eager" "$ps/s" "$ss/s" "$(ratio "$ss" "$ps")"
fi

if wanted loader; then
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall ./python
    export SYLLABUS_SHM_DIR=$(mktemp -d -p /dev/shm)
    "$bin" -q curriculum --tokenizer fixtures/tokenizer.json --seq-len 2048 --order random --on-exhausted repeat \
        --domain prose=fixtures/lake/prose.jsonl --domain code=fixtures/lake/code.jsonl.zst \
        --domain math=fixtures/lake/math.jsonl.gz --domain docs=fixtures/lake/docs.parquet \
        --phase 0:prose=0.4,code=0.3,math=0.15,docs=0.15 --budget-tokens 20000000 --format syllabus,megatron --out "$tmp/big" 2>/dev/null
    "$bin" -q serve "$tmp/big" > "$tmp/ready" &
    pids+=($!)
    until [ -s "$tmp/ready" ]; do sleep 0.05; done
    for kind in megatron syllabus; do
        for _ in $(seq "$runs"); do
            taskset -c "$cpus" "$py" benches/loader_bench.py read $kind "$tmp/big" 0 1 8 --seconds 2 >> "$tmp/loader_$kind"
        done
    done
    rate() { "$py" -c "
import json, sys
r = sorted(json.loads(l)['sequences'] / json.loads(l)['seconds'] for l in open(sys.argv[1]))
print(round(r[len(r) // 2]))" "$1"; }
    m=$(rate "$tmp/loader_megatron"); s=$(rate "$tmp/loader_syllabus")
    row loader "loader, 1 rank, sequences/s vs numpy.memmap of the Megatron files" "$m/s" "$s/s" "$(ratio "$s" "$m")"
fi

# The table, beside the recorded ratios.
recorded=benches/ratios.tsv
fell=0
echo "| comparison | what | other | syllabus | ratio | recorded | |"
echo "|---|---|---|---|---|---|---|"
for r in "${results[@]}"; do
    IFS='|' read -r name what other syl rat <<< "$r"
    was=$(awk -F'\t' -v n="$name" '$1 == n {print $2}' "$recorded" 2>/dev/null || true)
    mark=""
    if [ -n "$was" ] && awk -v a="$rat" -v b="$was" 'BEGIN {exit !(a < 0.75 * b)}'; then
        mark="FELL"
        fell=1
    fi
    echo "| $name | $what | $other | $syl | ${rat}x | ${was:+${was}x} | $mark |"
done
if [ "${RECORD:-0}" = 1 ]; then
    {
        echo -e "# name\tratio\tdate\tcores (benches/compare_all.sh; RECORD=1 make compare rewrites it)"
        for r in "${results[@]}"; do
            IFS='|' read -r name _ _ _ rat <<< "$r"
            echo -e "$name\t$rat\t$(date +%F)\t$cores"
        done
        # Keep what this run did not measure.
        if [ -f "$recorded" ]; then
            for line in $(awk -F'\t' '!/^#/ {print $1}' "$recorded"); do
                printf '%s\n' "${results[@]}" | grep -q "^$line|" || grep -P "^$line\t" "$recorded"
            done
        fi
    } > "$tmp/ratios.tsv"
    mv "$tmp/ratios.tsv" "$recorded"
    echo "recorded in $recorded"
fi
exit $fell
