"""Exported ONNX graphs against the models they came from, on the whole test set.

    python -m benchmarks.onnx_check RUN [RUN ...] --data-dir DIR [--json PATH]

For each run directory (or model.npz): export it (:func:`arraynn.export.to_onnx`), run
the graph with onnxruntime (CPU) on the 10,000 raw Fashion-MNIST test images, and
compare with ``NNClassifier.load(RUN)``: the share of equal labels (goal: all), the
largest absolute difference of the probabilities (goal: <= 1e-5, or no more than the
float32 model's own distance from its float64 probabilities, where raw inputs make sums
in the thousands whose float32 rounding depends on the summation order), and the test
accuracy of both, with the time each takes for the whole set. It also checks that
batches of 1 give the rows of the whole batch, on the first 200 images.
"""

from __future__ import annotations

from . import drop_blas_pinning

if __name__ == "__main__":
    drop_blas_pinning("benchmarks.onnx_check")

# ruff: noqa: E402  (the imports below must follow the re-execution)
import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def check(model: str, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    import onnxruntime as ort

    from arraynn import NNClassifier
    from arraynn.export import to_onnx

    clf = NNClassifier.load(model, backend="numpy")
    exact = np.asarray(NNClassifier.load(model, backend="numpy", dtype="float64").predict_proba(X))
    onnx_model = to_onnx(clf)
    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    want = np.asarray(clf.predict_proba(X))
    labels = np.asarray(clf.predict(X))
    t1 = time.perf_counter()
    proba, label = sess.run(None, {"input": X.astype(np.float32)})
    t2 = time.perf_counter()
    ones = np.concatenate([sess.run(None, {"input": X[i:i + 1].astype(np.float32)})[0] for i in range(200)])
    return {
        "model": Path(model).name, "preprocessing": clf.preprocessor_.name if clf.preprocessor_ else "none",
        "network": f"{clf.n_features_in_}-{'-'.join(str(w.shape[1]) for w in clf.coefs_)} "
                   f"{clf.activation}/{clf.output}",
        "same_labels": float(np.mean(clf.classes_[label] == labels)),
        "max_abs_probability_difference": float(np.abs(proba - want).max()),
        # how far float32 is from the float64 probabilities, for the model and the graph
        "arraynn_float32_vs_float64": float(np.abs(want - exact).max()),
        "onnx_vs_float64": float(np.abs(proba - exact).max()),
        "batch_1_max_difference": float(np.abs(ones - proba[:200]).max()),
        "accuracy_arraynn": float(np.mean(labels == y)),
        "accuracy_onnx": float(np.mean(clf.classes_[label] == y)),
        "seconds_arraynn": t1 - t0, "seconds_onnxruntime": t2 - t1,
        "onnx_bytes": len(onnx_model.SerializeToString()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.onnx_check", description=__doc__.split("\n\n")[1])
    ap.add_argument("models", nargs="+", help="run directories or model.npz files")
    ap.add_argument("--data-dir", help="the Fashion-MNIST files (else $ARRAYNN_DATA, else the cache)")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    from arraynn.data.fashion_mnist import load_fashion_mnist

    _, _, X_test, y_test = load_fashion_mnist(args.data_dir, download=False)
    X = X_test.reshape(len(X_test), -1)
    rows = [check(m, X, y_test) for m in args.models]
    print("| model | network | preprocessing | same labels | max prob. difference | float32 vs float64 "
          "(arraynn / ONNX) | batch 1 | accuracy (arraynn / ONNX) | arraynn / onnxruntime time |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['network']} | {r['preprocessing']} | {100 * r['same_labels']:.2f} % | "
              f"{r['max_abs_probability_difference']:.1e} | {r['arraynn_float32_vs_float64']:.1e} / "
              f"{r['onnx_vs_float64']:.1e} | {r['batch_1_max_difference']:.1e} | "
              f"{100 * r['accuracy_arraynn']:.2f} / {100 * r['accuracy_onnx']:.2f} % | "
              f"{r['seconds_arraynn']:.3f} / {r['seconds_onnxruntime']:.3f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    ok = all(r["same_labels"] == 1.0 and r["max_abs_probability_difference"]
             <= max(1e-5, r["arraynn_float32_vs_float64"]) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
