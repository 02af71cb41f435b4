#!/usr/bin/env python3
"""Build a larger lake for whole-command benchmarks (not committed: it is ~60 MB).

Same freely licensed sources as the fixtures (fixtures/README.md), but all of them: every
fortunes file, every .py file of the running CPython's standard library, every HOL Light
.ml file and the pydoc topics, cut into documents the way fixtures/make_fixtures.py does.

    fixtures/fetch_sources.sh /tmp/src
    python3 benches/make_bench_lake.py /tmp/src/root /tmp/bench-lake

Writes OUT/lake.jsonl (plain jsonl: the reference reads nothing else) and OUT/target.jsonl
(a copy of fixtures/target/math.jsonl).
"""
import json
import shutil
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from make_fixtures import chunks, read_text  # noqa: E402


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    fortunes = src / "usr/share/games/fortunes"
    hol = src / "usr/share/hol-light"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [
        ("prose", sorted(p for p in fortunes.iterdir() if p.is_file() and "." not in p.name), lambda t: t.split("\n%\n")),
        ("code", sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts), lambda t: t.split("\n\n")),
        ("math", sorted(hol.rglob("*.ml")), lambda t: t.split("\n\n")),
    ]
    n = 0
    with (out / "lake.jsonl").open("w") as w:
        for domain, files, split in sources:
            for f in files:
                for text in chunks(split(read_text(f))):
                    w.write(json.dumps({"id": f"{domain}-{n}", "text": text, "domain": domain}) + "\n")
                    n += 1
        from pydoc_data.topics import topics
        for name in sorted(topics):
            for text in chunks(topics[name].split("\n\n")):
                w.write(json.dumps({"id": f"docs-{n}", "text": text, "domain": "docs"}) + "\n")
                n += 1
    shutil.copy(Path(__file__).resolve().parents[1] / "fixtures/target/math.jsonl", out / "target.jsonl")
    print(f"{n} documents, {(out / 'lake.jsonl').stat().st_size / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
