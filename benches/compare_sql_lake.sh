#!/usr/bin/env bash
# SQL over a raw jsonl.zst lake: `syllabus sql LAKE -c "select count(*), avg(length(text))"`
# side by side with DuckDB's read_json(format='newline_delimited') on the same files and cores,
# whole commands (start-up included), median of RUNS; and syllabus's start-up alone (`select 1`).
#
#   benches/compare_sql_lake.sh      # the 10x lake of benches/make_scale_lake.py
#
# Env: LAKE (default /tmp/scale-lake), FILES (default 40), CORES (default 2), RUNS (default 3),
# REF_VENV (a venv with duckdb; made if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
lake=${LAKE:-/tmp/scale-lake}
files=${FILES:-40}
cores=${CORES:-2}
runs=${RUNS:-3}
venv=${REF_VENV:-/tmp/refvenv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import duckdb" 2>/dev/null || "$venv/bin/pip" install -q duckdb
cargo build --release -q --locked
bin=${CARGO_TARGET_DIR:-target}/release/syllabus
source benches/common.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/big"
for f in $(ls "$lake"/part-*.jsonl.zst | head -n "$files"); do ln -s "$f" "$tmp/big/"; done
mb=$(for f in "$tmp"/big/*; do zstd -dc < "$f" | wc -c; done | awk '{s+=$1} END {printf "%.0f", s/1e6}')
query="select count(*), avg(length(text)) from big"
time_cmd start "$bin" sql -q --threads "$cores" "$tmp/big" -c "select 1"
time_cmd syl "$bin" sql -q --threads "$cores" --format csv "$tmp/big" -c "$query"
time_cmd duck "$venv/bin/python" -c "
import duckdb
con = duckdb.connect()
con.execute('SET threads = $cores')
con.execute('SET enable_progress_bar = false')
print(con.execute(\"select count(*), avg(length(text)) from read_json('$tmp/big/*.jsonl.zst', format='newline_delimited')\").fetchall())
"
echo "syllabus: $(tail -n 1 "$tmp/stdout_syl"); DuckDB $(duckdb_version=$("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)'); echo "$duckdb_version"): $(cat "$tmp/stdout_duck")"
s=$(cut -d' ' -f1 "$tmp/syl" | median); d=$(cut -d' ' -f1 "$tmp/duck" | median); st=$(cut -d' ' -f1 "$tmp/start" | median)
sm=$(cut -d' ' -f2 "$tmp/syl" | median); dm=$(cut -d' ' -f2 "$tmp/duck" | median)
echo "| $files files, $mb MB jsonl (zstd), $cores cores, median of $runs | DuckDB $d s, $((dm / 1024)) MB | syllabus sql $s s, $((sm / 1024)) MB (start-up $st s) | $(awk -v a="$d" -v b="$s" 'BEGIN {printf "%.2f", a / b}')x |"
