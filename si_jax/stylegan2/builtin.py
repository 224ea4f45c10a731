"""Generators that ship with si_jax, named `builtin:<name>` wherever a weights path is accepted.

- `builtin:demo`: a randomly initialised 32x32 StyleGAN2 (same code path as real weights), deterministic from its
  seed: no weights can be downloaded here, so the fast tests bring their own.
- `builtin:toyfaces`: a 32x32 StyleGAN2 trained by si_jax on the procedural toyfaces world (si_jax.world), shipped
  as package data (si_jax/data/toyfaces_G.safetensors; TRAINING.md has its command and quality numbers).
"""
from __future__ import annotations

import pathlib

from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.params import random_canonical

BUILTIN_DEMO = "builtin:demo"
BUILTIN_TOYFACES = "builtin:toyfaces"
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
SHIPPED = {BUILTIN_TOYFACES: DATA / "toyfaces_G.safetensors"}

DEMO_CONFIG = G2Config.make(img_resolution=32, channel_base=1024, channel_max=64, z_dim=64, w_dim=64,
                            mapping_layers=4, source_format="si_jax-demo")


def demo_generator(seed: int = 0) -> tuple:
    """(canonical weights, G2Config) of the built-in demo generator; identical for the same seed."""
    return random_canonical(DEMO_CONFIG, seed=seed), DEMO_CONFIG


def shipped_file(name: str) -> pathlib.Path:
    """'builtin:<name>' of a shipped generator -> its .safetensors path; ValueError naming the known ones."""
    if name not in SHIPPED:
        known = ", ".join([BUILTIN_DEMO, *SHIPPED])
        raise ValueError(f"unknown built-in generator {name!r} (known: {known})")
    if not SHIPPED[name].is_file():
        raise FileNotFoundError(f"{name}: the package data file {SHIPPED[name]} is missing (reinstall si_jax)")
    return SHIPPED[name]
