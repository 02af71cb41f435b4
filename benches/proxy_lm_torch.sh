#!/usr/bin/env bash
# The lm proxy side by side with the same model in PyTorch eager (benches/proxy_lm_torch.py):
# same weights, same batches, same cores, interleaved runs; checks that per-document losses
# agree and reports training and scoring tokens/s of both (issue #16's bench).
#
#   benches/proxy_lm_torch.sh      # needs a Python with torch, numpy, tokenizers (TORCH_PY)
#
# Env: RUNS (default 3, medians), CORES (default 2), TORCH_PY (default /tmp/benchvenv/bin/python),
# PY (a Python with pyarrow, default /tmp/refvenv/bin/python), ARGS (model flags for both, e.g.
# "--width 256 --layers 4 --context 256 --epochs 0.05"), TOKENIZER (default the fixture's, a
# vocabulary of 2,048; the larger shape uses a 32,000 one, see benches/README.md). Also reports
# each side's peak RSS (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cores=${CORES:-2}
tpy=${TORCH_PY:-/tmp/benchvenv/bin/python}
py=${PY:-/tmp/refvenv/bin/python}
args=${ARGS:-}
tok=${TOKENIZER:-fixtures/tokenizer.json}
cargo build --release -q --locked
bin="${CARGO_TARGET_DIR:-target}"/release/syllabus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The lake as one jsonl file in syllabus's reading order (what the PyTorch script reads).
"$bin" select random -q --k 1000000000 --out "$tmp/lake.jsonl" fixtures/lake 2>/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for _ in $(seq "$runs"); do
    # shellcheck disable=SC2086
    /usr/bin/time -f "%M" -o "$tmp/syl.rss" "$bin" score loss --proxy lm --tokenizer "$tok" --seeds 1 --threads "$cores" $args \
        --out "$tmp/syl.parquet" "$tmp/lake.jsonl" 2>&1 | grep "trained on" |
        sed -E 's/.*\(([0-9]+) tokens\/s\).*\(([0-9]+) tokens\/s\).*/\1 \2/' >> "$tmp/syl"
    cat "$tmp/syl.rss" >> "$tmp/syl.rsss"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%M" -o "$tmp/torch.rss" "$tpy" benches/proxy_lm_torch.py "$tmp/lake.jsonl" "$tok" "$tmp/torch.jsonl" --threads "$cores" $args |
        "$tpy" -c 'import json,sys; d=json.load(sys.stdin); print(round(d["train_tokens_per_s"]), round(d["score_tokens_per_s"]))' >> "$tmp/torch"
    cat "$tmp/torch.rss" >> "$tmp/torch.rsss"
done
"$py" - "$tmp/syl.parquet" "$tmp/torch.jsonl" <<'PY'
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
s = dict(zip(t.column("id").to_pylist(), t.column("loss").to_pylist()))
p = {json.loads(l)["id"]: json.loads(l)["loss"] for l in open(sys.argv[2])}
d = [abs(s[k] - p[k]) for k in s]
print(f"per-document loss, syllabus vs PyTorch: mean |diff| {sum(d) / len(d):.4f}, max {max(d):.4f} over {len(d)} documents")
PY
st=$(cut -d' ' -f1 "$tmp/syl" | median); ss=$(cut -d' ' -f2 "$tmp/syl" | median)
pt=$(cut -d' ' -f1 "$tmp/torch" | median); ps=$(cut -d' ' -f2 "$tmp/torch" | median)
sr=$(median < "$tmp/syl.rsss"); pr=$(median < "$tmp/torch.rsss")
echo "| | syllabus | PyTorch eager | syllabus / PyTorch |"
echo "|---|---|---|---|"
echo "| training tokens/s | $st | $pt | $(awk -v a="$st" -v b="$pt" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| scoring tokens/s | $ss | $ps | $(awk -v a="$ss" -v b="$ps" 'BEGIN{printf "%.2fx", a/b}') |"
echo "| peak RSS | $((sr / 1024)) MB | $((pr / 1024)) MB | |"
