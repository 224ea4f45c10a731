"""The synthetic attribute of the demo and the tests, for the built-in random generator (stylegan2.builtin).

No labelled weights can be downloaded here, so the demo defines its own attribute: the mean of one colour channel
inside a box. Its labels come from the sampled images, and the box is the attribute's mask, so an ideal edit
changes pixels inside the box only.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class RegionAttribute:
    """score(img) = mean of channel `channel` over the half-open pixel box [y0:y1, x0:x1]."""

    x0: int = 4
    y0: int = 4
    x1: int = 16
    y1: int = 16
    channel: int = 0
    name: str = "red_top_left"

    def score(self, images) -> np.ndarray:
        """images: [N, H, W, C] -> [N]."""
        images = np.asarray(images)
        return images[:, self.y0:self.y1, self.x0:self.x1, self.channel].mean(axis=(1, 2))

    def mask(self, n: int, height: int, width: int) -> np.ndarray:
        """[N, H, W] float32, 1 inside the box."""
        m = np.zeros((n, height, width), np.float32)
        m[:, self.y0:self.y1, self.x0:self.x1] = 1.0
        return m

    def labels(self, images) -> np.ndarray:
        """[N] bool: score above the median of the batch (balanced classes)."""
        s = self.score(images)
        return s > np.median(s)

    @property
    def box_spec(self) -> str:
        return f"box:{self.x0},{self.y0},{self.x1},{self.y1}"
