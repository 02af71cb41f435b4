#!/usr/bin/env python3
"""Regenerate the ZIP-FIT golden files from the reference implementation.

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install zip-fit==1.0.9 zstandard brotli lz4 datasets pyarrow
    /tmp/refvenv/bin/python tests/golden/make_zipfit_golden.py

The reference (zip-fit 1.0.9, class ZIPFIT) reads plain jsonl and keeps only the text, so the
fixture lake is written out as one plain jsonl file in the order syllabus reads the lake
directory, and scores are mapped back to ids by text (equal texts have equal scores). The
target is the first TARGET_ROWS rows of fixtures/target/math.jsonl, so the N x M
compressions stay quick.

Writes tests/golden/zipfit_<algo><level>_scores.jsonl: id and the reference's score (repr).
"""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_dsir_golden import LAKE, rows_of  # noqa: E402
from zip_fit import ZIPFIT  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
TARGET_ROWS = 25
CASES = [("gzip", 6), ("gzip", 1), ("zstd", 3)]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids, texts = [], []
        with (tmp / "lake.jsonl").open("w") as w:
            for f in LAKE:
                for row in rows_of(f):
                    ids.append(row["id"])
                    texts.append(row["text"])
                    w.write(json.dumps(row) + "\n")
        target_lines = (ROOT / "fixtures/target/math.jsonl").read_text().splitlines()[:TARGET_ROWS]
        (tmp / "target.jsonl").write_text("\n".join(target_lines) + "\n")
        for algo, level in CASES:
            z = ZIPFIT(str(tmp / "lake.jsonl"), str(tmp / "target.jsonl"), k=len(texts),
                       compression_algorithm=algo, compress_level=level, output_file=str(tmp / "out.jsonl"))
            source = z.load_and_process_datasets(z.source_dataset, None, None)
            target = z.load_and_process_datasets(z.target_dataset, None, None)
            scores = dict(z.rank_sequences_by_alignment(source, target))
            with (GOLDEN / f"zipfit_{algo}{level}_scores.jsonl").open("w") as w:
                for i, t in zip(ids, texts):
                    w.write(json.dumps({"id": i, "zipfit": float(scores[t])}) + "\n")
            print(f"{algo} {level}: {len(texts)} x {len(target)}", file=sys.stderr)


if __name__ == "__main__":
    main()
