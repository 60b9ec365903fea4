"""Training a run: :func:`run`, a short pipeline of named steps.

The steps pass on a :class:`~arraynn.train.job.Run` that each fills in; the files each
step reads and writes are those of :mod:`arraynn.train.rundir`. Building, resuming and
training the classifier is :mod:`arraynn.train.training`'s; measuring it on the test set
is :mod:`arraynn.train.evaluate`'s, whose :func:`evaluate` (``--evaluate MODEL``) this
module exports too.
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
from pathlib import Path
from typing import Any

import numpy as np

from .._cli import CLIError, UsageError
from .config import backend_from, check_resume_args, describe_config, resolve_config
from .dataset import DeviceSets, FashionMNIST, Split, check_test_set, device_sets, load_run_data, split_data
from .evaluate import confusion_on_test_set, evaluate, print_result
from .job import Run
from .presets import PRESET_HEADERS, PRESETS
from .rundir import (
    CHECKPOINT,
    METRICS,
    MODEL,
    MODEL_JSON,
    SUMMARY,
    RunDir,
    config_record,
    default_out,
    model_record,
    summary_record,
)
from .training import new_classifier, resume_ranks, train

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
    sets = device_sets(be, cfg["preprocessing"], data, split)
    if job.from_checkpoint:
        clf, rows = resume_ranks(rd, be, cfg, world, data)
        if clf.preprocessor_ is None:  # the checkpoint of a run that fed preprocessed images
            clf.set_params(preprocessing=cfg["preprocessing"])
            clf._attach_preprocessor(sets.preprocessor, sets.X_train)
    else:
        if saved is not None:
            print("no epoch of this run had finished: starting it again from epoch 1")
        clf, rows = new_classifier(cfg, be, data.n_classes), []
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
    train_seconds = train(clf, cfg, rd, sets, rows, plain=args.no_progress or not root, comm=comm)
    devices = world.allgather(be.device_name)
    if not root:
        return 0

    cm, proba = _save_and_test(rd, clf, cfg, be, sets, data.y_test, names)
    print()
    print_result(cm, names, f"; {_plural(clf.n_iter_, 'epoch')}, {train_seconds:.1f} s of training")
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


def _load_and_split(args: argparse.Namespace, cfg: dict[str, Any], saved: dict[str, Any] | None,
                    rd: RunDir) -> tuple[FashionMNIST, Split]:
    """Load the data (a resumed run: checked to be the run's own) and split it."""
    data = load_run_data(args, saved)
    print(f"  data: {data.title} from {data.describe_source()}: {len(data.X_train):,} training and "
          f"{len(data.X_test):,} test images, {data.n_features} features, {data.n_classes} classes")
    if saved is not None and saved.get("data_fingerprint") not in (None, data.fingerprint):
        raise CLIError(f"the training data differ from those the run in {rd} was trained on; "
                       "point --data-dir at the same data")
    check_test_set(data)
    print(f"  network: {describe_config(cfg, data.n_features, data.n_classes)}")
    split = split_data(cfg, len(data.X_train))
    print(f"  {split.describe(cfg['limit'])}")
    print(f"  run directory: {rd}")
    return data, split


def _save_and_test(rd: RunDir, clf: Any, cfg: dict[str, Any], be: Any, sets: DeviceSets,
                   y_test: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return the test confusion matrix and probabilities, and save the final model with
    its preprocessing, the range of the raw training images and the class names, so that
    it predicts on raw images (and says so when given preprocessed ones). The model
    file holds ``warm_start=False``: its ``fit`` trains afresh, as a user expects (the
    run itself resumes from its checkpoint, with ``warm_start=True``)."""
    result = confusion_on_test_set(clf, be, sets.X_test, y_test, len(names), prepared=True)
    clf.set_params(class_names=list(names), warm_start=False)
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
