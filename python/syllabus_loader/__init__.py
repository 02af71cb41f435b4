"""syllabus_loader: read a curriculum that `syllabus serve` holds in shared memory.

    from syllabus_loader import Loader

    loader = Loader("out/quickstart", rank, world_size, batch_size=8)
    for batch in loader:           # dicts of numpy arrays
        batch["tokens"]            # [batch_size, seq_len] uint16/uint32, a view into shared memory
        batch["weights"]           # per-sequence sample weight (float32)
        batch["domains"]           # domain id per sequence (uint16); loader.domain_names names them
        batch["index"]             # global sequence index in the curriculum (int64)
        state = loader.state_dict()   # save with the checkpoint

Order: global batch b is positions [b*G, (b+1)*G) of the pass, G = batch_size * world_size,
and rank r takes its contiguous slice; position i is curriculum sequence i unless serve
steers the mixture (then serve's plan says which sequence). Every sequence is read exactly
once per pass across ranks. The last global batch of a pass may be short: ranks whose slice
is empty get a batch of 0 rows (so every rank takes the same number of steps), or pass
drop_last=True to leave it out.
"""

import math
import operator
import time

import numpy as np

from ._segment import Segment, ServeError, curriculum_id, segment_path
from .reweight import batch_weights, window_weights

__all__ = ["Loader", "ServeError", "window_weights", "batch_weights", "curriculum_id", "segment_path"]

_MASK = (1 << 64) - 1
STATE_VERSION = 2
# The largest |value| a report may carry (serve refuses larger ones too): losses and
# advantages are far smaller, and sums of such values stay finite.
MAX_REPORT_VALUE = 1e12


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return x, z ^ (z >> 31)


class BatchPermutation:
    """The order of a later pass's n full global batches: a keyed bijection of [0, n),
    computed per batch in O(1) memory (a 4-round Feistel network over the smallest power of
    4 >= n, cycle-walked back into [0, n)), so time to first batch and memory do not grow
    with the curriculum. Keyed by SplitMix64 of (seed, pass): the same on every rank and every
    numpy version."""

    ROUNDS = 4

    def __init__(self, n, seed, pass_):
        if n < 0:
            raise ValueError("n must be >= 0")
        self.n = n
        bits = max(2, (max(n, 1) - 1).bit_length())
        bits += bits & 1  # even: two halves of equal width
        self.half = bits // 2
        self.mask = (1 << self.half) - 1
        state = ((seed & _MASK) * 0x100000001B3 + pass_) & _MASK
        self.keys = []
        for _ in range(self.ROUNDS):
            state, k = _splitmix64(state)
            self.keys.append(k)

    def _round(self, x, k):
        _, z = _splitmix64((x * 0x9E3779B97F4A7C15 ^ k) & _MASK)
        return z & self.mask

    def _encrypt(self, x):
        left, right = x >> self.half, x & self.mask
        for k in self.keys:
            left, right = right, left ^ self._round(right, k)
        return (left << self.half) | right

    def __getitem__(self, b):
        if not 0 <= b < self.n:
            raise IndexError(b)
        x = self._encrypt(b)
        while x >= self.n:  # cycle walking: the domain is < 4n, so few steps on average
            x = self._encrypt(x)
        return x

    def __len__(self):
        return self.n


def batch_permutation(n, seed, pass_):
    """The order of a later pass's n full global batches (see BatchPermutation)."""
    return BatchPermutation(n, seed, pass_)


def _index(name, v):
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} {v!r}: an integer") from None


class Loader:
    """Batches for one rank. See the module doc for the order.

    seed: orders the global batches of passes after the first (the first pass is the
        curriculum's order); the same seed on every rank.
    passes: passes over the curriculum (None: endless).
    shuffle_later_passes: False repeats the curriculum's order in every pass.
    drop_last: leave out a last global batch shorter than G.
    reporting_rank: the rank whose report() reaches serve (others' report() do nothing; -1:
        none of this process's loaders).
    timeout: seconds to wait for a steered batch whose mixture is not decided yet.
    """

    def __init__(self, path_or_name, rank, world_size, batch_size, *, seed=0, passes=1,
                 shuffle_later_passes=True, drop_last=False, reporting_rank=0, timeout=600.0,
                 shm_dir=None):
        world_size, rank, batch_size = _index("world_size", world_size), _index("rank", rank), _index("batch_size", batch_size)
        if world_size < 1:
            raise ValueError(f"world_size {world_size}: a positive integer")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank}: an integer in [0, {world_size})")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: a positive integer")
        if passes is not None and passes < 1:
            raise ValueError("passes: at least 1, or None for endless")
        self._seg = Segment(path_or_name, shm_dir)
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.global_batch_size = batch_size * world_size
        self.seed, self.passes = int(seed), passes
        self.shuffle_later_passes, self.drop_last = shuffle_later_passes, drop_last
        self.reporting_rank, self.timeout = reporting_rank, timeout
        n, g = self._seg.n_seq, self.global_batch_size
        self.batches_per_pass = n // g if drop_last else math.ceil(n / g)
        self._pass, self._batch = 0, 0
        self._perms = {}
        self._feedback = self._seg.meta["feedback"]
        self.steered = self._seg.plan is not None
        self._due = self._feedback["every"] - 1
        self._pending = {}
        if self.steered:
            if passes != 1:
                raise ValueError("serve steers the mixture of one pass: use passes=1")
            self._seg.request({"op": "hello", "global_batch_size": g})

    # What the curriculum is.
    @property
    def seq_len(self):
        return self._seg.seq_len

    @property
    def num_sequences(self):
        return self._seg.n_seq

    @property
    def domain_names(self):
        return self._seg.domain_names

    @property
    def meta(self):
        """serve's description of the curriculum (name, domains, dtype, feedback settings...)."""
        return dict(self._seg.meta)

    def __len__(self):
        """Batches left to this loader."""
        if self.passes is None:
            raise TypeError("an endless loader (passes=None) has no length")
        return max(0, (self.passes - self._pass) * self.batches_per_pass - self._batch)

    # Resume.
    def state_dict(self):
        """Where the next batch starts: valid on every rank, and for any world_size with the
        same global batch size."""
        return {
            "version": STATE_VERSION,
            "curriculum": self._seg.meta["curriculum"],
            "global_batch_size": self.global_batch_size,
            "seed": self.seed,
            "pass": self._pass,
            "position": self._batch * self.global_batch_size,
            "report_due": self._due,
            "pending": {k: list(v) for k, v in self._pending.items()},
        }

    def load_state_dict(self, state):
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r}, this client reads {STATE_VERSION}")
        if state["curriculum"] != self._seg.meta["curriculum"]:
            raise ValueError("the state was saved on another curriculum")
        if state["global_batch_size"] != self.global_batch_size:
            raise ValueError(
                f"the state was saved with global batch size {state['global_batch_size']}; this loader has "
                f"{self.global_batch_size} (batch_size x world_size must stay the same to resume)")
        if state["seed"] != self.seed:
            raise ValueError(f"the state was saved with seed {state['seed']}, this loader has {self.seed}")
        if state["position"] % self.global_batch_size:
            raise ValueError("position is not at a global batch boundary")
        self._pass = int(state["pass"])
        self._batch = int(state["position"]) // self.global_batch_size
        self._due = int(state.get("report_due", self._feedback["every"] - 1))
        self._pending = {k: list(v) for k, v in state.get("pending", {}).items()}

    # Reading.
    def __iter__(self):
        return self.batches()

    def batches(self, stride=1, offset=0):
        """This rank's batches from the current state; with stride > 1, only every stride-th
        batch from `offset` (DataLoader workers), the state still advancing over all."""
        j = 0
        while self.passes is None or self._pass < self.passes:
            if self._batch >= self.batches_per_pass:
                self._pass, self._batch = self._pass + 1, 0
                continue
            mine = j % stride == offset
            batch = self._read(self._pass, self._batch) if mine else None
            self._batch += 1
            j += 1
            if mine:
                yield batch

    def _global_batch(self, pass_, b):
        full = self._seg.n_seq // self.global_batch_size
        if pass_ == 0 or not self.shuffle_later_passes or b >= full:
            return b
        perm = self._perms.get(pass_)
        if perm is None:
            self._perms = {pass_: BatchPermutation(full, self.seed, pass_)}
            perm = self._perms[pass_]
        return perm[b]

    def _read(self, pass_, b):
        seg = self._seg
        seg.check_alive()
        g = self.global_batch_size
        gb = self._global_batch(pass_, b)
        lo = gb * g
        hi = min(lo + g, seg.n_seq)
        start = min(lo + self.rank * self.batch_size, hi)
        end = min(start + self.batch_size, hi)
        step = pass_ * self.batches_per_pass + b
        if seg.plan is None:
            rows = slice(start, end)
            index = np.arange(start, end, dtype=np.int64)
        else:
            self._wait_planned(end, b)
            idx = seg.plan[start:end]
            if len(idx) and int(idx[-1]) - int(idx[0]) == len(idx) - 1 and np.all(np.diff(idx) == 1):
                rows = slice(int(idx[0]), int(idx[0]) + len(idx))
            else:
                rows = idx.astype(np.intp)
            index = idx.astype(np.int64)
        return {
            "tokens": seg.rows(rows),
            "weights": seg.weights[rows],
            "domains": seg.domains[rows],
            "index": index,
            "step": step,
        }

    def _wait_planned(self, end, b):
        seg = self._seg
        if seg.planned() >= end:
            return
        every, lag = self._feedback["every"], self._feedback["lag"]
        # The report whose decision this batch waits for.
        needed = ((b - lag) // every) * every - 1 if b >= lag else -1
        if self.rank == self.reporting_rank and needed >= self._due:
            raise RuntimeError(
                f"step {b} needs the mixture decided by the report of step {needed}, which this loader has not "
                f"sent: call loader.report(...) after each step (feedback every {every}, lag {lag})")
        deadline = time.monotonic() + self.timeout
        pause = 0.0002
        while seg.planned() < end:
            seg.check_alive(force=True)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"step {b} waited {self.timeout:.0f} s for the report of step {needed} (rank "
                    f"{self.reporting_rank} reports; feedback every {every}, lag {lag})")
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    # Steering.
    def report(self, domain_stats, *, step=None):
        """Send per-domain signals of the latest step to serve: a dict from domain (name or
        id) to a value, a list (or array, or tensor) of per-sample values, or
        {"mean": m, "count": c} for c samples whose mean is m (|advantage| or loss for DUMP,
        the validation loss for Skill-It). Values of steps between due reports are pooled.
        Returns serve's decision when a report went out, else None; does nothing on ranks
        other than reporting_rank."""
        if self.rank != self.reporting_rank:
            return None
        if not self.steered:
            raise ServeError("serve was started without a feedback rule (serve --feedback dump|skillit, or "
                             "[feedback] rule in the pipeline)")
        if step is None:
            step = self._pass * self.batches_per_pass + self._batch - 1
        if step < 0:
            raise ValueError("report() before the first batch")
        for key, values in domain_stats.items():
            name = self.domain_names[key] if isinstance(key, (int, np.integer)) else str(key)
            if name not in self.domain_names:
                raise ValueError(f"unknown domain {key!r} (domains: {', '.join(self.domain_names)})")
            if isinstance(values, dict):  # {"mean": m, "count": c}: c samples of mean m
                values = [float(values["mean"])] * _index("count", values.get("count", 1))
            if hasattr(values, "detach"):
                values = values.detach().float().cpu().numpy()
            arr = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"domain {name!r}: values must be finite")
            if arr.size and float(np.max(np.abs(arr))) > MAX_REPORT_VALUE:
                raise ValueError(f"domain {name!r}: values must lie within +-{MAX_REPORT_VALUE:g} (losses or "
                                 f"advantages; larger ones overflow the mixture)")
            self._pending.setdefault(name, []).extend(float(x) for x in arr)
        decision = None
        every = self._feedback["every"]
        while self._due <= step:
            answer = self._seg.request({"op": "report", "step": self._due, "stats": self._pending})
            self._pending = {}
            self._due += every
            decision = answer["decision"]
        return decision

    def status(self):
        """serve's status: positions planned, decisions taken, the step whose report is due."""
        return self._seg.request({"op": "status"})

    def close(self):
        """Close the report socket (the mapping goes with the loader)."""
        self._seg.close_socket()

    def __del__(self):
        seg = getattr(self, "_seg", None)
        if seg is not None:
            seg.close_socket()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
