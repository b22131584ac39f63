"""Pooling shared by the int8 embedder and the export check that validates it (kept apart so
neither module needs the other)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from almanac.core.embedding.embedding import Vectors


def mean_pool_normalized(states: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> Vectors:
    """sentence-transformers' Pooling(mean) + Normalize: the average of the real tokens' states
    (padding excluded), scaled to unit length, with the same guards against division by zero."""
    weights = mask.astype(np.float32)
    summed = np.einsum("btd,bt->bd", states, weights)
    pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return result
