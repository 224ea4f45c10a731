"""The generator's compiled programs, one per (G2Config, static settings): what every stage above calls instead of
jitting the network functions itself.

One convention: `<name>_program(cfg, *statics)` is `functools.lru_cache`d and returns `jit(cfg, f)` (jax.jit with
the compiler options of cfg's numerics: `Numerics.compiler_options`) of a function of arrays only (params first).
The hashable, frozen cfg (with its `numerics`) and the Python-valued settings are the cache key and static in the
trace, so another precision, conv algorithm or conv library compiles another program, and the same ones reuse it;
params and batches are arguments, so new weights never recompile. The programs on batches of images (synth,
generate, noisy_*, features) are `per_batch`: with conv_library 'auto' the factory returns a PerBatch, which runs
each call in the XLA:CPU conv library measured faster for its batch (conv_library.resolve; the toyfaces forward
ran 1.2-1.4x faster in Eigen at 1-64 images on the idle 2-core AMD EPYC (avx512f), BENCHMARKS.md session 16).

    mapping_program(cfg, psi)   (params, z [N, z_dim]) -> w [N, w_dim]
    styles_program(cfg)         (params, w [N, w_dim]) -> styles: list of [N, dim_l]
    split_program(cfg)          flat styles [N, S] -> list of [N, dim_l], placed like the input
    prepare_program(cfg)        params -> prepared params (kernels.prepare: kernel forms once per weights; every
                                program below takes either, the same values; faster per call w.r.t. styles); one
                                program per measuring setting (measured convs need every candidate's forms)
    prepared(params, cfg)       prepare_program's result for the current measuring setting, kept for the last few
                                weights (one prepare per weights and setting)
    synth_program(cfg)          (params, styles) -> images [N, R, R, C] (noise const)
    generate_program(cfg, psi)  (params, z [N, z_dim]) -> (w, styles, images) (noise const)
    noisy_generate_program(cfg, psi, noise_mode)   (params, z, key) -> (w, styles, images): bin/generate.py --latents
    noisy_synth_program(cfg, noise_mode)           (params, flat styles [N, S], key) -> (styles, images): --styles
    sample_program(cfg, psi, with_images)          (params, z) -> (w, flat styles [N, S], images or None):
                                                   bin/sample.py's shards (noise const)
    layer_program(cfg, layer)   (params, SynthState before style layer `layer`, its style [N, dim]) -> state after
    features_program(cfg, layer, resize)   (params, styles) -> activations after style layer `layer` [N, R, R, C]
                                float32, resized to the image resolution by jax.image.resize method `resize`

Programs that are not the generator's alone stay with their stage: the intervention's layer and loss programs
(editing.loops: the objective and Adam around the layers), the learned Λ's (editing.lambda_model), projection's
(the code optimiser), training's steps and G_ema images (training.steps: the train state's w_avg and sharding).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from si_jax.stylegan2 import autotune, conv_library, kernels, network
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace


def jit(cfg: G2Config, fn, **kwargs):
    """jax.jit(fn) compiled with cfg's XLA compiler options (Numerics.compiler_options: conv_library 'eigen' on CPU);
    what every program computing with cfg is, here and in editing.loops."""
    return jax.jit(fn, compiler_options=cfg.numerics.compiler_options(jax.default_backend()), **kwargs)


class PerBatch:
    """A program on batches of images whose cfg leaves the conv library to 'auto': each call runs build(cfg') for
    cfg' the library measured faster for its batch on this host (conv_library.resolve, a batch forward; cfg itself,
    XLA's default, when measuring is off or inside a trace). Called and lowered like the jitted program."""

    def __init__(self, build, cfg: G2Config):
        self.build, self.cfg = build, cfg

    def program_for(self, params, batch):
        """The jitted program for params and batch (a pytree of arrays whose leading axis is the images)."""
        return self.build(conv_library.resolve(params, self.cfg, jax.tree.leaves(batch)[0].shape[0], edit=False))

    def __call__(self, params, batch, *rest):
        return self.program_for(params, batch)(params, batch, *rest)

    def lower(self, params, batch, *rest):
        return self.program_for(params, batch).lower(params, batch, *rest)


def per_batch(build):
    """Decorates a `<name>_program(cfg, *statics)` builder whose programs take (params, batch, ...): the factory is
    lru_cached and returns build(cfg, *statics), or, for conv_library 'auto', a PerBatch of it."""
    build = functools.lru_cache(maxsize=None)(build)

    @functools.lru_cache(maxsize=None)
    @functools.wraps(build)
    def factory(cfg: G2Config, *statics):
        if cfg.numerics.conv_library != "auto":
            return build(cfg, *statics)
        return PerBatch(lambda chosen: build(chosen, *statics), cfg)
    return factory


@functools.lru_cache(maxsize=None)
def mapping_program(cfg: G2Config, truncation_psi: float = 1.0):
    return jit(cfg, lambda params, z: network.mapping(params, cfg, z, truncation_psi))


@functools.lru_cache(maxsize=None)
def styles_program(cfg: G2Config):
    return jit(cfg, lambda params, w: network.styles_from_w(params, cfg, w))


@functools.lru_cache(maxsize=None)
def split_program(cfg: G2Config):
    """Jitted, so the slices stay placed like the input (eager slices of a sharded array would not be)."""
    return jit(cfg, StyleSpace.of(cfg).split)


def prepare_program(cfg: G2Config):
    """The jitted kernels.prepare for cfg under the current measuring setting (autotune.enabled(), which
    kernels.prepare reads when it is traced): one program per setting, so that one traced under a setting never
    serves the other."""
    return _prepare_program(cfg, autotune.enabled())


@functools.lru_cache(maxsize=None)
def _prepare_program(cfg: G2Config, measuring: bool):
    return jit(cfg, lambda params: kernels.prepare(params, cfg))


_PREPARED: dict = {}   # (cfg, measuring, ids of the kernels) -> (those kernels, prepared params); the kernels are
_PREPARED_MAX = 2      # held and compared, so a reused id is never mistaken for the same weights


def prepared(params, cfg: G2Config):
    """`prepare_program(cfg)(params)`, computed once for the same weights (the same kernel
    arrays, by identity) and measuring setting, kept for the last `_PREPARED_MAX` of them; prepared params are
    returned as they are."""
    if kernels.is_prepared(params):
        return params
    weights = tuple(lp["weight"] for lp in params["layers"])
    measuring = autotune.enabled()
    key = (cfg, measuring, tuple(map(id, weights)))
    if key in _PREPARED and all(a is b for a, b in zip(_PREPARED[key][0], weights)):
        return _PREPARED[key][1]
    while len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.pop(next(iter(_PREPARED)))
    _PREPARED[key] = (weights, _prepare_program(cfg, measuring)(params))
    return _PREPARED[key][1]


@per_batch
def synth_program(cfg: G2Config):
    return jit(cfg, lambda params, styles: network.synthesize(params, cfg, styles))


@per_batch
def generate_program(cfg: G2Config, truncation_psi: float = 1.0):
    return jit(cfg, lambda params, z: network.generate(params, cfg, z, truncation_psi))


@per_batch
def noisy_generate_program(cfg: G2Config, truncation_psi: float, noise_mode: str):
    return jit(cfg, lambda params, z, key: network.generate(params, cfg, z, truncation_psi, noise_mode, key))


@per_batch
def noisy_synth_program(cfg: G2Config, noise_mode: str):
    space = StyleSpace.of(cfg)
    return jit(cfg, lambda params, s, key: (space.split(s), network.synthesize(params, cfg, space.split(s),
                                                                               noise_mode, key)))


@functools.lru_cache(maxsize=None)
def sample_program(cfg: G2Config, truncation_psi: float, with_images: bool):
    space = StyleSpace.of(cfg)

    def run(params, z):
        w = network.mapping(params, cfg, z, truncation_psi)
        styles = network.styles_from_w(params, cfg, w)
        img = network.synthesize(params, cfg, styles, "const") if with_images else None
        return w, space.concat(styles), img

    return jit(cfg, run)


@functools.lru_cache(maxsize=None)
def layer_program(cfg: G2Config, layer: int):
    return jit(cfg, lambda params, state, s: network.layer_forward(params["layers"][layer], cfg.layers[layer], cfg,
                                                                  state, s))


@per_batch
def features_program(cfg: G2Config, layer: int, resize: str):
    def run(params, styles):
        b = styles[0].shape[0]
        x = network.run_layers(params, cfg, network.initial_state(params, b), styles, 0, layer + 1).x
        x = x.astype(jnp.float32)   # bfloat16 in the layers `--precision=bf16` computes so
        r = cfg.img_resolution
        return jax.image.resize(x, (b, r, r, x.shape[-1]), method=resize)

    return jit(cfg, run)
