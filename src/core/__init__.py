"""Haystack Serverless: everything but the Lambda entry points."""

import os

# The store's matrix products are small (one query vector against ~10k rows): measured here, BLAS
# threads made them ~10x slower (7 ms vs 0.7 ms), and Lambda gives less than one vCPU at 1 GB. This
# must be set before numpy loads; an explicit OPENBLAS_NUM_THREADS in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
