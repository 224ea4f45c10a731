"""The generator's compiled programs, one per (G2Config, static settings): what every stage above calls instead of
jitting the network functions itself.

One convention: `<name>_program(cfg, *statics)` is `functools.lru_cache`d and returns `jax.jit` of a function of
arrays only (params first). The hashable, frozen cfg (with its `numerics`) and the Python-valued settings are the
cache key and static in the trace, so another precision or conv algorithm compiles another program, and the same
ones reuse it; params and batches are arguments, so new weights never recompile.

    mapping_program(cfg, psi)   (params, z [N, z_dim]) -> w [N, w_dim]
    styles_program(cfg)         (params, w [N, w_dim]) -> styles: list of [N, dim_l]
    split_program(cfg)          flat styles [N, S] -> list of [N, dim_l], placed like the input
    synth_program(cfg)          (params, styles) -> images [N, R, R, C] (noise const)
    generate_program(cfg, psi)  (params, z [N, z_dim]) -> (w, styles, images) (noise const)
"""
from __future__ import annotations

import functools

import jax

from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace


@functools.lru_cache(maxsize=None)
def mapping_program(cfg: G2Config, truncation_psi: float = 1.0):
    return jax.jit(lambda params, z: network.mapping(params, cfg, z, truncation_psi))


@functools.lru_cache(maxsize=None)
def styles_program(cfg: G2Config):
    return jax.jit(lambda params, w: network.styles_from_w(params, cfg, w))


@functools.lru_cache(maxsize=None)
def split_program(cfg: G2Config):
    """Jitted, so the slices stay placed like the input (eager slices of a sharded array would not be)."""
    return jax.jit(StyleSpace.of(cfg).split)


@functools.lru_cache(maxsize=None)
def synth_program(cfg: G2Config):
    return jax.jit(lambda params, styles: network.synthesize(params, cfg, styles))


@functools.lru_cache(maxsize=None)
def generate_program(cfg: G2Config, truncation_psi: float = 1.0):
    return jax.jit(lambda params, z: network.generate(params, cfg, z, truncation_psi))
