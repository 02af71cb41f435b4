"""Per-rank read throughput, time to first batch and memory of the trainer-side readers, on the
same tokens: syllabus_loader (shared memory), plain numpy.memmap of the Megatron files, and
mosaicml-streaming's StreamingDataset over MDS. Run by benches/compare_loader.sh.

    python loader_bench.py write-mds CURRICULUM_DIR MDS_DIR SHARD_BYTES
    python loader_bench.py read KIND CURRICULUM_DIR|MDS_DIR RANK WORLD BATCH [--first] [--seconds S]

Every reader does the same work per batch: it copies each of its sequences once into one
preallocated [batch, seq_len] array (what a host-to-device copy, or a collate, needs), so every
byte is read and written once, and throughput counts bytes that were actually copied:
- syllabus, syllabus-map: the loader's batch (a view of shared memory, or of the mapped shard
  files with `serve --stage map`) copied into the batch array with np.copyto;
- megatron: sample i is tokens [i*L, (i+1)*L) of the concatenated .bin stream (Megatron's GPT
  samples without its sample-index build), each sample's slice of the mapped .bin copied into
  its row of the batch array (two slices when it spans two files);
- mds: each sample's `tokens` bytes, as StreamingDataset decodes them, copied into its row.

Each reader reads its rank's batches over the curriculum again and again (a new pass when one
ends) for at least --seconds (default 5), so a run does not measure start-up; `seconds` is the
time of that reading loop alone (imports and setup excluded). `first_batch_s` is from process
start (after `import numpy`) to the first batch in hand, the reader's imports and setup
included. Prints one JSON line: sequences, bytes, seconds, first_batch_s, passes, and the
rank's memory after its last batch, mappings still open (RSS, PSS, anonymous).
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
    """Counts copied batches; times the reading loop from its start; says when to stop (after
    the first batch with --first, else once `seconds` have passed)."""

    def __init__(self, first_only, seconds):
        self.n = self.nbytes = 0
        self.ttfb = None
        self.first_only, self.seconds = first_only, seconds
        self.passes = 0
        self.start = None

    def begin(self):
        self.start = time.perf_counter()

    def batch(self, t):
        """`t`: the batch array just filled (its bytes were copied). True: stop."""
        self.n += len(t)
        self.nbytes += t.nbytes
        if self.ttfb is None:
            self.ttfb = time.perf_counter() - T0
            if self.first_only:
                return True
        return time.perf_counter() - self.start >= self.seconds

    def another_pass(self):
        self.passes += 1
        return not self.first_only and time.perf_counter() - self.start < self.seconds

    def result(self):
        return {"sequences": self.n, "bytes": self.nbytes, "seconds": time.perf_counter() - self.start,
                "first_batch_s": self.ttfb, "passes": self.passes, **memory()}


def manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


def read_syllabus(d, rank, world, batch, m):
    from syllabus_loader import Loader
    ld = Loader(d, rank, world, batch, passes=None, shuffle_later_passes=False)
    buf = np.empty((batch, ld.seq_len), np.uint16 if ld.meta["token_dtype"] == "u16" else np.uint32)
    per_pass = ld.batches_per_pass
    m.begin()
    for i, b in enumerate(ld):
        t = b["tokens"]
        np.copyto(buf[:len(t)], t)
        if len(t) and m.batch(buf[:len(t)]):
            break
        if (i + 1) % per_pass == 0 and not m.another_pass():
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


def read_megatron(d, rank, world, batch, seq_len, m):
    prefixes = sorted(p[:-4] for p in glob.glob(os.path.join(d, "megatron", "*.bin")))
    files = [MegatronFile(p) for p in prefixes]
    lengths = np.array([f.tokens for f in files])
    starts = np.concatenate([[0], np.cumsum(lengths)])
    total = int(starts[-1]) // seq_len
    g = batch * world
    buf = np.empty((batch, seq_len), files[0].dtype)
    m.begin()
    while True:
        for lo in range(0, total, g):
            first = lo + rank * batch
            j = 0
            for s in range(first, min(first + batch, lo + g, total)):
                a, b = s * seq_len, (s + 1) * seq_len
                k = int(np.searchsorted(starts, a, side="right")) - 1
                if b <= starts[k + 1]:
                    buf[j] = files[k].bin[a - starts[k]:b - starts[k]]
                else:  # spans two files
                    x = int(starts[k + 1] - a)
                    buf[j, :x] = files[k].bin[a - starts[k]:]
                    buf[j, x:] = files[k + 1].bin[:b - starts[k + 1]]
                j += 1
            if j and m.batch(buf[:j]):
                return m.result()
        if not m.another_pass():
            return m.result()


def read_mds(d, rank, world, batch, m):
    from streaming import StreamingDataset
    ds = StreamingDataset(local=d, batch_size=batch, shuffle=False)
    buf = None
    m.begin()
    while True:
        j = 0
        for sample in ds:
            row = np.frombuffer(sample["tokens"], np.uint16)
            if buf is None:
                buf = np.empty((batch, len(row)), np.uint16)
            buf[j] = row
            j += 1
            if j == batch:
                j = 0
                if m.batch(buf):
                    return m.result()
        if not m.another_pass():
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
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 5.0
    m = Meter("--first" in sys.argv, seconds)
    if kind in ("syllabus", "syllabus-map"):
        r = read_syllabus(d, rank, world, batch, m)
    elif kind == "megatron":
        r = read_megatron(d, rank, world, batch, manifest(d)["seq_len"], m)
    elif kind == "mds":
        r = read_mds(d, rank, world, batch, m)
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps({"kind": kind, "rank": rank, **r}))


if __name__ == "__main__":
    main()
