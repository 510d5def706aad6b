"""Exact integer group sums over numpy arrays, without a Python loop per row.

``np.bincount`` sums in float64, exact only while every partial sum stays below 2**53; larger
values are split into 24-bit halves whose sums each stay exact, then recombined in int64.
Imports clearhouse.core only.
"""

from __future__ import annotations

import numpy as np

from clearhouse.core.errors import invariant

_SPLIT_BITS = 24
_EXACT_LIMIT = float(2**53)


def exact_bincount(keys: np.ndarray, values: np.ndarray, nbins: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per key in [0, nbins)."""
    if keys.size == 0:
        return np.zeros(nbins, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    bound = float(max(int(values.max()), -int(values.min()))) * keys.size
    if bound < _EXACT_LIMIT:
        return np.rint(np.bincount(keys, weights=values, minlength=nbins)).astype(np.int64)
    lo = values & ((1 << _SPLIT_BITS) - 1)
    hi = values >> _SPLIT_BITS
    invariant(
        (float(np.abs(hi).max()) + 1.0) * keys.size < _EXACT_LIMIT,
        "group sums exceed the exact range; split the work into smaller batches",
    )
    lo_sum = np.rint(np.bincount(keys, weights=lo, minlength=nbins)).astype(np.int64)
    hi_sum = np.rint(np.bincount(keys, weights=hi, minlength=nbins)).astype(np.int64)
    return (hi_sum << _SPLIT_BITS) + lo_sum
