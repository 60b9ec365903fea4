"""The progress of a run: one line per epoch, and on a terminal a bar within the epoch.

Every epoch ends with one plain line (loss, train and validation accuracy, learning
rate, seconds). On a terminal with tqdm installed, a bar over the current epoch's
minibatches runs beneath those lines and is replaced by the epoch's line when the epoch
ends, so the lines stay and the bar shows where the epoch is.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

__all__ = ["Progress"]


def _fmt_acc(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


class Progress:
    """One line per epoch; on a terminal also a tqdm bar over each epoch's minibatches.

    Parameters
    ----------
    total : int
        The run's epochs.
    start : int
        Epochs already done (a resumed run).
    plain : bool
        Plain lines only, even on a terminal (``--no-progress``).
    """

    def __init__(self, total: int, start: int, plain: bool) -> None:
        self.total = total
        self.epoch_number = start + 1  # the epoch in progress
        self._tqdm: Any = None
        self._size: dict[str, Any] = {}
        self.bar: Any = None
        if not plain and sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm

            try:
                columns = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError):
                columns = 0
            # A terminal that reports no size (some pseudo-terminals) gets 100 x 24;
            # tqdm would draw nothing there.
            self._size = {"dynamic_ncols": True} if columns > 0 else {"ncols": 100, "nrows": 24}
            self._tqdm = tqdm

    def batch(self, done: int, n_batches: int) -> None:
        """A minibatch step of the epoch in progress finished (``done`` of ``n_batches``)."""
        if self._tqdm is None:
            return
        if self.bar is None:
            width = len(str(self.total))
            self.bar = self._tqdm(total=n_batches, unit="batch", file=sys.stderr, leave=False,
                                  desc=f"epoch {self.epoch_number:>{width}}/{self.total}", **self._size)
        self.bar.update(done - self.bar.n)

    def epoch(self, row: dict[str, Any]) -> None:
        """Show an epoch's metrics row (see :data:`~arraynn.train.rundir.METRICS_COLUMNS`)."""
        self.close()
        width = len(str(self.total))
        print(f"epoch {row['epoch']:>{width}}/{self.total}  loss {row['loss']:.4f}  "
              f"train {_fmt_acc(row['train_subset_accuracy']):>7}  "
              f"val {_fmt_acc(row['val_accuracy']):>7}  lr {row['learning_rate']:.3g}  "
              f"{row['epoch_seconds']:.2f}s", flush=True)
        self.epoch_number = int(row["epoch"]) + 1

    def close(self) -> None:
        """Remove the bar of the epoch in progress (idempotent)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
