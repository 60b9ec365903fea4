"""Freed arrays' memory kept for the next ones: glibc's malloc tuned for training loops.

A training step allocates and frees the same large temporaries every step (a
convolution's columns, the layers' outputs and gradients: about 100 MiB a step at
``--preset cnn``, batch 128). glibc's malloc gives a block above its *mmap threshold*
(128 KiB at first, raised up to 32 MiB as it sees such blocks freed) pages of its own,
returned to the kernel when the block is freed, and hands the top of its heap back when
more than twice that threshold lies free there. Either way the next step's arrays are
new pages: a page fault each, and the kernel zeroes every page first. At ``--preset
cnn`` that was 1,300 to 3,400 page faults a step, and about a sixth of the step's time
on 2 vCPUs of an AMD EPYC (Zen 4): 61-64 against 50-51 ms a step in alternating runs
(``torch.nn``'s step of the same network faulted 5,500 times, 79 against 55 ms).

:func:`reuse_freed_memory` sets glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``
(``mallopt``) so that blocks up to :data:`MMAP_THRESHOLD` come from the heap and up to
:data:`TRIM_THRESHOLD` of freed heap stays with the process: after the first step, a
step's arrays reuse the last step's memory, and no page faults. The process's peak
memory is the same (a step needs its arrays either way); what changes is that the
memory is not handed back between steps, nor after training. ``python -m
arraynn.train`` calls it when it starts; a program that trains through the library
may call it too. The settings are the process's, for good.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "reuse_freed_memory"]

#: Blocks up to this size come from the heap (larger ones, such as a whole dataset, still
#: get pages of their own, which go back to the kernel when freed).
MMAP_THRESHOLD = 256 << 20
#: Up to this much freed memory at the top of the heap stays with the process.
TRIM_THRESHOLD = 1 << 30

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def reuse_freed_memory() -> bool:
    """Keep the memory of freed arrays in this process for the next ones (glibc only).

    Sets glibc's mmap threshold to :data:`MMAP_THRESHOLD` and its trim threshold to
    :data:`TRIM_THRESHOLD` (see the module docstring for why a training loop wants it).
    Returns whether it did: not where the C library is not glibc (macOS, Windows, musl),
    not where the environment sets ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_`` (glibc's own variables: that choice is kept), and not
    with ``ARRAYNN_MALLOC=default``.
    """
    if os.environ.get("ARRAYNN_MALLOC", "").strip().lower() == "default":
        return False
    if any(name in os.environ for name in _ENV) or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
