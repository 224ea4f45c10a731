"""What a training run carries from step to step: its static `TrainConfig`, the `TrainState` pytree, the optimizers.

G's trainable params are the folded pytree of `si_jax.stylegan2.params.to_jax_params` WITHOUT 'mapping.w_avg':
w_avg is a running statistic (STYLE.md), kept in `TrainState.w_avg` and put back only to export or sample
(`with_w_avg`). noise_const stays in the pytree with gain 0 (a fixed buffer: Adam never moves it).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from si_jax.stylegan2 import params as params_lib
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.discriminator import DConfig, init_discriminator


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter the step function reads (frozen and hashable: a jit static argument).

    NVlabs defaults (stylegan2-ada-pytorch, cfg 'auto'): Adam lr 0.0025, betas (0, 0.99), eps 1e-8 for G and D;
    R1 every `d_reg_interval` = 16 D steps, path length every `g_reg_interval` = 4 G steps (weight 2, decay 0.01,
    batch shrink 2); style mixing 0.9; G_ema half-life `ema_kimg` with ramp-up `ema_rampup`. `r1_gamma` has no
    default here: the NVlabs heuristic is `auto_gamma(res, batch)`.
    """

    g: G2Config
    d: DConfig
    batch: int
    r1_gamma: float
    ema_kimg: float
    seed: int = 0
    lr: float = 0.0025
    betas: tuple = (0.0, 0.99)
    eps: float = 1e-8
    pl_weight: float = 2.0
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing_prob: float = 0.9
    g_reg_interval: int = 4
    d_reg_interval: int = 16
    ema_rampup: float | None = 0.05

    @property
    def g_lazy_ratio(self) -> float:
        """NVlabs mb_ratio k/(k+1) of G (1 when the path-length regulariser is off)."""
        k = self.g_reg_interval
        return k / (k + 1) if self.pl_weight > 0 else 1.0

    @property
    def d_lazy_ratio(self) -> float:
        k = self.d_reg_interval
        return k / (k + 1) if self.r1_gamma > 0 else 1.0

    def reg_flags(self, step: int) -> tuple:
        """(do_pl, do_r1) of iteration `step` (NVlabs: a phase runs when step % interval == 0)."""
        return (self.pl_weight > 0 and step % self.g_reg_interval == 0,
                self.r1_gamma > 0 and step % self.d_reg_interval == 0)


def auto_gamma(resolution: int, batch: int) -> float:
    """NVlabs 'auto' R1 weight: 0.0002 · res² / batch (0.0064 at 32 px, batch 32)."""
    return 0.0002 * resolution**2 / batch


def auto_ema_kimg(batch: int) -> float:
    """NVlabs 'auto' G_ema half-life in kimg: batch · 10 / 32."""
    return batch * 10 / 32


class TrainState(NamedTuple):
    """Everything that evolves during training (all arrays; checkpointed as one safetensors file).

    g, g_ema: G params pytree without mapping.w_avg; d: D params (`init_discriminator`);
    g_opt, d_opt: optax states; pl_mean: [] running path length; w_avg: [w_dim] running mean of w (G's and
    G_ema's, as NVlabs copies buffers into G_ema); step: [] int32, iterations done (= images seen / batch).
    """

    g: dict
    d: dict
    g_ema: dict
    g_opt: optax.OptState
    d_opt: optax.OptState
    pl_mean: jax.Array
    w_avg: jax.Array
    step: jax.Array


def init_canonical(cfg: G2Config, seed: int) -> dict:
    """A generator at NVlabs initialisation, canonical form: stored weights N(0, 1) (mapping: N(0, 1)/lr_mul),
    biases 0, affine biases 1, const and noise_const N(0, 1), noise strengths 0, w_avg 0."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
    out, dim_in, lr = {}, cfg.z_dim, np.float32(cfg.mapping_lr_multiplier)
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"] = normal(cfg.w_dim, dim_in) / lr
        out[f"mapping.fc{i}.bias"] = np.zeros(cfg.w_dim, np.float32)
        dim_in = cfg.w_dim
    out["mapping.w_avg"] = np.zeros(cfg.w_dim, np.float32)
    out["synthesis.b4.const"] = normal(cfg.channel_dict[4], 4, 4)
    for spec in cfg.layers:
        p, k = f"synthesis.{spec.name}", 3 if spec.kind == "conv" else 1
        out[f"{p}.weight"] = normal(spec.out_ch, spec.in_ch, k, k)
        out[f"{p}.bias"] = np.zeros(spec.out_ch, np.float32)
        out[f"{p}.affine.weight"] = normal(spec.dim, cfg.w_dim)
        out[f"{p}.affine.bias"] = np.ones(spec.dim, np.float32)
        if spec.kind == "conv":
            out[f"{p}.noise_const"] = normal(spec.res, spec.res)
            out[f"{p}.noise_strength"] = np.zeros((), np.float32)
    return out


def split_w_avg(params: dict) -> tuple:
    """Full G params pytree -> (trainable pytree without mapping.w_avg, w_avg)."""
    mapping = dict(params["mapping"])
    w_avg = mapping.pop("w_avg")
    return {**params, "mapping": mapping}, w_avg


def with_w_avg(params: dict, w_avg) -> dict:
    """Inverse of `split_w_avg`: the full pytree that `si_jax.stylegan2.network` and `from_jax_params` take."""
    return {**params, "mapping": {**params["mapping"], "w_avg": w_avg}}


def scale_by_tree(scales) -> optax.GradientTransformation:
    """Multiply each leaf of the updates by the matching leaf (a number) of `scales` (stateless)."""
    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, s: u * s, updates, scales), state

    return optax.GradientTransformation(init, update)


def _adam(tc: TrainConfig, ratio: float, scales=None) -> optax.GradientTransformation:
    """NVlabs Adam with the lazy-regularisation correction: lr·c, betas**c, c = k/(k+1) (`ratio`).

    With `scales` (per-leaf equalized-lr gains g) the chain is g·Adam(g·grad): NVlabs' Adam on the stored
    weights, expressed on the folded pytree (derivation: `si_jax.stylegan2.params.equalized_lr_scales`).
    """
    b1, b2 = (b**ratio for b in tc.betas)
    adam = [optax.scale_by_adam(b1=b1, b2=b2, eps=tc.eps), optax.scale(-tc.lr * ratio)]
    return optax.chain(scale_by_tree(scales), *adam, scale_by_tree(scales)) if scales is not None else \
        optax.chain(*adam)


def g_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    scales, _ = split_w_avg(params_lib.equalized_lr_scales(tc.g))
    return _adam(tc, tc.g_lazy_ratio, scales)


def d_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    """D applies its equalized-lr gains at run time (stored weights), so its Adam is plain."""
    return _adam(tc, tc.d_lazy_ratio)


def init_state(tc: TrainConfig) -> TrainState:
    """Step-0 state from `tc.seed`: NVlabs init of G (`init_canonical`) and D, G_ema = G, w_avg = 0, pl_mean = 0."""
    g, w_avg = split_w_avg(params_lib.to_jax_params(init_canonical(tc.g, tc.seed), tc.g))
    d = init_discriminator(jax.random.fold_in(jax.random.PRNGKey(tc.seed), 1_000_003), tc.d)
    return TrainState(g=g, d=d, g_ema=jax.tree.map(jnp.copy, g), g_opt=g_optimizer(tc).init(g),
                      d_opt=d_optimizer(tc).init(d), pl_mean=jnp.zeros((), jnp.float32), w_avg=w_avg,
                      step=jnp.zeros((), jnp.int32))


def ema_beta(tc: TrainConfig, step) -> jax.Array:
    """NVlabs G_ema decay after iteration `step`: 0.5 ** (batch / ema_nimg), ema_nimg = min(ema_kimg·1000,
    cur_nimg·rampup) with cur_nimg = step·batch the images seen BEFORE this iteration (so step 0 copies G)."""
    ema_nimg = jnp.float32(tc.ema_kimg * 1000)
    if tc.ema_rampup is not None:
        ema_nimg = jnp.minimum(ema_nimg, jnp.asarray(step, jnp.float32) * tc.batch * tc.ema_rampup)
    return jnp.float32(0.5) ** (tc.batch / jnp.maximum(ema_nimg, 1e-8))
