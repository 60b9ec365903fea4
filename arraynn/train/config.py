"""A run's configuration: the preset with the flags applied, checked, and in words.

A run is configured by a preset (:data:`~arraynn.train.presets.PRESETS`) whose entries
flags override (:func:`resolve_config`); ``--resume`` takes the configuration saved in
the run directory instead, and refuses flags that would change it
(:func:`check_resume_args`); ``--evaluate`` refuses the flags of a training run
(:func:`check_evaluate_args`). :func:`backend_from` picks the backend of the flags (or
of the saved run), :func:`describe_config` says what the configuration trains.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any

from .._cli import UsageError
from .presets import FEATURE_DEFAULTS, LEGACY_DEFAULTS, PRESETS

__all__ = ["backend_from", "check_evaluate_args", "check_resume_args", "describe_config",
           "resolve_config"]

#: The configuration keys flags may override (the names of ``PRESETS`` entries).
_TRAINING_KEYS = tuple(PRESETS["default"])


def _explicit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration entries the flags set (``--no-scale`` is ``scale: none``)."""
    out = {k: getattr(args, k) for k in _TRAINING_KEYS if getattr(args, k, None) is not None}
    if args.no_scale:
        if args.scale not in (None, "none"):
            raise UsageError(f"--no-scale contradicts --scale {args.scale}")
        out["scale"] = "none"
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
        For contradicting flags.
    """
    preset = args.preset or "default"
    cfg = {**FEATURE_DEFAULTS, **PRESETS[preset]}
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
        clash = [k for k in ("hidden", "activation", "dropout", "input_dropout") if k in over]
        if clash:
            flag = "--" + clash[0].replace("_", "-")
            raise UsageError(f"--layers describes the whole network body; {flag} cannot change it: put "
                             "it in the layers (dense<N>, relu, dropout<R>, ...) or leave --layers out")
    rates = cfg["dropout"]
    if isinstance(rates, (list, tuple)) and len(rates) not in (1, len(cfg["hidden"])):
        n = len(cfg["hidden"])
        raise UsageError(f"--dropout gives {len(rates)} rates for {n} hidden layer{'s' if n != 1 else ''} "
                         f"(--hidden {','.join(str(h) for h in cfg['hidden'])}): give one rate, or "
                         "one per hidden layer")
    if cfg["shift"] > 127:
        raise UsageError(f"--shift {cfg['shift']} is more than 127 pixels; Fashion-MNIST images are 28 "
                         "pixels wide (1 or 2 is usual)")
    return cfg


def check_resume_args(args: argparse.Namespace, saved: dict[str, Any] | None = None, *,
                      ignore: Collection[str] = ()) -> None:
    """Refuse a ``--resume`` without ``--out`` or with flags that change the configuration.

    ``saved`` is the run's saved configuration (config.json's ``config``): flags equal
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
        # a run from before an entry existed trained without it (LEGACY_DEFAULTS)
        saved = {**LEGACY_DEFAULTS, **saved}
        over = {k: v for k, v in over.items() if not _same_value(v, saved.get(k))}
    if over:
        names = ", ".join("--" + k.replace("_", "-") for k in over)
        were = (" (the run has " + ", ".join(f"{k.replace('_', '-')} {_shown(saved.get(k))}" for k in over)
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
    names = ["--" + k.replace("_", "-") for k in over]
    names += [flag for flag, given in (("--preset", args.preset is not None), ("--resume", args.resume),
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
        layers = "-".join(str(s) for s in (n_features, *cfg["hidden"], n_classes))
    batches = (f"batch {cfg['batch_size']}" if cfg["batch_size"] is not None
               else f"{cfg['n_batches']} minibatches")
    sched = {"constant": "", "adaptive": " (adaptive)"}.get(cfg["schedule"], f" ({cfg['schedule']} decay)")
    optimizer = cfg["optimizer"]
    if optimizer == "momentum" and cfg.get("nesterov", LEGACY_DEFAULTS["nesterov"]):
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
    if cfg.get("shift"):
        reg.append(f"random shifts up to {cfg['shift']} px")
    if cfg.get("flip"):
        reg.append("random flips")
    stop = ""
    if cfg.get("early_stopping"):
        n = cfg["n_iter_no_change"]
        stop = (f" at most (early stopping after more than {n} epoch{'s' if n != 1 else ''} without a "
                f"gain of {cfg['tol']:g} in validation accuracy)")
    head = f"{cfg['output']} output" if cfg.get("layers") else f"{cfg['activation']}/{cfg['output']}"
    return (f"{layers} {head}{'' if cfg['bias'] else ', no biases'}, "
            f"{cfg['init']} init, {optimizer} lr {cfg['learning_rate']:g}{sched}, {batches}, "
            f"{', '.join(reg)}, {cfg['epochs']} epochs{stop}, {_SCALE_WORDS[cfg['scale']]}, "
            f"seed {cfg['seed']}")
