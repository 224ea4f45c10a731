"""StyleGAN2 building blocks, NHWC, pure JAX.

Forms chosen by measurement (BENCHMARKS.md; design notes: ../shared/DESIGN.md): the non-fused modulated conv
(scale input by s, one shared-weight conv, scale output by the demodulation coefficients) and the separable
[1,3,3,1] FIR as shifted adds.
Border handling follows NVlabs `upfirdn2d` exactly (zero padding), which `jax.image.resize` does not.

Conv algorithms and precision come from a `Numerics` (si_jax.stylegan2.numerics; the network passes
`cfg.numerics`), resolved when a function is traced, with jax.default_backend(). 'auto' is the fixed rule below
(measured on a 2-core AMD EPYC, jax 0.10.2; numbers in BENCHMARKS.md), or, for float32 on CPU (by default;
$SI_JAX_CONV_TUNING=off keeps the rule), the candidate measured fastest on this host for the shape at hand
(si_jax.stylegan2.autotune: timed once, cached on disk; each form timed in its layer's context, `tuning`
(si_jax.stylegan2.conv_tuning); convs under autotune.MIN_FLOPS per image keep the rule):
- Same-size 3x3 convs of >= 128 channels use Winograd minimal filtering (si_jax.stylegan2.conv3x3) where it measured
  faster: F(2x2, 3x3) on 2-D tiles for 16 <= resolution < 64, F(4, 3) along rows from 64 up (tests/test_stylegan2.py
  checks both against float64); smaller maps use the direct conv, narrower ones too except F(4, 3) at 32 px (the
  training config). Off CPU, 'auto' is the direct conv.
- The up-conv (transposed stride-2 3x3 conv + [1,3,3,1] blur) runs in polyphase form on CPU: four small stride-1
  convs (2x2, 2x1, 1x2, 1x1 taps of the kernel) and the blur applied to the phases, written straight into the
  interleaved output. No dilated conv, no kernel flip; its gradient is four stride-1 convs too, behind the blur's
  own transpose (convgrad.phase_blur); in float32 with prepared forms, its 2-tap phase convs by Winograd
  (conv3x3.winograd_t): F(2x2, 2x2) / F(2, 2) at inputs of 8-32 px x >= 256 channels, F(4, 2) along rows at 64-256
  px. Off CPU it is one transposed conv (XLA conv of the 2x-dilated input) and the blur.
- Winograd convs' input gradient is the same Winograd algorithm on the transposed kernel's transform, with
  prepared kernel forms, or for narrow (< 128 channel) kernels without them, whose forms are derived inline (cheap;
  measured in the training step, 32 px x 64 channels, batch 32: BENCHMARKS.md 2026-12-05 late; per-call transforms
  of wide kernels cost more than they save at paper256, batch 1); else the direct conv's. Their weight gradient is
  the direct conv's, except F(4, 3) along rows on narrow kernels (`conv3x3.weight_grad`).
- 1x1 convs are a matmul over the channels; the modulated 1x1 conv (toRGB) scales its kernel by the styles per
  sample instead of scaling the input (`_modulated_1x1`).
- The demodulation sums the squared kernel over its 3x3 taps with explicit adds (`kernels.sum_taps`).
- Forms that depend on the kernel alone (input-gradient kernels, Winograd transforms, polyphase sub-kernels, the
  demodulation's squared-tap sums) come from `prepared` (si_jax.stylegan2.kernels) when given: once per weights.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.stylegan2 import conv3x3, conv_tuning, convgrad, kernels
from si_jax.stylegan2.numerics import DEFAULT, Numerics

_DN = ("NHWC", "HWIO", "NHWC")


def _taps(resample_filter, gain_1d: float) -> np.ndarray:
    """1-D FIR taps, normalised to sum 1, times the per-axis gain, flipped (true convolution, as upfirdn2d)."""
    f = np.asarray(resample_filter, np.float64)
    return (f / f.sum() * gain_1d)[::-1].astype(np.float32)


def _shift_add(x: jax.Array, taps: np.ndarray, axis: int, start: int, length: int) -> jax.Array:
    """sum_k taps[k] * x[start + k : start + k + length] along `axis` (x already padded)."""
    out = None
    for k, t in enumerate(taps):
        term = jax.lax.slice_in_dim(x, start + k, start + k + length, axis=axis) * float(t)
        out = term if out is None else out + term
    return out


def _pad_axis(x: jax.Array, axis: int, lo: int, hi: int) -> jax.Array:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (lo, hi)
    return jnp.pad(x, pad)


def fir_filter_2d(x: jax.Array, resample_filter, pad: tuple, gain: float = 1.0) -> jax.Array:
    """upfirdn2d(up=1, down=1, padding=(lo, hi) on both axes) with a separable filter.

    x: [N, H, W, C] -> [N, H + lo + hi - L + 1, W + lo + hi - L + 1, C], L = len(filter).
    """
    taps = _taps(resample_filter, math.sqrt(gain))
    lo, hi = pad
    for axis in (1, 2):
        n = x.shape[axis] + lo + hi - len(taps) + 1
        x = _shift_add(_pad_axis(x, axis, lo, hi), taps, axis, 0, n)
    return x


def _upsample_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
    """Zero-insert 2x upsampling + FIR along one axis, in polyphase form (no multiplications by inserted zeros).

    Padding as NVlabs `upsample2d`: p0 = (L + 1) // 2 before, p1 = L - 1 - p0 after, so the output has length 2n.
    Output sample 2j + ph sums taps k with (ph + k - p0) even, reading x[j + (ph + k - p0) / 2].
    """
    n, p0 = x.shape[axis], (len(taps) + 1) // 2
    phases = []
    for ph in (0, 1):
        ks = [k for k in range(len(taps)) if (ph + k - p0) % 2 == 0]
        ds = [(ph + k - p0) // 2 for k in ks]
        lo, hi = max(0, -min(ds)), max(0, max(ds))
        xp = _pad_axis(x, axis, lo, hi)
        out = None
        for k, d in zip(ks, ds):
            term = jax.lax.slice_in_dim(xp, lo + d, lo + d + n, axis=axis) * float(taps[k])
            out = term if out is None else out + term
        phases.append(out)
    stacked = jnp.stack(phases, axis=axis + 1)  # [..., n, 2, ...]
    shape = list(x.shape)
    shape[axis] = 2 * n
    return stacked.reshape(shape)


def upsample_2d(x: jax.Array, resample_filter) -> jax.Array:
    """NVlabs upfirdn2d.upsample2d(x, f, up=2): [N, H, W, C] -> [N, 2H, 2W, C] (gain 4 = 2 per axis)."""
    taps = _taps(resample_filter, 2.0)
    return _upsample_axis(_upsample_axis(x, taps, 1), taps, 2)


_conv = conv3x3.direct   # (x, kernel, padding, precision=None)


def _conv_tapgrad(x: jax.Array, kernel: jax.Array, padding, precision=None) -> jax.Array:
    """`_conv` with the weight gradient as one [I, O] matmul per tap (conv3x3.direct_t, tap_grad=True)."""
    return conv3x3.direct_t(x, kernel, conv3x3.transposed(kernel), padding, precision, True)


def _conv_up_polyphase(x: jax.Array, kernel: jax.Array, taps: np.ndarray, precision=None, poly=None,
                       algo: str = "polyphase", transforms=None) -> jax.Array:
    """conv_up_2d for a 3x3 kernel and a 4-tap filter, in polyphase form.

    Per axis, the scatter-form transposed conv t[2i + a] += x[i] k[a] has an even phase E[q] = t[2q] =
    x[q] k0 + x[q-1] k2 (q = 0..n) and an odd phase O[q] = t[2q+1] = x[q] k1 (q = 0..n-1); the blur (padding 1,
    flipped taps ft) then gives out[2r] = ft0 O[r-1] + ft1 E[r] + ft2 O[r] + ft3 E[r+1] and
    out[2r+1] = ft0 E[r] + ft1 O[r] + ft2 E[r+1] + ft3 O[r+1], with O[-1] = O[n] = 0: the odd phases' convs
    write those zeros themselves (kernels.PHASE_PAD), so no pass pads them (512 -> 1024 px: 1.5x faster forward,
    2-core AMD EPYC, BENCHMARKS.md 2026-12-05 "config-f 1024 forward").
    The phase convs' sub-kernels and their transposes: `poly` (kernels.polyphase_kernels), else derived here; algo
    'polyphase': all direct, else kernels.phase_specs' by Winograd (conv3x3.winograd_t) from `transforms`
    (kernels.phase_transforms), else derived here. Weight gradients: one [I, O] matmul per tap (XLA CPU's own
    weight-gradient conv measured 371 vs 48 ms on the 64-channel 32 px training config, 2-core AMD EPYC).
    """
    n, h, w, _ = x.shape
    ft = [float(t) for t in taps]
    if poly is None:
        poly = kernels.polyphase_kernels(kernel)
    else:   # given: their gradient still reaches `kernel`
        poly = {name: (kernels.given(k, kernel, name), kt) for name, (k, kt) in poly.items()}
    specs = kernels.phase_specs(algo)
    transforms = kernels.phase_transforms(poly, algo) if transforms is None else transforms
    pad = {name: (kernels.PHASE_PAD[name[0]], kernels.PHASE_PAD[name[1]]) for name in poly}
    phase = {name: conv3x3.winograd_t(x, k, kt, *transforms[name], specs[name], pad[name], precision)
             if name in specs else conv3x3.direct_t(x, k, kt, pad[name], precision, True)
             for name, (k, kt) in poly.items()}

    blur = functools.partial(convgrad.phase_blur, ft=tuple(ft))   # (even, odd) samples along an axis
    row_e = blur(phase["EE"], phase["EO"], 2)  # (even cols, odd cols) of the even row phase: [N, H + 1, W, O]
    row_o = blur(phase["OE"], phase["OO"], 2)  # [N, H + 2, W, O], zero first and last rows
    cols = [blur(row_e[j], row_o[j], 1) for j in range(2)]  # cols[px] = (even rows, odd rows): [N, H, W, O]
    y = jnp.stack([jnp.stack([cols[0][py], cols[1][py]], 3) for py in range(2)], 2)  # [N, H, 2, W, 2, O]
    return y.reshape(n, 2 * h, 2 * w, y.shape[-1])


def _conv_up_transposed(x: jax.Array, kernel: jax.Array, resample_filter, precision=None) -> jax.Array:
    """conv_up_2d as a correlation of the 2x-dilated input with the spatially flipped kernel, then the blur."""
    k, taps = kernel.shape[0], len(resample_filter)
    lo, hi = k // 2 + (taps + 1) // 2 - (k - 1), k // 2 + (taps - 2) // 2 - (k - 2)  # NVlabs px0, px1
    if lo < 0 or hi < 0:
        raise ValueError(f"unsupported kernel/filter sizes for an up-conv: k={k}, filter taps={taps}")
    y = jax.lax.conv_general_dilated(
        x, kernel[::-1, ::-1], window_strides=(1, 1), padding=((k - 1, k - 1), (k - 1, k - 1)),
        lhs_dilation=(2, 2), dimension_numbers=_DN, precision=precision)  # [N, 2H + k - 2, 2W + k - 2, O]
    return fir_filter_2d(y, resample_filter, pad=(lo, hi), gain=4.0)


def upconv_forms(resample_filter, precision=None) -> dict:
    """{'polyphase' | 'transposed' | kernels.PHASE_WINOGRAD's: f(x, kernel)}: the up-conv's forms (3x3 kernel, 4-tap
    filter), every kernel form derived per call."""
    taps = _taps(resample_filter, 2.0)
    return {**{algo: functools.partial(_conv_up_polyphase, taps=taps, precision=precision, algo=algo)
               for algo in ("polyphase", *kernels.PHASE_WINOGRAD)},
            "transposed": lambda x, k: _conv_up_transposed(x, k, resample_filter, precision)}


def tuning(x, kernel, s=None, *, up: bool, demodulate: bool = True, resample_filter=(1, 3, 3, 1),
           numerics: Numerics = DEFAULT, prepared=None) -> conv_tuning.Tuning | None:
    """conv_tuning.tuning for this module's layers: s None, a plain conv layer (conv_2d / conv_up_2d, then bias_act
    lrelu: the discriminator's); else a synthesis conv layer (modulated_conv, then bias_act lrelu; no noise add).
    prepared: the layer's kernel forms (a kernels.prepare_layer dict; True where only shapes are at hand, as in
    bench/) or None: with forms, each candidate is timed on its own forms given, as the network runs it."""
    layer = _conv_layer if s is None else _modulated_layer
    layer = functools.partial(layer, demodulate=demodulate, up=up, resample_filter=resample_filter)
    return conv_tuning.tuning(layer, x, kernel, s, up=up, demodulate=demodulate, resample_filter=resample_filter,
                              numerics=numerics, with_forms=prepared is not None)


def _conv_layer(numerics, x, kernel, bias, prepared, *, demodulate, up, resample_filter):
    """lrelu(conv_2d or conv_up_2d + bias): a plain conv layer (demodulate unused)."""
    y = conv_up_2d(x, kernel, resample_filter, numerics, prepared) if up else conv_2d(x, kernel, numerics, prepared)
    return bias_act(y, bias, act="lrelu")


def _modulated_layer(numerics, x, kernel, s, bias, prepared, *, demodulate, up, resample_filter):
    """A synthesis conv layer as the network runs it (without its noise add): lrelu(modulated_conv(...) + bias)."""
    y = modulated_conv(x, kernel, s, demodulate=demodulate, up=up, resample_filter=resample_filter,
                       numerics=numerics, prepared=prepared)
    return bias_act(y, bias, act="lrelu")


def conv_up_2d(x: jax.Array, kernel: jax.Array, resample_filter, numerics: Numerics = DEFAULT,
               prepared=None) -> jax.Array:
    """Transposed stride-2 conv followed by the FIR blur, as NVlabs conv2d_resample(up=2, padding=k//2).

    x: [N, H, W, I]; kernel: [k, k, I, O] in forward-conv (cross-correlation) orientation, x's dtype
    -> [N, 2H, 2W, O]. 3x3 kernels with a 4-tap filter (every released model) run in polyphase form, its phase
    convs direct or by Winograd (`_conv_up_polyphase`), or as one transposed conv (`_conv_up_transposed`):
    numerics.upconv, and for 'auto' the fastest on this host for float32 on CPU (measured, si_jax.stylegan2.autotune),
    else `numerics.upconv_for`'s rule (without prepared forms: direct phases).
    Other sizes: transposed. prepared: the kernel's forms (si_jax.stylegan2.kernels.prepare_layer), or None.
    """
    precision = numerics.matmul_precision(x.dtype)
    if kernel.shape[0] == 3 and len(resample_filter) == 4:
        numerics = conv_tuning.tuned(numerics, tuning(x, kernel, up=True, resample_filter=resample_filter,
                                                      numerics=numerics, prepared=prepared))
        algo = numerics.upconv_for(jax.default_backend(), x.shape[1], min(kernel.shape[2:]), x.dtype,
                                   prepared is not None)
        if algo != "transposed" and prepared and "poly" in prepared:
            return _conv_up_polyphase(x, kernel, _taps(resample_filter, 2.0), precision, prepared["poly"], algo,
                                      prepared.get(algo))
        return upconv_forms(resample_filter, precision)[algo](x, kernel)
    return _conv_up_transposed(x, kernel, resample_filter, precision)


def conv_2d(x: jax.Array, kernel: jax.Array, numerics: Numerics = DEFAULT, prepared=None) -> jax.Array:
    """Same-size cross-correlation. x: [N, H, W, I], kernel: [k, k, I, O] (x's dtype) -> [N, H, W, O].

    1x1 kernels are one matmul over the channels (conv3x3.direct). 3x3 kernels use numerics.conv3x3; for 'auto',
    the fastest on this host for float32 on CPU (measured at trace time, si_jax.stylegan2.autotune), else
    `numerics.conv3x3_for`'s rule. Every conv runs at `numerics.matmul_precision` of x's dtype. prepared: the
    kernel's forms (si_jax.stylegan2.kernels.prepare_layer: 'wt' for the input gradient, the Winograd transform),
    or None (Winograd's forms derived here: all of them for narrow kernels, the input gradient then by the same
    algorithm; the transform alone otherwise, XLA's input gradient).
    """
    p = kernel.shape[0] // 2
    precision = numerics.matmul_precision(x.dtype)
    pk = prepared or {}
    if kernel.shape[:2] == (3, 3):
        numerics = conv_tuning.tuned(numerics, tuning(x, kernel, up=False, numerics=numerics, prepared=prepared))
        algo = numerics.conv3x3_for(x.shape[1], x.shape[2], min(kernel.shape[2:]), x.dtype, jax.default_backend())
        if algo != "direct":
            if not pk and min(kernel.shape[2:]) < conv3x3.NARROW:   # input gradient by `algo` too (module doc)
                pk = kernels.layer_forms(kernel, kernel.dtype, up=False, demodulate=False, algos=(algo,))
            u = pk[algo] if algo in pk else conv3x3.kernel_transform(kernel, algo)
            return conv3x3.conv3x3(x, kernel, pk.get("wt"), u, pk.get(algo + "_t"), algo, precision)
    if "wt" in pk:
        return conv3x3.direct_t(x, kernel, pk["wt"], ((p, p), (p, p)), precision)
    return _conv(x, kernel, ((p, p), (p, p)), precision)


def demod_coefficients(kernel: jax.Array, s: jax.Array, precision="highest", wsq=None) -> jax.Array:
    """rsqrt(sum_{kh,kw,i} (kernel * s_i)^2 + 1e-8) in float32. kernel: [k, k, I, O], s: [N, I] -> [N, O].
    wsq: kernels.demod_squares(kernel) [I, O] if already computed."""
    wsq = kernels.demod_squares(kernel) if wsq is None else kernels.given(wsq, kernel, "squares")
    return jax.lax.rsqrt(jnp.matmul(jnp.square(s.astype(jnp.float32)), wsq, precision=precision) + 1e-8)


def modulated_conv(x, kernel, s, *, demodulate: bool, up: bool, resample_filter=(1, 3, 3, 1),
                   numerics: Numerics = DEFAULT, prepared=None):
    """Non-fused modulated convolution: conv(x * s) * demod(s), in x's dtype (the kernel is cast to it; s and the
    demodulation coefficients are computed in float32 and cast, as NVlabs does in fp16).

    x: [N, H, W, I] (float32 or bfloat16); kernel: [k, k, I, O] float32; s: [N, I] float32
    -> [N, H', W', O] in x's dtype (H' = 2H when up). prepared: the kernel's forms that depend on it alone
    (si_jax.stylegan2.kernels.prepare_layer, in x's dtype), or None: derived here.
    A 1x1 kernel (toRGB) is scaled by the styles instead of x (`_modulated_1x1`; prepared unused).
    An 'auto' conv form measured on this host is timed in this layer's context (`tuning`: this function and
    bias_act, each form forced, on the prepared forms when given) and passed down, so conv_2d / conv_up_2d do not
    time the conv alone.
    """
    if kernel.shape[:2] == (1, 1) and not up:
        return _modulated_1x1(x, kernel, s, demodulate, numerics)
    numerics = conv_tuning.tuned(numerics, tuning(x, kernel, s, up=up, demodulate=demodulate,
                                                  resample_filter=resample_filter, numerics=numerics,
                                                  prepared=prepared))
    k = kernel.astype(x.dtype)
    x = x * s[:, None, None, :].astype(x.dtype)
    y = conv_up_2d(x, k, resample_filter, numerics, prepared) if up else conv_2d(x, k, numerics, prepared)
    if demodulate:
        wsq = prepared.get("wsq") if prepared else None
        d = demod_coefficients(kernel, s, numerics.matmul_precision(jnp.float32), wsq)
        y = y * d[:, None, None, :].astype(y.dtype)
    return y


def _modulated_1x1(x, kernel, s, demodulate: bool, numerics: Numerics):
    """modulated_conv for a 1x1 kernel (toRGB): the styles (and demodulation) scale the [I, O] kernel per sample,
    in float32 as NVlabs' fused modconv does, then one batched matmul: x [N, H, W, I] -> [N, H, W, O].
    Scaling the input instead is a pass over x per call (a 1024 px toRGB's [1, 1024, 1024, 32]) for a kernel of
    I x 3 values; the gradient w.r.t. s is a [I, HW] x [HW, O] matmul per sample, as cheap as that w.r.t. x."""
    precision = numerics.matmul_precision(jnp.float32)
    w = kernel[0, 0][None] * s.astype(jnp.float32)[:, :, None]   # [N, I, O]
    if demodulate:
        w = w * demod_coefficients(kernel, s, precision)[:, None, :]
    return jnp.einsum("nhwi,nio->nhwo", x, w.astype(x.dtype), precision=numerics.matmul_precision(x.dtype))


def bias_act(x: jax.Array, bias: jax.Array, *, act: str, clamp: float | None = None) -> jax.Array:
    """NVlabs bias_act: x + b, then lrelu(0.2) * sqrt(2) (act='lrelu') or identity ('linear'), then clamp; in x's
    dtype (b is cast to it)."""
    x = x + bias.astype(x.dtype)
    if act == "lrelu":
        x = jnp.where(x >= 0, x * np.asarray(math.sqrt(2.0), x.dtype), x * np.asarray(0.2 * math.sqrt(2.0), x.dtype))
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if clamp is not None:
        x = jnp.clip(x, -clamp, clamp)
    return x
