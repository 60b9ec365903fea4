"""Backends: which array library, on which device, in which dtype."""

from .base import *  # noqa: F403
from .base import __all__, _array_to_numpy, _dtype_name, is_out_of_memory  # noqa: F401
