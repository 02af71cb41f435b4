"""One trainer rank, as a process: reads its batches and prints one JSON line per batch
(step, sequence indices, a checksum of the tokens, the state after it). Used by the tests to
run ranks side by side and to kill them mid-run.

    python rank.py '{"curriculum": ..., "rank": 0, "world_size": 4, "batch_size": 8, ...}'
"""

import json
import sys
import time
import zlib

from syllabus_loader import Loader


def main():
    a = json.loads(sys.argv[1])
    ld = Loader(a["curriculum"], a["rank"], a["world_size"], a["batch_size"], seed=a.get("seed", 0),
                passes=a.get("passes", 1))
    if a.get("state"):
        ld.load_state_dict(a["state"])
    limit = a.get("batches")
    for n, b in enumerate(ld):
        line = {
            "step": b["step"],
            "index": b["index"].tolist(),
            "crc": zlib.crc32(b["tokens"].tobytes()),
            "state": ld.state_dict(),
        }
        print(json.dumps(line), flush=True)
        if a.get("report"):
            ld.report({d: [1.0] for d in ld.domain_names})
        if a.get("sleep"):
            time.sleep(a["sleep"])
        if limit is not None and n + 1 >= limit:
            break


if __name__ == "__main__":
    main()
