#!/usr/bin/env python3
"""Real text that syllabus does not ship, for ZIP-FIT's whole-command comparison (issue #26):
documents cut from this machine's Debian documentation (/usr/share/doc: copyright files,
READMEs, changelogs, gunzipped where compressed) and a target set of Python source files from
the interpreter's standard library.

    python3 benches/make_zipfit_real.py OUT_DIR [DOCS] [TARGETS]

Writes OUT_DIR/lake.jsonl (DOCS documents, default 3000: each file's text cut at blank lines
into pieces of 1-3.5 KB, about 3 KB on average) and OUT_DIR/target.jsonl (TARGETS files,
default 40, of 1.5-8 KB each). Files are taken in sorted path order, so the same machine gives
the same data.
"""
import gzip
import json
import os
import sys
import sysconfig


def texts(root):
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                raw = open(p, "rb").read()
                if p.endswith(".gz"):
                    raw = gzip.decompress(raw)
                text = raw.decode("utf-8")
            except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
                continue
            if "\0" in text:
                continue
            yield p, text


def pieces(text, lo=1024, hi=3500):
    out, cur = [], ""
    for para in text.split("\n\n"):
        if cur and len(cur) + len(para) + 2 > hi:
            if len(cur) >= lo:
                out.append(cur[:hi])
            cur = ""
        cur = para if not cur else cur + "\n\n" + para
    if len(cur) >= lo:
        out.append(cur[:hi])
    return out


def main():
    out = sys.argv[1]
    n_docs = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    n_targets = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    os.makedirs(out, exist_ok=True)
    docs = []
    for p, text in texts("/usr/share/doc"):
        for i, piece in enumerate(pieces(text)):
            docs.append({"id": f"{p}#{i}", "text": piece})
        if len(docs) >= n_docs:
            break
    docs = docs[:n_docs]
    stdlib = sysconfig.get_paths()["stdlib"]
    targets = []
    for f in sorted(os.listdir(stdlib)):
        p = os.path.join(stdlib, f)
        if f.endswith(".py") and 1536 <= os.path.getsize(p) <= 8192:
            targets.append({"id": f, "text": open(p, encoding="utf-8").read()})
        if len(targets) == n_targets:
            break
    for name, rows in (("lake.jsonl", docs), ("target.jsonl", targets)):
        with open(os.path.join(out, name), "w") as w:
            for r in rows:
                w.write(json.dumps(r) + "\n")
    mean = sum(len(d["text"].encode()) for d in docs) / max(1, len(docs))
    tmean = sum(len(t["text"].encode()) for t in targets) / max(1, len(targets))
    print(f"{len(docs)} documents ({mean:.0f} bytes on average), {len(targets)} targets ({tmean:.0f} bytes on average) in {out}")


if __name__ == "__main__":
    main()
