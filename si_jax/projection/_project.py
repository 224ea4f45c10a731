"""Projection: find the code whose image reproduces a target, per image, batched with vmap.

For one image and one code space (`_codes.SPACES`), starting at w_avg (its styles, for S):
    for step in range(num_steps):
        code_noisy = code + σ_space · noise(step) · ε            (decaying exploration noise, `_schedule`)
        loss = image_loss(G(code_noisy, noise buffers), target) + noise_reg · Σ autocorrelation(buffers)
        Adam step on (code, buffers) with the ramped learning rate;  buffers renormalised to mean 0, std 1
σ_space is w_std for W / W+; S is optimised in units of each channel's std (s = s_std · u), so one learning rate
serves every space. noise='const' holds the generator's own noise buffers (the codes then edit exactly as they
project); noise='optimize' starts per-image buffers from N(0, 1) (key from the image) and optimises them too.

Every image's randomness comes from its own key (`image_keys(seed, indices)`), so a batch gives the per-image
results (vmap), whatever the batch size, shard layout or device count.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from si_jax.projection import _codes, _losses, _schedule
from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace

NOISE_MODES = ("const", "optimize")


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """The projector's settings (hashable: the jit static argument). Defaults: NVlabs' schedule, fewer steps."""

    num_steps: int = 300
    learning_rate: float = 0.1
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    code_noise: float = 0.05
    code_noise_ramp: float = 0.75
    noise: str = "const"            # 'const' | 'optimize'
    noise_reg: float = 1e5
    lambda_pixel: float = 1.0
    lambda_multiscale: float = 1.0
    lambda_vgg: float = 0.0
    lambda_judge: float = 0.0


class Projection(NamedTuple):
    """One image's (or, batched, N images') result. code: [*code_shape]; image: [R, R, 3] reconstruction;
    loss / pixel_mse: [num_steps] curves (of the noisy code during optimisation); final_mse: [] of `image`;
    noise: list of [R_l, R_l] buffers, one per conv layer (the generator's own with noise='const')."""

    code: jax.Array
    image: jax.Array
    loss: jax.Array
    pixel_mse: jax.Array
    final_mse: jax.Array
    noise: list


def image_keys(seed: int, indices) -> jax.Array:
    """[N] image indices -> [N, 2] PRNG keys, a function of (seed, index) only."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(indices, jnp.uint32))


def with_noise(params, cfg: G2Config, buffers) -> dict:
    """params with each conv layer's noise_const replaced by `buffers` (list over cfg.conv_layers of [R, R])."""
    layers = list(params["layers"])
    it = iter(buffers)
    for i, spec in enumerate(cfg.layers):
        if spec.kind == "conv" and "noise_const" in layers[i]:
            layers[i] = {**layers[i], "noise_const": next(it)}
    return {**params, "layers": layers}


def _own_noise(params, cfg: G2Config) -> list:
    return [lp["noise_const"] for spec, lp in zip(cfg.layers, params["layers"])
            if spec.kind == "conv" and "noise_const" in lp]


def _init(params, cfg: G2Config, stats: _codes.CodeStats, space: str):
    """-> (initial optimisation variable u, scale σ with code = σ·u (S) or u (W, W+), noise scale of u)."""
    if space == "w":
        return stats.w_avg, None, stats.w_std
    if space == "wplus":
        return jnp.broadcast_to(stats.w_avg, (cfg.num_ws, cfg.w_dim)), None, stats.w_std
    return stats.s_avg / stats.s_std, stats.s_std, jnp.float32(1.0)


def project_one(params, cfg: G2Config, stats: _codes.CodeStats, aux: dict, target, key, space: str,
                pc: ProjectConfig) -> Projection:
    """Project one target [R, R, 3] (raw range) into `space` (module docstring). key: [2] PRNG key."""
    u0, scale, sigma = _init(params, cfg, stats, space)
    to_code = (lambda u: u) if scale is None else (lambda u: u * scale)
    space_layout = StyleSpace.of(cfg)
    target = target[None]

    def render(code, buffers):
        p = params if buffers is None else with_noise(params, cfg, buffers)
        styles = (space_layout.split(code[None]) if space == "s" else network.styles_from_w(p, cfg, code[None]))
        return network.synthesize(p, cfg, styles)

    def objective(var, eps):
        u, buffers = var
        img = render(to_code(u + eps), buffers)
        loss, mse = _losses.image_loss(img, target, pc, aux)
        if buffers is not None:
            loss += pc.noise_reg * _losses.noise_regularizer(buffers)
        return loss, mse

    if pc.noise == "optimize":
        shapes = [(s.res, s.res) for s in cfg.layers if s.kind == "conv"]
        buffers0 = [jax.random.normal(jax.random.fold_in(key, 1 << 20 | k), sh) for k, sh in enumerate(shapes)]
    else:
        buffers0 = None
    opt = optax.adam(_schedule.learning_rate_schedule(pc.num_steps, pc.learning_rate, pc.lr_rampup,
                                                      pc.lr_rampdown))
    var0 = (u0, buffers0)
    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(carry, t):
        var, state = carry
        eps = sigma * _schedule.code_noise_scale(t, pc.num_steps, pc.code_noise, pc.code_noise_ramp) * \
            jax.random.normal(jax.random.fold_in(key, t), u0.shape)
        (loss, mse), grads = grad_fn(var, eps)
        updates, state = opt.update(grads, state, var)
        u, buffers = optax.apply_updates(var, updates)
        if buffers is not None:
            buffers = _losses.normalize_noise(buffers)
        return ((u, buffers), state), (loss, mse)

    ((u, buffers), _), (loss, mse) = jax.lax.scan(step, (var0, opt.init(var0)), jnp.arange(pc.num_steps))
    code = to_code(u)
    img = render(code, buffers)[0]
    return Projection(code, img, loss, mse, jnp.mean(jnp.square(img - target[0])),
                      _own_noise(params, cfg) if buffers is None else buffers)


@functools.cache
def _batch_program(cfg: G2Config, space: str, pc: ProjectConfig):
    def run(params, stats, aux, targets, keys):
        return jax.vmap(lambda t, k: project_one(params, cfg, stats, aux, t, k, space, pc))(targets, keys)

    return jax.jit(run)


def project_batch(params, cfg: G2Config, stats: _codes.CodeStats, aux: dict, targets, keys, space: str,
                  pc: ProjectConfig = ProjectConfig()) -> Projection:
    """Project targets [B, R, R, 3] with keys [B, 2] (`image_keys`) into `space`: a Projection of batched arrays
    (code [B, *code_shape], image [B, R, R, 3], loss / pixel_mse [B, num_steps], final_mse [B], noise: list of
    [B, R_l, R_l]; with noise='const' the generator's buffers, broadcast). Inputs may be sharded over devices
    (batch axis); params, stats and aux replicated. One compiled program per (cfg, space, pc, shapes)."""
    _codes.check_space(space)
    if pc.noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_MODES)}, got {pc.noise!r}")
    res = cfg.img_resolution
    if targets.ndim != 4 or targets.shape[1:] != (res, res, cfg.img_channels):
        raise ValueError(f"targets must be [B, {res}, {res}, {cfg.img_channels}], got {tuple(targets.shape)}")
    return _batch_program(cfg, space, pc)(params, stats, aux, targets, keys)
