"""The network, its parameter layout, initializers, optimizers and the epoch loop.

Array API code only: nothing here names an array library (initial weights are drawn
on the host with NumPy's generator; the per-step noise, dropout masks and shifted
images, is made on the device by the counter-based generator of :mod:`.random`).
"""

from .initializers import INITIALIZERS, draw_weights
from .loop import EpochRecord, Trainer, TrainingDivergedError
from .mlp import MLP, ParamLayout, dropout_rates
from .optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    SGD,
    Adam,
    Momentum,
    learning_rate_at,
    make_optimizer,
)
from .sequential import Sequential
from .stopping import Plateau, validation_split

__all__ = ["INITIALIZERS", "OPTIMIZERS", "SCHEDULES", "SGD", "Adam", "EpochRecord", "MLP",
           "Momentum", "ParamLayout", "Plateau", "Sequential", "Trainer", "TrainingDivergedError",
           "draw_weights", "dropout_rates", "learning_rate_at", "make_optimizer", "validation_split"]
