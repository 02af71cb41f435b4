"""Ten million score rows as one Parquet file, for the SQL group-by bench:
id (string), domain (one of 8), dsir_logw (float64), n_tokens (int64); seeded.

    python benches/make_sql_bench.py OUT.parquet [ROWS]
"""
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
rng = np.random.default_rng(0)
domains = np.array(["web", "books", "code", "math", "wiki", "news", "forums", "papers"])
d = rng.integers(0, len(domains), n)
table = pa.table({
    "id": pa.array([f"doc-{i:08d}" for i in range(n)]),
    "domain": pa.array(domains[d]),
    "dsir_logw": rng.normal(-500.0, 300.0, n) + d * 10.0,
    "n_tokens": rng.integers(10, 4000, n),
})
pq.write_table(table, out, row_group_size=1 << 20)
print(out, n)
