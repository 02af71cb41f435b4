#!/usr/bin/env python3
"""Build a lake of gigabytes for the scale bench (benches/scale.sh), deterministically.

The documents are those of benches/make_bench_lake.py (the fixtures' freely licensed sources:
fortunes, CPython's standard library, HOL Light, the pydoc topics; about 33,000 documents,
70 MB), repeated as many times as needed and made distinct: copy r of a document has its
lines rotated by an amount that depends on r and the document, an id of its own, and one line
naming the copy, so no two documents of the lake are equal and n-gram statistics stay those of
real text.

    fixtures/fetch_sources.sh /tmp/src
    python3 benches/make_scale_lake.py /tmp/src/root /tmp/scale-lake [--files 40] [--mb-per-file 58]

Writes OUT/part-0000.jsonl.zst ... (zstd level 3), each about MB_PER_FILE of jsonl, and
OUT/target.jsonl (fixtures/target/math.jsonl). The first FILES/10 files are the 1x lake of
the bench, all of them the 10x lake. Needs the `zstandard` module.
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent


def base_documents(src):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(HERE / "make_bench_lake.py"), str(src), tmp], check=True)
        with open(Path(tmp) / "lake.jsonl") as f:
            return [json.loads(line) for line in f]


def variant(doc, copy, salt):
    lines = doc["text"].split("\n")
    k = (copy * 7919 + salt) % len(lines) if copy else 0
    text = "\n".join(lines[k:] + lines[:k])
    if copy:
        text += f"\n(copy {copy})"
    return {"id": f"{doc['id']}-c{copy}", "text": text, "domain": doc["domain"]}


def write_file(args):
    path, docs, start, mb = args
    budget = mb * 1_000_000
    n, written, i = 0, 0, start
    cctx = zstandard.ZstdCompressor(level=3)
    with open(path, "wb") as raw, cctx.stream_writer(raw) as w:
        while written < budget:
            doc = docs[i % len(docs)]
            line = (json.dumps(variant(doc, i // len(docs), i % 1009)) + "\n").encode()
            w.write(line)
            written += len(line)
            n += 1
            i += 1
    return n, written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--mb-per-file", type=int, default=58)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = base_documents(Path(a.src))
    # Each file starts where the documents of the previous one would end: files are written
    # in parallel, so estimate that from the mean document size (any start makes a valid lake;
    # this one keeps copies of one document apart).
    mean = sum(len(json.dumps(d)) + 24 for d in docs) / len(docs)
    per_file = int(a.mb_per_file * 1_000_000 / mean)
    jobs = [(out / f"part-{i:04d}.jsonl.zst", docs, i * per_file, a.mb_per_file) for i in range(a.files)]
    total_docs = total_bytes = 0
    with ProcessPoolExecutor(a.jobs) as ex:
        for n, b in ex.map(write_file, jobs):
            total_docs += n
            total_bytes += b
    shutil.copy(HERE.parent / "fixtures/target/math.jsonl", out / "target.jsonl")
    print(f"{total_docs} documents, {total_bytes / 1e9:.2f} GB of jsonl in {a.files} files", file=sys.stderr)


if __name__ == "__main__":
    main()
