"""Training a run and evaluating a saved model: :func:`run` and :func:`evaluate`.

Each is a short pipeline of named steps, passing on a :class:`~arraynn.train.job.Run`
that each fills in; the files each step reads and writes are those of
:mod:`arraynn.train.rundir`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import math
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._cli import CLIError, UsageError
from .dataset import DeviceSets, FashionMNIST, Split, device_sets, load_data, split_data, upload
from .job import Run
from .options import (
    LEGACY_DEFAULTS,
    PRESET_HEADERS,
    PRESETS,
    backend_from,
    check_evaluate_args,
    check_resume_args,
    describe_config,
    resolve_config,
)
from .progress import Progress
from .rundir import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    MODEL,
    MODEL_JSON,
    SUMMARY,
    RunDir,
    config_record,
    default_out,
    find_model,
    model_record,
    read_model_json,
    summary_record,
)

__all__ = ["evaluate", "run"]


def run(job: Run) -> int:
    """Train (or resume) the run of ``job``'s command line; returns the exit status.

    The steps: prepare the run directory (reading the saved configuration to resume),
    resolve the configuration and the backend, load and split the data, upload and
    preprocess it on the device, build (or resume) the classifier, train it with a
    checkpoint per epoch, then save the final model, evaluate it on the test set and
    report (summary.json, the figures).

    ``--distributed`` under ``mpiexec``: every rank runs these steps on its own device
    and trains its slice of each minibatch (see :mod:`arraynn.distributed`); rank 0
    alone prepares, prints and writes the run directory, and hands the other ranks the
    configuration and, to resume, the checkpoint. After each checkpoint all ranks meet
    at a barrier.

    ``job`` is filled in on the way (its world, run directory, configuration, backend);
    when the run ends, however it ends, ``job.resumable`` says whether a checkpoint is
    left to continue from.
    """
    job.world = _world(job.args)
    if not job.world.is_root:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            state = job.world.bcast(None)
            job.run_dir, job.saved = RunDir(Path(state["run_dir"])), state["saved"]
            job.from_checkpoint, job.config = state["resumable"], state["cfg"]
            return _run(job)
    _prepare(job)
    rd = job.run_dir
    assert rd is not None
    try:
        return _run(job)
    except BaseException:
        if not (rd.path / CHECKPOINT).exists():
            rd.discard()  # trained nothing: leave nothing behind
        raise
    finally:
        job.resumable = (rd.path / CHECKPOINT).is_file()
        rd.unlock()


def _world(args: argparse.Namespace) -> Any:
    """The ranks of the job: MPI's world with ``--distributed`` under ``mpiexec``, else
    one process (said when ``--distributed`` was asked for)."""
    from .. import distributed

    if not args.distributed:
        return distributed.SingleProcess()
    world = distributed.world()
    if world.size == 1:
        print("--distributed: not started by mpiexec, so training as one process (world size 1); "
              "for N processes run: mpiexec -n N python -m mpi4py -m arraynn.train --distributed ...")
    return world


def _run(job: Run) -> int:
    from .. import distributed

    args, world, rd, saved = job.args, job.world, job.run_dir, job.saved
    assert rd is not None
    root = world.is_root
    if root:
        job.config = dict(saved["config"]) if saved is not None else resolve_config(args)
        if job.extended:
            assert saved is not None
            print(f"extending the run to {job.config['epochs']} epochs")
            rd.write_config(saved)
        if world.size > 1:
            world.bcast({"saved": saved, "resumable": job.from_checkpoint, "cfg": job.config,
                         "run_dir": str(rd.path)})
    cfg = job.config
    assert cfg is not None  # rank 0 resolves it; the others are given it
    device_given = (args.device if args.device is not None else (saved or {}).get("device_arg")) is not None
    be, job.backend_reason = backend_from(args, saved)
    job.backend = be = distributed.rank_backend(be, world, device_given)
    job.comm = comm = distributed.communicator(args.comm or "auto", be, world) if args.distributed else world
    versions = _versions(be)
    _print_header(cfg, be, versions, comm, job.backend_reason)
    if not root:
        world.barrier()  # rank 0 has the data (downloaded, if it had to)
    data, split = _load_and_split(args, cfg, saved, rd)
    if root:
        world.barrier()
    names = list(data.names)
    sets = device_sets(be, cfg["scale"], data, split)
    if job.from_checkpoint:
        clf, rows = _resume_ranks(rd, be, cfg, world, data)
    else:
        if saved is not None:
            print("no epoch of this run had finished: starting it again from epoch 1")
        clf, rows = _new_classifier(cfg, be, data.n_classes), []
        if saved is None and root:
            record = config_record(cfg, be, args.device, data.fingerprint, args.data_dir,
                                   plots=not args.no_plots)
            if args.class_names is not None:  # a resumed run names its classes the same
                record["class_names"] = names
            rd.write_config(record)
    if args.tf32:
        clf.set_params(tf32=True)
        if not be.set_tf32(True) and root:
            print(f"note: --tf32 has no effect on {be.describe()}: TF32 is a mode of float32 matmuls "
                  "on NVIDIA GPUs (CuPy, torch on CUDA)")
    train_seconds = _train(clf, cfg, rd, sets, rows, plain=args.no_progress or not root, comm=comm)
    devices = world.allgather(be.device_name)
    if not root:
        return 0

    cm, proba = _save_and_test(rd, clf, cfg, be, sets, data.y_test, names)
    print()
    _print_result(cm, names, f"; {_plural(clf.n_iter_, 'epoch')}, {train_seconds:.1f} s of training")
    no_plots = args.no_plots or (saved is not None and saved.get("plots") is False)
    plots = [] if no_plots else _plots(rd.path, rows, cm, data, proba, cfg["preset"])
    summary = summary_record(
        cfg, be, clf, versions=versions, data=_data_record(data, split), rows=rows, cm=cm,
        classes=names, train_subset_size=len(split.train_eval), train_seconds=train_seconds,
        plots=[p.name for p in plots])
    summary["distributed"] = {"world_size": comm.size, "communicator": comm.name, "devices": devices}
    rd.write_summary(summary)
    print(f"\nwrote {rd}/: {SUMMARY}, {METRICS}, {MODEL} (+ {MODEL_JSON}), {CHECKPOINT}"
          + "".join(f", {p.name}" for p in plots))
    return 0


def evaluate(job: Run) -> int:
    """``--evaluate MODEL``: a saved model's test accuracy on the chosen backend.

    The model is a run's (its model.json, when there, is checked too) or one saved by
    ``NNClassifier.save``; it brings its own preprocessing and class names, and
    predicts on the raw test images.
    """
    from ..classifier import NNClassifier
    from ..data.preprocessing import Preprocessor

    args = job.args
    check_evaluate_args(args)
    path = find_model(args.evaluate)
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
    data = _load(args)
    if clf.n_features_in_ != data.n_features:
        raise CLIError(f"{path} takes {clf.n_features_in_} features; the test images of "
                       f"{data.describe_source()} have {data.n_features}")
    print(f"  data: {data.title} from {data.describe_source()}: {len(data.X_test):,} test images")
    _check_test_set(data)
    names = (meta or {}).get("classes") or clf.class_names_ or list(data.names)
    if not isinstance(names, list) or len(names) != len(clf.classes_):
        raise CLIError(f"{path.with_suffix('.json')} names {len(names) if isinstance(names, list) else 'no'} "
                       f"classes, the model has {len(clf.classes_)}; the file is damaged or was edited")
    names = [str(n) for n in names]
    cm, _ = _test_confusion(clf, be, upload(be, data.X_test), data.y_test, len(names))
    _print_result(cm, names)
    return 0


# --------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------


def _prepare(job: Run) -> None:
    """The run directory (``job.run_dir``), checked, locked and writable; with
    ``--resume`` its config.json (``job.saved``, checked against the flags); and whether
    there is a checkpoint to resume from (``job.from_checkpoint``)."""
    args = job.args
    if args.out is not None and not str(args.out).strip():
        raise UsageError("--out needs a directory name (use --out . for the current directory)")
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out RUN_DIR, the run to continue")
    out = Path(args.out) if args.out is not None else default_out(args.preset or "default")
    job.run_dir = rd = RunDir(out)
    resumable = rd.prepare(args.resume)
    if not args.resume:
        return
    try:
        saved = rd.read_config()
        extend = args.epochs is not None and args.epochs > int(saved["config"].get("epochs", 0))
        if extend:  # --resume --epochs N beyond the run's: extend it (its checkpoint continues)
            check_resume_args(args, saved["config"], ignore=("epochs",))
            saved = dict(saved, config=dict(saved["config"], epochs=args.epochs))
        check_resume_args(args, saved["config"])
        if args.dtype and args.dtype != saved.get("dtype"):
            raise UsageError(f"the run was trained in {saved.get('dtype')}; resume it in the same dtype")
    except BaseException:
        rd.unlock()
        raise
    job.saved, job.extended, job.from_checkpoint = saved, extend, resumable


def _versions(be: Any) -> dict[str, str]:
    """The versions of Python and the libraries of the run (summary.json's ``versions``)."""
    import array_api_compat

    from .. import __version__

    out = {"arraynn": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "array-api-compat": array_api_compat.__version__}
    out.setdefault(be.name.replace("_", "-"), be.version)
    for extra in ("matplotlib", "tqdm"):
        if importlib.util.find_spec(extra) is not None:
            with contextlib.suppress(Exception):
                out[extra] = importlib.import_module(extra).__version__
    return out


def _print_header(cfg: dict[str, Any], be: Any, versions: dict[str, str], comm: Any,
                  reason: str | None = None) -> None:
    own = PRESETS.get(cfg["preset"], {}).get("layers")
    if cfg.get("layers") and cfg["layers"] != own:  # the preset's figures are of another network
        print(f"arraynn.train: preset {cfg['preset']!r}'s training with the network of --layers")
    else:
        print(f"arraynn.train: preset {cfg['preset']!r}: {PRESET_HEADERS.get(cfg['preset'], '')}")
    print(f"  backend: {be.describe()}" + (f" (auto: {reason})" if reason else ""))
    if comm.size > 1:
        batch = (f"global batch {cfg['batch_size']}" if cfg.get("batch_size")
                 else f"{cfg['n_batches']} global batches")
        norms = sum(1 for item in str(cfg.get("layers") or "").split(",") if re.fullmatch(r"bn[\d.]*", item))
        extra = (f" (and two per BatchNorm layer, {2 * norms} in all, for the batch statistics)"
                 if norms else "")
        print(f"  distributed: {comm.size} ranks, one {comm.name} allreduce of the gradient per step{extra}, "
              f"{batch}" + (f"; {comm.threads_note}" if getattr(comm, "threads_note", "") else ""))
    print("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


def _load(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> FashionMNIST:
    """The data of ``--data-dir``; a resumed run's own directory unless told otherwise."""
    data_dir = args.data_dir
    if data_dir is None and saved is not None and saved.get("data_dir"):
        data_dir = saved["data_dir"]
        if not Path(data_dir).exists():
            raise CLIError(f"the data this run was trained on, {data_dir}, no longer exist; pass "
                           "--data-dir with the same data")
    names = args.class_names
    if names is None and saved is not None and saved.get("class_names"):
        names = list(saved["class_names"])
    return load_data(data_dir, download=not args.no_download, mirrors=args.mirror, names=names)


def _load_and_split(args: argparse.Namespace, cfg: dict[str, Any], saved: dict[str, Any] | None,
                    rd: RunDir) -> tuple[FashionMNIST, Split]:
    """Load the data (a resumed run: checked to be the run's own) and split it."""
    data = _load(args, saved)
    print(f"  data: {data.title} from {data.describe_source()}: {len(data.X_train):,} training and "
          f"{len(data.X_test):,} test images, {data.n_features} features, {data.n_classes} classes")
    if saved is not None and saved.get("data_fingerprint") not in (None, data.fingerprint):
        raise CLIError(f"the training data differ from those the run in {rd} was trained on; "
                       "point --data-dir at the same data")
    _check_test_set(data)
    print(f"  network: {describe_config(cfg, data.n_features, data.n_classes)}")
    split = split_data(cfg, len(data.X_train))
    print(f"  {split.describe(cfg['limit'])}")
    print(f"  run directory: {rd}")
    return data, split


def _check_test_set(data: FashionMNIST) -> None:
    """A test set to measure on: found before any training."""
    if len(data.X_test) == 0:
        raise CLIError(f"the test set of {data.title} from {data.describe_source()} holds 0 images; "
                       "there is nothing to measure a model on: point --data-dir at complete files")


def _new_classifier(cfg: dict[str, Any], be: Any, n_classes: int = 10) -> Any:
    """An unfitted classifier of the configuration, on ``be``."""
    from ..classifier import NNClassifier

    later = {k: cfg.get(k, v) for k, v in LEGACY_DEFAULTS.items()}  # absent from older runs
    body: dict[str, Any] = {"n_hidden_units": tuple(cfg["hidden"]), "activation": cfg["activation"],
                            "dropout": cfg.get("dropout") or 0.0,
                            "input_dropout": float(cfg.get("input_dropout") or 0.0)}
    if later["layers"]:  # the body as layers, on the 28x28 images the rows are
        from ..nn.layer_spec import parse_layers

        body = {"layers": parse_layers(later["layers"]), "input_shape": (1, 28, 28)}
    return NNClassifier(
        n_classes=n_classes, l1=cfg["l1"], l2=cfg["l2"],
        epochs=cfg["epochs"], learning_rate=cfg["learning_rate"], schedule=cfg["schedule"],
        n_batches=cfg["n_batches"] if cfg["n_batches"] is not None else 1,
        random_seed=cfg["seed"], output=cfg["output"],
        optimizer=cfg["optimizer"], batch_size=cfg["batch_size"], bias=cfg["bias"], init=cfg["init"],
        early_stopping=bool(later["early_stopping"]), n_iter_no_change=int(later["n_iter_no_change"]),
        tol=float(later["tol"]), nesterovs_momentum=bool(later["nesterov"]),
        backend=be, dtype=be.dtype_name, warm_start=True,
        augment_shift=int(cfg.get("shift") or 0), augment_flip=bool(cfg.get("flip", False)), **body)


def _resume(rd: RunDir, be: Any, cfg: dict[str, Any], data: FashionMNIST) -> tuple[Any, list[dict[str, Any]]]:
    """The checkpoint's classifier, set to continue, and the metrics rows so far."""
    clf, rows = rd.load_checkpoint(be)
    _check_checkpoint(rd, clf, cfg, be, data.n_features, data.n_classes)
    clf.set_params(warm_start=True, epochs=int(cfg["epochs"]))
    if _stopped(clf):
        kept = ("with the weights of its best epoch" if clf.early_stopping else
                "its learning rate fell below 1e-6 on a plateau (--schedule adaptive)")
        print(f"the run stopped early after epoch {clf.n_iter_}: it is finished, {kept}")
    else:
        print(f"resuming after epoch {clf.n_iter_} of {cfg['epochs']}")
    return clf, rows


def _resume_ranks(rd: RunDir, be: Any, cfg: dict[str, Any], world: Any, data: FashionMNIST
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
    want = _new_classifier(cfg, be).get_params()
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


def _train(clf: Any, cfg: dict[str, Any], rd: RunDir, sets: DeviceSets, rows: list[dict[str, Any]],
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
    validation = sets.evals["val"] if clf.early_stopping and "val" in sets.evals else None

    def callback(model: Any, info: dict[str, Any]) -> None:
        if not root:
            comm.barrier()
            return
        val = info.get("validation_score")
        if val is None and "val" in sets.evals:
            val = model.score(*sets.evals["val"])
        row = {"epoch": int(info["epoch"]), "loss": float(info["loss"]),
               "train_subset_accuracy": model.score(*sets.evals["train"]),
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
            if getattr(clf, "n_iter_", 0) < int(cfg["epochs"]) and not _stopped(clf):
                clf.fit(sets.X_train, sets.y_train, callback=callback, comm=comm,
                        batch_callback=progress.batch if root else None, validation_data=validation,
                        preprocessed_with=sets.preprocessor)
    except TrainingDivergedError as exc:
        kept = (f"the last good checkpoint (epoch {len(rows)}) is kept in {rd.path / CHECKPOINT}"
                if rows else "no epoch finished, so there is no checkpoint and nothing is kept")
        raise CLIError(f"training diverged: {exc}; {kept}") from None
    finally:
        progress.close()
    if root and validation is not None and clf.validation_scores_:
        scores = clf.validation_scores_
        best = scores.index(max(scores))
        how = "stopped early" if _stopped(clf) else "ran all its epochs"
        print(f"early stopping: the run {how}; the model keeps the weights of epoch {best + 1} "
              f"(validation accuracy {100 * scores[best]:.2f}%)")
    return elapsed0 + time.perf_counter() - start


def _stopped(clf: Any) -> bool:
    """Whether the classifier's training was ended by early stopping or the adaptive rate."""
    return bool(hasattr(clf, "_stopping") and clf._stopping_state().get("stopped"))


def _test_confusion(clf: Any, be: Any, X_test: Any, y_test: np.ndarray,
                    n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The confusion matrix on the (preprocessed, on-device) test set and the test
    probabilities (host)."""
    from ..report import confusion_matrix

    proba = be.to_numpy(clf.predict_proba(X_test))
    pred = clf.classes_[np.argmax(proba, axis=1)]
    return confusion_matrix(y_test, pred, n_classes), proba


def _save_and_test(rd: RunDir, clf: Any, cfg: dict[str, Any], be: Any, sets: DeviceSets,
                   y_test: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return the test confusion matrix and probabilities, and save the final model with
    its preprocessing, the range of the raw training images and the class names, so that
    it predicts on raw images (and says so when given preprocessed ones). The model
    file holds ``warm_start=False``: its ``fit`` trains afresh, as a user expects (the
    run itself resumes from its checkpoint, with ``warm_start=True``)."""
    result = _test_confusion(clf, be, sets.X_test, y_test, len(names))
    clf.set_params(preprocessing=cfg["scale"], class_names=list(names), warm_start=False)
    clf._attach_preprocessor(sets.preprocessor, sets.X_train)
    clf.class_names_ = list(names)
    rd.save_model(clf, model_record(cfg, be, names, sets.preprocessor.to_dict()))
    return result


def _data_record(data: FashionMNIST, split: Split) -> dict[str, Any]:
    """summary.json's ``data``: where the images came from and how they were split."""
    info = data.info
    return {"source": info.get("source"), "directory": info.get("directory"),
            "downloaded": info.get("downloaded", {}), "n_train": len(split.train),
            "n_validation": len(split.val), "n_test": len(data.y_test), "fingerprint": data.fingerprint}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _print_result(cm: np.ndarray, names: list[str], tail: str = "") -> None:
    """The test accuracy line (``tail`` appended) and the per-class table."""
    from ..report import per_class_table

    correct, total = int(np.trace(cm)), int(cm.sum())
    print(f"test accuracy: {100 * float(np.trace(cm) / cm.sum()):.2f}%  ({correct:,} of {total:,}){tail}")
    print(per_class_table(cm, names))


def _plots(out: Path, rows: list[dict[str, Any]], cm: np.ndarray, data: FashionMNIST,
           proba: np.ndarray, preset: str) -> list[Path]:
    """The figures of the run (none, with a note, without matplotlib)."""
    from .. import report

    if not report.have_matplotlib():
        print('plots skipped: matplotlib is not installed (pip install "arraynn[plot]")')
        return []
    names, X_test, y_test = list(data.names), data.X_test.reshape(len(data.X_test), -1), data.y_test
    figures = [
        report.plot_loss({"training loss": [r["loss"] for r in rows]}, out / "loss.png",
                         accuracies={
                             "train (fixed subset)": [r["train_subset_accuracy"] for r in rows],
                             "validation": [r["val_accuracy"] for r in rows]},
                         title=f"Training loss (preset {preset})"),
        report.plot_confusion_matrix(cm, names, out / "confusion_matrix.png"),
    ]
    if math.isqrt(X_test.shape[1]) ** 2 == X_test.shape[1]:  # square images
        figures.append(report.plot_predictions(
            X_test[:12], proba[:12], y_test[:12], names, out / "predictions.png",
            title="Test images: predicted (probability) and true labels"))
    return figures
