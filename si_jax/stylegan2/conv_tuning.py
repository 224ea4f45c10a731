"""Which conv form an 'auto' layer runs when measuring is on: each form timed in its layer's context.

    t = ops.tuning(x, kernel, s, up=False)   # the layer with each form: {"direct": f, "winograd2d": g, "rows": h}
    numerics = conv_tuning.tuned(numerics, t)   # t.field set to the form measured fastest (cached on disk)

`tuning` says what si_jax.stylegan2.autotune times for one conv: the layer the network runs (its function is
given by si_jax.stylegan2.ops, so this module imports no network code), once per candidate form with that form
forced in `Numerics`. With `with_forms` (the network gives the layer its kernel forms, si_jax.stylegan2.kernels:
synthesis on prepared params), each candidate gets the forms it uses as an argument of the timed call, so their
derivation is outside the timing, as it is outside the network's programs; kernels.prepare_layer prepares every
candidate's forms for measured layers, so the form chosen runs as it was timed. Without, the candidates derive
them inline, as the network does (training, the discriminator). Measuring is on unless $SI_JAX_CONV_TUNING=off
(`autotune.enabled`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from si_jax.stylegan2 import autotune, conv3x3, kernels
from si_jax.stylegan2.numerics import Numerics


class Tuning(NamedTuple):
    """What autotune times for one 'auto' conv: the layer computed with each form (`forms`: {form: f(*args)}),
    `field` of Numerics it sets, the fixed rule's form, the cache entry's kind, args (x, kernel, [s,] bias, then
    the kernel forms dict or None: arrays, tracers or shape specs) and their letters for the mode ('-': never
    differentiated)."""
    kind: str
    field: str
    rule: str
    forms: dict
    args: tuple
    names: str


def tuning(layer: Callable, x, kernel, s=None, *, up: bool, demodulate: bool = True, resample_filter=(1, 3, 3, 1),
           numerics: Numerics, with_forms: bool = False) -> Tuning | None:
    """The measurement that resolves 'auto' for a conv layer on this host, or None where the form is not measured
    (forced, not float32 on CPU, measuring off, not a 3x3 kernel with a 4-tap filter).

    layer: f(numerics, x, kernel, [s,] bias, forms) -> the layer's output: the network's own code (s None: a plain
    conv layer, the discriminator's; else a modulated synthesis conv layer). x: [N, H, W, I], kernel: [3, 3, I, O]
    float32, s: [N, I] or None. with_forms: the candidates get every form `kernels.layer_forms` derives for them
    (shape specs here; zeros when timed), not derived inside the timed call.
    """
    field = "upconv" if up else "conv3x3"
    backend = jax.default_backend()
    if getattr(numerics, field) != "auto" or kernel.shape[:2] != (3, 3) or not autotune.applies(x.dtype, backend) \
            or (up and len(resample_filter) != 4):
        return None
    rule = numerics.upconv_for(backend, x.shape[1], min(kernel.shape[2:]), x.dtype, with_forms) if up else \
        numerics.conv3x3_for(x.shape[1], x.shape[2], min(kernel.shape[2:]), x.dtype, backend)
    demodulate = demodulate and s is not None
    forms = None
    if with_forms:
        forms = jax.eval_shape(lambda k: kernels.layer_forms(k, x.dtype, up=up, demodulate=demodulate,
                                                             algos=kernels.UPCONV_WINOGRAD if up else kernels.WINOGRAD,
                                                             poly=up),
                               jax.ShapeDtypeStruct(kernel.shape, kernel.dtype))
    bias = jax.ShapeDtypeStruct(kernel.shape[-1:], jnp.float32)
    if s is None:
        args, names, kind = (x, kernel, bias, forms), "xw--", "conv_up" if up else "conv3x3"
    else:
        args, names = (x, kernel, s, bias, forms), "xws--"
        kind = f"modconv_{'up' if up else '3x3'}{'' if demodulate else '_nodemod'}"
    # not 'winograd4x4' nor 'polyphase_w4' (numerics); Winograd phases only with their transforms prepared (upconv_for)
    winograd_phases = kernels.UPCONV_WINOGRAD if with_forms else ()
    algos = ("polyphase", *winograd_phases, "transposed") if up else ("direct",) + kernels.WINOGRAD
    candidates = {a: _forced(layer, numerics, field, a) for a in algos}
    return Tuning(kind + ("_prepared" if with_forms else ""), field, rule, candidates, args, names)


def _forced(layer: Callable, numerics: Numerics, field: str, algo: str) -> Callable:
    forced = dataclasses.replace(numerics, **{field: algo})
    return lambda *args: layer(forced, *args)


def tuned(numerics: Numerics, t: Tuning | None) -> Numerics:
    """numerics with t.field set to the form measured fastest (autotune.choose: cached, or timed now) in the conv
    library the program is compiled with (numerics.conv_library); numerics itself for t None. Without kernel forms
    a wide (>= conv3x3.NARROW channels) same-size 3x3 conv has the direct conv's gradient in every form, so only
    the forward is timed; narrow ones derive their forms inline and, like convs given forms, take their input (and,
    for rows, weight) gradient by their own algorithm (ops.conv_2d)."""
    if t is None:
        return numerics
    precision = numerics.matmul_precision(t.args[0].dtype)
    wide = min(t.args[1].shape[2:]) >= conv3x3.NARROW
    options = numerics.compiler_options(jax.default_backend())   # the program's: the forms are timed in it
    algo = autotune.choose(t.kind, t.forms, t.args, precision, t.rule, names=t.names,
                           same_backward=t.field == "conv3x3" and t.args[-1] is None and wide,
                           library=(numerics.conv_library, options) if options else ("", None))
    return dataclasses.replace(numerics, **{t.field: algo})
