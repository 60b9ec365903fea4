"""Measuring a model on the test set: ``--evaluate MODEL`` (:func:`evaluate`), and the
test accuracy and per-class table that a training run ends with too."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._cli import CLIError
from .config import backend_from, check_evaluate_args
from .dataset import check_test_set, load_run_data, upload
from .job import Run
from .rundir import read_model_json

__all__ = ["accuracy_of_prepared", "confusion_on_test_set", "evaluate", "print_result", "proba_of_prepared"]


def evaluate(job: Run) -> int:
    """``--evaluate MODEL``: a saved model's test accuracy on the chosen backend.

    The model is a run's (its model.json, when there, is checked too) or one saved by
    ``NNClassifier.save``; it brings its own preprocessing and class names, and
    predicts on the raw test images.
    """
    from ..classifier import NNClassifier
    from ..data.preprocessing import Preprocessor
    from ..model_io import model_path

    args = job.args
    check_evaluate_args(args)
    try:
        path = model_path(args.evaluate)  # the file, or a run directory's model.npz
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    meta = read_model_json(path) if path.with_suffix(".json").is_file() else None
    if meta is not None:
        try:
            Preprocessor.from_dict(meta["preprocessing"])
        except ValueError as exc:
            raise CLIError(f"{path.with_suffix('.json')}: its preprocessing cannot be applied ({exc}); "
                           "the file is damaged or was edited") from None
    job.backend, job.backend_reason = be, _ = backend_from(args)
    clf = NNClassifier.load(path, backend=be, dtype=be.dtype_name)
    print(f"arraynn.train: evaluating {path} ({clf.n_iter_} epochs) on {be.describe()}")
    if clf.preprocessor_ is None:
        print("  note: the model holds no preprocessing; it is fed the raw pixels 0-255")
    data = load_run_data(args)
    if clf.n_features_in_ != data.n_features:
        raise CLIError(f"{path} takes {clf.n_features_in_} features; the test images of "
                       f"{data.describe_source()} have {data.n_features}")
    print(f"  data: {data.title} from {data.describe_source()}: {len(data.X_test):,} test images")
    check_test_set(data)
    names = (meta or {}).get("classes") or clf.class_names_ or list(data.names)
    if not isinstance(names, list) or len(names) != len(clf.classes_):
        raise CLIError(f"{path.with_suffix('.json')} names {len(names) if isinstance(names, list) else 'no'} "
                       f"classes, the model has {len(clf.classes_)}; the file is damaged or was edited")
    names = [str(n) for n in names]
    cm, _ = confusion_on_test_set(clf, be, upload(be, data.X_test), data.y_test, len(names))
    print_result(cm, names)
    return 0


def proba_of_prepared(clf: Any, X: Any) -> Any:
    """The fitted ``clf``'s class probabilities of rows ``X`` preprocessed already, on
    the device (the run's own sets: ``"per-set"`` standardizes each with its own
    statistics), in chunks."""
    from .._inference import chunk_rows
    from .._inference import proba_of_prepared as proba

    be = clf.backend_
    with be.device_context():
        n, chunk = X.shape[0], chunk_rows(clf)
        parts = [proba(clf, X[s:min(s + chunk, n), ...]) for s in range(0, n, chunk)]
        return parts[0] if len(parts) == 1 else be.xp.concat(parts, axis=0)


def accuracy_of_prepared(clf: Any, X: Any, y: np.ndarray) -> float:
    """The accuracy of the fitted ``clf`` on preprocessed rows ``X`` and host labels ``y``."""
    be = clf.backend_
    with be.device_context():
        idx = be.to_numpy(be.xp.argmax(proba_of_prepared(clf, X), axis=1))
    return float(np.mean(clf.classes_[idx] == np.asarray(y)))


def confusion_on_test_set(clf: Any, be: Any, X_test: Any, y_test: np.ndarray, n_classes: int,
                          prepared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The confusion matrix on the on-device test set (raw images, which the model
    preprocesses, or with ``prepared`` preprocessed already) and the test probabilities
    (host)."""
    from ..report import confusion_matrix

    proba = be.to_numpy(proba_of_prepared(clf, X_test) if prepared else clf.predict_proba(X_test))
    pred = clf.classes_[np.argmax(proba, axis=1)]
    return confusion_matrix(y_test, pred, n_classes), proba


def print_result(cm: np.ndarray, names: list[str], tail: str = "") -> None:
    """The test accuracy line (``tail`` appended) and the per-class table."""
    from ..report import per_class_table

    correct, total = int(np.trace(cm)), int(cm.sum())
    print(f"test accuracy: {100 * float(np.trace(cm) / cm.sum()):.2f}%  ({correct:,} of {total:,}){tail}")
    print(per_class_table(cm, names))
