"""Tables and figures of a trained classifier: per-class accuracy, confusion matrix,
loss curve and prediction grid.

The tables are plain text and need nothing but NumPy. The figures need matplotlib,
which is imported only inside the plotting functions (``pip install "arraynn[plot]"``);
:func:`have_matplotlib` says whether it is there. The figures are drawn with
matplotlib's object-oriented API on a :class:`matplotlib.figure.Figure`, so they never
open a window and work on machines without a display.

Every function takes host NumPy arrays: labels and predictions as integer class
indices, images as uint8 rows of 784 pixels (or any square number of pixels).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "confusion_matrix",
    "have_matplotlib",
    "per_class_accuracy",
    "per_class_table",
    "plot_confusion_matrix",
    "plot_loss",
    "plot_predictions",
]


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (the figures need it)."""
    return importlib.util.find_spec("matplotlib") is not None


# --------------------------------------------------------------------------------------
# numbers and tables
# --------------------------------------------------------------------------------------


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Accuracy of each true class (the recall): ``C[i, i] / sum(C[i, :])``.

    A class without samples gets NaN.
    """
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)


def per_class_table(cm: np.ndarray, class_names: Sequence[str]) -> str:
    """A plain-text table: class, samples, correct, accuracy, and the most frequent
    wrong prediction of each class."""
    acc = per_class_accuracy(cm)
    width = max(len("class"), *(len(n) for n in class_names))
    lines = [f"{'class':<{width}}  {'samples':>7}  {'correct':>7}  {'accuracy':>8}  most confused with"]
    for i, name in enumerate(class_names):
        row = cm[i].copy()
        row[i] = 0
        confused = f"{class_names[int(np.argmax(row))]} ({int(row.max())})" if row.max() > 0 else "-"
        a = "-" if math.isnan(acc[i]) else f"{100 * acc[i]:7.2f}%"
        lines.append(f"{name:<{width}}  {int(cm[i].sum()):>7}  {int(cm[i, i]):>7}  {a:>8}  {confused}")
    total, correct = int(cm.sum()), int(np.trace(cm))
    overall = f"{100 * correct / total:7.2f}%" if total else "-"
    lines.append(f"{'all':<{width}}  {total:>7}  {correct:>7}  {overall:>8}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# figures (matplotlib imported lazily)
# --------------------------------------------------------------------------------------


def _figure(figsize: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - callers check have_matplotlib()
        raise ImportError('the figures need matplotlib: pip install "arraynn[plot]"') from exc
    return Figure(figsize=figsize, layout="constrained")


def _integer_epochs(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_loss(curves: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
              accuracies: Mapping[str, Sequence[float | None]] | None = None,
              title: str = "Training loss", ylabel: str = "loss per sample",
              log_scale: bool = False) -> Path:
    """The loss per epoch (the article's error plot), and optionally accuracies.

    Parameters
    ----------
    curves : mapping of name -> per-epoch values
        One line per entry (e.g. ``{"scaled": nn.error_, "unscaled": ...}``).
    path : path
        Where to write the PNG.
    accuracies : mapping of name -> per-epoch accuracies (fractions), optional
        Drawn in a second panel; ``None`` entries are skipped.
    log_scale : bool
        Logarithmic loss axis.
    """
    two = bool(accuracies)
    fig = _figure((11, 4) if two else (6.5, 4))
    axes = fig.subplots(1, 2) if two else [fig.subplots()]
    ax = axes[0]
    for name, curve in curves.items():
        values = list(curve)
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel("epoch")
    _integer_epochs(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log_scale:
        ax.set_yscale("log")
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    if accuracies:
        ax = axes[1]
        for name, accs in accuracies.items():
            pts = [(i + 1, 100 * v) for i, v in enumerate(accs) if v is not None and not math.isnan(v)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=name)
        ax.set_xlabel("epoch")
        _integer_epochs(ax)
        ax.set_ylabel("accuracy (%)")
        ax.set_title("Accuracy")
        ax.legend()
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike, *,
                          title: str = "Confusion matrix (test set)") -> Path:
    """The confusion matrix with class names; cells show counts, colours the share of
    the true class."""
    cm = np.asarray(cm)
    totals = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    share = cm / totals
    n = len(class_names)
    fig = _figure((1.0 + 0.75 * n, 0.6 + 0.7 * n))
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="share of the true class")
    return _save(fig, path)


def plot_predictions(images: np.ndarray, probabilities: np.ndarray, y_true: Any,
                     class_names: Sequence[str], path: str | os.PathLike, *, n: int = 12,
                     columns: int = 3, title: str | None = None) -> Path:
    """A grid of images, each with its predicted and true label and a bar chart of the
    predicted probabilities (as in the article). Correct predictions are green, wrong
    ones red.

    Parameters
    ----------
    images : array (n_samples, n_pixels) or (n_samples, h, w)
        The raw images (uint8), not the preprocessed inputs.
    probabilities : array (n_samples, n_classes)
        ``predict_proba`` of the same samples.
    y_true : array (n_samples,)
        True class indices.
    n : int
        How many images to show (the first ``n``).
    """
    images = np.asarray(images)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true)
    n = min(n, len(images))
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        images = images.reshape(len(images), side, -1)
    rows = math.ceil(n / columns)
    k = probabilities.shape[1]
    fig = _figure((4.4 * columns, 1.9 * rows + (0.4 if title else 0)))
    grid = fig.add_gridspec(rows, 2 * columns, width_ratios=[1, 1.35] * columns)
    for i in range(n):
        r, c = divmod(i, columns)
        ax_img = fig.add_subplot(grid[r, 2 * c])
        ax_bar = fig.add_subplot(grid[r, 2 * c + 1])
        pred = int(np.argmax(probabilities[i]))
        ok = pred == int(y_true[i])
        colour = "tab:green" if ok else "tab:red"
        ax_img.imshow(images[i], cmap="gray_r")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        ax_img.set_title(f"{class_names[pred]} {100 * probabilities[i, pred]:.0f}%\n"
                         f"(true: {class_names[int(y_true[i])]})", fontsize=8, color=colour)
        bars = ax_bar.barh(range(k), probabilities[i], color="lightgray")
        bars[pred].set_color(colour)
        if not ok:
            bars[int(y_true[i])].set_color("tab:blue")
        ax_bar.set_xlim(0, 1)
        ax_bar.set_yticks(range(k), labels=list(class_names), fontsize=6)
        ax_bar.invert_yaxis()
        ax_bar.tick_params(axis="x", labelsize=6)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
