"""Generators that ship with si_jax, named `builtin:<name>` wherever a weights path is accepted.

`builtin:demo` is a randomly initialised 32x32 StyleGAN2 (same code path as real weights), deterministic from its
seed: no weights can be downloaded here, so the demo and the fast tests bring their own.
"""
from __future__ import annotations

from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.params import random_canonical

BUILTIN_DEMO = "builtin:demo"

DEMO_CONFIG = G2Config.make(img_resolution=32, channel_base=1024, channel_max=64, z_dim=64, w_dim=64,
                            mapping_layers=4, source_format="si_jax-demo")


def demo_generator(seed: int = 0) -> tuple:
    """(canonical weights, G2Config) of the built-in demo generator; identical for the same seed."""
    return random_canonical(DEMO_CONFIG, seed=seed), DEMO_CONFIG
