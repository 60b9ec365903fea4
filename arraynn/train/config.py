"""A run's configuration: the preset with the flags applied, checked, and in words.

A run is configured by a preset (:data:`~arraynn.train.presets.PRESETS`) whose entries
flags override (:func:`resolve_config`); ``--resume`` takes the configuration saved in
the run directory instead (in today's keys: :func:`upgrade` translates those of earlier
versions), and refuses flags that would change it (:func:`check_resume_args`);
``--evaluate`` refuses the flags of a training run (:func:`check_evaluate_args`).
:func:`backend_from` picks the backend of the flags (or of the saved run),
:func:`describe_config` says what the configuration trains.

The configuration's keys are :class:`~arraynn.NNClassifier`'s parameter names, but for
the run's own (:data:`~arraynn.train.presets.RUN_KEYS`); :func:`estimator_params` gives
the classifier its entries as they are, and the estimator checks them
(:func:`resolve_config` turns its ValueError into a usage error naming the flag).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Collection
from typing import Any

from .._cli import UsageError
from .._validation import _LAYERS_REPLACE
from .presets import LEGACY_DEFAULTS, PRESETS, RUN_KEYS

__all__ = ["backend_from", "check_evaluate_args", "check_resume_args", "describe_config",
           "estimator_params", "flag", "resolve_config", "upgrade"]

#: The configuration keys flags may override (the names of ``PRESETS`` entries).
_TRAINING_KEYS = tuple(PRESETS["default"])

#: The keys of configurations written by earlier versions that have other names now
#: (the estimator's): :func:`upgrade` renames them.
_OLD_KEYS = {"hidden": "n_hidden_units", "seed": "random_seed", "scale": "preprocessing",
             "shift": "augment_shift", "flip": "augment_flip", "nesterov": "nesterovs_momentum"}

#: The input of a network of ``layers``: Fashion-MNIST's rows are 28x28 images.
_INPUT_SHAPE = (1, 28, 28)


def upgrade(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved configuration (config.json's ``config``) in today's keys.

    Configurations written by earlier versions have the keys of their time (``hidden``,
    ``seed``, ``scale``, ``shift``, ``flip``, ``nesterov``: renamed to the estimator's
    parameter names), and those written before an entry existed lack it: such a run
    trained without it (:data:`~arraynn.train.presets.LEGACY_DEFAULTS`, e.g. classical
    momentum). A configuration in today's keys comes back equal. Every reader of a run
    directory gets its configuration through this function
    (:meth:`arraynn.train.rundir.RunDir.read_config`).
    """
    return {**LEGACY_DEFAULTS, **{_OLD_KEYS.get(k, k): v for k, v in saved.items()}}


@functools.cache
def _flags() -> dict[str, str]:
    from .options import build_parser

    return {a.dest: a.option_strings[0] for a in build_parser()._actions if a.option_strings}


def flag(key: str) -> str:
    """The flag that sets the configuration entry ``key`` (``--hidden`` for
    ``n_hidden_units``), as the messages name it."""
    return _flags().get(key, "--" + key.replace("_", "-"))


def estimator_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~arraynn.NNClassifier` parameters of the configuration: its entries
    but the run's own (:data:`~arraynn.train.presets.RUN_KEYS`), as they are.

    Besides: ``n_batches`` is left out when it is unset (``batch_size`` is), and a
    ``layers`` spec becomes its layers, on 28x28 images, without the parameters they
    replace. ``preprocessing`` is the estimator's: it fits the scheme on the raw
    training images and preprocesses each minibatch.
    """
    params = {k: v for k, v in cfg.items() if k not in RUN_KEYS}
    if params.get("n_batches") is None:
        params.pop("n_batches", None)
    if params.get("layers"):
        from ..nn.layer_spec import parse_layers

        for key in _LAYERS_REPLACE:
            params.pop(key, None)
        params.update(layers=parse_layers(params["layers"]), input_shape=_INPUT_SHAPE)
    return params


def _check_with_estimator(cfg: dict[str, Any]) -> None:
    """The estimator's checks of its parameters, before any data is loaded; its
    ValueError becomes a usage error naming the flag of the entry it is about."""
    from ..classifier import NNClassifier

    try:
        NNClassifier(**estimator_params(cfg))._check_params()
    except ValueError as exc:  # its messages begin with the parameter's name
        name = str(exc).split(" ", 1)[0]
        raise UsageError(f"{flag(name)}: {exc}" if name in cfg else str(exc)) from None


def _explicit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration entries the flags set (``--no-scale`` is ``preprocessing: none``)."""
    out = {k: getattr(args, k) for k in _TRAINING_KEYS if getattr(args, k, None) is not None}
    if args.no_scale:
        if args.preprocessing not in (None, "none"):
            raise UsageError(f"--no-scale contradicts --scale {args.preprocessing}")
        out["preprocessing"] = "none"
    return out


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The preset with the flags' overrides applied, checked.

    Returns
    -------
    dict
        The entries of the preset (``--batch-size`` and ``--n-batches`` replace each
        other) plus ``"preset"``: the ``config`` of config.json and summary.json.

    Raises
    ------
    UsageError
        For contradicting flags, or values the estimator refuses.
    """
    preset = args.preset or "default"
    cfg = dict(PRESETS[preset])
    over = _explicit_overrides(args)
    if "batch_size" in over and "n_batches" in over:
        raise UsageError("give --batch-size or --n-batches, not both")
    cfg.update(over)
    if "batch_size" in over:
        cfg["n_batches"] = None
    if "n_batches" in over:
        cfg["batch_size"] = None
    cfg["preset"] = preset
    if cfg["early_stopping"] and not cfg["val_size"]:
        raise UsageError("--early-stopping watches the validation accuracy, and this run holds out no "
                         "validation images: add --val-size N (the article preset holds out none)")
    if cfg.get("layers"):
        clash = [k for k in _LAYERS_REPLACE if k in over]
        if clash:
            raise UsageError(f"--layers describes the whole network body; {flag(clash[0])} cannot change "
                             "it: put it in the layers (dense<N>, relu, dropout<R>, ...) or leave --layers "
                             "out")
    rates = cfg["dropout"]
    hidden = cfg["n_hidden_units"]
    if isinstance(rates, (list, tuple)) and len(rates) not in (1, len(hidden)):
        n = len(hidden)
        raise UsageError(f"--dropout gives {len(rates)} rates for {n} hidden layer{'s' if n != 1 else ''} "
                         f"(--hidden {','.join(str(h) for h in hidden)}): give one rate, or "
                         "one per hidden layer")
    _check_with_estimator(cfg)
    return cfg


def check_resume_args(args: argparse.Namespace, saved: dict[str, Any] | None = None, *,
                      ignore: Collection[str] = ()) -> None:
    """Refuse a ``--resume`` without ``--out`` or with flags that change the configuration.

    ``saved`` is the run's saved configuration (config.json's ``config``, in today's keys:
    :func:`upgrade`): flags equal
    to it are accepted (the original command line resumes as it is); without it every
    training flag is refused. The entries named in ``ignore`` are not checked (``epochs``
    when ``--resume --epochs N`` extends the run).

    Raises
    ------
    UsageError
        Naming the flags to drop and the saved values.
    """
    if args.out is None:
        raise UsageError("--resume needs --out RUN_DIR, the run to continue")
    over = {k: v for k, v in _explicit_overrides(args).items() if k not in ignore}
    if args.preset is not None:
        over = {"preset": args.preset, **over}
    if saved is not None:
        over = {k: v for k, v in over.items() if not _same_value(v, saved.get(k))}
    if over:
        names = ", ".join(flag(k) for k in over)
        were = (" (the run has " + ", ".join(f"{flag(k)[2:]} {_shown(saved.get(k))}" for k in over)
                + ")" if saved is not None else "")
        raise UsageError(f"--resume continues the run with its saved configuration; drop {names}{were} "
                         "(or start a new run with another --out)")


def check_evaluate_args(args: argparse.Namespace) -> None:
    """Refuse, with ``--evaluate``, the flags that only a training run reads.

    Raises
    ------
    UsageError
        Naming the flags to drop.
    """
    over = _explicit_overrides(args)
    names = [flag(k) for k in over]
    names += [name for name, given in (("--preset", args.preset is not None), ("--resume", args.resume),
                                       ("--out", args.out is not None)) if given]
    if names:
        raise UsageError(f"--evaluate measures the saved model as it is; drop {', '.join(names)} "
                         "(they configure a training run)")


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def _shown(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(str(x) for x in v) or "none"
    return "unset" if v is None else str(v)


def backend_from(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> tuple[Any, str | None]:
    """The :class:`~arraynn.backends.Backend` the flags name, else the saved run's, else
    auto; and why auto chose it (for the run's header; ``None`` when it was named).

    ``saved`` is a run's config.json (``--resume``): its backend, device and dtype are
    the defaults of ``--backend``, ``--device`` and ``--dtype``.
    """
    from ..backends import choose_auto, get_backend

    saved = saved or {}
    name = args.backend or saved.get("backend") or "auto"
    device = args.device if args.device is not None else saved.get("device_arg")
    dtype = args.dtype or saved.get("dtype") or "float32"
    if name != "auto":
        return get_backend(name, device, dtype), None
    return choose_auto(device, dtype)


_SCALE_WORDS = {"standardize": "standardized with the training set's statistics",
                "per-set": "each set standardized with its own statistics",
                "unit": "pixels / 255", "none": "raw pixels (no scaling)"}


def describe_config(cfg: dict[str, Any], n_features: int = 784, n_classes: int = 10) -> str:
    """The network and its training in one line (the report's ``network:`` line)."""
    if cfg.get("layers"):
        layers = f"{n_features} -> {cfg['layers']} -> dense{n_classes}"
    else:
        layers = "-".join(str(s) for s in (n_features, *cfg["n_hidden_units"], n_classes))
    batches = (f"batch {cfg['batch_size']}" if cfg["batch_size"] is not None
               else f"{cfg['n_batches']} minibatches")
    sched = {"constant": "", "adaptive": " (adaptive)"}.get(cfg["schedule"], f" ({cfg['schedule']} decay)")
    optimizer = cfg["optimizer"]
    if optimizer == "momentum" and cfg["nesterovs_momentum"]:
        optimizer = "Nesterov momentum"
    reg = []
    if cfg["l1"]:
        reg.append(f"L1 {cfg['l1']:g}")
    reg.append(f"L2 {cfg['l2']:g}")
    dropout = cfg.get("dropout") or 0.0
    if isinstance(dropout, (list, tuple)) and any(dropout):
        reg.append("dropout " + ",".join(f"{r:g}" for r in dropout))
    elif not isinstance(dropout, (list, tuple)) and dropout:
        reg.append(f"dropout {dropout:g}")
    if cfg.get("input_dropout"):
        reg.append(f"input dropout {cfg['input_dropout']:g}")
    if cfg.get("augment_shift"):
        reg.append(f"random shifts up to {cfg['augment_shift']} px")
    if cfg.get("augment_flip"):
        reg.append("random flips")
    stop = ""
    if cfg.get("early_stopping"):
        n = cfg["n_iter_no_change"]
        stop = (f" at most (early stopping after more than {n} epoch{'s' if n != 1 else ''} without a "
                f"gain of {cfg['tol']:g} in validation accuracy)")
    head = f"{cfg['output']} output" if cfg.get("layers") else f"{cfg['activation']}/{cfg['output']}"
    return (f"{layers} {head}{'' if cfg['bias'] else ', no biases'}, "
            f"{cfg['init']} init, {optimizer} lr {cfg['learning_rate']:g}{sched}, {batches}, "
            f"{', '.join(reg)}, {cfg['epochs']} epochs{stop}, {_SCALE_WORDS[cfg['preprocessing']]}, "
            f"seed {cfg['random_seed']}")
