"""Per-rank read throughput, time to first batch and memory of the trainer-side readers, on the
same tokens: syllabus_loader (shared-memory views), plain numpy.memmap of the Megatron files,
and mosaicml-streaming's StreamingDataset over MDS. Run by benches/compare_loader.sh.

    python loader_bench.py write-mds CURRICULUM_DIR MDS_DIR SHARD_BYTES
    python loader_bench.py read KIND CURRICULUM_DIR|MDS_DIR RANK WORLD BATCH [--first]

KIND: syllabus, syllabus-copy (a view copied into one batch array, as a host-to-device copy
needs), syllabus-map (the same against `serve --stage map`, given its name), megatron, mds. Prints one JSON line: sequences, bytes, seconds, time to first batch,
and the rank's memory after its last batch, mappings still open (RSS, PSS, anonymous).
"""

import glob
import json
import os
import sys
import time

import numpy as np

T0 = time.perf_counter()


def memory():
    """RSS and PSS, and the rank's own heap (anonymous memory): shared-memory and page-cache
    pages are counted once per node however many ranks map them, and PSS splits them."""
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("Rss", "Pss", "Anonymous"):
                out[k] = int(rest.split()[0]) * 1024
    return {"rss": out["Rss"], "pss": out["Pss"], "heap": out["Anonymous"]}


class Meter:
    """Counts batches; remembers when the first came; says when to stop (--first)."""

    def __init__(self, first_only):
        self.n = self.nbytes = 0
        self.ttfb = None
        self.first_only = first_only

    def batch(self, t):
        self.n += len(t)
        self.nbytes += t.nbytes
        if self.ttfb is None:
            self.ttfb = time.perf_counter() - T0
            return self.first_only
        return False

    def result(self):
        return self.n, self.nbytes, self.ttfb, memory()


def manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


def read_syllabus(d, rank, world, batch, copy, first_only):
    from syllabus_loader import Loader
    ld = Loader(d, rank, world, batch)
    buf = None
    m = Meter(first_only)
    for b in ld:
        t = b["tokens"]
        if copy:
            if buf is None or buf.shape != t.shape:
                buf = np.empty(t.shape, t.dtype)
            np.copyto(buf, t)
        if m.batch(t):
            break
    return m.result()


class MegatronFile:
    """What MMapIndexedDataset does at start-up: parse the .idx header and map its arrays; the
    .bin is mapped when first read (Megatron maps it at start-up too, but Python's mmap keeps
    a descriptor per mapping and 10,000 shards would need 20,000)."""

    def __init__(self, prefix):
        self.prefix = prefix
        idx = np.memmap(prefix + ".idx", dtype=np.uint8, mode="r")
        assert bytes(idx[:9]) == b"MMIDIDX\x00\x00"
        code = int(idx[17])
        self.dtype = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
                      8: np.uint16}[code]
        n_seq = int(np.frombuffer(idx, np.int64, 1, 18)[0])
        self.sizes = np.frombuffer(idx, np.int32, n_seq, 34)
        self.pointers = np.frombuffer(idx, np.int64, n_seq, 34 + 4 * n_seq)
        self.tokens = int(self.sizes.sum())
        self._bin = None

    @property
    def bin(self):
        if self._bin is None:
            self._bin = np.memmap(self.prefix + ".bin", dtype=self.dtype, mode="r")
        return self._bin


def read_megatron(d, rank, world, batch, seq_len, first_only):
    """Sample i is tokens [i*L, (i+1)*L) of the concatenated stream (Megatron's GPT samples,
    without its sample-index build); the batch is stacked from per-sample copies."""
    prefixes = sorted(p[:-4] for p in glob.glob(os.path.join(d, "megatron", "*.bin")))
    files = [MegatronFile(p) for p in prefixes]
    lengths = np.array([f.tokens for f in files])
    starts = np.concatenate([[0], np.cumsum(lengths)])
    total = int(starts[-1]) // seq_len
    g = batch * world
    m = Meter(first_only)
    for lo in range(0, total, g):
        first = lo + rank * batch
        rows = []
        for s in range(first, min(first + batch, lo + g, total)):
            a, b = s * seq_len, (s + 1) * seq_len
            k = int(np.searchsorted(starts, a, side="right")) - 1
            if b <= starts[k + 1]:
                rows.append(np.array(files[k].bin[a - starts[k]:b - starts[k]]))
            else:  # spans two files
                rows.append(np.concatenate([files[k].bin[a - starts[k]:], files[k + 1].bin[:b - starts[k + 1]]]))
        if rows and m.batch(np.stack(rows)):
            break
    return m.result()


def read_mds(d, rank, world, batch, first_only):
    from streaming import StreamingDataset
    ds = StreamingDataset(local=d, batch_size=batch, shuffle=False)
    m = Meter(first_only)
    rows = []
    for sample in ds:
        rows.append(np.frombuffer(sample["tokens"], np.uint16))
        if len(rows) == batch:
            t, rows = np.stack(rows), []
            if m.batch(t):
                break
    return m.result()


def write_mds(src, out, shard_bytes):
    from streaming import MDSWriter
    m = manifest(src)
    seq_len = m["seq_len"]
    with MDSWriter(out=out, columns={"tokens": "bytes"}, size_limit=int(shard_bytes)) as w:
        for s in m["shards"]:
            if s["format"] != "syllabus":
                continue
            a = np.fromfile(os.path.join(src, s["path"]), "<u2", s["sequences"] * seq_len, offset=64)
            for row in a.reshape(-1, seq_len):
                w.write({"tokens": row.tobytes()})


def main():
    cmd = sys.argv[1]
    if cmd == "write-mds":
        write_mds(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    kind, d = sys.argv[2], sys.argv[3]
    rank, world, batch = (int(x) for x in sys.argv[4:7])
    first_only = "--first" in sys.argv
    if kind in ("syllabus", "syllabus-copy", "syllabus-map"):
        n, nbytes, ttfb, mem = read_syllabus(d, rank, world, batch, kind != "syllabus", first_only)
    elif kind == "megatron":
        n, nbytes, ttfb, mem = read_megatron(d, rank, world, batch, manifest(d)["seq_len"], first_only)
    elif kind == "mds":
        n, nbytes, ttfb, mem = read_mds(d, rank, world, batch, first_only)
    else:
        raise SystemExit(f"unknown kind {kind}")
    secs = time.perf_counter() - T0
    print(json.dumps({"kind": kind, "rank": rank, "sequences": n, "bytes": nbytes, "seconds": secs,
                      "first_batch_s": ttfb, **mem}))


if __name__ == "__main__":
    main()
