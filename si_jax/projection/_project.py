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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from si_jax.projection import _codes, _losses, _schedule
from si_jax.stylegan2 import conv_library, network, programs
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace

NOISE_MODES = ("const", "optimize")


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """The projector's settings (hashable). Defaults: NVlabs' schedule, fewer steps. `split()` parts them into
    what shapes the compiled program (ProjectStatic) and the numbers it takes as traced inputs (ProjectHParams).

    >>> static, hp = ProjectConfig(num_steps=20, learning_rate=0.05).split()
    >>> static
    ProjectStatic(num_steps=20, noise='const', vgg=False, judge=False)
    >>> hp.learning_rate.dtype, round(float(hp.learning_rate), 6)
    (dtype('float32'), 0.05)
    >>> ProjectConfig(learning_rate=0.5, lambda_pixel=2.0).split()[0] == ProjectConfig().split()[0]  # one program
    True
    """

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

    def split(self) -> tuple:
        """-> (ProjectStatic, ProjectHParams). A loss term whose weight is 0 is left out of the program."""
        static = ProjectStatic(int(self.num_steps), self.noise, self.lambda_vgg > 0, self.lambda_judge > 0)
        return static, ProjectHParams(*(np.float32(getattr(self, f)) for f in ProjectHParams._fields))


class ProjectStatic(NamedTuple):
    """What shapes the projector's program (the jit static part of a ProjectConfig): the scan length, the noise
    mode ('const' | 'optimize'), and whether the VGG / judge loss terms are in it."""

    num_steps: int
    noise: str
    vgg: bool
    judge: bool


class ProjectHParams(NamedTuple):
    """The projector's numbers, a pytree of float32 scalars traced by the compiled program: a new learning rate,
    schedule or loss weight runs the same program (meanings: ProjectConfig's fields of the same names)."""

    learning_rate: jax.Array
    lr_rampup: jax.Array
    lr_rampdown: jax.Array
    code_noise: jax.Array
    code_noise_ramp: jax.Array
    noise_reg: jax.Array
    lambda_pixel: jax.Array
    lambda_multiscale: jax.Array
    lambda_vgg: jax.Array
    lambda_judge: jax.Array


class ProjectAux(NamedTuple):
    """The networks of the optional loss terms (a pytree; None leaves a term out): vgg, `load_vgg16`'s layers;
    judge, the toyfaces attribute classifier's params (si_jax.world.judges)."""

    vgg: Any = None
    judge: Any = None

    @classmethod
    def of(cls, aux) -> "ProjectAux":
        """A ProjectAux, None, or a mapping with keys among 'vgg' / 'judge' -> ProjectAux.

        >>> ProjectAux.of({"vgg": None})
        ProjectAux(vgg=None, judge=None)
        """
        if aux is None:
            return cls()
        if isinstance(aux, cls):
            return aux
        unknown = set(aux) - set(cls._fields)
        if unknown:
            raise ValueError(f"unknown projection aux entries {sorted(unknown)}; expected {', '.join(cls._fields)}")
        return cls(**aux)


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


def project_one(params, cfg: G2Config, stats: _codes.CodeStats, aux: ProjectAux, target, key, space: str,
                static: ProjectStatic, hp: ProjectHParams) -> Projection:
    """Project one target [R, R, 3] (raw range) into `space` (module docstring). key: [2] PRNG key; static / hp:
    `ProjectConfig.split()`; aux: the networks of the terms `static` turns on."""
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
        loss, mse = _losses.image_loss(img, target, hp, aux)
        if buffers is not None:
            loss += hp.noise_reg * _losses.noise_regularizer(buffers)
        return loss, mse

    if static.noise == "optimize":
        shapes = [(s.res, s.res) for s in cfg.layers if s.kind == "conv"]
        buffers0 = [jax.random.normal(jax.random.fold_in(key, 1 << 20 | k), sh) for k, sh in enumerate(shapes)]
    else:
        buffers0 = None
    n = static.num_steps
    opt = optax.adam(_schedule.learning_rate_schedule(n, hp.learning_rate, hp.lr_rampup, hp.lr_rampdown))
    var0 = (u0, buffers0)
    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(carry, t):
        var, state = carry
        eps = sigma * _schedule.code_noise_scale(t, n, hp.code_noise, hp.code_noise_ramp) * \
            jax.random.normal(jax.random.fold_in(key, t), u0.shape)
        (loss, mse), grads = grad_fn(var, eps)
        updates, state = opt.update(grads, state, var)
        u, buffers = optax.apply_updates(var, updates)
        if buffers is not None:
            buffers = _losses.normalize_noise(buffers)
        return ((u, buffers), state), (loss, mse)

    ((u, buffers), _), (loss, mse) = jax.lax.scan(step, (var0, opt.init(var0)), jnp.arange(n))
    code = to_code(u)
    img = render(code, buffers)[0]
    return Projection(code, img, loss, mse, jnp.mean(jnp.square(img - target[0])),
                      _own_noise(params, cfg) if buffers is None else buffers)


@functools.cache
def _batch_program(cfg: G2Config, space: str, static: ProjectStatic):
    def run(params, stats, aux, hp, targets, keys):
        return jax.vmap(lambda t, k: project_one(params, cfg, stats, aux, t, k, space, static, hp))(targets, keys)

    return programs.jit(cfg, run)


def project_batch(params, cfg: G2Config, stats: _codes.CodeStats, aux, targets, keys, space: str,
                  pc: ProjectConfig = ProjectConfig()) -> Projection:
    """Project targets [B, R, R, 3] with keys [B, 2] (`image_keys`) into `space`: a Projection of batched arrays
    (code [B, *code_shape], image [B, R, R, 3], loss / pixel_mse [B, num_steps], final_mse [B], noise: list of
    [B, R_l, R_l]; with noise='const' the generator's buffers, broadcast). aux: ProjectAux (or a mapping of its
    fields, or None). Inputs may be sharded over devices (batch axis); params, stats and aux replicated. One
    compiled program per (cfg, space, pc.split()[0], shapes): the learning rate, schedule and loss weights are
    traced (ProjectHParams), so changing them compiles nothing. With cfg.numerics.conv_library 'auto' on CPU its
    convs run in the XLA:CPU library measured faster for the batch (stylegan2.conv_library.resolve; the toyfaces
    projection of 16-64 images ran 1.17-1.19x faster in Eigen on the idle 2-core AMD EPYC (avx512f), BENCHMARKS.md
    2026-12-06 session 16)."""
    _codes.check_space(space)
    if pc.noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_MODES)}, got {pc.noise!r}")
    res = cfg.img_resolution
    if targets.ndim != 4 or targets.shape[1:] != (res, res, cfg.img_channels):
        raise ValueError(f"targets must be [B, {res}, {res}, {cfg.img_channels}], got {tuple(targets.shape)}")
    static, hp = pc.split()
    aux = ProjectAux.of(aux)
    aux = ProjectAux(aux.vgg if static.vgg else None, aux.judge if static.judge else None)
    cfg = conv_library.resolve(params, cfg, targets.shape[0])   # XLA:CPU's conv library, measured for the batch
    return _batch_program(cfg, space, static)(params, stats, aux, hp, targets, keys)
