"""A built-in deterministic generator and a synthetic attribute, for the demo and the tests.

No weights can be downloaded here, so the demo brings its own: a randomly initialised 32x32 StyleGAN2 (same code
path as real weights) and an attribute the project defines itself: the mean of one colour channel inside a box.
Its labels come from the sampled images, and the box is the attribute's mask, so an ideal edit changes pixels
inside the box only.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from si_jax.config import G2Config
from si_jax.params import random_canonical

DEMO_CONFIG = G2Config.make(img_resolution=32, channel_base=1024, channel_max=64, z_dim=64, w_dim=64,
                            mapping_layers=4, source_format="si_jax-demo")


def demo_generator(seed: int = 0) -> tuple:
    """(canonical weights, G2Config) of the built-in demo generator; identical for the same seed."""
    return random_canonical(DEMO_CONFIG, seed=seed), DEMO_CONFIG


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
