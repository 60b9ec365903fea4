"""Per-feature mean and std of a 2-D float array, accurate on every backend.

Written against the Python Array API standard: the arrays stay in their
namespace, dtype and device. Means and variances are computed in the input's
dtype with a pairwise (cascade) summation over the samples and the corrected
two-pass formula, so float32 statistics of 60000 samples are accurate to a few
float32 ulps whatever the library's own reduction order. NaNs propagate.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

__all__ = ["mean_std", "safe_scale"]


def _sum_rows(A: Any, xp: Any) -> Any:
    """Sum a 2-D array over axis 0 with pairwise (O(log n) error) summation.

    Libraries differ in how they reduce over a non-contiguous axis (NumPy adds
    the rows one after the other, which loses ~n ulps); halving the array
    repeatedly gives the same accurate result on every backend.
    """
    leftovers = []
    while A.shape[0] > 8:
        n = A.shape[0]
        h = n // 2
        if n % 2:
            leftovers.append(A[h : h + 1, ...])
        A = A[:h, ...] + A[n - h :, ...]
    total = xp.sum(A, axis=0)
    if leftovers:
        # Add the odd rows smallest first (each holds fewer samples than the next).
        extra = leftovers[0]
        for row in leftovers[1:]:
            extra = extra + row
        total = total + extra[0, ...]
    return total


#: Rows per block are chosen so that a block holds about this many elements:
#: the temporaries of one block stay small (16 MiB in float32) and are reused.
_BLOCK_ELEMENTS = 1 << 22


def _row_blocks(X: Any) -> list[Any]:
    n, f = X.shape
    rows = max(1, _BLOCK_ELEMENTS // max(int(f), 1))
    return [X[i : min(i + rows, int(n)), ...] for i in range(0, int(n), rows)]


def _combine(partials: list[Any], xp: Any) -> Any:
    """Pairwise sum of per-block column sums."""
    if len(partials) == 1:
        return partials[0]
    return _sum_rows(xp.stack(partials, axis=0), xp)


def mean_std(X: Any, xp: Any) -> tuple[Any, Any]:
    """Per-feature mean and population std of a 2-D float array, in its dtype.

    Two passes over blocks of rows, each summed pairwise: the first gives the
    mean, the second the sums of the deviations ``d`` and of ``d**2``, combined
    by the corrected two-pass formula ``(sum(d**2) - sum(d)**2 / n) / n``, whose
    second term cancels the rounding error of the mean. A constant feature gets its
    value as the mean, exactly, and std 0 (a summed mean can be an ulp off, which
    would leave ``X - mean`` at 1e-16 instead of 0 on some libraries).
    """
    dev = array_api_compat.device(X)
    n = xp.asarray(X.shape[0], dtype=X.dtype, device=dev)
    blocks = _row_blocks(X)
    mean = _combine([_sum_rows(B, xp) for B in blocks], xp) / n
    first = X[0, ...]
    mean = xp.where(xp.max(X, axis=0) == xp.min(X, axis=0), first, mean)
    s1_parts, s2_parts = [], []
    for B in blocks:
        D = B - mean
        s1_parts.append(_sum_rows(D, xp))
        s2_parts.append(_sum_rows(D * D, xp))
    s1 = _combine(s1_parts, xp)
    s2 = _combine(s2_parts, xp)
    var = (s2 - s1 * s1 / n) / n
    zero = xp.asarray(0, dtype=X.dtype, device=dev)
    return mean, xp.sqrt(xp.where(var > zero, var, zero))


def safe_scale(std: Any, xp: Any) -> Any:
    """``std`` with 1 where a feature is constant (std 0, see :func:`mean_std`), as
    scikit-learn does."""
    one = xp.asarray(1, dtype=std.dtype, device=array_api_compat.device(std))
    return xp.where(std == 0, one, std)
