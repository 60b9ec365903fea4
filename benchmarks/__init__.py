"""Benchmarks of arraynn against PyTorch and scikit-learn: ``python -m benchmarks.run``.

This package must not import NumPy at import time: :mod:`benchmarks.run` first
drops ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` from its environment (re-executing
itself) and only then imports the array libraries.
"""
