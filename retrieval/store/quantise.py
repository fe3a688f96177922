"""int8 quantisation of vectors, one float32 scale per row."""

from __future__ import annotations

import numpy as np


def quantise(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes of the rows of `x` and one float32 scale per row (row = codes × scale)."""
    x = np.asarray(x, np.float32).reshape(-1, dim)
    scales = (np.maximum(np.abs(x).max(axis=1), 1e-12) / 127 if len(x)
              else np.empty(0, np.float32)).astype(np.float32)
    return np.rint(x / scales[:, None]).astype(np.int8), scales
