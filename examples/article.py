"""The article, as a script: a neural network from scratch, on XOR and Fashion-MNIST.

    python examples/article.py --data-dir DIR [--epochs 300] [--out runs/article-figures]

It follows the article step by step with arraynn's ``NNClassifier`` (the article's
estimator, with its parameters and defaults):

1. XOR with a 2-3-1 sigmoid network: the problem a single layer cannot solve.
2. Fashion-MNIST on raw pixels (0-255): the 784-50-10 sigmoid network with L2 0.5,
   learning rate 0.001 on gradients summed over 25 fixed minibatches, 300 epochs.
   The sigmoids saturate and training fails (the article: about 50 % accuracy).
3. The same network on standardized pixels (each set with its own mean and standard
   deviation, as the article does with ``sklearn.preprocessing.scale``): about 87 %
   test accuracy (the article: 87.03 %).
4. The error plot (the cost per epoch, ``nn.error_``) of both runs, and the prediction
   plots: test images with their predicted and true labels and the predicted
   probabilities, and the misclassified ones.

The figures go to ``--out`` (needs matplotlib: ``pip install "arraynn[plot]"``).
Training runs where ``--backend`` says (default NumPy, as in the article). The whole
script takes a few minutes on a laptop CPU; ``--epochs 30`` gives a quick look.
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
from arraynn.data.fashion_mnist import (  # noqa: E402
    FASHION_MNIST_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    load_fashion_mnist,
)
from arraynn.data.idx import IDXError  # noqa: E402
from arraynn.data.preprocessing import scale  # noqa: E402
from arraynn.train.errors import one_line  # noqa: E402

RANDOM_SEED = 0


def xor_demo(backend: str | None) -> bool:
    """Step 1: the 2-3-1 sigmoid network learns XOR."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0])
    nn = NNClassifier(n_hidden_units=3, activation="sigmoid", output="sigmoid", bias=True,
                      learning_rate=0.5, epochs=1000, n_batches=1, random_seed=1, backend=backend)
    nn.fit(X, y)
    proba = nn.predict_proba(X)[:, 1]
    print("1. XOR with a 2-3-1 sigmoid network (1000 epochs):")
    for x, p, t in zip(X.astype(int), proba, y):
        print(f"     {x[0]} XOR {x[1]} = {t}: predicted P(1) = {p:.3f}")
    learned = bool(np.array_equal(nn.predict(X), y))
    print(f"   XOR {'learned' if learned else 'NOT learned'}\n")
    return learned


def article_classifier(epochs: int, backend: str | None) -> NNClassifier:
    """The article's call, unchanged (plus where to compute)."""
    return NNClassifier(n_classes=10, n_features=784, n_hidden_units=50, l2=0.5, l1=0.0,
                        epochs=epochs, learning_rate=0.001, n_batches=25, random_seed=RANDOM_SEED,
                        backend=backend)


def fit_and_score(name: str, nn: NNClassifier, X_train, y_train, X_test, y_test) -> dict:
    start = time.perf_counter()
    nn.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    train_acc, test_acc = nn.score(X_train, y_train), nn.score(X_test, y_test)
    print(f"   {name}: train accuracy {100 * train_acc:.2f} %, test accuracy {100 * test_acc:.2f} % "
          f"({nn.n_iter_} epochs, {seconds:.1f} s, final cost {nn.error_[-1]:.4g})")
    return {"nn": nn, "train": train_acc, "test": test_acc, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help="directory with the four Fashion-MNIST files (default: $ARRAYNN_DATA or "
                             "the cache; downloaded when missing)")
    parser.add_argument("--epochs", type=int, default=300, help="epochs of each Fashion-MNIST run (300)")
    parser.add_argument("--backend", default=None, help="array backend (default: NumPy)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N training images only")
    parser.add_argument("--out", default="runs/article-figures",
                        help="directory of the figures (default runs/article-figures)")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    args = parser.parse_args(argv)

    try:
        if not xor_demo(args.backend):
            return 1
        X_train, y_train, X_test, y_test = load_fashion_mnist(args.data_dir)
    except (BackendError, DatasetError, IDXError, FileNotFoundError) as exc:
        hint = ""
        if isinstance(exc, DatasetNotFoundError):  # offline, or the files are elsewhere
            hint = (" (copy the four Fashion-MNIST files into DIR)" if args.data_dir else
                    " (put the four Fashion-MNIST files in a directory and pass --data-dir DIR)")
        print(f"error: {one_line(exc)}{hint}", file=sys.stderr)
        return 1
    if args.limit:
        X_train, y_train = X_train[: args.limit], y_train[: args.limit]
    print(f"2.-3. Fashion-MNIST: {len(X_train):,} training and {len(X_test):,} test images, "
          f"784-50-10 sigmoid network, {args.epochs} epochs")

    # Unscaled: the raw pixels 0-255 as floats.
    Xtr_raw, Xte_raw = X_train.astype(np.float32), X_test.astype(np.float32)
    with np.errstate(over="ignore"):
        raw = fit_and_score("raw pixels  ", article_classifier(args.epochs, args.backend),
                            Xtr_raw, y_train, Xte_raw, y_test)
    # Scaled: each set with its own mean and standard deviation, as the article.
    Xtr, Xte = scale(Xtr_raw), scale(Xte_raw)
    scaled = fit_and_score("standardized", article_classifier(args.epochs, args.backend),
                           Xtr, y_train, Xte, y_test)

    if args.no_plots:
        return 0
    from arraynn import report

    if not report.have_matplotlib():
        print('\n4. figures skipped: matplotlib is not installed (pip install "arraynn[plot]")')
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(FASHION_MNIST_CLASSES)
    nn = scaled["nn"]
    proba = np.asarray(nn.predict_proba(Xte))
    pred = np.argmax(proba, axis=1)
    wrong = np.flatnonzero(pred != y_test)
    paths = [
        report.plot_loss({"raw pixels": raw["nn"].error_, "standardized": nn.error_}, out / "error.png",
                         title="The article's error plot: cost per epoch", ylabel="cost per sample",
                         log_scale=True),
        report.plot_predictions(X_test[:12], proba[:12], y_test[:12], names, out / "predictions.png",
                                title=f"Test images (standardized inputs, test accuracy "
                                      f"{100 * scaled['test']:.2f} %)"),
        report.plot_predictions(X_test[wrong[:12]], proba[wrong[:12]], y_test[wrong[:12]], names,
                                out / "misclassified.png", title="Misclassified test images"),
        report.plot_confusion_matrix(report.confusion_matrix(y_test, pred, 10), names,
                                     out / "confusion_matrix.png"),
    ]
    print("\n4. figures: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
