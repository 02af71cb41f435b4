#!/usr/bin/env python3
"""Regenerate the DSIR golden files from the reference implementation.

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install data-selection==1.0.3 nltk==3.9.4 pyarrow zstandard
    /tmp/refvenv/bin/python tests/golden/make_dsir_golden.py

The reference (data-selection 1.0.3, HashedNgramDSIR) reads plain jsonl only, so the fixture
lake is first written out as plain jsonl, file by file, in the order syllabus reads a
directory (sorted paths). num_proc=1 makes the reference's Gumbel draws depend on the seed
alone (one virtual shard per file, in file order).

Writes tests/golden/:
  dsir_<case>_weights.jsonl     id, log importance weight (repr), n_words, per raw row
  dsir_<case>_select_<how>.txt  ids the reference's resample() keeps (seed S, or top-k)
  wordpunct.jsonl               text and nltk's tokens of text.lower() for tricky strings
"""
import gzip
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import zstandard
from data_selection import HashedNgramDSIR
from nltk.tokenize import WordPunctTokenizer

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
LAKE = sorted((ROOT / "fixtures" / "lake").iterdir())
K = 300
CASES = {
    # name: (target files, HashedNgramDSIR kwargs, selections)
    "math": (["fixtures/target/math.jsonl"], {}, ["seed0", "seed42", "topk"]),
    "docs_b5000": (["fixtures/target/docs.jsonl"], {"num_buckets": 5000}, ["seed7"]),
    # Few buckets: weights close together, so the Gumbel noise decides much of the selection.
    "math_b16": (["fixtures/target/math.jsonl"], {"num_buckets": 16}, ["seed3"]),
    # Four buckets: the raw fit stops at the reference's budget (100000 * buckets n-grams, split
    # over the files) in the larger files, with weights that still differ.
    "math_b4": (["fixtures/target/math.jsonl"], {"num_buckets": 4}, ["seed11"]),
    # One bucket: every weight is 0 and the selection is the noise alone.
    "math_b1": (["fixtures/target/math.jsonl"], {"num_buckets": 1}, ["seed0", "seed5"]),
}


def rows_of(path: Path):
    name = path.name
    if name.endswith(".parquet"):
        yield from pq.read_table(path).to_pylist()
        return
    if name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read()
    elif name.endswith(".gz"):
        data = gzip.decompress(path.read_bytes())
    else:
        data = path.read_bytes()
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def plain_lake(tmp: Path):
    paths, ids = [], []
    for i, f in enumerate(LAKE):
        out = tmp / f"{i:02d}.jsonl"
        with out.open("w") as w:
            for row in rows_of(f):
                w.write(json.dumps(row) + "\n")
                ids.append(row["id"])
        paths.append(str(out))
    return paths, ids


def selected_ids(out_dir: Path):
    ids = []
    for f in sorted(out_dir.glob("*.jsonl"), key=lambda p: int(p.stem)):
        ids += [json.loads(l)["id"] for l in f.read_text().splitlines() if l.strip()]
    return ids


def run_case(name, targets, kwargs, selections, tmp: Path):
    raw, ids = plain_lake(tmp)
    cache = tmp / f"cache_{name}"
    dsir = HashedNgramDSIR(raw, [str(ROOT / t) for t in targets], cache_dir=str(cache), num_proc=1, **kwargs)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    dsir.compute_importance_weights()
    logw = np.concatenate([np.load(cache / "log_importance_weights" / f"{i}.npy") for i in range(len(raw))])
    words = np.concatenate([np.load(cache / "perexample_metadata" / f"{i}.npy") for i in range(len(raw))])
    assert len(logw) == len(ids) == len(words)
    with (GOLDEN / f"dsir_{name}_weights.jsonl").open("w") as w:
        for i, lw, n in zip(ids, logw.tolist(), words.tolist()):
            w.write(json.dumps({"id": i, "logw": lw, "n_words": int(n)}) + "\n")
    for how in selections:
        out = tmp / f"out_{name}_{how}"
        if how == "topk":
            dsir.resample(out_dir=str(out), num_to_sample=K, cache_dir=str(tmp / f"c_{name}_{how}"), top_k=True)
        else:
            np.random.seed(int(how.removeprefix("seed")))
            dsir.resample(out_dir=str(out), num_to_sample=K, cache_dir=str(tmp / f"c_{name}_{how}"))
        (GOLDEN / f"dsir_{name}_select_{how}.txt").write_text("\n".join(selected_ids(out)) + "\n")
    print(f"{name}: {len(ids)} rows, eligible {(words >= 100).sum()}", file=sys.stderr)


TRICKY = [
    "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks.",
    "don't!!! ...yes?! (a) [b] {c} <d> — e – f “quoted” ‘single’",
    "a\x1cb\x1dc\x1ed\x1fe\x85f\xa0g\u1680h\u2000i\u2028j\u2029k\u202fl\u205fm\u3000n",
    "zero\u200bwidth\u200cjoiner\u200dnon\ufeffbom",
    "e\u0301cole naïve café Ångström ΟΔΟΣ Σίσυφος İstanbul ǅemal ﬁnance ß",
    "हिन्दी தமிழ் ไทย 日本語のテキスト 한국어 العربية עברית",
    "x² ½ ① ⅷ 𝟙𝟚 ٣ ໒ 🎉👋🏽🇫🇷 #hashtag @user snake_case __dunder__ 3.14e-10",
    "def f(x):\n\treturn x**2 // 3 != 4 and x <= 5 or not (x >= 6)  # comment",
    "let THM = prove(`!x. &0 <= x ==> sqrt(x pow 2) = x`, REAL_ARITH_TAC);;",
    "",
    "   \t\n  ",
]


def random_strings(n, seed=1234):
    rng = random.Random(seed)
    blocks = [(0x20, 0x7E), (0x00, 0x20), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
              (0x590, 0x6FF), (0x900, 0xDFF), (0x1680, 0x1FFF), (0x2000, 0x2BFF), (0x3000, 0x30FF),
              (0x4E00, 0x4EFF), (0xAC00, 0xACFF), (0xFB00, 0xFFFF), (0x10000, 0x1034F), (0x1D400, 0x1D7FF),
              (0x1F300, 0x1FAFF), (0xE0000, 0xE007F)]
    out = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(blocks)
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:
                continue
            chars.append(chr(cp))
        out.append("".join(chars))
    return out


def write_wordpunct():
    tok = WordPunctTokenizer().tokenize
    with (GOLDEN / "wordpunct.jsonl").open("w") as w:
        for s in TRICKY + random_strings(3000):
            w.write(json.dumps({"text": s, "tokens": tok(s.lower())}) + "\n")


def main():
    # Optional case names: regenerate only those (and not the wordpunct file).
    only = sys.argv[1:]
    if not only:
        write_wordpunct()
    for name, (targets, kwargs, selections) in CASES.items():
        if only and name not in only:
            continue
        tmp = Path(tempfile.mkdtemp())
        try:
            run_case(name, targets, kwargs, selections, tmp)
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
