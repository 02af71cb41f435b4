"""Export the handwritten digits that ship with scikit-learn (UCI ML hand-written digits,
1,797 8x8 images, 10 classes) to Parquet for the EL2N replication:

    python scripts/export_digits.py fixtures/digits

Writes train.parquet (75%) and test.parquet (25%), a stratified split with a fixed seed, with
columns id, text (the image drawn in characters, so the rows read as documents too), pixels
(64 floats in [0, 1]) and label (0-9). Needs scikit-learn and pyarrow.
"""
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
digits = load_digits()
X, y = digits.data / 16.0, digits.target
idx = list(range(len(y)))
train_idx, test_idx = train_test_split(idx, test_size=0.25, random_state=0, stratify=y)
shades = " .:-=+*#%@"


def draw(pixels):
    rows = []
    for r in range(8):
        rows.append("".join(shades[min(9, int(p * 9.999))] for p in pixels[r * 8:(r + 1) * 8]))
    return "\n".join(rows)


for name, part in (("train", train_idx), ("test", test_idx)):
    part = sorted(part)
    table = pa.table({
        "id": [f"digit-{i:04d}" for i in part],
        "text": [draw(X[i]) for i in part],
        "pixels": pa.array([[float(v) for v in X[i]] for i in part], type=pa.list_(pa.float32())),
        "label": pa.array([int(y[i]) for i in part], type=pa.int64()),
    })
    pq.write_table(table, os.path.join(out, f"{name}.parquet"), compression="zstd")
    print(name, table.num_rows)
