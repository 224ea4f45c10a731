"""StyleGAN2 building blocks, NHWC, pure JAX.

Forms chosen by measurement (DESIGN.md, BENCHMARKS.md): the non-fused modulated conv (scale input by s, one
shared-weight conv, scale output by the demodulation coefficients) and the separable [1,3,3,1] FIR as shifted adds.
Border handling follows NVlabs `upfirdn2d` exactly (zero padding), which `jax.image.resize` does not.

Speed (CPU, jax 0.10.2; numbers in BENCHMARKS.md):
- Same-size 3x3 convs of >= 128 channels use Winograd minimal filtering (si_jax.stylegan2.conv3x3) where it measured
  faster: F(2x2, 3x3) on 2-D tiles for 16 <= resolution < 64, F(4, 3) along rows from 64 up (tests/test_stylegan2.py
  checks both against float64); smaller or narrower maps use the direct conv. `SI_JAX_CONV3X3=direct` (environment, read at import)
  or `ops.CONV3X3_ALGORITHM` (read when a function is traced) selects one algorithm everywhere: 'auto', 'direct',
  'winograd2d', 'rows'.
- The up-conv (transposed stride-2 3x3 conv + [1,3,3,1] blur) runs in polyphase form: four small stride-1 convs
  (2x2, 2x1, 1x2, 1x1 taps of the kernel) and the blur applied to the phases, written straight into the
  interleaved output. No dilated conv, no kernel flip; its gradient is four stride-1 convs too.
- Winograd convs run forward only: their gradient is the direct conv's (`conv3x3.conv3x3`).
- The demodulation sums the squared kernel over its 3x3 taps with explicit adds (see `_sum_taps`).
"""
from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.stylegan2 import conv3x3

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


_conv = conv3x3.direct


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_tapgrad(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
    """`_conv` for the small even kernels (2x2, 2x1, 1x2) of the polyphase up-conv, whose weight gradient is
    computed as one [I, O] matmul per tap: XLA CPU's own weight-gradient conv for such kernels is slow (measured
    on the 64-channel 32 px training config: 371 ms vs 48 ms for that gradient; G fwd+bwd 649 -> 337 ms).
    Same values as `_conv` and its autodiff to float32 rounding, first and second order (tests)."""
    return _conv(x, kernel, padding)


def _conv_tapgrad_fwd(x, kernel, padding):
    return _conv(x, kernel, padding), (x, kernel)


def _conv_tapgrad_bwd(padding, res, g):
    x, k = res
    kh, kw = k.shape[:2]
    (lh, hh), (lw, hw) = padding
    dx = _conv_tapgrad(g, jnp.flip(k, (0, 1)).swapaxes(2, 3),
                       ((kh - 1 - lh, kh - 1 - hh), (kw - 1 - lw, kw - 1 - hw)))
    xp = jnp.pad(x, ((0, 0), (lh, hh), (lw, hw), (0, 0)))
    ho, wo = g.shape[1:3]
    dk = jnp.stack([jnp.stack([jnp.einsum("nhwi,nhwo->io", xp[:, a:a + ho, b:b + wo], g) for b in range(kw)])
                    for a in range(kh)])
    return dx, dk


_conv_tapgrad.defvjp(_conv_tapgrad_fwd, _conv_tapgrad_bwd)


def _conv_up_polyphase(x: jax.Array, kernel: jax.Array, taps: np.ndarray) -> jax.Array:
    """conv_up_2d for a 3x3 kernel and a 4-tap filter, in polyphase form.

    Per axis, the scatter-form transposed conv t[2i + a] += x[i] k[a] has an even phase E[q] = t[2q] =
    x[q] k0 + x[q-1] k2 (q = 0..n) and an odd phase O[q] = t[2q+1] = x[q] k1 (q = 0..n-1); the blur (padding 1,
    flipped taps ft) then gives out[2r] = ft0 O[r-1] + ft1 E[r] + ft2 O[r] + ft3 E[r+1] and
    out[2r+1] = ft0 E[r] + ft1 O[r] + ft2 E[r+1] + ft3 O[r+1], with O[-1] = O[n] = 0.
    """
    n, h, w, _ = x.shape
    ft = [float(t) for t in taps]
    rows = {"E": (jnp.stack([kernel[2], kernel[0]]), (1, 1)), "O": (kernel[1:2], (0, 0))}
    phase = {}
    for pr, (kr, pad_r) in rows.items():  # kr: [taps_h, 3, I, O]
        phase[pr + "E"] = _conv_tapgrad(x, jnp.stack([kr[:, 2], kr[:, 0]], 1), (pad_r, (1, 1)))
        phase[pr + "O"] = _conv_tapgrad(x, kr[:, 1:2], (pad_r, (0, 0)))

    def blur(e, o, axis):
        """(even, odd) output samples along `axis` from the even (length L + 1) and odd (length L) phases."""
        length = o.shape[axis]
        o = _pad_axis(o, axis, 1, 1)
        sl = lambda z, start: jax.lax.slice_in_dim(z, start, start + length, axis=axis)  # noqa: E731
        even = sl(o, 0) * ft[0] + sl(e, 0) * ft[1] + sl(o, 1) * ft[2] + sl(e, 1) * ft[3]
        odd = sl(e, 0) * ft[0] + sl(o, 1) * ft[1] + sl(e, 1) * ft[2] + sl(o, 2) * ft[3]
        return even, odd

    row_e = blur(phase["EE"], phase["EO"], 2)  # (even cols, odd cols) of the even row phase: [N, H + 1, W, O]
    row_o = blur(phase["OE"], phase["OO"], 2)  # [N, H, W, O]
    cols = [blur(row_e[j], row_o[j], 1) for j in range(2)]  # cols[px] = (even rows, odd rows): [N, H, W, O]
    y = jnp.stack([jnp.stack([cols[0][py], cols[1][py]], 3) for py in range(2)], 2)  # [N, H, 2, W, 2, O]
    return y.reshape(n, 2 * h, 2 * w, y.shape[-1])


def conv_up_2d(x: jax.Array, kernel: jax.Array, resample_filter) -> jax.Array:
    """Transposed stride-2 conv followed by the FIR blur, as NVlabs conv2d_resample(up=2, padding=k//2).

    x: [N, H, W, I]; kernel: [k, k, I, O] in forward-conv (cross-correlation) orientation -> [N, 2H, 2W, O].
    3x3 kernels with a 4-tap filter (every released model) run in polyphase form (`_conv_up_polyphase`); other
    sizes as a correlation of the 2x-dilated input with the spatially flipped kernel, then the blur.
    """
    k, taps = kernel.shape[0], len(resample_filter)
    if k == 3 and taps == 4:
        return _conv_up_polyphase(x, kernel, _taps(resample_filter, 2.0))
    lo, hi = k // 2 + (taps + 1) // 2 - (k - 1), k // 2 + (taps - 2) // 2 - (k - 2)  # NVlabs px0, px1
    if lo < 0 or hi < 0:
        raise ValueError(f"unsupported kernel/filter sizes for an up-conv: k={k}, filter taps={taps}")
    y = jax.lax.conv_general_dilated(
        x, kernel[::-1, ::-1], window_strides=(1, 1), padding=((k - 1, k - 1), (k - 1, k - 1)),
        lhs_dilation=(2, 2), dimension_numbers=_DN)  # [N, 2H + k - 2, 2W + k - 2, O]
    return fir_filter_2d(y, resample_filter, pad=(lo, hi), gain=4.0)


# --- 3x3 convolution: which algorithm (si_jax.stylegan2.conv3x3 has them) ---------------------------------------
CONV3X3_ALGORITHMS = ("auto", "direct", "winograd2d", "rows")
CONV3X3_ALGORITHM = os.environ.get("SI_JAX_CONV3X3", "auto")


def conv3x3_algorithm(h: int, w: int, channels: int = 512) -> str:
    """The algorithm `conv_2d` uses for a 3x3 kernel on an h x w map with min(in, out) = `channels`
    (CONV3X3_ALGORITHM unless 'auto').

    'auto' (the fastest whole-network variant measured on CPU, BENCHMARKS.md): direct below 16 px or 128 channels,
    F(2x2, 3x3) below 64 px, rows F(4, 3) from 64 px up. The gain is modest (~10 % on the paper256 forward, none
    at 1024), and the transforms cost compile time, so narrow layers (small test and demo models) stay direct.
    """
    algo = CONV3X3_ALGORITHM
    if algo not in CONV3X3_ALGORITHMS:
        raise ValueError(f"CONV3X3_ALGORITHM / SI_JAX_CONV3X3 must be one of {CONV3X3_ALGORITHMS}, got {algo!r}")
    if algo != "auto":
        return algo
    size = min(h, w)
    return "direct" if size < 16 or channels < 128 else "winograd2d" if size < 64 else "rows"


def conv_2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Same-size cross-correlation. x: [N, H, W, I], kernel: [k, k, I, O] -> [N, H, W, O]."""
    p = kernel.shape[0] // 2
    if kernel.shape[:2] == (3, 3):
        algo = conv3x3_algorithm(x.shape[1], x.shape[2], min(kernel.shape[2:]))
        if algo != "direct":
            return conv3x3.conv3x3(x, kernel, algo)
    return _conv(x, kernel, ((p, p), (p, p)))


def _sum_taps(k: jax.Array) -> jax.Array:
    """sum over the two leading (spatial) axes of [kh, kw, I, O] as explicit adds of [I, O] slices.

    Measured (jax 0.10.2, 2-core CPU): `jnp.sum(..., axis=(0, 1))` of a squared [3, 3, 512, 512] kernel takes
    ~10 ms; the unrolled adds fuse into one elementwise loop (~0.1 ms).
    """
    out = None
    for a in range(k.shape[0]):
        for b in range(k.shape[1]):
            out = k[a, b] if out is None else out + k[a, b]
    return out


def demod_coefficients(kernel: jax.Array, s: jax.Array) -> jax.Array:
    """rsqrt(sum_{kh,kw,i} (kernel * s_i)^2 + 1e-8). kernel: [k, k, I, O], s: [N, I] -> [N, O]."""
    wsq = _sum_taps(jnp.square(kernel))  # [I, O]
    return jax.lax.rsqrt(jnp.square(s) @ wsq + 1e-8)


def modulated_conv(x, kernel, s, *, demodulate: bool, up: bool, resample_filter=(1, 3, 3, 1)):
    """Non-fused modulated convolution: conv(x * s) * demod(s).

    x: [N, H, W, I]; kernel: [k, k, I, O]; s: [N, I] -> [N, H', W', O] (H' = 2H when up).
    """
    x = x * s[:, None, None, :].astype(x.dtype)
    y = conv_up_2d(x, kernel, resample_filter) if up else conv_2d(x, kernel)
    if demodulate:
        y = y * demod_coefficients(kernel, s)[:, None, None, :].astype(y.dtype)
    return y


def bias_act(x: jax.Array, bias: jax.Array, *, act: str, clamp: float | None = None) -> jax.Array:
    """NVlabs bias_act: x + b, then lrelu(0.2) * sqrt(2) (act='lrelu') or identity ('linear'), then clamp."""
    x = x + bias
    if act == "lrelu":
        x = jnp.where(x >= 0, x, 0.2 * x) * math.sqrt(2.0)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if clamp is not None:
        x = jnp.clip(x, -clamp, clamp)
    return x
