"""Fixed-size batches: pad the last batch so that every call hits the same compiled program."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Padded:
    """A batch padded to a fixed size so that every call hits the same compiled program."""

    array: np.ndarray
    valid: int


def pad_batch(array: np.ndarray, size: int) -> Padded:
    """[n, ...] with n <= size -> [size, ...], the padding rows copies of the last row (finite, harmless)."""
    n = len(array)
    if n == size:
        return Padded(array, n)
    pad = np.repeat(array[-1:], size - n, axis=0)
    return Padded(np.concatenate([array, pad]), n)
