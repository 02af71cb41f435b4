#!/usr/bin/env bash
# A group-by over ten million score rows, `syllabus sql` (DataFusion) side by side with DuckDB
# on the same Parquet file and the same cores, whole commands, median of RUNS.
#
#   benches/compare_sql.sh          # makes /tmp/sql-bench/scores.parquet and /tmp/refvenv if missing
#
# Env: CORES (default 2), RUNS (default 5), ROWS (default 10000000), REF_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=${CORES:-2}
runs=${RUNS:-5}
rows=${ROWS:-10000000}
venv=${REF_VENV:-/tmp/refvenv}
data=/tmp/sql-bench/scores-$rows.parquet
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import duckdb, pyarrow, numpy" 2>/dev/null || "$venv/bin/pip" install -q duckdb pyarrow numpy
mkdir -p /tmp/sql-bench
[ -f "$data" ] || "$venv/bin/python" benches/make_sql_bench.py "$data" "$rows"
cargo build --release -q --locked
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
query="SELECT domain, count(*) AS documents, avg(dsir_logw) AS mean_logw, min(dsir_logw) AS min_logw, max(dsir_logw) AS max_logw, sum(n_tokens) AS tokens FROM TABLE GROUP BY domain ORDER BY domain"
source benches/common.sh
parquet_src="read_parquet('$data')"
duck_query=${query//TABLE/$parquet_src}
syl_query=${query//TABLE/scores_$rows}
time_cmd syl env RAYON_NUM_THREADS="$cores" "${CARGO_TARGET_DIR:-target}"/release/syllabus sql "$data" --format csv -q \
    -c "SET datafusion.execution.target_partitions = $cores; $syl_query"
time_cmd duck "$venv/bin/python" -c "
import duckdb, sys, time
con = duckdb.connect()
con.execute('SET threads = $cores')
t = time.perf_counter()
rows = con.execute(\"$duck_query\").fetchall()
open('$tmp/duck_inproc', 'a').write(f'{time.perf_counter() - t:.4f}\\n')
for row in rows:
    print(','.join(map(str, row)))
"
# Same groups, same counts and token sums (floats may differ in the last digits).
cut -d, -f1,2,6 "$tmp/stdout_syl" | tail -n +2 > "$tmp/a"; cut -d, -f1,2,6 "$tmp/stdout_duck" > "$tmp/b"
cmp -s "$tmp/a" "$tmp/b" || { echo "results differ"; diff "$tmp/a" "$tmp/b"; exit 1; }
s=$(cut -d' ' -f1 "$tmp/syl" | median); d=$(cut -d' ' -f1 "$tmp/duck" | median)
sm=$(cut -d' ' -f2 "$tmp/syl" | median); dm=$(cut -d' ' -f2 "$tmp/duck" | median)
mb=$(du -m "$data" | cut -f1)
di=$(median < "$tmp/duck_inproc")
# Whole commands (DuckDB's includes starting Python, about 0.1 s) and DuckDB's query alone.
echo "| $rows rows, $mb MB Parquet, $cores cores, median of $runs | DuckDB $d s whole ($di s in-process query), $((dm / 1024)) MB | syllabus sql $s s whole, $((sm / 1024)) MB | $(awk -v a="$d" -v b="$s" 'BEGIN {printf "%.2f", a / b}')x whole, $(awk -v a="$di" -v b="$s" 'BEGIN {printf "%.2f", a / b}')x against the in-process query |"
