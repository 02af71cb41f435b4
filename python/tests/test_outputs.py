"""Every Parquet output of every shipped pipeline opens in pyarrow, as users open it, with
unique column names (pyarrow, pandas, polars and Hugging Face datasets refuse duplicates)."""

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
                        self.assertIn("id", names)
                        table.to_pylist()  # every value decodes


if __name__ == "__main__":
    unittest.main()
