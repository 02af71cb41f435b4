#!/usr/bin/env python3
"""Run the ZIP-FIT reference (zip-fit 1.0.9) end to end: load, N x M compressions, top k.

    python benches/reference_zipfit.py SOURCE.jsonl TARGET.jsonl K ALGO LEVEL OUT.jsonl

It uses every core (multiprocessing.cpu_count()); run it under taskset to limit them.
"""
import sys

from zip_fit import ZIPFIT


def main():
    source, target, k, algo, level, out = sys.argv[1:7]
    ZIPFIT(source, target, k=int(k), compression_algorithm=algo, compress_level=int(level), output_file=out).run()


if __name__ == "__main__":
    main()
