"""Replicate the headline of "Deep Learning on a Data Diet" (Paul et al. 2021) on the
scikit-learn handwritten digits (fixtures/digits, exported by scripts/export_digits.py):
keep 50% of the training set by EL2N (keep-max: drop the easiest), or a random 50%, or the
lowest 50% by EL2N, train the same classifier on each, and compare test accuracy over seeds.

    python benches/replicate_el2n.py [SYLLABUS_BINARY]

EL2N comes from `syllabus score el2n --proxy mlp` (proxies trained a few epochs in, averaged
over seeds) and the subsets from `syllabus select --by el2n`; the classifier that is trained on
each subset and evaluated is scikit-learn's MLPClassifier (an independent implementation), the
same architecture for every subset. Prints a markdown table. Needs scikit-learn and pyarrow.
"""
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow.parquet as pq
from sklearn.neural_network import MLPClassifier

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
syllabus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target", "release", "syllabus")
train_path = os.path.join(root, "fixtures", "digits", "train.parquet")
test_path = os.path.join(root, "fixtures", "digits", "test.parquet")
SEEDS = [0, 1, 2, 3, 4]
PROXY = ["--proxy", "mlp", "--features", "pixels", "--label", "label", "--epochs", "2", "--seeds", "5"]


def load(path):
    t = pq.read_table(path).to_pydict()
    return t["id"], np.array(t["pixels"], dtype=np.float32), np.array(t["label"])


def run(*args):
    subprocess.run([syllabus, *args, "-q"], check=True, stderr=subprocess.DEVNULL)


ids, X, y = load(train_path)
_, Xt, yt = load(test_path)
row = {i: k for k, i in enumerate(ids)}
with tempfile.TemporaryDirectory() as tmp:
    scores = os.path.join(tmp, "el2n.parquet")
    run("score", "el2n", *PROXY, "--out", scores, train_path)
    subsets = {"full training set (1347)": list(range(len(ids)))}
    for name, rule in (("EL2N keep-max 50%", ["--keep-max", "0.5"]), ("EL2N lowest 50%", ["--keep-min", "0.5"])):
        out = os.path.join(tmp, "subset.parquet")
        run("select", "--scores", scores, "--by", "el2n", *rule, "--out", out, train_path)
        subsets[name] = [row[i] for i in pq.read_table(out, columns=["id"]).column("id").to_pylist()]

half = len(ids) // 2 + len(ids) % 2
results = {name: [] for name in subsets}
results["random 50%"] = []
for seed in SEEDS:
    rnd = random.Random(seed).sample(range(len(ids)), half)
    for name, idx in list(subsets.items()) + [("random 50%", rnd)]:
        clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=400, random_state=seed)
        clf.fit(X[idx], y[idx])
        results[name].append(100.0 * (clf.predict(Xt) == yt).mean())

print(f"| training subset | test accuracy (mean ± sd over {len(SEEDS)} seeds) |")
print("|---|---|")
for name in ["full training set (1347)", "EL2N keep-max 50%", "random 50%", "EL2N lowest 50%"]:
    a = np.array(results[name])
    print(f"| {name} | {a.mean():.2f}% ± {a.std():.2f} |")
