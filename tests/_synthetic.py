"""A tiny synthetic Fashion-MNIST for the tests: four small gzip IDX files written with
:func:`arraynn.data.idx.write_idx`, learnable in a few epochs (nothing touches the network).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arraynn.data.idx import write_idx

__all__ = ["synthetic_images", "write_synthetic_fashion_mnist"]


def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose class is drawn as a bar at a class-dependent place,
    on noise; learnable in a few epochs, but not perfectly."""
    y = np.arange(n) % 10
    rng.shuffle(y)
    X = rng.integers(0, 90, size=(n, 28, 28)).astype(np.int32)
    for i, k in enumerate(y):
        shift = int(rng.integers(-1, 2))
        X[i, 2 * k + 3 + shift: 2 * k + 6 + shift, 4:24] += 110
        X[i, 4:24, 2 * k + 3: 2 * k + 5] += 60
    return np.clip(X, 0, 255).astype(np.uint8), y.astype(np.uint8)


def write_synthetic_fashion_mnist(directory: Path, n_train: int = 600, n_test: int = 200,
                                  seed: int = 0) -> Path:
    """The four gzip IDX files of a Fashion-MNIST look-alike in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Xtr, ytr = synthetic_images(n_train, rng)
    Xte, yte = synthetic_images(n_test, rng)
    write_idx(directory / "train-images-idx3-ubyte.gz", Xtr)
    write_idx(directory / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", Xte)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", yte)
    return directory
