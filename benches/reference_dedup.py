#!/usr/bin/env python3
"""Near-duplicate clusters by the tools users run today, and how good any tool's clusters are.

    reference_dedup.py datasketch LAKE_DIR OUT.tsv [--threads N]
        datasketch 2.0's MinHash + MinHashLSH with the same shingles, bands and rows as syllabus's
        native mode: words `re.findall(r"\\w+", text.lower())`, 5-grams joined by a space
        (fewer words: one shingle of them all), num_perm=112, params=(14, 8); every document
        inserted and queried, candidate pairs joined into components (union-find); the first
        document of each component is kept.
    reference_dedup.py datatrove LAKE_DIR OUT.tsv [--threads N]
        datatrove 0.10.1's four MinHash stages with MinhashConfig() (LocalPipelineExecutor:
        N tasks and workers for signatures and the filter, 14 for buckets), cluster ids saved.
    reference_dedup.py syllabus DEDUP.parquet OUT.tsv
        the clusters of a `syllabus score dedup` table.
    reference_dedup.py quality TRUTH.jsonl OUT.tsv
        precision and recall of duplicate pairs (two documents in one cluster) against the
        truth of benches/make_dup_lake.py (two documents are duplicates when they have the same
        original), and of removed documents.

OUT.tsv: one line per document, `id<TAB>cluster<TAB>kept` (cluster: any label shared by the
documents of one cluster).
"""
import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

WORD = re.compile(r"\w+")


def lake_rows(lake):
    for path in sorted(glob.glob(os.path.join(lake, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    yield d["id"], d.get("text") or ""


def datasketch_clusters(lake, out):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(num_perm=112, params=(14, 8))
    ids, sigs = [], []
    t0 = time.time()
    for id_, text in lake_rows(lake):
        words = WORD.findall(text.lower())
        n = min(5, len(words))
        m = MinHash(num_perm=112, seed=1)
        if n:
            m.update_batch([" ".join(words[i:i + n]).encode("utf-8") for i in range(len(words) - n + 1)])
            lsh.insert(str(len(ids)), m)
        ids.append(id_)
        sigs.append(m if n else None)
    parent = list(range(len(ids)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(sigs):
        if m is None:
            continue
        for j in lsh.query(m):
            a, b = find(i), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    with open(out, "w") as f:
        for i, id_ in enumerate(ids):
            r = find(i)
            f.write(f"{id_}\t{r}\t{int(r == i)}\n")
    print(f"datasketch: {len(ids)} documents in {time.time() - t0:.1f} s", file=sys.stderr)


def datatrove_clusters(lake, out, threads):
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    cfg = MinhashConfig()
    files = len(glob.glob(os.path.join(lake, "*.jsonl")))
    tasks = max(1, min(threads, files))
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as w:
        reader = lambda: JsonlReader(lake, glob_pattern="*.jsonl")
        s1 = LocalPipelineExecutor([reader(), MinhashDedupSignature(f"{w}/sigs", config=cfg, language="eng")],
                                   tasks=tasks, workers=threads, logging_dir=f"{w}/logs/1")
        s2 = LocalPipelineExecutor([MinhashDedupBuckets(f"{w}/sigs", f"{w}/buckets", config=cfg)],
                                   tasks=cfg.num_buckets, workers=threads, logging_dir=f"{w}/logs/2", depends=s1)
        s3 = LocalPipelineExecutor([MinhashDedupCluster(f"{w}/buckets", f"{w}/ids", config=cfg, save_cluster_id=True)],
                                   tasks=1, workers=1, logging_dir=f"{w}/logs/3", depends=s2)
        s4 = LocalPipelineExecutor([reader(), MinhashDedupFilter(f"{w}/ids", load_cluster_ids=True,
                                                                 exclusion_writer=JsonlWriter(f"{w}/removed", compression=None)),
                                    JsonlWriter(f"{w}/kept", compression=None)],
                                   tasks=tasks, workers=threads, logging_dir=f"{w}/logs/4", depends=s3)
        s4.run()
        with open(out, "w") as f:
            for kind, kept in (("kept", 1), ("removed", 0)):
                for p in sorted(glob.glob(f"{w}/{kind}/*.jsonl")):
                    for line in open(p, encoding="utf-8"):
                        d = json.loads(line)
                        c = d["metadata"].get("minhash_cluster_id", -1)
                        f.write(f"{d['id']}\t{'c' + str(c) if c != -1 else 'alone-' + d['id']}\t{kept}\n")


def syllabus_clusters(table, out):
    import pyarrow.parquet as pq

    t = pq.read_table(table, columns=["id", "dup_cluster", "dup_keep"]).to_pydict()
    with open(out, "w") as f:
        for id_, c, k in zip(t["id"], t["dup_cluster"], t["dup_keep"]):
            f.write(f"{id_}\t{c}\t{int(k)}\n")


def pairs(groups):
    n = 0
    out = set()
    for members in groups.values():
        members = sorted(members)
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                out.add((members[i], members[j]))
                n += 1
    return out


def quality(truth_path, clusters_path):
    origin = {}
    with open(truth_path) as f:
        for line in f:
            d = json.loads(line)
            origin[d["id"]] = d["origin"]
    found = collections.defaultdict(list)
    kept = {}
    with open(clusters_path) as f:
        for line in f:
            id_, c, k = line.rstrip("\n").split("\t")
            found[c].append(id_)
            kept[id_] = k == "1"
    true_groups = collections.defaultdict(list)
    for id_, o in origin.items():
        true_groups[o].append(id_)
    t, p = pairs(true_groups), pairs(found)
    tp = len(t & p)
    precision = tp / len(p) if p else 1.0
    recall = tp / len(t) if t else 1.0
    copies = {i for i, o in origin.items() if o != i}
    removed = {i for i, k in kept.items() if not k}
    print(json.dumps({
        "true_pairs": len(t), "found_pairs": len(p),
        "pair_precision": round(precision, 4), "pair_recall": round(recall, 4),
        "copies": len(copies), "removed": len(removed),
        "removed_that_are_copies": len(removed & copies),
        "copies_removed_share": round(len(removed & copies) / max(1, len(copies)), 4),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["datasketch", "datatrove", "syllabus", "quality"])
    ap.add_argument("input")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.mode == "datasketch":
        datasketch_clusters(a.input, a.out)
    elif a.mode == "datatrove":
        datatrove_clusters(a.input, a.out, a.threads)
    elif a.mode == "syllabus":
        syllabus_clusters(a.input, a.out)
    else:
        quality(a.input, a.out)


if __name__ == "__main__":
    main()
