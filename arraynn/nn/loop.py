"""The epoch loop: loader -> steps -> loss -> divergence / out-of-memory -> callback.

:class:`Trainer` holds what does not change during a fit (the network, the
optimizer, the penalties, the learning-rate schedule, the backend) and runs epochs
over a :class:`arraynn.data.DataLoader`: per minibatch it builds the one-hot targets
on the device and runs the training step (the backend's compiled step when it has
one, e.g. JAX's ``jax.jit``; else :meth:`MLP.train_step`); per epoch it copies the
summed loss to the host once, checks it, and hands the epoch's record to a callback.
Nothing else goes back to the host.

Data-parallel (a communicator of more than one rank, see :mod:`arraynn.distributed`):
each rank's loader yields its slice of every global minibatch; the step computes the
slice's summed gradient, sums it over the ranks with one allreduce of the flat buffer,
and applies the optimizer's update, the same on every rank. The penalty's gradient is
added by rank 0 alone, so it counts once per minibatch as in one process, and a rank
whose slice is empty contributes zeros. Dropout masks and shifted images are drawn
for the rows of the rank's slice as for those rows of the whole minibatch (the
generator is indexed by element), so N ranks train what one process trains with
them too. The epoch's loss is summed over the ranks on
the host (one more allreduce, of one number, per epoch), so every rank sees the same
loss and stops, or raises, at the same epoch.

Sample weights: a loader made with ``sample_weight`` yields ``(X, y, w)`` batches; the
step gets ``sample_weight=w`` (each row's loss and error term multiplied by its weight)
and the epoch's loss is divided by the loader's ``total_weight`` instead of its number
of samples, so a weight of 2 is a repeated row in the loss curve as in the gradients.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..backends import DeviceMemoryError, is_out_of_memory

__all__ = ["EpochRecord", "Trainer", "TrainingDivergedError"]


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass
class EpochRecord:
    """What one finished epoch reports."""

    #: 1-based number of the epoch just finished.
    epoch: int
    #: Mean loss per sample (per unit of weight, with sample weights): data loss plus the
    #: penalty, counted once per minibatch.
    loss: float
    seconds: float
    learning_rate: float
    #: The flat parameters and the optimizer state after the epoch.
    params: Any
    state: dict[str, Any]


class Trainer:
    """Runs training epochs of one network with one optimizer on one backend.

    Parameters
    ----------
    mlp : MLP
    optimizer : SGD, Momentum or Adam
    backend : Backend
    l1, l2 : float
        Penalties; their gradient is added to every minibatch's summed gradient.
    learning_rate_at : callable
        ``learning_rate_at(epoch)`` for a 0-based epoch number.
    comm : Communicator, optional
        Train data-parallel over its ranks (see the module docstring); the loader must
        be sharded the same way. ``None`` or a world of one: one process.
    on_batch : callable, optional
        ``on_batch(done, n_batches)`` after every step (progress; no device values).
    seed : int, optional
        Seed of the per-step noise: the network's dropout masks (without a seed there
        is no dropout). Both are drawn on the device from the seed and the optimizer's
        step counter (:mod:`arraynn.nn.random`).
    augment : callable, optional
        ``augment(X_batch, step)`` returns the minibatch to train on (e.g. a
        :class:`arraynn.data.augment.RandomShift`, or the estimator's
        :class:`arraynn.data.pipeline.BatchPipeline`, which also converts uint8 batches
        and preprocesses them); ``step`` is the optimizer's step counter, a host int.
        It sees every batch, also an empty one (a rank's empty slice). Labels are
        unchanged. With more than one rank it is
        called as ``augment(X_batch, step, first_row)``, ``first_row`` being where the
        rank's slice starts in the global minibatch.
    """

    def __init__(self, mlp: Any, optimizer: Any, backend: Any, *, l1: float, l2: float,
                 learning_rate_at: Callable[[int], float], comm: Any = None,
                 on_batch: Callable[[int, int], Any] | None = None, seed: int | None = None,
                 augment: Callable[[Any, int], Any] | None = None) -> None:
        self.mlp, self.optimizer, self.backend = mlp, optimizer, backend
        self.on_batch = on_batch
        self.l1, self.l2 = float(l1), float(l2)
        self.learning_rate_at = learning_rate_at
        self.comm = comm if comm is not None and comm.size > 1 else None
        self.augment = augment
        #: The dropout seed the steps get (None: no dropout).
        self.noise_seed = None if seed is None or not mlp.has_dropout else int(seed)
        # a compiled step fuses the gradient and the update: the allreduce goes between
        self.step = (None if self.comm else
                     backend.compiled_step(mlp, optimizer, self.l1, self.l2, self.noise_seed))
        # the current weights and optimizer state, set by run(); both None after a diverged
        # epoch whose starting point was not finite either
        self.params: Any = None
        self.state: dict[str, Any] | None = None

    def run(self, params: Any, state: dict[str, Any], loader: Any, first_epoch: int,
            end_epoch: int, on_epoch: Callable[[EpochRecord], Any]) -> tuple[Any, dict[str, Any]]:
        """Train epochs ``first_epoch .. end_epoch - 1`` (0-based); returns the final
        ``(params, state)``, which are also ``self.params`` and ``self.state`` (kept
        current after every step).

        ``on_epoch(record)`` is called after every epoch; returning ``True`` stops.

        Raises
        ------
        TrainingDivergedError
            The epoch's loss is NaN or infinite (the message names the learning rate).
            ``self.params`` and ``self.state`` are then those the epoch started from
            (a device copy taken at every epoch's start), or ``None`` when those are
            not finite either.

        Run it inside :meth:`memory_errors` to have out-of-memory errors explained.
        """
        with self.backend.device_context():  # what is made without a device lands there
            return self._run(params, state, loader, first_epoch, end_epoch, on_epoch)

    def _run(self, params: Any, state: dict[str, Any], loader: Any, first_epoch: int,
             end_epoch: int, on_epoch: Callable[[EpochRecord], Any]) -> tuple[Any, dict[str, Any]]:
        self.params, self.state = params, state
        step = self.step
        if self.comm is not None:
            step = self._data_parallel_step(params)
        elif step is None:  # the eager step; fast paths write the gradient into one buffer
            step = functools.partial(self.mlp.train_step,
                                     grad_buffer=self.backend.xp.empty_like(params),
                                     seed=self.noise_seed)
        for epoch in range(first_epoch, end_epoch):
            start = time.perf_counter()
            lr = self.learning_rate_at(epoch)
            good = self._copy(self.params, self.state)  # steps update in place or donate
            value = self._epoch(step, loader, epoch, lr)
            if not math.isfinite(value):
                self.params, self.state = good
                if not bool(self.backend.xp.all(self.backend.xp.isfinite(good[0]))):
                    self.params = self.state = None
                raise TrainingDivergedError(
                    f"the training loss became {value} in epoch {epoch + 1}; lower the "
                    f"learning rate (this epoch used {lr:g}) or standardize the inputs")
            record = EpochRecord(epoch + 1, value, time.perf_counter() - start, lr, self.params,
                                 self.state)
            if on_epoch(record):
                break
        return self.params, self.state

    def _data_parallel_step(self, params: Any) -> Callable[..., Any]:
        """The step of one rank: its slice's gradient, one allreduce, the update."""
        mlp, comm, be, xp = self.mlp, self.comm, self.backend, self.backend.xp
        assert comm is not None  # only with ranks
        grad_buffer = xp.empty_like(params)
        root = comm.rank == 0
        seed = self.noise_seed
        stateful = bool(getattr(mlp, "has_state", False))

        def reduce(a: Any) -> Any:  # BatchNorm's sums over the ranks
            return comm.allreduce(a, be)

        def step(params: Any, opt: Any, state: dict[str, Any], X: Any, Y: Any, lr: float,
                 l1: float, l2: float, sample_weight: Any = None,
                 first_row: int = 0) -> tuple[Any, dict[str, Any], Any]:
            stats = state.get("stats") if stateful else None
            if X.shape[0] or stateful:
                # the global minibatch's masks, the rows of this rank's slice; a network with
                # BatchNorm runs even on no rows, to take part in its statistics' allreduces
                masks = None if seed is None else mlp.dropout_masks(X, seed, state["t"], first_row)
                loss, grads, stats = mlp.loss_grad_and_state(
                    params, X, Y, l1 if root else 0.0, l2 if root else 0.0, grad_buffer,
                    sample_weight=sample_weight, masks=masks, stats=stats, reduce=reduce)
            else:  # an uneven last batch left this rank no rows
                loss, grads = xp.zeros((), dtype=params.dtype, device=be.device), xp.zeros_like(params)
            grads = comm.allreduce(grads, be)
            params, state = opt.update(params, grads, state, lr)
            if stats is not None:
                state["stats"] = stats
            return params, state, loss

        return step

    def _copy(self, params: Any, state: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """A device copy of ``params`` and of the arrays of ``state`` (one per epoch)."""
        xp = self.backend.xp
        return (xp.asarray(params, copy=True),
                {k: xp.asarray(v, copy=True) if hasattr(v, "shape") else v for k, v in state.items()})

    def _epoch(self, step: Callable[..., Any], loader: Any, epoch: int, lr: float) -> float:
        """One pass over ``loader``; returns the epoch's mean loss (one copy to the host).
        ``self.params`` and ``self.state`` follow every step, so they are current even
        when a step raises (JAX donates the buffers a step was given)."""
        mlp, opt, l1, l2, dtype = self.mlp, self.optimizer, self.l1, self.l2, self.backend.dtype
        params, state, total = self.params, self.state, None
        assert state is not None  # set by _run (None only once it has raised)
        on_batch, n_batches, augment = self.on_batch, len(loader), self.augment
        # with ranks: where each rank's slice starts in the global minibatch (its noise)
        firsts = (None if self.comm is None else
                  [local[0] - whole[0] for whole, local in zip(loader.bounds, loader.local_bounds)])
        for done, (Xb, yb, *wb) in enumerate(loader.epoch(epoch), 1):
            extra = {} if firsts is None else {"first_row": firsts[done - 1]}
            if augment is not None:
                Xb = augment(Xb, int(state["t"]), **extra)
            Yb = mlp.one_hot(yb, dtype)
            if wb:
                extra["sample_weight"] = wb[0]
            params, state, loss = step(params, opt, state, Xb, Yb, lr, l1, l2, **extra)
            self.params, self.state = params, state
            total = loss if total is None else total + loss
            if on_batch is not None:
                on_batch(done, n_batches)
        if self.comm is not None:
            value = self.comm.allreduce_scalar(self.backend.to_float(total))
            if l1 or l2:
                value += len(loader) * self.backend.to_float(mlp.penalty(params, l1, l2))
            return value / _total_weight(loader)
        if l1 or l2:
            total = total + len(loader) * mlp.penalty(params, l1, l2)
        return self.backend.to_float(total) / _total_weight(loader)

    @contextlib.contextmanager
    def memory_errors(self, n_samples: int, batches: str) -> Iterator[None]:
        """Turn any library's out-of-memory error raised inside the block (uploading
        the data, training) into a :class:`DeviceMemoryError` that names the backend,
        the batches (``batches``, e.g. ``"batch_size=128"``), the memory in use and
        the fix."""
        try:
            yield
        except DeviceMemoryError:
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            be = self.backend
            used = be.memory_in_use()
            used_text = "unknown" if used is None else f"{used / 2**20:.0f} MiB"
            raise DeviceMemoryError(
                f"{be.name} on {be.device_name} ran out of memory training with {batches} on "
                f"{n_samples} samples (device memory in use: {used_text}); use a smaller "
                "batch_size (or more n_batches), a smaller network, or stream the data "
                f"with arraynn.DataLoader(stream=True). [{type(exc).__name__}: {exc}]"
            ) from exc


def _total_weight(loader: Any) -> float:
    """What an epoch's summed loss is divided by: the loader's sum of sample weights, or
    its number of samples."""
    return float(getattr(loader, "total_weight", loader.n_samples))
