"""The three code spaces a projection can land in, and how each becomes styles.

    'w'      one w [w_dim] fed to every style layer (NVlabs' projector)
    'wplus'  one w per synthesis input, ws [num_ws, w_dim] (W+)
    's'      the flat style vector s [S] itself (StyleSpace), optimised in units of each channel's spread

Codes carry no z: the editing methods work on their styles (si_jax.editing.pipeline.prepare_from_codes), with
the W-space direction's step computed from `reference_w`, the least-squares w of the code's styles.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.stylegan2 import network, programs
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace

SPACES = ("w", "wplus", "s")
SPACE_NAMES = {"w": "W", "wplus": "W+", "s": "S"}
STATS_SAMPLES, STATS_SEED = 10000, 123456


class CodeStats(NamedTuple):
    """Where codes start and how far they spread. w_avg [w_dim] (the generator's tracked mean), w_std [] (RMS
    distance of sampled w from w_avg, per coordinate), s_avg [S] (styles of w_avg), s_std [S] (per-channel std
    of sampled styles)."""

    w_avg: jax.Array
    w_std: jax.Array
    s_avg: jax.Array
    s_std: jax.Array


def code_stats(params, cfg: G2Config, num: int = STATS_SAMPLES, seed: int = STATS_SEED) -> CodeStats:
    """CodeStats from `num` samples z ~ N(0, I) (jax.random with `seed`: a function of the weights only)."""
    z = jax.random.normal(jax.random.PRNGKey(seed), (num, cfg.z_dim))
    w = programs.mapping_program(cfg)(params, z)
    styles = StyleSpace.of(cfg).concat(network.styles_from_w(params, cfg, w))
    w_avg = jnp.asarray(params["mapping"]["w_avg"], jnp.float32)
    w_std = jnp.sqrt(jnp.mean(jnp.square(w - w_avg)))
    s_avg = StyleSpace.of(cfg).concat(network.styles_from_w(params, cfg, w_avg[None]))[0]
    return CodeStats(w_avg, w_std, s_avg, jnp.maximum(jnp.std(styles, axis=0), 1e-8))


def code_shape(cfg: G2Config, space: str) -> tuple:
    """Shape of one image's code: (w_dim,), (num_ws, w_dim) or (S,)."""
    return {"w": (cfg.w_dim,), "wplus": (cfg.num_ws, cfg.w_dim), "s": (cfg.style_dim,)}[check_space(space)]


def check_space(space: str) -> str:
    if space not in SPACES:
        raise ValueError(f"code space must be one of {', '.join(SPACES)}, got {space!r}")
    return space


def styles_of_codes(params, cfg: G2Config, codes, space: str) -> list:
    """codes [N, *code_shape] -> styles, list over layers of [N, dim_l]."""
    codes = jnp.asarray(codes, jnp.float32)
    if check_space(space) == "s":
        return StyleSpace.of(cfg).split(codes)
    return network.styles_from_w(params, cfg, codes)


def flat_styles_of_codes(params, cfg: G2Config, codes, space: str) -> np.ndarray:
    """codes [N, *code_shape] -> flat styles [N, S] float32 (numpy)."""
    return np.asarray(StyleSpace.of(cfg).concat(styles_of_codes(params, cfg, codes, space)), np.float32)


def reference_w(params, cfg: G2Config, styles_flat) -> np.ndarray:
    """The least-squares pre-image of flat styles under the affine layers: argmin_w Σ_l ‖w A_l + b_l − s_l‖².

    styles_flat: [N, S] -> [N, w_dim] float32. Exact (to round-off) for styles of a W code; for W+ and S codes
    it is the single w whose styles are closest, the point where W-space distances are measured."""
    a = np.concatenate([np.asarray(lp["affine_w"], np.float64) for lp in params["layers"]], axis=1)   # [w_dim, S]
    b = np.concatenate([np.asarray(lp["affine_b"], np.float64) for lp in params["layers"]])          # [S]
    rhs = np.asarray(styles_flat, np.float64) - b
    sol, *_ = np.linalg.lstsq(a.T, rhs.T, rcond=None)
    return sol.T.astype(np.float32)
