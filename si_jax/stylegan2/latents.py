"""The latent of each sample: one rule for every sample folder, edit run, demo and experiment.

    z = latents(seed=0, indices=range(8), z_dim=cfg.z_dim)     # [8, z_dim] float32

z[i] depends only on (seed, i): not on batch size, shard layout, device or host count, so any subset of samples
can be recomputed alone (bin/sample.py's folders record the rule as Z_RULE in their manifest).
"""
from __future__ import annotations

import numpy as np

Z_RULE = "z[i] = numpy.random.default_rng([seed, i]).standard_normal(z_dim).astype(float32)"


def latents(seed: int, indices, z_dim: int) -> np.ndarray:
    """The latents of samples `indices` ([n] ints >= 0) for `seed` (int >= 0) -> [n, z_dim] float32 (see Z_RULE)."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out = np.empty((len(indices), z_dim), np.float32)
    for row, i in enumerate(indices):
        out[row] = np.random.default_rng([int(seed), int(i)]).standard_normal(z_dim)
    return out
