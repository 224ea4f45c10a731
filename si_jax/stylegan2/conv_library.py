"""Which library XLA:CPU runs an editing batch's convs in, measured on this host (Numerics.conv_library 'auto').

    cfg = conv_library.resolve(params, cfg, styles)   # 'auto' -> 'eigen' where measured faster, else cfg as given
    jax.jit(fn, compiler_options=cfg.numerics.compiler_options(jax.default_backend()))

In jax 0.10.2 XLA:CPU runs each conv as a YNNPACK fusion on one thread: on 2 cores the edit loop of a batch of 16
toyfaces images ran 1.4-1.5x faster with its convs in XLA's Eigen convolution (which uses every core), while at
batch 1 on large maps Eigen's conv gradients are the slower (idle 2-core AMD EPYC (avx512f), 2026-12-06,
BENCHMARKS.md). The answer depends on the cores, the batch and the maps, so it is measured: the probe is the top
block of the network (its largest maps: most of the FLOPs of every released config) as the edit loop runs it,
vmapped over the images of the batch, the value and gradient of its mean image w.r.t. the block's first style,
at the batch at hand, compiled once per library and timed as the conv forms are, in conv_timing.REPEATS rounds (si_jax.stylegan2.autotune: the
same cache file, host key, budget and $SI_JAX_CONV_TUNING; XLA's default unless Eigen is MARGIN faster). The choice applies to the whole
program: a compile option cannot differ between the convs of one program.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from si_jax.stylegan2 import autotune, conv_timing, network
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.numerics import EIGEN_CONVS


def top_block_start(cfg: G2Config) -> int:
    """Index of the first style layer at the highest resolution (the top block's up-sampling conv)."""
    return next(i for i, l in enumerate(cfg.layers) if l.res == cfg.img_resolution)


def probe(cfg: G2Config, start: int):
    """(params, states, styles) -> per image (value, gradient) of mean(synthesize_from(start)) w.r.t. style `start`,
    vmapped over the images: states / styles carry [B, 1, ...] (one image each), params are shared."""
    def one(params, state, styles):
        def loss(s):
            edited = list(styles)
            edited[start] = s
            return jnp.mean(network.synthesize_from(params, cfg, state, edited, start))
        return jax.value_and_grad(loss)(styles[start])
    return jax.vmap(one, in_axes=(None, 0, 0))


def resolve(params, cfg: G2Config, styles) -> G2Config:
    """cfg computing with conv_library 'eigen' when it is 'auto' and Eigen measured faster on this host for this
    batch (styles: list over layers of [B, dim_l]; params as the programs run them); otherwise cfg unchanged (XLA's
    default: also off CPU, for non-float32 styles and with measuring off)."""
    if cfg.numerics.conv_library != "auto" or not autotune.applies(styles[0].dtype):
        return cfg
    start, batch = top_block_start(cfg), styles[0].shape[0]
    shapes_only = cfg.with_numerics(conv3x3="direct", upconv="polyphase")   # the same shapes, nothing measured
    state = jax.eval_shape(lambda p, s: network.states_before_layers(p, shapes_only, s)[start], params, styles)
    per_image = lambda a: jax.ShapeDtypeStruct((a.shape[0], 1) + a.shape[1:], a.dtype)   # noqa: E731
    specs = (params, jax.tree.map(per_image, state), [per_image(s) for s in styles])
    layer = cfg.layers[start]
    key = (f"conv_library edit_top_block {batch}x{layer.res}x{layer.res}x{layer.in_ch}->"
           f"{layer.out_ch} {cfg.img_channels}ch {jnp.dtype(styles[0].dtype).name}")
    fn = probe(cfg, start)
    choice = autotune.measured(key, {"ynn": fn, "eigen": fn}, specs, "ynn", options={"eigen": EIGEN_CONVS},
                               max_repeats=conv_timing.REPEATS)
    return cfg.with_numerics(conv_library="eigen") if choice == "eigen" else cfg
