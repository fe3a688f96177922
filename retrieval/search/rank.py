"""Fusion's numeric parts: min-max normalisation of each retriever's scores, stored float16
vectors widened to float32, and BLAS held to one thread for one question's small products."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np


def minmax(x: np.ndarray) -> np.ndarray:
    """`x` scaled to 0..1 (all zeros when every value is the same)."""
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def widen(vecs: np.ndarray) -> np.ndarray:
    """Stored (float16) vectors as float32: numpy's own cast of each of the 65,536 float16
    values, looked up in a table, which is faster than the cast (docs/performance.md)."""
    if vecs.dtype != np.float16:
        return vecs.astype(np.float32)
    return float16_table().take(np.ascontiguousarray(vecs).view(np.uint16))


@lru_cache(maxsize=1)
def float16_table() -> np.ndarray:
    """Every float16 bit pattern's float32 value, as numpy casts it (256 kB). The table holds
    the signalling NaNs too, whose cast raises the CPU's invalid flag on ARM64: ignored."""
    with np.errstate(invalid="ignore"):
        return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(
            np.float32)


@lru_cache(maxsize=1)
def _blas() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> Any:
    """A context in which numpy's BLAS runs on the calling thread alone: one question's small
    products (late interaction, sentence scores) finish sooner than BLAS threads wake and
    synchronise, most of all on a busy 2-core machine (measured in docs/performance.md)."""
    return _blas().limit(limits=1, user_api="blas")
