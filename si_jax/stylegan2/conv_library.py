"""Which library XLA:CPU runs a batch's convs in, measured on this host (Numerics.conv_library 'auto').

    cfg = conv_library.resolve(params, cfg, batch)               # the edit loop's programs, the projector's
    cfg = conv_library.resolve(params, cfg, batch, edit=False)   # plain synthesis of a batch (sampling)
    programs.jit(cfg, fn)   # jax.jit with cfg.numerics.compiler_options(backend): 'eigen' -> EIGEN_CONVS
    judges.with_options_for(conv_library.batch_options)         # any fn(params, images [N, ...]) run on batches

In jax 0.10.2 XLA:CPU runs each conv as a YNNPACK fusion on one thread: on 2 cores the edit loop of a batch of 16
toyfaces images ran 1.4-1.5x faster with its convs in XLA's Eigen convolution (which uses every core), while at
batch 1 on large maps Eigen's conv gradients are the slower (idle 2-core AMD EPYC (avx512f), 2026-12-06,
BENCHMARKS.md "session 15"). The answer depends on the cores, the batch, the maps and the program's form (the same
batch of 16 ran its plain fwd+bwd faster in YNNPACK and its vmapped one faster in Eigen), so it is measured on a
probe of that form: the network's top block (its largest maps), at the batch at hand (at most MAX_PROBE_BATCH: a
toyfaces batch of 500 took 4.8 s to probe, Eigen 1.66x; of 64, 1.5 s, 1.28x), as the edit loop runs it
(vmapped over the images, value and gradient of the mean image w.r.t. the block's first style) or as a batch
forward. Both libraries are compiled and timed like the conv forms, in conv_timing.REPEATS rounds, with the same
cache file, host key, budget and $SI_JAX_CONV_TUNING (si_jax.stylegan2.autotune); Eigen only if MARGIN faster. Each
library's probe is traced in its own numerics, so its 'auto' conv forms are the ones measured in that library
(autotune.choose's `library`: at paper256 the 256 px x 64 conv is best direct in YNNPACK and by rows in Eigen on
the idle 2-core AMD EPYC (avx512f)). The
choice holds for a whole program: a compile option cannot differ between the convs of one program.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.stylegan2 import autotune, conv_timing, kernels, network
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.numerics import EIGEN_CONVS

LIBRARIES = ("ynn", "eigen")   # the candidates: XLA's default (YNNPACK convs) first
MAX_PROBE_BATCH = 64   # larger batches are probed (and keyed) at this one: as many images per core, or more


def top_block_start(cfg: G2Config) -> int:
    """Index of the first style layer at the highest resolution (the top block's up-sampling conv)."""
    return next(i for i, l in enumerate(cfg.layers) if l.res == cfg.img_resolution)


def probe(cfg: G2Config, start: int, edit: bool = True):
    """(params, state, styles) -> synthesis from style layer `start`. edit: per image (value, gradient) of the mean
    image w.r.t. style `start`, vmapped over the images (state / styles carry [B, 1, ...]); else the batch's images
    (state / styles [B, ...])."""
    if not edit:
        return lambda params, state, styles: network.synthesize_from(params, cfg, state, styles, start)

    def one(params, state, styles):
        def loss(s):
            edited = list(styles)
            edited[start] = s
            return jnp.mean(network.synthesize_from(params, cfg, state, edited, start))
        return jax.value_and_grad(loss)(styles[start])
    return jax.vmap(one, in_axes=(None, 0, 0))


def resolve(params, cfg: G2Config, batch: int, *, edit: bool = True, dtype=jnp.float32) -> G2Config:
    """cfg computing with conv_library 'eigen' when it is 'auto' and Eigen measured faster on this host for `batch`
    images of `dtype` styles (params as the programs run them, with or without prepared kernel forms; edit: the edit
    loop's and the projector's form, else a batch forward); otherwise cfg as given (XLA's default: also off CPU,
    for non-float32 styles, with measuring off, and inside a trace, where the outer program decides)."""
    if cfg.numerics.conv_library != "auto" or not autotune.applies(dtype) or _traced(params):
        return cfg
    start, layer, batch = top_block_start(cfg), cfg.layers[top_block_start(cfg)], min(batch, MAX_PROBE_BATCH)
    form = ("edit" if edit else "synthesis") + ("" if kernels.is_prepared(params) else "_unprepared")
    key = (f"conv_library {form}_top_block {batch}x{layer.res}x{layer.res}x{layer.in_ch}->{layer.out_ch} "
           f"{cfg.img_channels}ch {jnp.dtype(dtype).name}")
    def specs():   # built only to measure: the state's shapes trace the whole network
        styles = [jax.ShapeDtypeStruct((batch, l.dim), dtype) for l in cfg.layers]
        shapes_only = cfg.with_numerics(conv3x3="direct", upconv="polyphase")   # the same shapes, nothing measured
        state = jax.eval_shape(lambda p, s: network.states_before_layers(p, shapes_only, s)[start], params, styles)
        if edit:   # one image each: [B, 1, ...]
            state, styles = jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch, 1) + a.shape[1:], a.dtype),
                                         (state, styles))
        return params, state, styles
    # each library's probe traced in its own numerics: its conv forms are measured in that library (autotune.choose)
    choice = _choice(key, {lib: probe(cfg.with_numerics(conv_library=lib), start, edit) for lib in LIBRARIES}, specs)
    return cfg.with_numerics(conv_library="eigen") if choice == "eigen" else cfg


def batch_options(name: str, fn, params, images) -> dict | None:
    """XLA compiler options for fn(params, images [N, ...]) on this host: EIGEN_CONVS where Eigen measured faster on
    fn itself at min(N, MAX_PROBE_BATCH) images (recorded under `name`), else None (XLA's default; also where
    measuring does not apply, and inside a trace, where the outer program decides). For small fixed networks run
    on batches: the toyfaces judges (world.judges.Judges.with_options_for) ran 2x faster in Eigen at 500 images."""
    if not autotune.applies(jnp.float32) or _traced((params, images)):
        return None
    shape, dtype = np.shape(images), jnp.result_type(images)
    batch = min(shape[0], MAX_PROBE_BATCH)
    key = f"conv_library {name} {batch}x{'x'.join(str(d) for d in shape[1:])} {jnp.dtype(dtype).name}"
    choice = _choice(key, dict.fromkeys(LIBRARIES, fn),
                     lambda: (params, jax.ShapeDtypeStruct((batch,) + tuple(shape[1:]), dtype)))
    return dict(EIGEN_CONVS) if choice == "eigen" else None


def _traced(tree) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(tree))


def _choice(key: str, fns: dict, specs) -> str:
    """'ynn' or 'eigen' under entry `key`: recorded (a warm start builds nothing), else fns[library] on specs()
    compiled with each library's options and timed (autotune.measured; XLA's default unless Eigen is MARGIN
    faster)."""
    return autotune.recorded(key, LIBRARIES) or autotune.measured(
        key, fns, specs(), "ynn", options={"eigen": EIGEN_CONVS}, max_repeats=conv_timing.REPEATS, in_thread=True)
