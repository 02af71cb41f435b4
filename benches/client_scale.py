"""The client's cost of a later pass's order at lake scale, metadata only: time to the first
batch's index and the memory it takes, for a curriculum of 10^9 sequences, with the keyed
bijection the client uses (syllabus_loader.BatchPermutation) and with the list-based
Fisher-Yates permutation it used before (built whole, per pass, on every rank).

    python benches/client_scale.py            # needs numpy and the client (pip install ./python)

Prints a markdown table (benches/README.md). The Fisher-Yates list is built for at most
MAX_LIST batches and its time and memory scaled linearly beyond (building it for 1.25e8
batches takes minutes and gigabytes, which is the point).
"""

import time
import tracemalloc

from syllabus_loader import BatchPermutation
from syllabus_loader import _splitmix64 as splitmix64

MASK = (1 << 64) - 1
MAX_LIST = 2_000_000
SEQUENCES = 10**9


def fisher_yates(n, seed, pass_):
    """The client's former order: the whole permutation as a Python list."""
    state = ((seed & MASK) * 0x100000001B3 + pass_) & MASK
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        state, r = splitmix64(state)
        j = r % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def measure(make, batches):
    """Seconds to the first batches' indices (untraced), then the peak memory of the same work
    (traced separately: tracing slows Python down)."""
    t = time.perf_counter()
    p = make(batches)
    first = [p[b] for b in range(4)]
    secs = time.perf_counter() - t
    del p
    tracemalloc.start()
    p = make(batches)
    [p[b] for b in range(4)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return secs, peak, first


def main():
    print(f"| global batch G | batches per pass (10^9 sequences) | order | time to first batch index | memory |")
    print("|---|---|---|---|---|")
    for g in (8, 1024):
        n = SEQUENCES // g
        secs, peak, _ = measure(lambda k: BatchPermutation(k, 0, 1), n)
        print(f"| {g} | {n:,} | keyed bijection (now) | {secs * 1e6:.0f} µs | {peak / 1024:.1f} KiB |")
        built = min(n, MAX_LIST)
        secs, peak, _ = measure(lambda k: fisher_yates(k, 0, 1), built)
        scale = n / built
        note = "" if built == n else f" (built for {built:,}, scaled x{scale:.1f})"
        print(f"| {g} | {n:,} | Fisher-Yates list (before) | {secs * scale:.1f} s{note} | {peak * scale / 2**20:,.0f} MiB |")
    # Every index once: a bijection, checked on a size that is not a power of 4.
    p = BatchPermutation(1_000_003, 7, 2)
    assert sorted(p[i] for i in range(p.n)) == list(range(p.n))


if __name__ == "__main__":
    main()
