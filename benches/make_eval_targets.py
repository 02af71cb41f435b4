#!/usr/bin/env python3
"""Target sets of four kinds for the ZIP-FIT fast-mode study (benches/zipfit_fast_modes.sh),
from the fixtures' freely licensed sources, none of it in the fixture lake:

    math   HOL Light Multivariate/c*.ml (fixtures/target/math.jsonl)      BSD-2-Clause
    docs   every 7th Python reference topic (fixtures/target/docs.jsonl)   PSF-2.0
    code   CPython 3.11 Lib/email/ and Lib/json/ (the lake has Lib/*.py)   PSF-2.0
    prose  fortunes goedel, kids, paradoxum, pratchett, startrek, tao, zippy
           (not among the lake's fortune files)                            BSD-4-Clause (UC)

Each set is split by row: even rows are the target a selection is made for, odd rows the
held-out validation set `syllabus eval` measures it on. Usage:

    python3 benches/make_eval_targets.py SRC_ROOT OUT_DIR   # SRC_ROOT: fixtures/fetch_sources.sh's
"""
import json
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from make_fixtures import docs_from  # noqa: E402  (the fixtures' chunking)

ROOT = Path(__file__).resolve().parent.parent


def rows_of(path):
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    fortunes = src / "usr/share/games/fortunes"
    sets = {
        "math": rows_of(ROOT / "fixtures/target/math.jsonl"),
        "docs": rows_of(ROOT / "fixtures/target/docs.jsonl"),
        "code": docs_from(sorted((stdlib / "email").glob("*.py")) + sorted((stdlib / "json").glob("*.py")),
                          "code", 250_000, lambda t: t.split("\n\n"), lambda f: f"cpython-3.11/Lib/{f.parent.name}/{f.name}"),
        "prose": docs_from([fortunes / n for n in ["goedel", "kids", "paradoxum", "pratchett", "startrek", "tao", "zippy"]],
                           "prose", 250_000, lambda t: t.split("\n%\n"), lambda f: f"fortunes/{f.name}"),
    }
    for kind, rows in sets.items():
        for i, r in enumerate(rows):
            r["id"] = f"{kind}-t{i:05d}"
        for part, sel in [("target", rows[0::2]), ("valid", rows[1::2])]:
            (out / f"{kind}-{part}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sel), encoding="utf-8")
        print(f"{kind}: {len(rows)} rows ({len(rows[0::2])} target, {len(rows[1::2])} valid), {sum(len(r['text']) for r in rows)} chars")


if __name__ == "__main__":
    main()
