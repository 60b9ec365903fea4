"""A t-SNE map of the Fashion-MNIST products (needs scikit-learn and matplotlib).

    python examples/tsne.py --data-dir DIR [--n 2000] [--model RUN_DIR/model.npz]

Each test image becomes a point in the plane, placed by t-SNE so that images that
look alike lie close together; the colour is the product class. Trousers, bags and
footwear form islands of their own, while T-shirts, pullovers, coats and shirts
overlap: the classes the classifier confuses most.

By default the map is made from the standardized pixels (reduced to 50 dimensions by
PCA first, as is usual for t-SNE). With ``--model`` it is made from the last hidden
layer of a network trained by ``python -m arraynn.train`` instead, which separates the
classes much better: that is what the network has learned.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

try:
    import arraynn  # noqa: F401
except ImportError:  # run from a source checkout without installing arraynn
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import arraynn  # noqa: E402
from arraynn import NNClassifier  # noqa: E402
from arraynn.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist  # noqa: E402
from arraynn.data.preprocessing import Preprocessor, scale  # noqa: E402

_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
}


def hidden_features(model_path: Path, X_uint8: np.ndarray) -> np.ndarray:
    """The last hidden layer's activations of a model saved by ``arraynn.train``."""
    clf = NNClassifier.load(model_path)
    if len(clf.coefs_) < 2:
        raise SystemExit(f"error: {model_path} has no hidden layer")
    X = X_uint8.astype(np.float32)
    sidecar = model_path.with_suffix(".json")
    prep = json.loads(sidecar.read_text())["preprocessing"] if sidecar.exists() else {"scheme": "per-set"}
    X = Preprocessor.from_dict(prep, arraynn.get_backend("numpy")).apply(X)
    act = _ACTIVATIONS[clf.activation]
    weights, biases = clf.coefs_, clf.intercepts_
    a = X
    for i in range(len(weights) - 1):
        z = a @ np.asarray(weights[i])
        if biases:
            z = z + np.asarray(biases[i])
        a = act(z)
    return a


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="directory with the Fashion-MNIST files")
    parser.add_argument("--n", type=int, default=2000, help="test images to map (default 2000)")
    parser.add_argument("--model", default=None, type=Path,
                        help="map the last hidden layer of this model.npz instead of the pixels")
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/tsne.png", type=Path,
                        help="the figure (default runs/tsne.png)")
    args = parser.parse_args(argv)

    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"error: this example needs {' and '.join(missing)}: pip install scikit-learn matplotlib",
              file=sys.stderr)
        return 1
    from matplotlib.figure import Figure
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    _, _, X_test, y_test = load_fashion_mnist(args.data_dir)
    idx = np.random.default_rng(args.seed).choice(len(X_test), min(args.n, len(X_test)), replace=False)
    X, y = X_test[idx], y_test[idx]
    if args.model is not None:
        features, what = hidden_features(args.model, X), "last hidden layer of the trained network"
    else:
        features, what = scale(X.astype(np.float32)), "standardized pixels"
    if features.shape[1] > 50:
        features = PCA(n_components=min(50, len(features)), random_state=args.seed).fit_transform(features)
    start = time.perf_counter()
    perplexity = min(args.perplexity, (len(features) - 1) / 3)
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=args.seed).fit_transform(
        np.asarray(features, dtype=np.float64))
    print(f"t-SNE of {len(X):,} test images ({what}): {time.perf_counter() - start:.1f} s")

    fig = Figure(figsize=(8.5, 7), layout="constrained")
    ax = fig.subplots()
    colours = [f"C{k}" for k in range(10)]
    for k, name in enumerate(FASHION_MNIST_CLASSES):
        sel = y == k
        ax.scatter(emb[sel, 0], emb[sel, 1], s=6, color=colours[k], label=name, alpha=0.8)
        if sel.any():
            cx, cy = np.median(emb[sel], axis=0)
            ax.annotate(name, (cx, cy), fontsize=9, weight="bold", ha="center",
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.7, "lw": 0})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of Fashion-MNIST test images ({what})")
    ax.legend(markerscale=3, fontsize=8, loc="best")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
