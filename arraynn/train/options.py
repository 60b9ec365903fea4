"""The command line's options: the parser, its flags and their types.

The flags override the entries of a preset (:mod:`arraynn.train.presets`); the
configuration they make is :mod:`arraynn.train.config`'s, whose names this module
exports too.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from .._cli import Parser, UsageError
from .._parameters import CHOICES, INTERVALS
from .config import backend_from, check_evaluate_args, check_resume_args, describe_config, resolve_config
from .presets import LEGACY_DEFAULTS, PRESET_HEADERS, PRESETS

__all__ = ["LEGACY_DEFAULTS", "PRESETS", "PRESET_HEADERS", "backend_from", "build_parser",
           "check_distributed_args", "check_evaluate_args", "check_resume_args",
           "describe_config", "resolve_config"]


_EPILOG = """\
examples:
  python -m arraynn.train
      the default preset: 784-256-128-10 ReLU, Adam, 15 epochs: about 90.7 % test
      accuracy (6 s of training on 2 cores of an AMD EPYC Zen 5, 15-18 s on an Intel
      Xeon Ice Lake); writes runs/default-<time>/
  python -m arraynn.train --preset best
      784-512-512-10 ReLU with input and hidden dropout, Adam, 50 epochs, on all 60,000
      training images: 91.50-91.75 % test accuracy (seeds 0-2); PyTorch's reference
      dropout MLP gets 91.22-91.46 % (python -m benchmarks.reference measures both;
      which trains faster depends on the CPU, see benchmarks/README.md)
  python -m arraynn.train --dropout 0.3 --shift 2 --flip
      the default preset with dropout and on-device augmentation (random shifts of up
      to 2 pixels and left-right flips of the training images)
  python -m arraynn.train --preset article
      the article: 784-50-10 sigmoid, L2 0.5, 300 epochs (about 87 % test accuracy)
  python -m arraynn.train --preset article --no-scale
      the article's raw-pixel failure
  python -m arraynn.train --backend cupy --out runs/gpu
      on an NVIDIA GPU (pip install "arraynn[cuda12]")
  python -m arraynn.train --hidden 512,256 --epochs 30 --l2 1e-4 --out runs/big
      override the network and the training
  python -m arraynn.train --limit 2000 --epochs 3 --no-plots --out runs/smoke
      a smoke run on the first 2,000 training images
  python -m arraynn.train --early-stopping --epochs 60 --schedule adaptive --out runs/es
      stop when the validation accuracy stalls, keep the best epoch's weights; divide the
      learning rate by 5 on each plateau before that
  python -m arraynn.train --resume --out runs/big
      continue a run that was stopped (killed, out of time) after its last epoch
  python -m arraynn.train --evaluate runs/big --backend torch
      evaluate a saved model on the test set, on another backend
  mpiexec -n 4 python -m mpi4py -m arraynn.train --distributed --out runs/dp
      data-parallel on 4 processes (pip install "arraynn[mpi]"); the same network as one
      process; --resume continues on any number of ranks
  python -m arraynn.train --data-dir my_data.npz --class-names cat,dog,bird
      train on your own arrays (see "data" below)
  python -m arraynn.predict runs/big sneaker.png
      classify images with the trained model

data:
  Fashion-MNIST is read from --data-dir, else $ARRAYNN_DATA, else the cache
  (~/.cache/arraynn); missing files are downloaded unless --no-download.
  Your own data: --data-dir with four IDX files of the same names (MNIST, ...), with
  X_train.npy, y_train.npy, X_test.npy, y_test.npy, or an .npz file of those arrays;
  --class-names a,b,c (or a file, or class_names.txt beside the data) names the labels.

validation and metrics:
  The default preset holds out --val-size (5,000) of the 60,000 training images,
  drawn with numpy.random.default_rng(seed), for the per-epoch validation accuracy,
  and trains on the rest. The article preset trains on all 60,000 images, as the
  article did, and has no validation column unless --val-size is given. The per-epoch
  train accuracy (metrics.csv: train_subset_accuracy) is measured on a fixed, seeded
  subset of 10,000 training images. Test accuracy is measured once, at the end.
  --early-stopping watches that validation accuracy (it needs --val-size > 0): training
  stops when it has not improved by --tol for more than --n-iter-no-change epochs, and
  the model keeps the weights of its best epoch (summary.json: early_stopping); the
  last row's train accuracy in metrics.csv measures those. --schedule adaptive divides the
  learning rate by 5 at each such plateau (of the training loss without
  --early-stopping) and stops at a plateau once the rate is at or below 1e-6.
  train_seconds in summary.json is the wall time of the training loop, per-epoch
  evaluation and checkpoints included (summed over resumes), data loading excluded.

run directory (--out):
  config.json, metrics.csv, checkpoint.npz (every epoch, atomic), model.npz + model.json
  (the final model and its preprocessing), summary.json, and loss.png,
  confusion_matrix.png, predictions.png when matplotlib is installed.
  A run killed at any moment continues with --resume; on NumPy the resumed run ends
  with exactly the weights of an uninterrupted one.

memory:
  On glibc (Linux) the command keeps freed arrays' memory for the next ones
  (arraynn.reuse_freed_memory): a training step's arrays reuse the last step's pages
  instead of faulting in new, zeroed ones. ARRAYNN_MALLOC=default keeps glibc's settings.

exit status: 0 success, 1 error (one line on stderr), 2 bad usage, 130 interrupted.
"""


def _number(convert: type, positive: bool) -> Any:
    """An argparse type: ``convert`` (int or float) of a finite value > 0 or >= 0 (the
    command line's own numbers; the estimator's are :func:`_parameter`'s)."""
    what = {(int, True): "a positive integer", (int, False): "an integer >= 0",
            (float, True): "a positive number", (float, False): "a number >= 0"}[convert, positive]

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def _parameter(name: str) -> Any:
    """An argparse type for the estimator's number parameter ``name``: its kind and its
    valid values as :data:`arraynn._parameters.INTERVALS` declares them."""
    interval = INTERVALS[name]

    def parse(text: str):
        try:
            value = interval.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {interval.describe()}, got {text!r}") from None
        if not interval.contains(value):
            raise argparse.ArgumentTypeError(f"expected {interval.describe()}, got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


_positive_int = _number(int, positive=True)
_non_negative_int = _number(int, positive=False)


def _hidden_sizes(text: str) -> list[int]:
    """An argparse type: comma-separated positive layer sizes (``none``: no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 256,128 (or 'none'), got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes

def _layers_spec(text: str) -> str:
    """``--layers``: a layer list in the spec syntax, written back in its own words."""
    from ..nn.layer_spec import format_layers, parse_layers

    try:
        return format_layers(parse_layers(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dropout_rates(text: str) -> float | list[float]:
    """An argparse type: one dropout rate, or comma-separated rates (one per hidden layer),
    each in [0, 1)."""
    try:
        rates = [float(part) for part in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a dropout rate such as 0.3, or one per hidden layer such as 0.2,0.3; "
            f"got {text!r}") from None
    if not all(math.isfinite(r) and 0.0 <= r < 1.0 for r in rates):
        raise argparse.ArgumentTypeError(f"dropout rates must be >= 0 and < 1, got {text!r}")
    return rates[0] if len(rates) == 1 else rates


def _dropout_rate(text: str) -> float:
    """An argparse type: one dropout rate in [0, 1)."""
    rates = _dropout_rates(text)
    if isinstance(rates, list):
        raise argparse.ArgumentTypeError(f"expected one dropout rate such as 0.2, got {text!r}")
    return rates


def _class_names(text: str) -> list[str]:
    """An argparse type: ``--class-names`` (see :func:`arraynn.train.dataset.parse_class_names`)."""
    from .dataset import parse_class_names

    try:
        return parse_class_names(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mirror(text: str) -> str:
    """An argparse type: a mirror's base URL (see :func:`arraynn.data.download.check_mirrors`)."""
    from ..data.download import check_mirrors

    try:
        return check_mirrors([text])[0]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m arraynn.train``.

    Its errors raise :class:`~arraynn._cli.UsageError` instead of exiting.
    """
    p = Parser(
        prog="python -m arraynn.train",
        description="Train a neural network (a multilayer perceptron, or any layer list with "
                    "--layers, convolutions included) on Fashion-MNIST with arraynn, on any Array "
                    "API backend, and write its metrics, checkpoints, model, report and plots to a run "
                    "directory.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    p.add_argument("--version", action="version", version=f"arraynn {__version__}")
    _add_backend_flags(p.add_argument_group("backend"))
    _add_training_flags(p.add_argument_group("preset and overrides"))
    _add_data_flags(p.add_argument_group("data"))
    _add_run_flags(p.add_argument_group("run"))
    _add_distributed_flags(p.add_argument_group("data-parallel training (under mpiexec)"))
    return p


def _add_backend_flags(g: Any) -> None:
    from ..backends import BACKEND_NAMES

    g.add_argument("--backend", choices=("auto", *BACKEND_NAMES), default=None,
                   help="array library (default: auto = CuPy when a CUDA GPU works, else NumPy)")
    g.add_argument("--device", default=None,
                   help="device of the backend: cpu, cuda, cuda:1, array_api_strict's device1 ...")
    g.add_argument("--dtype", choices=CHOICES["dtype"], default=None,
                   help="floating dtype of the weights and computations (default float32)")
    g.add_argument("--tf32", action="store_true",
                   help="let float32 matmuls use TF32 tensor cores on NVIDIA GPUs (faster, "
                        "10-bit mantissa inputs; off by default, reported in summary.json)")


def _add_training_flags(g: Any) -> None:
    """``--preset`` and the flags that override its entries (the keys of ``PRESETS``, the
    estimator's parameter names, are the flags' ``dest``)."""
    g.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="default: a good classifier in under a minute; best: the best one in the "
                        "time PyTorch's reference dropout MLP needs; cnn: a convolutional network "
                        "(slower, more accurate); article: the article's experiment (default: default)")
    g.add_argument("--hidden", "--n-hidden-units", dest="n_hidden_units", type=_hidden_sizes, default=None,
                   metavar="N[,N...]",
                   help="hidden layer sizes, e.g. 256,128 (default 256,128; article 50)")
    g.add_argument("--layers", type=_layers_spec, default=None, metavar="SPEC",
                   help="the network's body as a list of layers instead of --hidden, --activation, "
                        "--dropout and --input-dropout (the output layer is added): "
                        "comma-separated conv<F>k<K>[s<S>][same|valid|p<P>][nobias], "
                        "maxpool<P>[s<S>], avgpool<P>[s<S>], gap (global average pooling), "
                        "dense<N>[nobias], relu, sigmoid, tanh, dropout<R>, bn[<M>] (batch "
                        "normalisation, momentum M), flatten; e.g. "
                        "conv32k3same,relu,maxpool2,flatten,dense128,relu,dropout0.3 (images "
                        "enter as 1x28x28)")
    g.add_argument("--activation", choices=CHOICES["activation"], default=None,
                   help="hidden activation (default relu; article sigmoid)")
    g.add_argument("--output", choices=CHOICES["output"], default=None,
                   help="output layer (default softmax; article sigmoid)")
    g.add_argument("--optimizer", choices=CHOICES["optimizer"], default=None,
                   help="optimizer (default adam; article sgd)")
    g.add_argument("--lr", "--learning-rate", dest="learning_rate", type=_parameter("learning_rate"),
                   default=None, metavar="LR", help="(initial) learning rate (default 0.001; article 0.001)")
    g.add_argument("--schedule", choices=CHOICES["schedule"], default=None,
                   help="learning-rate schedule over the epochs (default cosine; article constant); "
                        "adaptive: divide by 5 when the training loss (the validation accuracy "
                        "with --early-stopping) stalls for more than --n-iter-no-change epochs")
    g.add_argument("--epochs", type=_parameter("epochs"), default=None,
                   help="epochs (default 15; article 300)")
    g.add_argument("--batch-size", type=_parameter("batch_size"), default=None,
                   help="samples per minibatch, shuffled every epoch (default 128)")
    g.add_argument("--n-batches", type=_parameter("n_batches"), default=None,
                   help="number of fixed minibatches per epoch instead of --batch-size (article 25)")
    g.add_argument("--l1", type=_parameter("l1"), default=None,
                   help="L1 penalty, added to every minibatch's summed gradient (default 0)")
    g.add_argument("--l2", type=_parameter("l2"), default=None,
                   help="L2 penalty, added to every minibatch's summed gradient (default 0.05; article 0.5)")
    g.add_argument("--init", choices=CHOICES["init"], default=None,
                   help="initial weights (default he; article uniform = U(-1, 1))")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=None,
                   help="bias vectors in every layer (default yes; article no)")
    g.add_argument("--nesterov", dest="nesterovs_momentum", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="Nesterov's momentum for --optimizer momentum (default yes; --no-nesterov: "
                        "classical momentum)")
    g.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=None,
                   help="stop when the validation accuracy (of the --val-size hold-out) has not "
                        "improved by --tol for more than --n-iter-no-change epochs, and keep the "
                        "best epoch's weights (default no)")
    g.add_argument("--n-iter-no-change", type=_parameter("n_iter_no_change"), default=None, metavar="N",
                   help="epochs without improvement that --early-stopping and --schedule adaptive "
                        "tolerate (default 10)")
    g.add_argument("--tol", type=_parameter("tol"), default=None,
                   help="the improvement that counts: in accuracy with --early-stopping, else in "
                        "the training loss (default 1e-4)")
    g.add_argument("--dropout", type=_dropout_rates, default=None, metavar="P[,P...]",
                   help="dropout rate after each hidden layer while training, e.g. 0.3, or one per "
                        "hidden layer, e.g. 0.2,0.3 (inverted dropout: nothing changes at prediction; "
                        "default 0)")
    g.add_argument("--input-dropout", type=_dropout_rate, default=None, metavar="P",
                   help="dropout rate of the input features while training (default 0)")
    g.add_argument("--shift", "--augment-shift", dest="augment_shift", type=_non_negative_int, default=None,
                   metavar="PIXELS",
                   help="augment: move every training image by a random offset of up to PIXELS "
                        "pixels in each direction, per image and step, on the device (labels "
                        "unchanged; default 0 = off)")
    g.add_argument("--flip", dest="augment_flip", action=argparse.BooleanOptionalAction, default=None,
                   help="augment: mirror every training image left to right with probability 1/2, "
                        "per image and step, on the device (default no)")
    g.add_argument("--seed", "--random-seed", dest="random_seed", type=_non_negative_int, default=None,
                   metavar="SEED",
                   help="seed of the initial weights, the shuffling, the validation split, the "
                        "dropout masks and the shifts (default 0)")


def _add_data_flags(g: Any) -> None:
    g.add_argument("--data-dir", "--data-home", dest="data_dir", default=None, metavar="DIR",
                   help="directory with the four Fashion-MNIST files (default: $ARRAYNN_DATA, else "
                        "the cache ~/.cache/arraynn); or your own data: four IDX files of the same "
                        "names (MNIST, ...), X_train.npy, y_train.npy, X_test.npy, y_test.npy, or an "
                        ".npz file holding those arrays")
    g.add_argument("--class-names", default=None, metavar="NAMES", type=_class_names,
                   help="names of the labels 0, 1, ...: a comma-separated list or a file with one a "
                        "line (default: class_names.txt beside the data, else Fashion-MNIST's)")
    g.add_argument("--no-download", action="store_true",
                   help="never download; fail when the files are missing")
    g.add_argument("--mirror", action="append", default=None, metavar="URL", type=_mirror,
                   help="base URL to download the files from instead of the built-in mirrors "
                        "(repeatable)")
    g.add_argument("--scale", dest="preprocessing", choices=CHOICES["preprocessing"], default=None,
                   help="preprocessing: standardize with the training set's statistics (default), "
                        "per-set = each set with its own (the article), unit = divide by 255, none")
    g.add_argument("--no-scale", action="store_true",
                   help="feed raw pixels 0-255 (same as --scale none)")
    g.add_argument("--val-size", type=_non_negative_int, default=None, metavar="N",
                   help="training images held out for validation (default 5000; article 0)")
    g.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="train on the first N training images only (smoke runs)")


def _add_run_flags(g: Any) -> None:
    g.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="the run directory (default: runs/<preset>-<date>-<time>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with its saved "
                        "configuration; --epochs N beyond the run's extends a finished run")
    g.add_argument("--evaluate", default=None, metavar="MODEL",
                   help="evaluate a saved model (a model.npz or a run directory) on the test set, "
                        "on --backend, and exit")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bar within the epochs (the line per epoch stays)")
    g.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    g.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _add_distributed_flags(g: Any) -> None:
    from ..distributed import COMMUNICATORS

    g.add_argument("--distributed", action="store_true",
                   help="train data-parallel on the ranks of an MPI job: mpiexec -n N python -m mpi4py "
                        "-m arraynn.train --distributed ...; each rank takes its slice of every "
                        "minibatch (--batch-size stays the global batch) and one allreduce per step "
                        "sums the gradients; rank 0 alone prints and writes; GPU ranks use "
                        "cuda:<local rank>. Without mpiexec: one process")
    g.add_argument("--comm", choices=COMMUNICATORS, default=None,
                   help="how the ranks sum gradients: mpi (through host memory), nccl (CuPy on "
                        "GPUs), auto (default: nccl for cupy ranks, else mpi); needs --distributed")


def check_distributed_args(args: argparse.Namespace) -> None:
    """Refuse ``--comm`` without ``--distributed``, and ``--distributed`` with ``--evaluate``.

    Raises
    ------
    UsageError
    """
    if args.comm is not None and not args.distributed:
        raise UsageError("--comm chooses the communicator of a --distributed run; add --distributed "
                         "(under mpiexec) or drop --comm")
    if args.distributed and args.evaluate is not None:
        raise UsageError("--evaluate runs in one process; drop --distributed")

