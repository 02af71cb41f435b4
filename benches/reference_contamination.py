"""The contamination rule of ../shared/METHODS.md ("Decontamination") as users write it in
Python: words by re.findall(r"\\w+", text.lower()), a dict from each item gram (a tuple of
words) to its items, and a scan of every document position. It is the side-by-side baseline
of `syllabus score contamination` (benches/compare_contamination.sh) and, with --check, an
oracle: it compares syllabus's output, row by row, with its own numbers.

    python benches/reference_contamination.py --against BENCH.jsonl... --lake FILE... \\
        [--check SCORES.parquet] [--ngram 13] [--min-item-words 8]
"""
import argparse
import gzip
import io
import json
import re
import sys
import time

WORD = re.compile(r"\w+")


def rows(path):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        t = pq.read_table(path, columns=["id", "text"]).to_pydict()
        yield from zip(t["id"], t["text"])
        return
    if path.endswith(".zst"):
        import zstandard
        f = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8")
    elif path.endswith(".gz"):
        f = gzip.open(path, "rt", encoding="utf-8")
    else:
        f = open(path, encoding="utf-8")
    with f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                yield r["id"], r.get("text") or ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", nargs="+", required=True)
    ap.add_argument("--lake", nargs="+", required=True)
    ap.add_argument("--check")
    ap.add_argument("--ngram", type=int, default=13)
    ap.add_argument("--min-item-words", type=int, default=8)
    a = ap.parse_args()
    n, m = a.ngram, a.min_item_words
    t0 = time.time()
    ids, grams, lengths, skipped = [], {}, set(), 0
    for path in a.against:
        for iid, text in rows(path):
            j = len(ids)
            ids.append(iid)
            w = WORD.findall(text.lower())
            L = n if len(w) >= n else (len(w) if len(w) >= m else None)
            if L is None:
                skipped += 1
                continue
            lengths.add(L)
            for s in range(len(w) - L + 1):
                lst = grams.setdefault(tuple(w[s:s + L]), [])
                if not lst or lst[-1] != j:
                    lst.append(j)
    lengths = sorted(lengths)
    out = []
    for path in a.lake:
        for _, text in rows(path):
            d = WORD.findall((text or "").lower())
            counts, pos = {}, 0
            for i in range(len(d)):
                here = set()
                for L in lengths:
                    if i + L > len(d):
                        break
                    lst = grams.get(tuple(d[i:i + L]))
                    if lst:
                        here.update(lst)
                if here:
                    pos += 1
                    for j in here:
                        counts[j] = counts.get(j, 0) + 1
            best = min(counts, key=lambda j: (-counts[j], j)) if counts else None
            out.append((pos, pos / max(1, len(d) - n + 1), None if best is None else ids[best]))
    took = time.time() - t0
    hits = sum(1 for r in out if r[0] > 0)
    print(f"python: {len(out)} documents, {hits} contaminated, {skipped} items skipped, {took:.2f} s", file=sys.stderr)
    if a.check:
        import pyarrow.parquet as pq
        t = pq.read_table(a.check).to_pydict()
        got = list(zip(t["contam_ngrams"], t["contam_frac"], t["contam_item"]))
        assert len(got) == len(out), (len(got), len(out))
        bad = [i for i, (g, r) in enumerate(zip(got, out)) if g[0] != r[0] or g[2] != r[2] or abs(g[1] - r[1]) > 1e-12]
        assert not bad, f"{len(bad)} rows differ, first {bad[0]}: syllabus {got[bad[0]]}, python {out[bad[0]]}"
        print(f"check: all {len(out)} rows equal", file=sys.stderr)
    print(f"{took:.3f}")


if __name__ == "__main__":
    main()
