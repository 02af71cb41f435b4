#!/usr/bin/env python3
"""Run the DSIR reference (data-selection 1.0.3) end to end: fit, weights, resample.

    python benches/reference_dsir.py RAW.jsonl TARGET.jsonl K NUM_PROC OUT_DIR [SEED]
"""
import sys
import tempfile

import numpy as np
from data_selection import HashedNgramDSIR


def main():
    raw, target, k, num_proc, out = sys.argv[1:6]
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    with tempfile.TemporaryDirectory() as cache:
        dsir = HashedNgramDSIR([raw], [target], cache_dir=cache, num_proc=int(num_proc))
        dsir.fit_importance_estimator(num_tokens_to_fit="auto")
        dsir.compute_importance_weights()
        np.random.seed(seed)
        dsir.resample(out_dir=out, num_to_sample=int(k), cache_dir=cache + "/resample")


if __name__ == "__main__":
    main()
