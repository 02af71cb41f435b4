#!/usr/bin/env bash
# `syllabus score contamination` against the same rule written as a Python scan over a dict of
# item n-grams (benches/reference_contamination.py, one process: how users write it), on the
# same lake and benchmark; the Python side also checks that every row of syllabus's output
# equals its own. syllabus's time is the median of RUNS, on every core (and on one).
#   benches/compare_contamination.sh "LAKE FILES" "BENCHMARK FILES" [RUNS]
set -euo pipefail
lake=($1); bench=($2); runs=${3:-3}
bin=${SYLLABUS_BIN:-${CARGO_TARGET_DIR:-target}/release/syllabus}
py=${BENCH_PY:-${BENCH_VENV:-/tmp/benchvenv}/bin/python}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # THREADS
  for r in $(seq 1 "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/t" "$bin" score contamination -q --threads "$1" --against "${bench[@]}" \
      --out "$work/c.parquet" "${lake[@]}" >/dev/null 2>&1
    cat "$work/t"
  done | sort -n | awk '{t[NR]=$1; m[NR]=$2} END {i=int((NR+1)/2); print t[i], m[i]}'
}
read -r t_all rss_all < <(run 0)
read -r t_one rss_one < <(run 1)
t_py=$("$py" "$(dirname "$0")/reference_contamination.py" --against "${bench[@]}" --lake "${lake[@]}" --check "$work/c.parquet" 2>"$work/py.err")
cat "$work/py.err" >&2
echo "syllabus ($(nproc) cores): ${t_all}s, ${rss_all} KB; 1 thread: ${t_one}s, ${rss_one} KB; python scan: ${t_py}s;" \
  "speed-up $(echo "scale=1; $t_py / $t_all" | bc)x ($(echo "scale=1; $t_py / $t_one" | bc)x on one core); outputs equal"
