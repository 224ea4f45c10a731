"""Edit displacements in style space: Δs_z (Z-space), Δs_w (W-space), Δs_n (S-space), and the baselines.

Directions are `si_jax.editing.directions.Direction`s: `normal` is a unit raw-space direction, `decision(codes)` the
classifier score, `score_gradient` its raw-space gradient g, so a step t·normal changes the score by t·‖g‖ and
`decision / ‖g‖` is the signed raw-space distance to the hyperplane.

Step length α (InterFaceGAN style), per image, from `target`:
  'flip'     : land at distance −sign(d)·t (cross to the other side by t: add the attribute where absent, remove it
               where present);  'positive' / 'negative': land at +t / −t;  a float: that fixed α for every image.
Scale of Δs_n (design notes: ../shared/DESIGN.md): Δs_n = β·n_s with β = (g_s·Δs_z)/‖g_s‖, so Δs_n moves the
S-space classifier score by exactly as much (and in the same direction) as Δs_z does. `s_scale=float` overrides β.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config

TARGETS = ("flip", "positive", "negative")


def _grad(direction) -> np.ndarray:
    return np.asarray(direction.score_gradient, np.float32)


def hyperplane_distance(direction, codes) -> np.ndarray:
    """codes: [N, D] -> signed raw-space distance to the classifier's hyperplane [N]."""
    return np.asarray(direction.decision(np.asarray(codes)), np.float32) / np.linalg.norm(_grad(direction))


def step_lengths(direction, codes, target="flip", distance: float = 3.0, along=None) -> np.ndarray:
    """α per image [N], see module docstring. codes: [N, D].

    along: the unit vector the edit actually moves along (default direction.normal); for another vector (the
    InterFaceGAN conditional normal) the distance gained per unit step is along·ĝ, and α is divided by it.
    """
    codes = np.asarray(codes, np.float32)
    if not isinstance(target, str):
        return np.full(codes.shape[0], float(target), np.float32)
    d = hyperplane_distance(direction, codes)
    goal = {"flip": -np.where(d >= 0, 1.0, -1.0) * distance, "positive": np.full_like(d, distance),
            "negative": np.full_like(d, -distance)}.get(target)
    if goal is None:
        raise ValueError(f"target must be one of {TARGETS} or a number, got {target!r}")
    rate = 1.0 if along is None else float(np.dot(along, direction.normal))
    if rate <= 1e-3:
        raise ValueError("the edit vector is (nearly) orthogonal to the classifier's normal: it cannot reach the "
                         "target distance")
    return ((goal - d) / rate).astype(np.float32)


def check_dim(direction, dim: int, space: str):
    if direction.normal.shape != (dim,):
        raise ValueError(f"{space}-space direction has dimension {direction.normal.shape[0]}, this generator's "
                         f"{space} space has {dim}: the direction was fitted for another generator")


def styles_of(params, cfg: G2Config, z, truncation_psi=1.0) -> list:
    """s = f(z): z [N, z_dim] -> list of [N, dim_l]."""
    return network.styles_from_w(params, cfg, network.mapping(params, cfg, jnp.asarray(z), truncation_psi))


def delta_s_z(params, cfg: G2Config, z, direction_z, alpha, truncation_psi=1.0) -> list:
    """Δs_z = f(z + α·n_z) − f(z). z: [N, z_dim], alpha: [N] -> list of [N, dim_l], placed like z (one jitted
    program: a z sharded over a mesh with params replicated on it stays sharded; alpha and n_z go straight there).
    """
    check_dim(direction_z, cfg.z_dim, "Z")
    return _delta_s_z(params, cfg, _codes(z), np.asarray(alpha, np.float32),
                      np.asarray(direction_z.normal, np.float32), float(truncation_psi))


def delta_s_w(params, cfg: G2Config, w, direction_w, alpha) -> list:
    """Δs_w = A(w + α·n_w) − A(w). w: [N, w_dim], alpha: [N] -> list of [N, dim_l], placed like w (as delta_s_z)."""
    check_dim(direction_w, cfg.w_dim, "W")
    return _delta_s_w(params, cfg, _codes(w), np.asarray(alpha, np.float32), np.asarray(direction_w.normal, np.float32))


def _codes(x):
    """A jax.Array keeps its placement; anything else becomes float32 numpy (placed by the jitted program)."""
    return x.astype(jnp.float32) if isinstance(x, jax.Array) else np.asarray(x, np.float32)


@functools.partial(jax.jit, static_argnums=(1, 5))
def _delta_s_z(params, cfg, z, alpha, normal, truncation_psi):
    z2 = z + alpha[:, None] * normal
    s1, s2 = styles_of(params, cfg, z, truncation_psi), styles_of(params, cfg, z2, truncation_psi)
    return [b - a for a, b in zip(s1, s2)]


@functools.partial(jax.jit, static_argnums=1)
def _delta_s_w(params, cfg, w, alpha, normal):
    w2 = w + alpha[:, None] * normal
    return [b - a for a, b in zip(network.styles_from_w(params, cfg, w), network.styles_from_w(params, cfg, w2))]


def matched_scale(direction_s, ds_ref_flat) -> np.ndarray:
    """β [N] such that β·n_s changes the S score as much as ds_ref does: β = (g_s·Δs_ref)/‖g_s‖."""
    g = _grad(direction_s)
    return (np.asarray(ds_ref_flat, np.float32) @ g / np.linalg.norm(g)).astype(np.float32)


def delta_s_n(direction_s, beta) -> np.ndarray:
    """Δs_n = β·n_s: beta [N] -> [N, S] (flat)."""
    return np.asarray(beta, np.float32)[:, None] * np.asarray(direction_s.normal, np.float32)[None]
