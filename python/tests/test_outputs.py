"""Every Parquet output of every shipped pipeline opens in pyarrow, as users open it, with
unique column names (pyarrow, pandas, polars and Hugging Face datasets refuse duplicates);
eval's curves, summary and plot open as a user's tools open them; the duplicate and
contamination tables open in pyarrow, pandas, polars and DuckDB with the same rows."""

import csv
import glob
import os
import subprocess
import tempfile
import unittest

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from helpers import FIXTURES, REPO, binary, syllabus


class ShippedPipelineOutputs(unittest.TestCase):
    def test_every_parquet_output_opens_with_unique_column_names(self):
        pipelines = sorted(glob.glob(os.path.join(REPO, "pipelines", "*.toml")))
        self.assertGreaterEqual(len(pipelines), 7)
        with tempfile.TemporaryDirectory() as tmp:
            for pipeline in pipelines:
                name = os.path.splitext(os.path.basename(pipeline))[0]
                out = os.path.join(tmp, name)
                # The real candidates, a tiny training budget (the full one takes a minute or more).
                tiny = {
                    "compare": [("tokens = 163840", "tokens = 2048\nvalid_tokens = 512"), ("seeds = 2", "seeds = 1")],
                    "ordering": [("tokens = 194560", "tokens = 4096\nvalid_tokens = 512"),
                                 ("every = 19456", "every = 1024"), ("seeds = 3", "seeds = 1")],
                }
                if name in tiny:
                    with open(pipeline) as f:
                        text = f.read()
                    for old, new in tiny[name]:
                        self.assertIn(old, text)
                        text = text.replace(old, new)
                    pipeline = os.path.join(tmp, f"{name}.toml")
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
                            self.assertEqual(names, ["candidate", "seed", "tokens", "valid", "loss", "averaged"])
                            # An averaged point only for candidates that average (ordering's
                            # constant-rate ones).
                            averaged = {c for c, a in zip(table.column("candidate").to_pylist(),
                                                          table.column("averaged").to_pylist()) if a}
                            self.assertEqual(averaged, {"random-constant-avg", "ascending-constant-avg",
                                                        "folding-constant-avg"} if name == "ordering" else set())
                        elif os.path.basename(f) == "cluster_terms.parquet":
                            # One row per cluster, not per document.
                            self.assertEqual(names, ["cluster", "size", "top_terms", "nearest"])
                        else:
                            self.assertIn("id", names)
                        table.to_pylist()  # every value decodes
                if name == "compare":
                    self.check_eval(os.path.join(out, "eval"))

    def check_eval(self, out):
        curves = pq.read_table(os.path.join(out, "curves.parquet")).to_pylist()
        with open(os.path.join(out, "summary.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        candidates = ["random", "dsir", "zipfit", "zipfit-fast", "classifier", "betr", "balanced", "d4", "el2n",
                      "ppl-band"]
        self.assertEqual([r["candidate"] for r in rows], candidates + candidates)
        for r in rows:
            finals = [c["loss"] for c in curves
                      if c["candidate"] == r["candidate"] and c["valid"] == r["valid"] and c["tokens"] == 2048]
            self.assertEqual(len(finals), 1)
            self.assertAlmostEqual(float(r["final_loss_mean"]), finals[0], places=5)
            selected = os.path.join(os.path.dirname(out), "candidates", r["candidate"], "selected.parquet")
            self.assertEqual(int(r["candidate_documents"]), pq.read_metadata(selected).num_rows)
        with open(os.path.join(out, "curves.png"), "rb") as f:
            head = f.read(24)
        self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual((int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")), (1440, 480))


class DedupAndContaminationTables(unittest.TestCase):
    """`score dedup`, `select dedup` and `pipelines/clean.toml` write tables every tool reads the same."""

    def same_everywhere(self, path, columns):
        arrow = pq.read_table(path)
        self.assertEqual(arrow.schema.names, columns)
        pandas = pd.read_parquet(path)
        polars = pl.read_parquet(path)
        con = duckdb.connect()
        n = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()[0]
        self.assertEqual((len(pandas), polars.height, n), (arrow.num_rows,) * 3)
        self.assertEqual(list(pandas.columns), columns)
        self.assertEqual(polars.columns, columns)
        self.assertEqual(pandas["id"].tolist(), arrow.column("id").to_pylist())
        self.assertEqual(polars["id"].to_list(), arrow.column("id").to_pylist())
        return arrow, pandas, polars, con

    def test_dedup_table_opens_in_pyarrow_pandas_polars_and_duckdb(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "dups.parquet")
            r = syllabus("score", "dedup", "--out", out, os.path.join(FIXTURES, "dedup", "lake"))
            arrow, pandas, polars, con = self.same_everywhere(out, ["id", "dup_exact", "dup_cluster", "dup_count", "dup_keep"])
            self.assertEqual(str(arrow.schema.field("dup_keep").type), "bool")
            self.assertEqual(str(arrow.schema.field("dup_count").type), "uint64")
            removed = int((~pandas["dup_keep"]).sum())
            self.assertEqual(removed, polars.filter(~pl.col("dup_keep")).height)
            self.assertIn(f"{arrow.num_rows - removed} kept", r.stderr)
            # One kept row per cluster, and dup_count is the cluster's size, in SQL.
            bad = con.execute(
                "SELECT dup_cluster FROM read_parquet(?) GROUP BY dup_cluster "
                "HAVING sum(dup_keep::INT) <> 1 OR count(*) <> min(dup_count) OR count(*) <> max(dup_count)",
                [out],
            ).fetchall()
            self.assertEqual(bad, [])
            kept = os.path.join(tmp, "kept.parquet")
            syllabus("select", "dedup", "--out", kept, os.path.join(FIXTURES, "dedup", "lake"))
            self.assertEqual(pd.read_parquet(kept)["id"].tolist(), pandas.loc[pandas["dup_keep"], "id"].tolist())

    def test_mix_outputs_open_everywhere(self):
        """mix's runs.parquet in pyarrow, pandas, polars and DuckDB; summary.csv with csv;
        proposal.toml with tomllib, its shares summing to 1."""
        import tomllib
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "mix")
            lake = os.path.join(FIXTURES, "lake")
            syllabus("mix", "--tokenizer", os.path.join(FIXTURES, "tokenizer.json"),
                     "--valid", "math=" + os.path.join(FIXTURES, "heldout", "math.jsonl"),
                     "--domain", "math=" + os.path.join(lake, "math.jsonl.gz"),
                     "--domain", "prose=" + os.path.join(lake, "prose.jsonl"),
                     "--tokens", "2048", "--runs", "5", "--seeds", "1", "--width", "32", "--layers", "1",
                     "--batch-size", "8", "--valid-tokens", "512", "--out", out)
            runs = os.path.join(out, "runs.parquet")
            arrow = pq.read_table(runs)
            self.assertEqual(arrow.schema.names, ["phase", "mixture", "scale", "seed", "tokens", "valid", "loss",
                                                  "share_math", "share_prose"])
            self.assertEqual(arrow.num_rows, 5 + 3)
            pandas = pd.read_parquet(runs)
            polars = pl.read_parquet(runs)
            self.assertEqual(pandas["loss"].tolist(), polars["loss"].to_list())
            (n,) = duckdb.connect().execute(
                "SELECT count(*) FROM read_parquet(?) WHERE abs(share_math + share_prose - 1) < 1e-9", [runs]).fetchone()
            self.assertEqual(n, 8)
            with open(os.path.join(out, "summary.csv")) as f:
                rows = list(csv.DictReader(f))
            self.assertEqual([r["mixture"] for r in rows], ["proposal", "natural", "uniform"])
            with open(os.path.join(out, "proposal.toml"), "rb") as f:
                schedule = tomllib.load(f)["schedule"]
            mixture = schedule["phases"][0]["mixture"]
            self.assertEqual(set(mixture), {"math", "prose"})
            self.assertAlmostEqual(sum(mixture.values()), 1.0, places=9)
            self.assertAlmostEqual(mixture["math"], float(rows[0]["share_math"]), places=5)

    def test_clean_pipeline_tables_open_everywhere(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "clean")
            r = subprocess.run([binary(), "run", os.path.join(REPO, "pipelines", "clean.toml"), "--out", out, "-q"],
                               cwd=REPO, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.same_everywhere(os.path.join(out, "dedup.parquet"), ["id", "dup_exact", "dup_cluster", "dup_count", "dup_keep"])
            _, contam, _, _ = self.same_everywhere(
                os.path.join(out, "contamination.parquet"), ["id", "contam_frac", "contam_ngrams", "contam_item"])
            self.assertEqual(len(contam), 1225)
            con = duckdb.connect()
            # Nothing removed by dedup reaches the selection.
            leaked = con.execute(
                "SELECT count(*) FROM read_parquet(?) s JOIN read_parquet(?) d USING (id) WHERE NOT d.dup_keep",
                [os.path.join(out, "selected.parquet"), os.path.join(out, "dedup.parquet")],
            ).fetchone()[0]
            self.assertEqual(leaked, 0)


if __name__ == "__main__":
    unittest.main()
