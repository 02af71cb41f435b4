"""Attach to a segment staged by `syllabus serve` (layout: src/loader/segment.rs)."""

import errno
import fcntl
import glob
import hashlib
import json
import mmap
import os
import socket
import time

import numpy as np

MAGIC = b"SYLSERVE"
VERSION = 1
_STATE, _PLANNED, _DECISIONS = 256 // 8, 264 // 8, 272 // 8
STATE_READY, STATE_CLOSED = 1, 2


class ServeError(RuntimeError):
    """`syllabus serve` is gone, was restarted, or refused a request."""


def shm_dir():
    return os.environ.get("SYLLABUS_SHM_DIR", "/dev/shm")


def curriculum_id(manifest):
    """sha256 over config_hash and the syllabus shards' checksums (as serve computes it)."""
    h = hashlib.sha256(manifest["config_hash"].encode())
    for s in manifest["shards"]:
        if s["format"] == "syllabus":
            h.update(b"\n" + s["checksum"].encode())
    return h.hexdigest()


def segment_path(path_or_name, directory=None):
    """The segment file for a curriculum directory, a segment path, or a name."""
    directory = directory or shm_dir()
    p = os.fspath(path_or_name)
    manifest = os.path.join(p, "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest, "rb") as f:
            cid = curriculum_id(json.load(f))
        mine = os.path.join(directory, f"syllabus-{os.getuid()}-{cid[:16]}")
        if os.path.exists(mine):
            return mine
        # Served by another user (serve --mode 640 or 644): the one segment of this curriculum.
        others = glob.glob(os.path.join(directory, f"syllabus-*-{cid[:16]}"))
        return others[0] if len(others) == 1 else mine
    if os.sep in p:
        return p
    if not p.startswith("syllabus-"):
        p = f"syllabus-{os.getuid()}-{p}"
    return os.path.join(directory, p)


class Segment:
    """A read-only mapping of a served curriculum, with liveness checks against its serve."""

    def __init__(self, path_or_name, directory=None):
        self.path = segment_path(path_or_name, directory)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise ServeError(
                f"{self.path}: no curriculum is served under this name on this node; "
                f"start `syllabus serve OUT_DIR` first") from None
        except PermissionError as e:
            raise ServeError(f"{self.path}: {e.strerror} (serve --mode sets who may read it)") from None
        try:
            st = os.fstat(fd)
            self.inode = (st.st_dev, st.st_ino)
            self._mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        mm = self._mm
        if mm[:8] != MAGIC:
            raise ServeError(f"{self.path}: not a syllabus segment")
        version, width = np.frombuffer(mm, "<u4", 2, 8)
        if version != VERSION:
            raise ServeError(f"{self.path}: segment version {version}, this client reads {VERSION}")
        (self.seq_len, self.n_seq, self.n_domains, tok_off, w_off, d_off, plan_off,
         meta_off, meta_len, self.pid, _total, chunk_off, n_chunks) = (int(x) for x in np.frombuffer(mm, "<u8", 13, 16))
        self._hdr = np.frombuffer(mm, "<u8", 512 // 8, 0)
        self.meta = json.loads(bytes(mm[meta_off:meta_off + meta_len]))
        self.dtype = np.dtype({2: "<u2", 4: "<u4"}[int(width)])
        if tok_off:
            self.tokens = np.frombuffer(mm, self.dtype, self.n_seq * self.seq_len, tok_off).reshape(
                self.n_seq, self.seq_len)
        else:  # map mode: the tokens stay in the shard files
            self.tokens = None
            table = np.frombuffer(mm, "<u8", 3 * n_chunks, chunk_off).reshape(n_chunks, 3)
            self._first, self._count, self._offset = (table[:, i].astype(np.int64) for i in range(3))
            self._files = self.meta["files"]
            self._maps = {}
        self.weights = np.frombuffer(mm, "<f4", self.n_seq, w_off)
        self.domains = np.frombuffer(mm, "<u2", self.n_seq, d_off)
        self.plan = np.frombuffer(mm, "<u8", self.n_seq, plan_off) if plan_off else None
        self.domain_names = list(self.meta["domains"])
        try:
            self._lock_fd = os.open(self.path + ".lock", os.O_RDONLY)
        except OSError as e:
            raise ServeError(f"{self.path}.lock: {e.strerror}: no syllabus serve holds this segment") from None
        self._checked = 0.0
        self._sock = None
        self._rfile = None
        self.check_alive(force=True)

    # Tokens of rows (a slice or an array of sequence indices): a view where they lie in one
    # place, else a copy.
    def rows(self, rows):
        if self.tokens is not None:
            return self.tokens[rows]
        if isinstance(rows, slice):
            if rows.stop <= rows.start:
                return np.empty((0, self.seq_len), self.dtype)
            c0, c1 = (int(np.searchsorted(self._first, i, side="right")) - 1 for i in (rows.start, rows.stop - 1))
            if c0 == c1:
                f = self._first[c0]
                return self._chunk(c0)[rows.start - f:rows.stop - f]
            rows = np.arange(rows.start, rows.stop)
        out = np.empty((len(rows), self.seq_len), self.dtype)
        chunk = np.searchsorted(self._first, rows, side="right") - 1
        for c in np.unique(chunk):
            here = chunk == c
            out[here] = self._chunk(int(c))[rows[here] - self._first[c]]
        return out

    _MAX_MAPS = 64

    def _chunk(self, c):
        """Shard file c's tokens, mapped on first use (at most _MAX_MAPS kept open)."""
        a = self._maps.pop(c, None)
        if a is None:
            if len(self._maps) >= self._MAX_MAPS:
                self._maps.pop(next(iter(self._maps)))
            a = np.memmap(self._files[c], dtype=self.dtype, mode="r", offset=int(self._offset[c]),
                          shape=(int(self._count[c]), self.seq_len))
        self._maps[c] = a  # most recently used last
        return a

    @property
    def name(self):
        return self.meta["name"]

    def planned(self):
        return int(self._hdr[_PLANNED])

    def decisions(self):
        return int(self._hdr[_DECISIONS])

    def check_alive(self, force=False, every=0.01):
        """Raise ServeError when serve has stopped, died, or was restarted (checked at most
        every `every` seconds unless forced)."""
        if int(self._hdr[_STATE]) == STATE_CLOSED:
            raise ServeError(f"syllabus serve (pid {self.pid}) stopped serving {self.name}; "
                             f"restart it and resume this loader from its state_dict()")
        now = time.monotonic()
        if not force and now - self._checked < every:
            return
        try:
            # The live serve holds the lock exclusively: taking it shared must fail.
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        else:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            raise ServeError(f"syllabus serve (pid {self.pid}) of {self.name} is gone (killed or crashed); "
                             f"restart it and resume this loader from its state_dict()")
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self.inode
        except FileNotFoundError:
            same = False
        if not same:
            raise ServeError(f"{self.name} was restaged by a restarted serve; "
                             f"resume this loader from its state_dict()")
        self._checked = now

    def request(self, req):
        """One request over the report socket; returns the answer or raises ServeError."""
        self.check_alive(force=True)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.connect(self.meta["socket"])
                self._rfile = self._sock.makefile("rb")
            self._sock.sendall((json.dumps(req) + "\n").encode())
            line = self._rfile.readline()
        except OSError as e:
            self.close_socket()
            self.check_alive(force=True)
            raise ServeError(f"{self.meta['socket']}: {e}") from None
        if not line:
            self.close_socket()
            self.check_alive(force=True)
            raise ServeError(f"{self.meta['socket']}: serve closed the connection")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise ServeError(f"serve refused: {answer.get('error')}")
        return answer

    def close_socket(self):
        if getattr(self, "_sock", None) is not None:
            try:
                self._sock.close()
            finally:
                self._sock = self._rfile = None

    def __del__(self):
        self.close_socket()
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.close(fd)
            self._lock_fd = None

    def __getstate__(self):
        raise TypeError("a Segment maps shared memory and cannot be pickled; make one per process")
