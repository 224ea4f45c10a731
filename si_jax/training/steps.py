"""One training iteration as ONE jitted pure function, per (do_pl, do_r1) combination (static flags).

    state, metrics = train_step(state, tc, data, mesh, do_pl=..., do_r1=...)
    step_program(tc)   # train_step, or its twin compiled with tc.g's XLA options (conv_library 'eigen')

The NVlabs phases in their order, each with its own Adam step (Gmain and Greg share G's optimizer state, Dmain
and Dreg D's), then G_ema and w_avg:
    Gmain → [Greg] → Dmain (fakes from the G just updated) → [Dreg] → G_ema = lerp(G, G_ema, β).
Every phase draws its own z; all randomness comes from fold_in(PRNGKey(tc.seed), step) and the reals from
`data.images(step, batch)`, so iteration `step` is a pure function of (state, settings): a resumed run is
identical to an uninterrupted one (on the same host: the step's conv forms are measured once per host and kept,
autotune.long_running; another CPU may choose other forms, the same values to float32 rounding). Gradients go
through nan_to_num (NVlabs); the host checks the losses.

Data parallelism: with a `mesh` (1-D, axis 'data'), every batch (z, reals, PL batch) is constrained to be split
over it and the state to stay replicated; XLA inserts the gradient all-reduce. Random numbers do not depend on
the split (threefry is partitionable), so 1 and n devices compute the same step up to summation order.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from si_jax.stylegan2 import autotune, network
from si_jax.training import losses
from si_jax.training.state import TrainConfig, TrainState, d_optimizer, ema_beta, g_optimizer, with_w_avg

W_AVG_BETA = 0.995  # NVlabs MappingNetwork.w_avg_beta


def _adam_step(tx: optax.GradientTransformation, grads, opt_state, params) -> tuple:
    grads = jax.tree.map(lambda x: jnp.nan_to_num(x, nan=0.0, posinf=1e5, neginf=-1e5), grads)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _track_w_avg(w_avg, w) -> jax.Array:
    """NVlabs: w_avg = lerp(mean w, w_avg, 0.995), on every mapping call of G during training."""
    m = jnp.mean(w, axis=0)
    return m + W_AVG_BETA * (w_avg - m)


def _iteration(state: TrainState, tc: TrainConfig, data, mesh: Mesh | None = None, *, do_pl: bool,
               do_r1: bool) -> tuple:
    """One iteration -> (new state, metrics: dict of [] float32: G, D, fake_score, real_score (+ pl, pl_mean
    with do_pl, r1 with do_r1)). `state` is donated. Its 'auto' conv forms are measured as a long run's
    (autotune.long_running: per call, batch and all, every one at the first start)."""
    with autotune.long_running():
        return _step(state, tc, data, mesh, do_pl, do_r1)


_STEP_JIT = dict(static_argnames=("tc", "data", "mesh", "do_pl", "do_r1"), donate_argnames="state")
train_step = jax.jit(_iteration, **_STEP_JIT)   # compiled with XLA's default options


def _step(state: TrainState, tc: TrainConfig, data, mesh: Mesh | None, do_pl: bool, do_r1: bool) -> tuple:
    split = (lambda x: x) if mesh is None else \
        (lambda x: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("data"))))
    key = jax.random.fold_in(jax.random.PRNGKey(tc.seed), state.step)
    k_gm, k_gr, k_dm, k_z = jax.random.split(key, 4)
    z_gm, z_gr, z_dm = (split(jax.random.normal(k, (n, tc.g.z_dim))) for k, n in zip(
        jax.random.split(k_z, 3), (tc.batch, tc.batch // tc.pl_batch_shrink, tc.batch)))
    g_tx, d_tx = g_optimizer(tc), d_optimizer(tc)
    g, d, w_avg, pl_mean, metrics = state.g, state.d, state.w_avg, state.pl_mean, {}

    (_, (m, w)), grads = jax.value_and_grad(losses.Gmain, has_aux=True)(g, d, tc, z_gm, k_gm)
    g, g_opt = _adam_step(g_tx, grads, state.g_opt, g)
    w_avg = _track_w_avg(w_avg, w)
    metrics.update(m)

    if do_pl:
        (_, (m, w, pl_mean)), grads = jax.value_and_grad(losses.Greg, has_aux=True)(g, tc, z_gr, k_gr, pl_mean)
        g, g_opt = _adam_step(g_tx, grads, g_opt, g)
        w_avg = _track_w_avg(w_avg, w)
        metrics.update(m)

    fake, _, w = losses.run_G(g, tc, z_dm, k_dm)
    fake = jax.lax.stop_gradient(fake)
    w_avg = _track_w_avg(w_avg, w)
    real = split(data.images(state.step, tc.batch).astype(jnp.float32))
    (_, m), grads = jax.value_and_grad(losses.Dmain, has_aux=True)(d, tc, fake, real)
    d, d_opt = _adam_step(d_tx, grads, state.d_opt, d)
    metrics.update(m)

    if do_r1:
        (_, m), grads = jax.value_and_grad(losses.Dreg, has_aux=True)(d, tc, real)
        d, d_opt = _adam_step(d_tx, grads, d_opt, d)
        metrics.update(m)

    beta = ema_beta(tc, state.step)
    g_ema = jax.tree.map(lambda e, p: p + beta * (e - p), state.g_ema, g)
    new = TrainState(g=g, d=d, g_ema=g_ema, g_opt=g_opt, d_opt=d_opt, pl_mean=pl_mean, w_avg=w_avg,
                     step=state.step + 1)
    if mesh is not None:
        new = jax.lax.with_sharding_constraint(new, NamedSharding(mesh, P()))
    return new, metrics


def _ema(g_ema: dict, w_avg: jax.Array, cfg, z: jax.Array, noise_mode: str = "const") -> jax.Array:
    """G_ema's images of latents z [N, z_dim] -> [N, R, R, 3] (truncation 1, constant noise by default)."""
    return network.generate(with_w_avg(g_ema, w_avg), cfg, z, noise_mode=noise_mode)[2]


_EMA_JIT = dict(static_argnames=("cfg", "noise_mode"))
ema_images = jax.jit(_ema, **_EMA_JIT)


def step_program(tc: TrainConfig):
    """train_step, compiled with the XLA options of tc.g's numerics (Numerics.conv_library 'eigen' on CPU:
    bin/train.py --conv_library; on one XLA CPU device the plain step ran 1.30x faster with Eigen convs, on two
    host devices 0.99x: idle 2-core AMD EPYC (avx512f), 2026-12-06, BENCHMARKS.md session 15)."""
    return _programs(tc.g.numerics)[0]


def ema_program(cfg):
    """ema_images, compiled with the XLA options of cfg's numerics (as `step_program`)."""
    return _programs(cfg.numerics)[1]


def _programs(numerics) -> tuple:
    """(step, grid) programs: the module's own with XLA's default options (looked up per call), else their twins."""
    if numerics.compiler_options(jax.default_backend()) is None:
        return train_step, ema_images
    return _with_options(numerics)


@functools.lru_cache(maxsize=None)
def _with_options(numerics) -> tuple:
    options = numerics.compiler_options(jax.default_backend())
    return (jax.jit(_iteration, compiler_options=options, **_STEP_JIT),
            jax.jit(_ema, compiler_options=options, **_EMA_JIT))


def replicate(state: TrainState, mesh: Mesh | None) -> TrainState:
    """Put `state` on every device of `mesh` (unchanged without one)."""
    return state if mesh is None else jax.device_put(state, NamedSharding(mesh, P()))
