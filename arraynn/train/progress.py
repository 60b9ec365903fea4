"""The per-epoch progress of a run: a tqdm bar on a terminal, else one plain line per epoch."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

__all__ = ["Progress"]


def _fmt_acc(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


class Progress:
    """A tqdm bar over the epochs on a terminal; else one plain line per epoch.

    Parameters
    ----------
    total : int
        The run's epochs.
    start : int
        Epochs already done (a resumed run).
    plain : bool
        Plain lines even on a terminal (``--no-progress``).
    """

    def __init__(self, total: int, start: int, plain: bool) -> None:
        self.total = total
        self.bar = None
        if not plain and sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm

            try:
                columns = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError):
                columns = 0
            # A terminal that reports no size (some pseudo-terminals) gets 100 x 24;
            # tqdm would draw nothing there.
            size = {"dynamic_ncols": True} if columns > 0 else {"ncols": 100, "nrows": 24}
            self.bar = tqdm(total=total, initial=start, unit="epoch", file=sys.stderr,
                            desc="training", **size)

    def epoch(self, row: dict[str, Any]) -> None:
        """Show an epoch's metrics row (see :data:`~arraynn.train.rundir.METRICS_COLUMNS`)."""
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"loss {row['loss']:.4f}, train {_fmt_acc(row['train_subset_accuracy'])}, "
                f"val {_fmt_acc(row['val_accuracy'])}, {row['epoch_seconds']:.2f}s/epoch",
                refresh=False)
            self.bar.update(1)
        else:
            width = len(str(self.total))
            print(f"epoch {row['epoch']:>{width}}/{self.total}  loss {row['loss']:.4f}  "
                  f"train {_fmt_acc(row['train_subset_accuracy']):>7}  "
                  f"val {_fmt_acc(row['val_accuracy']):>7}  lr {row['learning_rate']:.3g}  "
                  f"{row['epoch_seconds']:.2f}s", flush=True)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self.bar is not None:
            self.bar.close()
