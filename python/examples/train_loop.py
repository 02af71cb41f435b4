"""A training loop's shape with syllabus_loader, on numpy alone: read this rank's batches,
weight the per-sample losses online (Sow et al.), report per-domain signals so serve steers
the mixture (when it runs with a feedback rule), and checkpoint the loader's state.

    syllabus run pipelines/steered.toml && syllabus serve out/steered &
    python python/examples/train_loop.py out/steered --steps 50

The "model" here is a stand-in: a sample's loss is how far its mean token id is from a
moving target, so the numbers move; put your forward/backward where it says so.
"""

import argparse
import json

import numpy as np

from syllabus_loader import Loader, batch_weights


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("curriculum", help="the curriculum's directory, or the name serve printed")
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--world-size", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--resume", help="a state saved by an earlier run")
    ap.add_argument("--save", default="loader_state.json")
    args = ap.parse_args()

    loader = Loader(args.curriculum, args.rank, args.world_size, args.batch_size)
    if args.resume:
        with open(args.resume) as f:
            loader.load_state_dict(json.load(f))
    target = 500.0
    for batch in loader:
        tokens = batch["tokens"]                      # [batch, seq_len], a view of shared memory
        # --- forward/backward would go here; a stand-in per-sample loss: ---
        losses = np.abs(tokens.mean(axis=1) - target) / 100.0
        weights = batch_weights(losses, "linupper", 1.0) * batch["weights"]
        loss = float((weights * losses).mean())
        target += 1.0
        if loader.steered:
            stats = {}
            for d, l in zip(batch["domains"], losses):
                stats.setdefault(loader.domain_names[d], []).append(float(l))
            decision = loader.report(stats)
            if decision:
                mix = ", ".join(f"{k} {v:.2f}" for k, v in decision["mixture"].items())
                print(f"step {batch['step']}: loss {loss:.3f}; mixture from step {decision['applies_from_step']}: {mix}")
        else:
            print(f"step {batch['step']}: loss {loss:.3f}")
        with open(args.save, "w") as f:
            json.dump(loader.state_dict(), f)
        if batch["step"] + 1 >= args.steps:
            break


if __name__ == "__main__":
    main()
