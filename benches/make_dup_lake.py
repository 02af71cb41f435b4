#!/usr/bin/env python3
"""Make a lake with planted duplicates from real text, and keep the truth.

Every document of the input files (jsonl, `text` and `id`) is an original. A seeded share of
them get copies, each of one kind:
    exact       the same text
    case        upper/lower case changed and whitespace runs changed (equal after normalization)
    edit        a share of the words replaced, deleted or inserted (1% to 20%)
    truncate    the first 50% to 95% of the words
    chain       an edit (1% to 20%) of an earlier copy of the same original, so that clusters
                chain (A~B, B~C with A and C further apart)
Copies are placed at random positions among the originals and spread over the output files.

    python3 benches/make_dup_lake.py fixtures/lake/prose.jsonl ... OUT_DIR \
        [--files 3] [--dup-share 0.3] [--max-chars 2000] [--seed 0] [--per-input N]

Writes OUT_DIR/lake/part-000.jsonl ... and OUT_DIR/truth.jsonl: per document id, its original's id
(its own for an original), its kind and its edit share. Two documents are a true duplicate pair
when they have the same original. Reads .jsonl, .jsonl.gz and .jsonl.zst (with `zstandard`).
"""
import argparse
import gzip
import io
import json
import random
import re
from pathlib import Path

KINDS = ["exact", "case", "edit", "truncate", "chain"]


def read_jsonl(path):
    p = Path(path)
    if p.suffix == ".gz":
        f = io.TextIOWrapper(gzip.open(p), encoding="utf-8")
    elif p.suffix == ".zst":
        import zstandard

        f = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(p, "rb")), encoding="utf-8")
    else:
        f = open(p, encoding="utf-8")
    with f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def case_copy(text, rng):
    words = re.split(r"(\s+)", text)
    out = []
    for w in words:
        if w.isspace():
            out.append(rng.choice([" ", "  ", "\n", "\t", w]))
        else:
            out.append(rng.choice([w.upper(), w.lower(), w.capitalize(), w]))
    return "".join(out)


def edit_copy(text, share, rng, vocabulary):
    words = text.split(" ")
    n = max(1, round(share * len(words)))
    for _ in range(n):
        op = rng.choice(["replace", "delete", "insert"])
        i = rng.randrange(len(words)) if words else 0
        if op == "replace" and words:
            words[i] = rng.choice(vocabulary)
        elif op == "delete" and len(words) > 1:
            del words[i]
        else:
            words.insert(i, rng.choice(vocabulary))
    return " ".join(words)


def truncate_copy(text, rng):
    words = text.split(" ")
    keep = max(1, int(len(words) * rng.uniform(0.5, 0.95)))
    return " ".join(words[:keep])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--dup-share", type=float, default=0.3, help="share of originals that get copies")
    ap.add_argument("--max-copies", type=int, default=3)
    ap.add_argument("--max-chars", type=int, default=2000, help="cut originals to this many characters (0: whole)")
    ap.add_argument("--per-input", type=int, default=0, help="at most this many originals from each input (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    originals = []
    seen = set()
    for path in a.inputs:
        for n, d in enumerate(read_jsonl(path)):
            if a.per_input and n >= a.per_input:
                break
            text = d.get("text") or ""
            if a.max_chars:
                text = text[: a.max_chars]
            # An original that repeats an earlier one (case and whitespace aside) would be an
            # unplanted duplicate: left out.
            key = " ".join(text.lower().split())
            if key in seen:
                continue
            seen.add(key)
            originals.append({"id": str(d.get("id", len(originals))), "text": text})
    vocabulary = sorted({w for d in originals[:2000] for w in d["text"].split() if w.isalpha()}) or ["word"]
    docs = [dict(d, origin=d["id"], kind="original", share=0.0) for d in originals]
    copies = []
    for d in originals:
        if rng.random() >= a.dup_share:
            continue
        made = []
        for c in range(rng.randint(1, a.max_copies)):
            kind = rng.choice(KINDS)
            if kind == "chain" and not made:
                kind = "edit"
            share = 0.0
            if kind == "chain":
                share = round(rng.uniform(0.01, 0.20), 3)
                text = edit_copy(rng.choice(made), share, rng, vocabulary)
            elif kind == "exact":
                text = d["text"]
            elif kind == "case":
                text = case_copy(d["text"], rng)
            elif kind == "edit":
                share = round(rng.uniform(0.01, 0.20), 3)
                text = edit_copy(d["text"], share, rng, vocabulary)
            else:
                text = truncate_copy(d["text"], rng)
            made.append(text)
            copies.append({"id": f"{d['id']}~{kind}{c}", "text": text, "origin": d["id"], "kind": kind, "share": share})
    # Copies go to random places after their original.
    at = {d["id"]: i for i, d in enumerate(docs)}
    keyed = [(float(i), 0, d) for i, d in enumerate(docs)]
    keyed += [(rng.uniform(at[c["origin"]] + 0.5, len(docs)), 1 + k, c) for k, c in enumerate(copies)]
    docs = [d for _, _, d in sorted(keyed, key=lambda t: (t[0], t[1]))]
    out = Path(a.out)
    (out / "lake").mkdir(parents=True, exist_ok=True)
    per = -(-len(docs) // a.files)
    for f in range(a.files):
        with open(out / "lake" / f"part-{f:03d}.jsonl", "w", encoding="utf-8") as w:
            for d in docs[f * per : (f + 1) * per]:
                w.write(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False) + "\n")
    with open(out / "truth.jsonl", "w", encoding="utf-8") as w:
        for d in docs:
            w.write(json.dumps({"id": d["id"], "origin": d["origin"], "kind": d["kind"], "share": d["share"]}) + "\n")
    print(f"{len(originals)} originals, {len(copies)} copies, {len(docs)} documents in {a.files} files")


if __name__ == "__main__":
    main()
