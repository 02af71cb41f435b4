"""Every Parquet output of every shipped pipeline opens in pyarrow, as users open it, with
unique column names (pyarrow, pandas, polars and Hugging Face datasets refuse duplicates);
eval's curves, summary and plot open as a user's tools open them."""

import csv
import glob
import os
import subprocess
import tempfile
import unittest

import pyarrow.parquet as pq

from helpers import REPO, binary


class ShippedPipelineOutputs(unittest.TestCase):
    def test_every_parquet_output_opens_with_unique_column_names(self):
        pipelines = sorted(glob.glob(os.path.join(REPO, "pipelines", "*.toml")))
        self.assertGreaterEqual(len(pipelines), 7)
        with tempfile.TemporaryDirectory() as tmp:
            for pipeline in pipelines:
                name = os.path.splitext(os.path.basename(pipeline))[0]
                out = os.path.join(tmp, name)
                if name == "compare":
                    # The real candidates, a tiny training budget (the full one takes minutes).
                    with open(pipeline) as f:
                        text = f.read()
                    for old, new in [("tokens = 163840", "tokens = 2048\nvalid_tokens = 512"), ("seeds = 2", "seeds = 1")]:
                        self.assertIn(old, text)
                        text = text.replace(old, new)
                    pipeline = os.path.join(tmp, "compare.toml")
                    with open(pipeline, "w") as f:
                        f.write(text)
                r = subprocess.run([binary(), "run", pipeline, "--out", out, "-q"], cwd=REPO,
                                   capture_output=True, text=True)
                self.assertIn(r.returncode, (0, 3), f"{name}: {r.stderr}")
                files = sorted(glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True))
                self.assertTrue(files, f"{name} wrote no Parquet file")
                for f in files:
                    with self.subTest(pipeline=name, file=os.path.relpath(f, out)):
                        table = pq.read_table(f)
                        names = table.schema.names
                        self.assertEqual(len(names), len(set(names)), f"duplicate columns in {f}: {names}")
                        if os.path.basename(f) == "curves.parquet":
                            self.assertEqual(names, ["candidate", "seed", "tokens", "valid", "loss"])
                        else:
                            self.assertIn("id", names)
                        table.to_pylist()  # every value decodes
                if name == "compare":
                    self.check_eval(os.path.join(out, "eval"))

    def check_eval(self, out):
        curves = pq.read_table(os.path.join(out, "curves.parquet")).to_pylist()
        with open(os.path.join(out, "summary.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        candidates = ["random", "dsir", "zipfit", "zipfit-fast", "el2n", "ppl-band"]
        self.assertEqual([r["candidate"] for r in rows], candidates + candidates)
        for r in rows:
            finals = [c["loss"] for c in curves
                      if c["candidate"] == r["candidate"] and c["valid"] == r["valid"] and c["tokens"] == 2048]
            self.assertEqual(len(finals), 1)
            self.assertAlmostEqual(float(r["final_loss_mean"]), finals[0], places=5)
            self.assertEqual(int(r["candidate_documents"]), 300)
        with open(os.path.join(out, "curves.png"), "rb") as f:
            head = f.read(24)
        self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual((int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")), (1440, 480))


if __name__ == "__main__":
    unittest.main()
