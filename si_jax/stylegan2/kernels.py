"""Kernel forms that depend on the weights alone, computed once per weights for synthesis w.r.t. styles.

    prepared = kernels.prepare(params, cfg)      # jitted: programs.prepare_program(cfg)
    img = network.synthesize(prepared, cfg, styles)   # same values as with params; faster per call

When an edit, a projection or the bench differentiates w.r.t. the styles, the kernels are constants, yet a program
taking the params recomputes per call what depends on them only: the input-gradient kernels (flipped, I/O swapped:
XLA copies each [3, 3, 512, 512] kernel per call), Winograd's kernel transforms, the polyphase sub-kernels (and
their Winograd transforms: `phase_transforms`) and the demodulation's squared-tap sums. `prepare` computes them
once and puts them under each layer's 'prepared' key (`prepare_layer`'s dict); `ops` takes each form from there
when present, and computes it inline from the kernel otherwise (the same functions: one implementation). The
forms are derived for the conv algorithms `numerics` picks by its rule, and for every candidate of a conv whose
'auto' is measured (si_jax.stylegan2.conv_tuning); a conv that resolves to a form not prepared (measuring switched
on after `prepare`) derives it inline.

Differentiating w.r.t. the params: the convs (si_jax.stylegan2.conv3x3), the demodulation and the polyphase
sub-kernels (`given`) return the weights' gradient for the raw kernel and zero for the forms, so first-order
gradients w.r.t. prepared params' kernels are exact (tests/test_kernels.py); second-order ones (R1, path length)
need the forms derived inside the differentiated function, as the plain params path does (training passes params).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from si_jax.stylegan2 import autotune, conv3x3
from si_jax.stylegan2.config import G2Config, LayerSpec

# polyphase up-conv sub-kernels: (kernel rows, kernel cols) taken, and the (rows, cols) padding of their conv.
# Per axis the even phase E uses taps (2, 0) with padding (1, 1), the odd phase O tap 1, also with padding (1, 1):
# its output has the zero on each side that the blur reads (ops._conv_up_polyphase).
POLYPHASE = {"EE": ((2, 0), (2, 0)), "EO": ((2, 0), (1,)), "OE": ((1,), (2, 0)), "OO": ((1,), (1,))}
PHASE_PAD = {"E": (1, 1), "O": (1, 1)}
WINOGRAD = ("winograd2d", "rows")   # the same-size 3x3 conv algorithms with kernel transforms (conv3x3)
# Up-conv algorithms whose phase convs run by Winograd (conv3x3.winograd_t): the spec of the even-even phase's
# F(m x m, 2x2) and of the even-odd / odd-even phases' F(m, 2) along their 2-tap axis; the odd-odd phase is a matmul.
# 'polyphase_r4': the even-even phase by F(4, 2) along rows only (direct 1x2 convs; (rows spec, None)), even-odd by
# F(4, 2), odd-even direct: only contiguous row slices in its transforms, faster on large maps (BENCHMARKS.md).
PHASE_WINOGRAD = {"polyphase_w2": (conv3x3.F22, conv3x3.F22), "polyphase_w4": (conv3x3.F42, conv3x3.F42),
                  "polyphase_r4": ((conv3x3.F42, None), conv3x3.F42)}
UPCONV_WINOGRAD = ("polyphase_w2", "polyphase_r4")   # of those, the ones measured for an 'auto' up-conv


def sum_taps(k: jax.Array) -> jax.Array:
    """sum over the two leading (spatial) axes of [kh, kw, I, O] as explicit adds of [I, O] slices.

    Measured (jax 0.10.2, 2-core AMD EPYC): `jnp.sum(..., axis=(0, 1))` of a squared [3, 3, 512, 512] kernel takes
    ~10 ms; the unrolled adds fuse into one elementwise loop (~0.1 ms).
    """
    out = None
    for a in range(k.shape[0]):
        for b in range(k.shape[1]):
            out = k[a, b] if out is None else out + k[a, b]
    return out


def demod_squares(kernel: jax.Array) -> jax.Array:
    """sum_{kh, kw} kernel^2 in float32, the demodulation's weights: [k, k, I, O] -> [I, O]."""
    return sum_taps(jnp.square(kernel.astype(jnp.float32)))


def _sub_kernel(kernel: jax.Array, name: str) -> jax.Array:
    rows, cols = POLYPHASE[name]
    return jnp.stack([jnp.stack([kernel[a, b] for b in cols]) for a in rows])


def polyphase_kernels(kernel: jax.Array) -> dict:
    """{'EE' | 'EO' | 'OE' | 'OO': (sub-kernel [2|1, 2|1, I, O], its conv3x3.transposed)} of a 3x3 kernel."""
    return {name: (sub, conv3x3.transposed(sub)) for name in POLYPHASE for sub in [_sub_kernel(kernel, name)]}


def phase_specs(algo: str) -> dict:
    """{'EE' | 'EO' | 'OE': (rows spec, cols spec)} of the phase convs that up-conv `algo` runs by Winograd
    (PHASE_WINOGRAD; {} for 'polyphase' / 'transposed')."""
    if algo not in PHASE_WINOGRAD:
        return {}
    ee, one_axis = PHASE_WINOGRAD[algo]
    if len(ee) == 2:   # (rows spec, None): EE along rows only (conv3x3.winograd_rows); OE direct
        return {"EE": ee, "EO": (one_axis, conv3x3.ONE)}
    return {"EE": (ee, ee), "EO": (one_axis, conv3x3.ONE), "OE": (conv3x3.ONE, one_axis)}


def phase_transforms(poly: dict, algo: str) -> dict:
    """{name: (u, u_t)}: conv3x3.transform of each Winograd phase's sub-kernel and of its transpose, from
    polyphase_kernels' dict, for up-conv `algo` (phase_specs)."""
    return {name: tuple(conv3x3.transform(k, specs) for k in poly[name]) for name, specs in phase_specs(algo).items()}


_DERIVED = {"squares": demod_squares, **{name: (lambda k, n=name: _sub_kernel(k, n)) for name in POLYPHASE}}


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def given(form: jax.Array, kernel: jax.Array, name: str) -> jax.Array:
    """form = derived(kernel) for name 'squares' (demod_squares) or a POLYPHASE sub-kernel, given (computed once per
    weights), with that derivation's gradient w.r.t. the kernel and zero for the form: gradients w.r.t. the weights
    do not depend on where the form came from."""
    return form


def _given_fwd(form, kernel, name):
    return form, kernel


def _given_bwd(name, kernel, g):
    return None, jax.vjp(_DERIVED[name], kernel)[1](g)[0]


given.defvjp(_given_fwd, _given_bwd)


def layer_forms(kernel: jax.Array, dtype, *, up: bool, demodulate: bool, algos=(), poly: bool = False) -> dict:
    """A conv layer's kernel forms from its kernel [k, k, I, O] float32, in `dtype` (the layer's): 'wsq' [I, O]
    float32 (demodulate); up-convs: 'poly' (polyphase_kernels, when poly) and, for each up-conv algorithm of
    `algos` in PHASE_WINOGRAD, its phase_transforms; same-size convs of k > 1 (a 1x1 conv is a matmul, with no
    form): 'wt' transposed [k, k, O, I] and, for each Winograd algorithm of `algos`, its transform ('winograd2d'
    [16, I, O], 'winograd4x4' [36, I, O], 'rows' a tuple of 6 [1, 3, I, O]: conv3x3.rows_kernels) and '<algo>_t'
    (that of 'wt': the input gradient by the same algorithm)."""
    k = kernel.astype(dtype)
    out = {"wsq": demod_squares(kernel)} if demodulate else {}
    if up:
        if poly:
            out["poly"] = polyphase_kernels(k)
            out.update({algo: phase_transforms(out["poly"], algo) for algo in algos if algo in PHASE_WINOGRAD})
        return out
    if kernel.shape[:2] == (1, 1):   # a matmul (ops.conv_2d): no form of its own
        return out
    out["wt"] = conv3x3.transposed(k)
    for algo in algos:
        u, u_t = conv3x3.kernel_transform(k, algo), conv3x3.kernel_transform(out["wt"], algo)
        if algo == "rows":   # the 1x3 kernels as separate arrays: slicing them per call copies them
            u, u_t = conv3x3.rows_kernels(u), conv3x3.rows_kernels(u_t)
        out[algo], out[algo + "_t"] = u, u_t
    return out


def prepare_layer(kernel: jax.Array, spec: LayerSpec, cfg: G2Config, backend: str | None = None) -> dict:
    """`layer_forms` of one style layer's kernel for the conv algorithms `cfg.numerics`' rule picks; for a 3x3
    conv whose 'auto' form is measured (si_jax.stylegan2.autotune.applies: measuring on, float32 on CPU, one
    process; and worth_measuring: MIN_FLOPS per image), every candidate's, so that the form measured fastest runs
    as it was timed (conv_tuning). backend: jax.default_backend() when None."""
    backend = backend or jax.default_backend()
    dtype, numerics = cfg.layer_dtype(spec.res), cfg.numerics
    is3x3 = kernel.shape[:2] == (3, 3)
    res_in = spec.res // 2 if spec.up else spec.res
    measured = is3x3 and autotune.applies(dtype, backend) and \
        autotune.worth_measuring((1, res_in, res_in, kernel.shape[2]), kernel.shape)
    if spec.up:
        rule = numerics.upconv_for(backend, res_in, min(kernel.shape[2:]), dtype)
        poly = is3x3 and len(cfg.resample_filter) == 4 and (
            rule != "transposed" or measured and numerics.upconv == "auto")
        return layer_forms(kernel, dtype, up=True, demodulate=spec.kind == "conv", poly=poly,
                           algos=UPCONV_WINOGRAD if measured and numerics.upconv == "auto" else (rule,))
    algos = ()
    if measured and numerics.conv3x3 == "auto":
        algos = WINOGRAD
    elif is3x3:
        rule = numerics.conv3x3_for(spec.res, spec.res, min(kernel.shape[2:]), dtype, backend)
        algos = () if rule == "direct" else (rule,)
    return layer_forms(kernel, dtype, up=False, demodulate=spec.kind == "conv", algos=algos)


def prepare(params, cfg: G2Config, backend: str | None = None):
    """params with each style layer's dict given a 'prepared' entry (`prepare_layer`); the rest shared, unchanged.
    Feed it to the synthesis functions instead of params, for values w.r.t. styles (module docstring)."""
    layers = [dict(lp, prepared=prepare_layer(lp["weight"], spec, cfg, backend))
              for lp, spec in zip(params["layers"], cfg.layers)]
    return dict(params, layers=layers)


def is_prepared(params) -> bool:
    """Whether `prepare` made these params."""
    return all("prepared" in lp for lp in params["layers"])
