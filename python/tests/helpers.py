"""Shared by the client's tests: the syllabus binary, curricula built from the fixtures, and
serve processes in a private shared-memory directory."""

import json
import os
import shutil
import subprocess
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(REPO, "fixtures")


def binary():
    b = os.environ.get("SYLLABUS_BIN")
    if b:
        return b
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "release", "syllabus")


def syllabus(*args, check=True, env=None):
    r = subprocess.run([binary(), "-q", *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO)
    if check and r.returncode != 0:
        raise AssertionError(f"syllabus {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def curriculum(out, *extra, domains=("prose", "code"), seq_len=64, shard_tokens=4096):
    """A curriculum of the fixture lake's domains."""
    files = {"prose": "lake/prose.jsonl", "code": "lake/code.jsonl.zst", "math": "lake/math.jsonl.gz",
             "docs": "lake/docs.parquet"}
    args = ["curriculum", "--tokenizer", os.path.join(FIXTURES, "tokenizer.json"), "--seq-len", seq_len,
            "--shard-tokens", shard_tokens, "--on-bad-record", "skip", "--out", out]
    for d in domains:
        args += ["--domain", f"{d}={os.path.join(FIXTURES, files[d])}"]
    syllabus(*args, *extra)
    return out


def workdir_with_curriculum(prefix):
    """A scratch directory holding the two-domain test curriculum (prose + code: 6867
    sequences of 64 tokens in 108 shards) as `c2`."""
    work = tempfile.mkdtemp(prefix=prefix)
    return work, curriculum(os.path.join(work, "c2"))


class Serve:
    """`syllabus serve` in the background; ready when its JSON line is out."""

    def __init__(self, directory, *args, shm_dir, expect_fail=False):
        self.env = dict(os.environ, SYLLABUS_SHM_DIR=shm_dir)
        self.proc = subprocess.Popen([binary(), "-q", "serve", str(directory), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait()
            self.stop()
            if expect_fail:
                self.error, self.ready = err, None
                return
            raise AssertionError(f"serve did not start:\n{err}")
        if expect_fail:
            self.stop()
            raise AssertionError("serve started but was expected to fail")
        self.ready = json.loads(line)
        self.error = None

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ShmDir:
    """A private stand-in for /dev/shm (on tmpfs when /dev/shm is there)."""

    def __enter__(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.path = tempfile.mkdtemp(prefix="syllabus-test-", dir=base)
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
