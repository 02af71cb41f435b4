#!/usr/bin/env bash
# Near-duplicate removal side by side on a lake with planted duplicates (benches/make_dup_lake.py:
# exact, case/whitespace, 1-20% word edits, truncations, chained edits; the truth kept): syllabus
# (native, and --compat datatrove), datasketch 2.0's MinHashLSH with the same shingles, bands and
# rows, and datatrove 0.10.1's four-stage MinHash pipeline; each whole command on the same cores,
# wall time and peak RSS, then precision and recall of duplicate pairs against the truth
# (benches/reference_dedup.py quality). datatrove's removed rows are also compared with
# syllabus --compat datatrove's.
#   benches/compare_dedup.sh DUP_DIR [THREADS]     (DUP_DIR: make_dup_lake.py's output)
# Needs the bench venv (benches/requirements.txt: datasketch, datatrove, spacy; `make bench-venv`).
set -euo pipefail
dir=$1; threads=${2:-2}
bin=${SYLLABUS_BIN:-${CARGO_TARGET_DIR:-target}/release/syllabus}
py=${BENCH_PY:-${BENCH_VENV:-/tmp/benchvenv}/bin/python}
ref="$(dirname "$0")/reference_dedup.py"
work=$(mktemp -d "${TMPDIR:-/tmp}/dedup-bench.XXXXXX"); trap 'rm -rf "$work"' EXIT
timed() { # NAME CMD... -> "NAME seconds rss_kb"
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
  echo "$name $(cat "$work/$name.time")"
}
rows=$(cat "$dir"/lake/*.jsonl | wc -l); bytes=$(cat "$dir"/lake/*.jsonl | wc -c)
echo "lake: $rows documents, $((bytes / 1000000)) MB; $threads threads" >&2
{
  timed syllabus "$bin" score dedup -q --threads "$threads" --out "$work/syllabus.parquet" "$dir/lake"
  timed syllabus-compat "$bin" score dedup -q --threads "$threads" --compat datatrove --out "$work/compat.parquet" "$dir/lake"
  timed datasketch "$py" "$ref" datasketch "$dir/lake" "$work/datasketch.tsv"
  timed datatrove "$py" "$ref" datatrove "$dir/lake" "$work/datatrove.tsv" --threads "$threads"
} > "$work/times"
"$py" "$ref" syllabus "$work/syllabus.parquet" "$work/syllabus.tsv"
"$py" "$ref" syllabus "$work/compat.parquet" "$work/syllabus-compat.tsv"
printf "| tool | seconds | peak RSS (MB) | pair precision | pair recall | copies removed |\n|---|---|---|---|---|---|\n"
while read -r name secs rss; do
  q=$("$py" "$ref" quality "$dir/truth.jsonl" "$work/$name.tsv")
  "$py" - "$name" "$secs" "$rss" "$q" <<'EOF'
import json, sys
name, secs, rss, q = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
print(f"| {name} | {secs:.1f} | {rss / 1024:.0f} | {q['pair_precision']:.4f} | {q['pair_recall']:.4f} | "
      f"{q['copies_removed_share']:.4f} ({q['removed']} removed) |")
EOF
done < "$work/times"
# --compat datatrove finds datatrove's clusters. (Which member it keeps is datatrove's only
# with one task: with more, datatrove numbers documents per task and its union-find's ties
# follow those numbers; tests/dedup.rs checks the kept rows against a one-task run.)
"$py" - "$work/datatrove.tsv" "$work/syllabus-compat.tsv" <<'EOF'
import collections, sys
def clusters(path):
    c = collections.defaultdict(set)
    for line in open(path):
        id_, label, _ = line.rstrip("\n").split("\t")
        c[label].add(id_)
    return {frozenset(m) for m in c.values() if len(m) > 1}
a, b = clusters(sys.argv[1]), clusters(sys.argv[2])
print(f"clusters of more than one document: datatrove {len(a)}, syllabus --compat datatrove {len(b)}, "
      f"{'the same' if a == b else f'{len(a ^ b)} differ'}")
EOF
