"""The run directory: its files, their formats, and reading them back with checks.

``config.json``
    The resolved configuration (what ``--resume`` continues; its keys are the
    estimator's parameter names, and those of earlier versions are read too), the
    backend, device and dtype, the data's fingerprint and directory: :func:`config_record`.
``metrics.csv``
    One row per epoch (:data:`METRICS_COLUMNS`): loss, accuracy on a fixed subset of
    the training images, validation accuracy, learning rate, epoch seconds, elapsed
    seconds.
``checkpoint.npz``
    The model and optimizer state after the last finished epoch, written atomically
    (``NNClassifier.save``) after that epoch's metrics row.
``model.npz`` and ``model.json``
    The final model (load it with ``NNClassifier.load`` on any backend) and the
    preprocessing it expects, as JSON: :func:`model_record`.
``summary.json``
    Configuration, seed, backend, device, versions, data source, ``test_accuracy``
    (a fraction), ``train_seconds`` and the per-class accuracy: :func:`summary_record`.
``loss.png``, ``confusion_matrix.png``, ``predictions.png``
    The figures, when matplotlib is installed.

``.lock``
    Locked (``flock``) while a process runs in the directory; a killed process
    releases it, so the file left behind is no obstacle.

Every file is written through a temporary file and renamed into place, so a run
killed at any moment leaves each file whole; the temporary files of a killed run are
removed when the directory is next prepared. The formats are read back by
``--resume`` and ``--evaluate``; runs written by earlier versions keep working.
``--evaluate`` finds a run directory's model as the library does
(:func:`arraynn.model_io.model_path`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .config import upgrade
from .errors import CLIError

__all__ = ["CHECKPOINT", "CONFIG", "METRICS", "METRICS_COLUMNS", "MODEL", "MODEL_JSON", "SUMMARY",
           "RunDir", "config_record", "default_out", "model_record", "read_json",
           "read_metrics", "read_model_json", "summary_record", "write_json", "write_metrics"]

CONFIG = "config.json"
METRICS = "metrics.csv"
CHECKPOINT = "checkpoint.npz"
MODEL = "model.npz"
MODEL_JSON = "model.json"
SUMMARY = "summary.json"
LOCK = ".lock"

#: The ``format`` of config.json and of model.json.
RUN_FORMAT = "arraynn.train.run"
MODEL_FORMAT = "arraynn.train.model"

#: The columns of metrics.csv, in order.
METRICS_COLUMNS = ("epoch", "loss", "train_subset_accuracy", "val_accuracy", "learning_rate",
                   "epoch_seconds", "elapsed_seconds")


# --------------------------------------------------------------------------------------
# the files
# --------------------------------------------------------------------------------------


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    from .._fileio import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``what`` names the file in the errors.

    Raises
    ------
    CLIError
        The file is missing, unreadable, not JSON or not a JSON object.
    """
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CLIError(f"{path} is missing; it is not an arraynn.train {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {exc}; the file is corrupt") from None
    if not isinstance(obj, dict):
        raise CLIError(f"{path} is not an arraynn.train {what} file")
    return obj


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write metrics.csv (every row, atomically); ``None`` is an empty cell."""
    from .._fileio import atomic_write_bytes

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRICS_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRICS_COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_metrics(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    """The rows of metrics.csv up to ``upto_epoch`` (the checkpoint's): rows written
    after the last checkpoint by a killed run are dropped.

    Returns
    -------
    list of dict
        ``epoch`` an int, the other columns floats or ``None``; no rows if the file
        is missing.

    Raises
    ------
    CLIError
        The file cannot be read or parsed.
    """
    if not path.is_file():
        return []
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                row: dict[str, Any] = {}
                for k in METRICS_COLUMNS:
                    v = rec.get(k)
                    row[k] = None if v in (None, "") else (int(v) if k == "epoch" else float(v))
                if row["epoch"] is not None and row["epoch"] <= upto_epoch:
                    rows.append(row)
    except (OSError, ValueError, csv.Error) as exc:
        raise CLIError(f"cannot read {path}: {exc}; the file is corrupt") from None
    return rows


def default_out(preset: str) -> Path:
    """``runs/<preset>-<date>-<time>`` (with ``-2``, ``-3`` ... if it exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / f"{preset}-{stamp}"
    k = 1
    while out.exists():
        k += 1
        out = Path("runs") / f"{preset}-{stamp}-{k}"
    return out


# --------------------------------------------------------------------------------------
# a run directory
# --------------------------------------------------------------------------------------


class RunDir:
    """The run directory ``path`` of one run: preparing it, and its files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def prepare(self, resume: bool) -> bool:
        """Check that a run can start (or resume) here; create the directory, lock it
        and prove that it is writable, before any training.

        A directory that holds a run without a checkpoint (a start that failed before
        its first epoch finished) starts again: a new run replaces it and ``--resume``
        starts it from epoch 1 with its saved configuration. Temporary files left by a
        killed process are removed.

        Returns
        -------
        bool
            Whether there is a checkpoint to resume from (always False for a new run).

        Raises
        ------
        CLIError
            A new run over a run with a checkpoint, a non-empty directory that is not
            an arraynn run, a resume without a run, a directory another process is
            running in, or an unwritable directory.
        """
        out = self.path
        self._written: set[str] = set()
        if out.exists() and not out.is_dir():
            raise CLIError(f"--out {out} is a file, not a directory; choose another --out")
        if resume and not out.is_dir():
            raise CLIError(f"cannot resume: the run directory {out} does not exist")
        self._create()
        self._lock()
        try:
            return self._check(resume)
        except BaseException:
            self.discard()
            raise

    def _create(self) -> None:
        """mkdir -p, remembering which directories this run created (:meth:`discard`
        removes them again) and proving the directory writable."""
        out = self.path
        missing = []
        p = out.absolute()
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        try:
            out.mkdir(parents=True, exist_ok=True)
            self._created = missing  # deepest first
            fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=out)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CLIError(f"cannot write to the run directory {out}: {reason}; "
                           "choose another --out") from None

    def _lock(self) -> None:
        """Hold an exclusive lock on the run directory while this process runs in it.

        The lock is the kernel's (``flock``) on the file ``.lock``: a process killed in
        any way releases it, so a lock left behind is never an obstacle. The file holds
        the holder's process id for the message.
        """
        self._lock_file = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock on this platform: no lock
            return
        path = self.path / LOCK
        f = open(path, "a+")  # noqa: SIM115 - held open for the run
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise CLIError(f"the run directory {self.path} is in use by process {holder}, which is "
                           "training there now; wait for it to finish or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    def unlock(self) -> None:
        """Release the lock (the process's exit releases it too)."""
        f = getattr(self, "_lock_file", None)
        if f is not None:
            self._lock_file = None
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink()
            f.close()

    def _check(self, resume: bool) -> bool:
        out = self.path
        for stale in list(out.glob(".*.part")) + list(out.glob(".write-test.*")):
            with contextlib.suppress(OSError):
                stale.unlink()  # left by a process killed while writing
        has_checkpoint = (out / CHECKPOINT).is_file()
        has_config = (out / CONFIG).is_file()
        if resume:
            if not has_config:
                if has_checkpoint:
                    raise CLIError(f"cannot resume: {out} has no {CONFIG}; it is not an arraynn.train run")
                raise CLIError(f"cannot resume: {out} has no {CHECKPOINT} (no run was started there); "
                               "start the run without --resume")
            self.read_config()  # an arraynn run, or an error
            return has_checkpoint
        if has_checkpoint or (out / CHECKPOINT).exists():
            raise CLIError(f"the run directory {out} already holds a run; continue it with --resume "
                           "or choose another --out")
        if has_config:
            self.read_config()  # a start that failed before its first epoch: start again
            for name in (CONFIG, METRICS):
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise CLIError(f"--out {out} is a directory that is not empty ({shown}) and holds no "
                           "arraynn run; choose a new or empty directory")
        return False

    def discard(self) -> None:
        """Remove what a run that trained nothing wrote (its files, the directories it
        created) and release the lock; a directory with a checkpoint is kept whole."""
        out = self.path
        if not (out / CHECKPOINT).exists():
            for name in sorted(getattr(self, "_written", ())):
                with contextlib.suppress(OSError):
                    (out / name).unlink()
        self.unlock()
        for d in getattr(self, "_created", []):
            try:
                d.rmdir()  # only when empty
            except OSError:
                break

    def read_config(self) -> dict[str, Any]:
        """config.json, checked to be a run configuration (see :func:`config_record`),
        its ``config`` in today's keys (:func:`arraynn.train.config.upgrade`: a run
        written by an earlier version reads as one of this version)."""
        saved = read_json(self.path / CONFIG, "run configuration")
        if saved.get("format") != RUN_FORMAT or not isinstance(saved.get("config"), dict):
            raise CLIError(f"{self.path / CONFIG} is not an arraynn.train run configuration")
        return {**saved, "config": upgrade(saved["config"])}

    def write_config(self, record: dict[str, Any]) -> None:
        write_json(self.path / CONFIG, record)
        self._written = {*getattr(self, "_written", ()), CONFIG}

    def load_checkpoint(self, backend: Any) -> tuple[Any, list[dict[str, Any]]]:
        """The checkpoint's classifier on ``backend`` and the metrics rows of its epochs.

        Raises
        ------
        ModelFileError
            The checkpoint is damaged.
        CLIError
            metrics.csv lacks rows of the checkpoint's epochs.
        """
        from ..classifier import NNClassifier

        clf = NNClassifier.load(self.path / CHECKPOINT, backend=backend, dtype=backend.dtype_name)
        rows = read_metrics(self.path / METRICS, clf.n_iter_)
        if len(rows) != clf.n_iter_:
            raise CLIError(f"{self.path / METRICS} holds {len(rows)} rows for the checkpoint's "
                           f"{clf.n_iter_} epochs; the run directory is damaged")
        return clf, rows

    def save_epoch(self, clf: Any, rows: list[dict[str, Any]]) -> None:
        """After an epoch: metrics.csv first, then the checkpoint (:meth:`load_checkpoint`
        drops the rows of epochs after the checkpoint's)."""
        self._written = {*getattr(self, "_written", ()), METRICS}
        write_metrics(self.path / METRICS, rows)
        clf.save(self.path / CHECKPOINT)

    def save_model(self, clf: Any, record: dict[str, Any]) -> None:
        """The final model: model.npz and its description model.json (:func:`model_record`)."""
        clf.save(self.path / MODEL)
        write_json(self.path / MODEL_JSON, record)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / SUMMARY, summary)


def read_model_json(model: Path) -> dict[str, Any]:
    """The description beside ``model`` (model.json), checked (see :func:`model_record`)."""
    path = model.with_suffix(".json")
    meta = read_json(path, "model description")
    if meta.get("format") != MODEL_FORMAT or "preprocessing" not in meta:
        raise CLIError(f"{path} is not an arraynn.train model description")
    return meta


# --------------------------------------------------------------------------------------
# the JSON documents
# --------------------------------------------------------------------------------------


def _where(be: Any) -> dict[str, Any]:
    return {"backend": be.name, "device": be.device_name, "dtype": be.dtype_name}


def config_record(cfg: dict[str, Any], be: Any, device_arg: str | None, fingerprint: str,
                  data_dir: str | None, plots: bool = True) -> dict[str, Any]:
    """config.json: the configuration, where it trains, and the data it trains on.

    ``device_arg`` is ``--device`` as given (``None``: the backend's default), which a
    resumed run passes again; ``data_dir`` is ``--data-dir`` (``None``: the default);
    ``plots`` is whether the run draws its figures (``--no-plots``: not; a resumed run
    keeps that).
    """
    return {"format": RUN_FORMAT, "config": cfg, "backend": be.name, "device": be.device_name,
            "device_arg": None if device_arg is None else str(device_arg), "dtype": be.dtype_name,
            "data_fingerprint": fingerprint,
            "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
            "plots": bool(plots)}


def model_record(cfg: dict[str, Any], be: Any, classes: list[str],
                 preprocessing: dict[str, Any]) -> dict[str, Any]:
    """model.json: the class names, the preprocessing (``Preprocessor.to_dict``), the
    configuration and where the model was trained."""
    return {"format": MODEL_FORMAT, "model": MODEL, "classes": classes,
            "preprocessing": preprocessing, "config": cfg, "trained_on": _where(be)}


def summary_record(cfg: dict[str, Any], be: Any, clf: Any, *, versions: dict[str, str],
                   data: dict[str, Any], rows: list[dict[str, Any]], cm: Any, classes: list[str],
                   train_subset_size: int, train_seconds: float, plots: list[str]) -> dict[str, Any]:
    """summary.json.

    ``data`` is its ``data`` entry (source, directory, downloads, set sizes,
    fingerprint); ``cm`` the test confusion matrix (NumPy, rows: true classes);
    ``plots`` the file names of the figures drawn (``files.plots``, absent if none).
    """
    from ..report import per_class_accuracy

    last = rows[-1] if rows else {}
    pc = per_class_accuracy(cm)
    summary: dict[str, Any] = {
        "preset": cfg["preset"], "config": cfg, "seed": cfg["random_seed"], **_where(be),
        "tf32": bool(clf.tf32_), "versions": versions, "data": data,
        "epochs": clf.n_iter_, "test_accuracy": float(cm.trace() / cm.sum()),
        "final_loss": last.get("loss"),
        "final_train_subset_accuracy": last.get("train_subset_accuracy"),
        "final_val_accuracy": last.get("val_accuracy"),
        "train_subset_size": train_subset_size,
        "train_seconds": round(train_seconds, 3),
        "epoch_seconds_total": round(sum(r["epoch_seconds"] for r in rows), 3),
        "per_class_accuracy": {n: (None if math.isnan(a) else float(a)) for n, a in zip(classes, pc)},
        "confusion_matrix": cm.tolist(),
        "files": {"model": MODEL, "model_json": MODEL_JSON, "metrics": METRICS,
                  "checkpoint": CHECKPOINT},
    }
    if cfg.get("early_stopping"):
        scores = list(getattr(clf, "validation_scores_", None) or [])
        best = max(range(len(scores)), key=scores.__getitem__) if scores else None  # the first
        summary["early_stopping"] = {
            "stopped": bool(clf._stopping_state().get("stopped")),
            "best_epoch": None if best is None else best + 1,
            "best_val_accuracy": None if best is None else float(scores[best]),
            "n_iter_no_change": cfg["n_iter_no_change"], "tol": cfg["tol"]}
    if cfg.get("schedule") == "adaptive":
        summary["final_learning_rate"] = clf.learning_rate_at(clf.n_iter_)
    if plots:
        summary["files"]["plots"] = list(plots)
    return summary
