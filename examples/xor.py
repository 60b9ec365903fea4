"""The article's XOR demo: a network with one hidden layer of 3 sigmoid units learns XOR.

    python examples/xor.py [--backend numpy|torch|...]

XOR is the classic problem a network without a hidden layer cannot solve: no line
separates {(0,1), (1,0)} from {(0,0), (1,1)}. Three hidden sigmoid units are enough.

The network is the article's 2-3-1 with sigmoid units: 2 inputs, 3 hidden sigmoid
units and a sigmoid output. ``NNClassifier`` gives every class its own sigmoid output
unit, so the two classes "0" and "1" make two output units whose probabilities are
normalised to sum to 1; the column for class 1 is the single output of the article's
network. The layers have biases (XOR needs them) and the gradient is summed over the
four samples (one batch), as in the article.

Prints the four predictions and exits with status 0 only when XOR is learned.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import arraynn  # noqa: F401
except ImportError:  # run from a source checkout without installing arraynn
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arraynn import BackendError, NNClassifier  # noqa: E402

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y = np.array([0, 1, 1, 0])


def train_xor(backend: str | None = None, seed: int = 1, epochs: int = 1000) -> NNClassifier:
    """Fit the 2-3-1 sigmoid network on the four XOR samples."""
    nn = NNClassifier(n_hidden_units=3, activation="sigmoid", output="sigmoid", bias=True,
                      learning_rate=0.5, epochs=epochs, n_batches=1, random_seed=seed,
                      backend=backend, dtype="float32")
    return nn.fit(X, Y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="array backend (default: NumPy)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        nn = train_xor(args.backend, args.seed)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    proba = nn.predict_proba(X)[:, 1]
    pred = nn.predict(X)
    print(f"XOR with a 2-3-1 sigmoid network: {nn.n_iter_} epochs on {nn.backend_.describe()}, "
          f"final loss {nn.error_[-1]:.4f}, {time.perf_counter() - start:.2f} s")
    for x, p, c, t in zip(X.astype(int), proba, pred, Y):
        mark = "ok" if c == t else "WRONG"
        print(f"  {x[0]} XOR {x[1]} -> {int(c)}   (P(1) = {p:.3f}, expected {t})  {mark}")
    learned = bool(np.array_equal(pred, Y))
    print("XOR learned" if learned else "XOR NOT learned")
    return 0 if learned else 1


if __name__ == "__main__":
    sys.exit(main())
