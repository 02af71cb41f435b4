# Helpers the whole-command comparisons share: `source benches/common.sh` (from the repository
# root), then `setup VENV PACKAGES...`; time_cmd wants `runs` set.

# setup VENV [PACKAGE...]: a venv with the packages, the 73 MB bench lake in $lake (made from
# the fixture sources when missing), the release binary, and a scratch directory $tmp.
setup() {
    local venv=$1; shift
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    [ $# -eq 0 ] || "$venv/bin/pip" install -q "$@"
    if [ ! -f "$lake/lake.jsonl" ]; then
        "$venv/bin/pip" install -q pyarrow zstandard
        src=$(fixtures/fetch_sources.sh /tmp/syllabus-fixture-sources | tail -n 1)
        "$venv/bin/python" benches/make_bench_lake.py "$src" "$lake"
    fi
    cargo build --release -q --locked
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
}

# The median of numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# time_cmd LABEL COMMAND...: run it `runs` times, each without a $tmp/out_LABEL from before;
# "seconds max_rss_kb" per run in $tmp/LABEL, the last run's stdout in $tmp/stdout_LABEL and
# its stderr in $tmp/err_LABEL (shown if it fails).
time_cmd() {
    local label=$1; shift
    for _ in $(seq "$runs"); do
        rm -rf "$tmp/out_$label"
        /usr/bin/time -f "%e %M" -o "$tmp/t" "$@" >"$tmp/stdout_$label" 2>"$tmp/err_$label" || { cat "$tmp/err_$label"; exit 1; }
        cat "$tmp/t" >> "$tmp/$label"
    done
}
