"""StyleGAN2 building blocks, NHWC, pure JAX.

Forms chosen by measurement (DESIGN.md): the non-fused modulated conv (scale input by s, one shared-weight conv,
scale output by the demodulation coefficients) and the separable [1,3,3,1] FIR as shifted adds. Border handling
follows NVlabs `upfirdn2d` exactly (zero padding), which `jax.image.resize` does not.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

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


def conv_up_2d(x: jax.Array, kernel: jax.Array, resample_filter) -> jax.Array:
    """Transposed stride-2 conv followed by the FIR blur, as NVlabs conv2d_resample(up=2, padding=k//2).

    x: [N, H, W, I]; kernel: [k, k, I, O] in forward-conv (cross-correlation) orientation -> [N, 2H, 2W, O].
    A transposed conv is a correlation of the 2x-dilated input with the spatially flipped kernel.
    """
    k, taps = kernel.shape[0], len(resample_filter)
    lo, hi = k // 2 + (taps + 1) // 2 - (k - 1), k // 2 + (taps - 2) // 2 - (k - 2)  # NVlabs px0, px1
    if lo < 0 or hi < 0:
        raise ValueError(f"unsupported kernel/filter sizes for an up-conv: k={k}, filter taps={taps}")
    y = jax.lax.conv_general_dilated(
        x, kernel[::-1, ::-1], window_strides=(1, 1), padding=((k - 1, k - 1), (k - 1, k - 1)),
        lhs_dilation=(2, 2), dimension_numbers=_DN)  # [N, 2H + k - 2, 2W + k - 2, O]
    return fir_filter_2d(y, resample_filter, pad=(lo, hi), gain=4.0)


def conv_2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Same-size cross-correlation. x: [N, H, W, I], kernel: [k, k, I, O] -> [N, H, W, O]."""
    p = kernel.shape[0] // 2
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((p, p), (p, p)), dimension_numbers=_DN)


def demod_coefficients(kernel: jax.Array, s: jax.Array) -> jax.Array:
    """rsqrt(sum_{kh,kw,i} (kernel * s_i)^2 + 1e-8). kernel: [k, k, I, O], s: [N, I] -> [N, O]."""
    wsq = jnp.sum(jnp.square(kernel), axis=(0, 1))  # [I, O]
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
