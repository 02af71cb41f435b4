"""serve's memory over a long steered run: RSS after 100, 500, 1,000 and 2,000 reports of
1,800 values each (DUMP, a report every step), on pipelines/steered.toml's curriculum.

    python benches/serve_memory.py [SYLLABUS_BINARY]     # default target/release/syllabus

Prints one JSON line: RSS in KiB after each number of reports, and the decision log's size.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "syllabus")
    with tempfile.TemporaryDirectory() as tmp:
        out, shm = os.path.join(tmp, "steered"), os.path.join(tmp, "shm")
        os.mkdir(shm)
        subprocess.run([binary, "-q", "run", "pipelines/steered.toml", "--out", out], cwd=ROOT, check=True,
                       capture_output=True)
        serve = subprocess.Popen([binary, "-q", "serve", out], stdout=subprocess.PIPE,
                                 env={**os.environ, "SYLLABUS_SHM_DIR": shm})
        try:
            ready = json.loads(serve.stdout.readline())
            s = socket.socket(socket.AF_UNIX)
            s.connect(ready["socket"])
            f = s.makefile("rb")

            def request(r):
                s.sendall((json.dumps(r) + "\n").encode())
                answer = json.loads(f.readline())
                assert answer["ok"], answer
                return answer

            request({"op": "hello", "global_batch_size": 1})
            values = [0.001 * i for i in range(1000)]
            stats = {"prose": values, "code": values[:500], "math": values[:200], "docs": values[:100]}
            marks, start = {}, time.perf_counter()
            for step in range(2000):
                request({"op": "report", "step": step, "stats": stats})
                if step + 1 in (100, 500, 1000, 2000):
                    marks[step + 1] = rss_kib(serve.pid)
            print(json.dumps({"rss_kib_after_reports": marks, "log_bytes": os.path.getsize(ready["log"]),
                              "seconds": round(time.perf_counter() - start, 1)}))
        finally:
            serve.terminate()
            serve.wait()


if __name__ == "__main__":
    main()
