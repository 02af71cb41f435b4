#!/usr/bin/env bash
# The lm proxy on the fixture lake: training and scoring throughput, peak memory, and the mean
# scores per domain (which domains the proxy finds hard or easy).
#
#   benches/proxy_lm.sh          # default proxy (width 64, 2 blocks, context 64, 1 epoch), SEEDS=3
#
# Env: SEEDS (default 3), CORES (default 2), PY (a python with pyarrow; default /tmp/refvenv).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-3}
cores=${CORES:-2}
py=${PY:-/tmp/refvenv/bin/python}
"$py" -c "import pyarrow" 2>/dev/null || { python3 -m venv /tmp/refvenv; /tmp/refvenv/bin/pip install -q pyarrow; py=/tmp/refvenv/bin/python; }
cargo build --release -q --locked
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/time -f "%e %M" -o "$tmp/time" "${CARGO_TARGET_DIR:-target}"/release/syllabus score el2n --proxy lm --tokenizer fixtures/tokenizer.json \
    --seeds "$seeds" --threads "$cores" --out "$tmp/el2n.parquet" fixtures/lake 2>"$tmp/err"
grep "trained on" "$tmp/err"
read -r secs rss < "$tmp/time"
echo "wall $secs s, peak RSS $((rss / 1024)) MB, $seeds seeds, $cores cores"
"$py" - "$tmp/el2n.parquet" <<'PY'
import sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).to_pydict()
by = {}
for i, e, l, n in zip(t["id"], t["el2n"], t["loss"], t["n_tokens"]):
    d = by.setdefault(i.split("-")[0], [0, 0.0, 0.0, 0])
    d[0] += 1; d[1] += e; d[2] += l * n; d[3] += n
print("| domain | documents | mean EL2N | token loss (nats) | perplexity |")
print("|---|---|---|---|---|")
import math
for name, (k, e, l, n) in sorted(by.items(), key=lambda kv: kv[1][2] / kv[1][3]):
    print(f"| {name} | {k} | {e / k:.3f} | {l / n:.3f} | {math.exp(l / n):.1f} |")
PY
