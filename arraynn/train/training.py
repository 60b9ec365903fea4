"""The classifier of a run: built from its configuration, or resumed from its checkpoint
(checked to be the run's), and trained with a checkpoint per epoch."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._cli import CLIError
from .config import estimator_params
from .dataset import DeviceSets, FashionMNIST
from .evaluate import accuracy_of_prepared
from .progress import Progress
from .rundir import CHECKPOINT, CONFIG, RunDir

__all__ = ["new_classifier", "resume_ranks", "stopped", "train"]


def new_classifier(cfg: dict[str, Any], be: Any, n_classes: int = 10) -> Any:
    """An unfitted classifier of the configuration, on ``be``: its entries are the
    estimator's parameters (:func:`~arraynn.train.config.estimator_params`); the run
    adds the backend, its dtype, the number of classes, and ``warm_start`` (a resumed
    run continues its checkpoint)."""
    from ..classifier import NNClassifier

    return NNClassifier(**estimator_params(cfg), n_classes=n_classes, backend=be, dtype=be.dtype_name,
                        warm_start=True)


def _resume(rd: RunDir, be: Any, cfg: dict[str, Any], data: FashionMNIST) -> tuple[Any, list[dict[str, Any]]]:
    """The checkpoint's classifier, set to continue, and the metrics rows so far."""
    clf, rows = rd.load_checkpoint(be)
    _check_checkpoint(rd, clf, cfg, be, data.n_features, data.n_classes)
    clf.set_params(warm_start=True, epochs=int(cfg["epochs"]))
    if stopped(clf):
        kept = ("with the weights of its best epoch" if clf.early_stopping else
                "its learning rate fell below 1e-6 on a plateau (--schedule adaptive)")
        print(f"the run stopped early after epoch {clf.n_iter_}: it is finished, {kept}")
    else:
        print(f"resuming after epoch {clf.n_iter_} of {cfg['epochs']}")
    return clf, rows


def resume_ranks(rd: RunDir, be: Any, cfg: dict[str, Any], world: Any, data: FashionMNIST
                  ) -> tuple[Any, list[dict[str, Any]]]:
    """:func:`_resume` on rank 0, which hands the checkpoint's bytes to the other ranks
    (they need not see rank 0's disk); they get no metrics rows."""
    from ..classifier import NNClassifier

    if world.is_root:
        clf, rows = _resume(rd, be, cfg, data)
        if world.size > 1:
            world.bcast((rd.path / CHECKPOINT).read_bytes())
        return clf, rows
    blob = world.bcast(None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CHECKPOINT
        path.write_bytes(blob)
        clf = NNClassifier.load(path, backend=be, dtype=be.dtype_name)
    clf.set_params(warm_start=True, epochs=int(cfg["epochs"]))
    return clf, []


def _check_checkpoint(rd: RunDir, clf: Any, cfg: dict[str, Any], be: Any, n_features: int = 784,
                      n_classes: int = 10) -> None:
    """The checkpoint is of the network and training config.json describes.

    Raises
    ------
    CLIError
        Naming the first parameter that differs.
    """
    want = new_classifier(cfg, be).get_params()
    have = clf.get_params()
    ignore = {"backend", "device", "dtype", "warm_start", "tf32", "verbose", "n_classes", "n_features",
              "epochs", "preprocessing", "class_names"}
    for key in sorted(set(want) - ignore):
        a, b = have.get(key), want[key]
        if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            a = list(a) if isinstance(a, (list, tuple)) else [a]
            b = list(b) if isinstance(b, (list, tuple)) else [b]
        if a != b:
            raise CLIError(f"{rd.path / CHECKPOINT} does not belong to this run: its {key} is {a!r}, "
                           f"the run's {CONFIG} says {b!r}; restore the run's own checkpoint or "
                           "start a new run")
    if clf.n_features_in_ != n_features or list(clf.classes_) != list(range(n_classes)):
        raise CLIError(f"{rd.path / CHECKPOINT} does not belong to this run: it is not a "
                       f"{n_features}-input, {n_classes}-class model of its data")
    if clf.n_iter_ > int(cfg["epochs"]):
        raise CLIError(f"{rd.path / CHECKPOINT} does not belong to this run: it has {clf.n_iter_} "
                       f"epochs, the run {cfg['epochs']}")


def train(clf: Any, cfg: dict[str, Any], rd: RunDir, sets: DeviceSets, rows: list[dict[str, Any]],
           plain: bool, comm: Any = None) -> float:
    """Run the remaining epochs; returns the training wall time, summed over resumes.

    One ``fit`` call (``warm_start``: a resumed classifier continues at its epoch). The
    learning-rate schedule is the classifier's own, a function of the epoch number, so a
    resumed run takes exactly the same path and ends with the same weights. After every
    epoch the metrics row is appended to ``rows`` and saved with the checkpoint
    (:meth:`RunDir.save_epoch`). Data-parallel (``comm`` of more than one rank): rank 0
    alone measures and writes, then every rank waits at a barrier.

    Raises
    ------
    CLIError
        The loss diverged; the message says which checkpoint is kept.
    """
    from ..classifier import TrainingDivergedError

    elapsed0 = float(rows[-1]["elapsed_seconds"]) if rows else 0.0
    start = time.perf_counter()
    progress = Progress(int(cfg["epochs"]), len(rows), plain)

    root = comm is None or comm.is_root
    # early stopping scores the run's validation split itself (each epoch, on the device)
    validation = ((sets.X_val, sets.evals["val"][1]) if clf.early_stopping and sets.X_val is not None
                  else None)

    def callback(model: Any, info: dict[str, Any]) -> None:
        if not root:
            comm.barrier()
            return
        val = info.get("validation_score")
        if val is None and "val" in sets.evals:
            val = accuracy_of_prepared(model, *sets.evals["val"])
        row = {"epoch": int(info["epoch"]), "loss": float(info["loss"]),
               "train_subset_accuracy": accuracy_of_prepared(model, *sets.evals["train"]),
               "val_accuracy": val,
               "learning_rate": float(info["learning_rate"]),
               "epoch_seconds": round(float(info["seconds"]), 4),
               "elapsed_seconds": round(elapsed0 + time.perf_counter() - start, 3)}
        rows.append(row)
        rd.save_epoch(model, rows)  # atomic writes
        progress.epoch(row)
        if comm is not None:
            comm.barrier()

    try:
        # A diverging run is reported by TrainingDivergedError; NumPy's overflow
        # warnings on the way there would only clutter the output.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            if getattr(clf, "n_iter_", 0) < int(cfg["epochs"]) and not stopped(clf):
                clf.fit(sets.X_train, sets.y_train, callback=callback, comm=comm,
                        batch_callback=progress.batch if root else None, validation_data=validation)
    except TrainingDivergedError as exc:
        kept = (f"the last good checkpoint (epoch {len(rows)}) is kept in {rd.path / CHECKPOINT}"
                if rows else "no epoch finished, so there is no checkpoint and nothing is kept")
        raise CLIError(f"training diverged: {exc}; {kept}") from None
    finally:
        progress.close()
    if root and validation is not None and clf.validation_scores_:
        scores = clf.validation_scores_
        best = scores.index(max(scores))
        how = "stopped early" if stopped(clf) else "ran all its epochs"
        print(f"early stopping: the run {how}; the model keeps the weights of epoch {best + 1} "
              f"(validation accuracy {100 * scores[best]:.2f}%)")
    return elapsed0 + time.perf_counter() - start


def stopped(clf: Any) -> bool:
    """Whether the classifier's training was ended by early stopping or the adaptive rate."""
    return bool(clf._stopping_state().get("stopped"))
