"""Weights file -> generator: the one entry point every binary and the API use to load a StyleGAN2.

    params, cfg = load_generator('ffhq.pkl')   # .safetensors, .pkl (NVlabs/TF), .pt, 'builtin:toyfaces'
"""
from __future__ import annotations

import pathlib

from si_jax.stylegan2 import builtin, params as params_lib
from si_jax.stylegan2.config import G2Config

BUILTIN_DEMO = builtin.BUILTIN_DEMO


def load_canonical(path) -> tuple:
    """Any supported weights file (.safetensors, NVlabs/TF .pkl, rosinality .pt) -> (canonical dict, G2Config).

    `builtin:demo` / `builtin:toyfaces` are the generators of `si_jax.stylegan2.builtin` (no file needed).
    Raises FileNotFoundError, or ValueError (weights_convert.WeightsFormatError) naming the problem.
    """
    if str(path) == BUILTIN_DEMO:
        return builtin.demo_generator()
    if str(path).startswith("builtin:"):
        path = builtin.shipped_file(str(path))
    import weights_convert

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    canonical, config = weights_convert.read_weights(path)
    return canonical, G2Config.from_dict(config)


def load_generator(path) -> tuple:
    """Weights file -> (params pytree, G2Config)."""
    canonical, cfg = load_canonical(path)
    return params_lib.to_jax_params(canonical, cfg), cfg
