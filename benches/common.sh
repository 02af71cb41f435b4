# Helpers the whole-command comparisons share: `source benches/common.sh` after setting
# `tmp` (a scratch directory) and `runs`.

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
