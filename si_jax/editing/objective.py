"""The Style Intervention objective (paper Sec. 3.2, Eq. 8-11) and its hyper-parameters.

    Δs_m(Λ) = (1 − Λ)·Δs_z + Λ·Δs_n                                    (Eq. 8)
    L = ‖(1 − m)⊙(h(s + Δs_m) − h(s))‖₂ − λ_attr·cos(Δs_n, Δs_m) + λ_norm·‖Λ‖₂   (Eq. 9-11, objective 'paper')

The default objective 'keep_edit' measures the pixel terms as mean squared errors (the same meaning at every
resolution) and adds λ_inside · MSE_inside(h(s + Δs_m), h(s + Δs_z)): inside the mask the result should look like
the Z edit. Without it the optimum keeps the image by not editing (RESULTS.md: on the toyfaces world the paper's
objective loses 20-40 % of the Z edit's attribute flips on 5 of 6 attributes, as the independent judge sees them).

How the objective is minimised (Adam, layer by layer) is `editing.loops`; `editing.intervention.intervene` runs it.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from si_jax import metrics
from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config

PIXEL_LOSSES = ("l2", "mse")
OBJECTIVES = ("keep_edit", "paper")


@dataclasses.dataclass(frozen=True)
class InterventionConfig:
    """Hyper-parameters. λ_attr, λ_norm: paper Sec. 4.1. Steps, learning rate, pixel_loss ('l2': the paper's norm,
    'mse': mean squared error) and λ_inside (weight of the inside-mask term against the Z edit; 0 = the paper):
    chosen by measurement (README, RESULTS.md). PAPER_CONFIG is Eq. 11 exactly."""

    steps_per_layer: int = 15
    learning_rate: float = 0.3
    lambda_attr: float = 1e-2
    lambda_norm: float = 1e-6
    lambda_init: float = 0.5
    pixel_loss: str = "mse"
    lambda_inside: float = 1.0

    def __post_init__(self):
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {', '.join(PIXEL_LOSSES)}, got {self.pixel_loss!r}")
        for name in ("lambda_inside", "lambda_attr", "lambda_norm"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.steps_per_layer < 1:
            raise ValueError(f"steps_per_layer must be >= 1, got {self.steps_per_layer}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.lambda_init <= 1.0:
            raise ValueError(f"lambda_init must be in [0, 1], got {self.lambda_init}")


# The paper's Eq. 11 exactly: the outside-mask L2 norm, no inside term (`--objective=paper`).
PAPER_CONFIG = InterventionConfig(pixel_loss="l2", lambda_inside=0.0)


def config_for(objective: str, **fields) -> InterventionConfig:
    """'keep_edit' (si_jax's default: MSE outside + λ_inside · MSE inside against the Z edit) or 'paper' (Eq. 11:
    the outside L2 norm only; `lambda_inside` / `pixel_loss` in fields are then overridden), other fields as
    given."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "paper":
        fields = {**fields, "pixel_loss": PAPER_CONFIG.pixel_loss, "lambda_inside": PAPER_CONFIG.lambda_inside}
    return InterventionConfig(**fields)


class Hyper(NamedTuple):
    """The traced scalars of the objective and of Adam (a pytree of float32 scalars: new values never recompile).
    w_l2, w_mse: the pixel loss's weights, (1, 0) or (0, 1) (config.pixel_loss). warm_start: 1 when each layer's
    Adam starts from the Λ it holds (refining a given Λ), 0 when it starts from λ_init."""

    learning_rate: float
    lambda_attr: float
    lambda_norm: float
    lambda_init: float
    lambda_inside: float
    w_l2: float
    w_mse: float
    warm_start: float


def hyper_parameters(config: InterventionConfig, warm_start: bool = False) -> Hyper:
    """config as host numpy scalars: `intervene` places them once per call where the batch lives (jnp scalars
    would sit on device 0 and be copied from there on every program call of a sharded batch)."""
    w_l2, w_mse = (config.pixel_loss == k for k in PIXEL_LOSSES)
    return Hyper(*(np.float32(v) for v in (config.learning_rate, config.lambda_attr, config.lambda_norm,
                                           config.lambda_init, config.lambda_inside, w_l2, w_mse, warm_start)))


def mix(ds_z, ds_n, lam):
    """Eq. 8 for one layer or elementwise over lists: (1 − λ)·Δs_z + λ·Δs_n."""
    if isinstance(lam, (list, tuple)):
        return [mix(a, b, l) for a, b, l in zip(ds_z, ds_n, lam)]
    return (1.0 - lam) * ds_z + lam * ds_n


def _safe_norm(x, axis=None):
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=axis) + 1e-12)


def pixel_loss(img, ref, mask, hp: Hyper):
    """Per image [N]: the error of img against ref where mask is 0, w_l2·‖(1 − m)⊙(img − ref)‖₂ (the paper's Eq. 9;
    grows with the resolution) + w_mse·(mean squared error over those pixels; resolution-free). Both weights are
    arguments, so both objectives share one compiled program."""
    return hp.w_l2 * metrics.masked_l2(img, ref, mask) + hp.w_mse * metrics.outside_mask_mse(img, ref, mask)


def objective(params, cfg: G2Config, layer: int, lam_i, state, styles, ds_z, ds_n, lam, img0, img_z, mask,
              hp: Hyper):
    """Total loss of ONE image as a function of λ_i. All per-image arrays carry a leading batch of 1.

        L = L_pix(outside, vs h(s)) + λ_inside·L_pix(inside, vs h(s + Δs_z)) − λ_attr·cos + λ_norm·‖Λ‖₂

    λ_inside = 0 is the paper's Eq. 11. λ_inside > 0 keeps the Z edit's change inside the mask, so the optimum is
    "the Z edit inside, the input outside" rather than "no edit at all" (RESULTS.md measures both).
    lam_i: [dim_i]; state: SynthState before layer `layer`; styles, ds_z, ds_n, lam: lists of [1, dim_l];
    img0, img_z: [1, R, R, C] = h(s), h(s + Δs_z); mask: [1, R, R]. Returns (total, (pix, cos, image)).
    """
    lam = list(lam)
    lam[layer] = lam_i[None]
    dsm = mix(ds_z, ds_n, lam)
    edited = [s + d for s, d in zip(styles, dsm)]
    img = network.synthesize_from(params, cfg, state, edited, layer)
    pix = pixel_loss(img, img0, mask, hp)[0]
    inside = pixel_loss(img, img_z, 1.0 - mask, hp)[0]
    flat_m, flat_n = jnp.concatenate(dsm, -1)[0], jnp.concatenate(ds_n, -1)[0]
    cos = jnp.dot(flat_m, flat_n) / (_safe_norm(flat_m) * _safe_norm(flat_n))
    norm = _safe_norm(jnp.concatenate(lam, -1))
    total = pix + hp.lambda_inside * inside - hp.lambda_attr * cos + hp.lambda_norm * norm
    return total, (pix, cos, img)


def image_loss(params, cfg: G2Config, layer: int, data, hp: Hyper):
    """λ_layer -> (total loss, image [R, R, C]) of ONE image. data: (state, styles, ds_z, ds_n, lam, img0, img_z,
    mask) without batch axis (a batch of 1 is added for the generator)."""
    batched = jax.tree_util.tree_map(lambda a: a[None], tuple(data))

    def f(lam_i):
        total, (_, _, img) = objective(params, cfg, layer, lam_i, *batched, hp)
        return total, img[0]

    return f


def total_loss(params, cfg: G2Config, lam, styles, ds_z, ds_n, img0, img_z, mask, hp: Hyper):
    """(total loss, image [R, R, C]) of ONE image at the whole Λ (lam: list of [dim_l]); the other arrays as
    `image_loss`'s data, without batch axis."""
    data = (network.SynthState(params["const"], None), styles, ds_z, ds_n, lam, img0, img_z, mask)
    return image_loss(params, cfg, 0, data, hp)(lam[0])
