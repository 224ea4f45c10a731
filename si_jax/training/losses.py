"""The StyleGAN2 losses, one function per NVlabs training phase, sharing `run_G` / `run_D` (training/loss.py).

    Gmain  softplus(−D(G(z)))                                      non-saturating generator loss
    Greg   pl_weight · (|J_w^T y| − a)² · interval                 path length, y ~ N(0, I)/R, a its running mean
    Dmain  softplus(D(G(z))) + softplus(−D(x))                     logistic discriminator loss
    Dreg   γ/2 · |∇_x D(x)|² · interval                            R1 on reals

Each returns (scalar loss, aux); the train step differentiates it w.r.t. the params its phase updates. G runs with
noise_mode 'random' and style mixing through ws [N, num_ws, w_dim]; z is never truncated.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from si_jax.stylegan2 import network
from si_jax.stylegan2.discriminator import discriminate
from si_jax.training.state import TrainConfig


def run_mapping(g: dict, tc: TrainConfig, z: jax.Array, key: jax.Array) -> tuple:
    """z [N, z_dim] -> (ws [N, num_ws, w_dim], w [N, w_dim]) with NVlabs style mixing.

    With probability `style_mixing_prob` (once per batch, as NVlabs), ws[:, cutoff:] come from a second z,
    cutoff ~ U{1, ..., num_ws − 1}. `w` (the first z's) feeds the w_avg tracker.
    """
    cfg, num_ws = tc.g, tc.g.num_ws
    w = network.mapping(g, cfg, z)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], num_ws, w.shape[1]))
    if tc.style_mixing_prob > 0 and num_ws > 1:
        k_cut, k_prob, k_z = jax.random.split(key, 3)
        cutoff = jax.random.randint(k_cut, (), 1, num_ws)
        cutoff = jnp.where(jax.random.uniform(k_prob, ()) < tc.style_mixing_prob, cutoff, num_ws)
        w2 = network.mapping(g, cfg, jax.random.normal(k_z, z.shape, z.dtype))
        ws = jnp.where((jnp.arange(num_ws) < cutoff)[None, :, None], ws, w2[:, None])
    return ws, w


def run_synthesis(g: dict, tc: TrainConfig, ws: jax.Array, key: jax.Array) -> jax.Array:
    """ws [N, num_ws, w_dim] -> images [N, R, R, 3], random noise from `key`."""
    return network.synthesize(g, tc.g, network.styles_from_w(g, tc.g, ws), "random", key)


def run_G(g: dict, tc: TrainConfig, z: jax.Array, key: jax.Array) -> tuple:
    """z [N, z_dim] -> (images [N, R, R, 3], ws [N, num_ws, w_dim], w [N, w_dim])."""
    k_map, k_syn = jax.random.split(key)
    ws, w = run_mapping(g, tc, z, k_map)
    return run_synthesis(g, tc, ws, k_syn), ws, w


def run_D(d: dict, tc: TrainConfig, images: jax.Array) -> jax.Array:
    """images [N, R, R, 3] -> logits [N]."""
    return discriminate(d, tc.d, images)


def Gmain(g, d, tc: TrainConfig, z, key) -> tuple:
    """-> (mean softplus(−D(G(z))), (metrics, w [N, w_dim]))."""
    img, _, w = run_G(g, tc, z, key)
    logits = run_D(d, tc, img)
    loss = jnp.mean(jax.nn.softplus(-logits))
    return loss, ({"G": loss, "fake_score_G": jnp.mean(logits)}, w)


def path_lengths(g, tc: TrainConfig, z, key) -> tuple:
    """|J_w^T y| per sample: (lengths [N], w [N, w_dim]). y ~ N(0, I)/√(H·W); J = ∂G/∂ws, squared norm summed
    over w_dim and averaged over the num_ws vectors (NVlabs)."""
    k_map, k_syn, k_y = jax.random.split(key, 3)
    ws, w = run_mapping(g, tc, z, k_map)
    res = tc.g.img_resolution
    y = jax.random.normal(k_y, (z.shape[0], res, res, tc.g.img_channels)) / res
    grads = jax.grad(lambda ws_: jnp.sum(run_synthesis(g, tc, ws_, k_syn) * y))(ws)
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1)), w


def Greg(g, tc: TrainConfig, z, key, pl_mean) -> tuple:
    """-> (interval · pl_weight · mean (length − a)², (metrics, w, new pl_mean a)). a = lerp(pl_mean, mean length,
    pl_decay), differentiated through as in NVlabs; z is the shrunk batch [N / pl_batch_shrink, z_dim]."""
    lengths, w = path_lengths(g, tc, z, key)
    a = pl_mean + (jnp.mean(lengths) - pl_mean) * tc.pl_decay
    penalty = jnp.mean(jnp.square(lengths - a))
    loss = penalty * tc.pl_weight * tc.g_reg_interval
    return loss, ({"pl": penalty, "pl_mean": a}, w, jax.lax.stop_gradient(a))


def Dmain(d, tc: TrainConfig, fake, real) -> tuple:
    """-> (mean softplus(D(fake)) + mean softplus(−D(real)), metrics). fake: G's images, not differentiated."""
    lf, lr = run_D(d, tc, fake), run_D(d, tc, real)
    loss = jnp.mean(jax.nn.softplus(lf)) + jnp.mean(jax.nn.softplus(-lr))
    return loss, {"D": loss, "fake_score": jnp.mean(lf), "real_score": jnp.mean(lr)}


def r1_penalty(d, tc: TrainConfig, real) -> jax.Array:
    """|∇_x D(x)|² per image: [N] (x: reals [N, R, R, 3])."""
    grads = jax.grad(lambda x: jnp.sum(run_D(d, tc, x)))(real)
    return jnp.sum(jnp.square(grads), axis=(1, 2, 3))


def Dreg(d, tc: TrainConfig, real) -> tuple:
    """-> (interval · γ/2 · mean R1 penalty, metrics)."""
    penalty = jnp.mean(r1_penalty(d, tc, real))
    return penalty * (tc.r1_gamma / 2) * tc.d_reg_interval, {"r1": penalty}
