"""Convolutions whose gradients XLA:CPU computes slowly, with their own VJPs (the same values to float32 rounding,
first and second order: tests/test_stylegan2.py).

    down2(x, kernel)              stride-2 'valid' conv (the discriminator's down-sampling conv after the blur)
    tap_products(x, g, kh, kw, stride)   a conv's weight gradient as one [I, O] matmul per kernel tap (also
                                  conv3x3.direct_t's, for the polyphase up-conv's small even kernels)
    phase_blur(e, o, axis, ft)    the polyphase up-conv's blur along one axis (ops._conv_up_polyphase), whose
                                  gradient is its transpose written as one shift-add (`phase_blur_t`)

The input gradients are built from these functions again, so gradients of gradients (R1 and path-length
regularisers: reverse over reverse) keep the fast forms (down2's first-order weight gradient is XLA's own: nothing
differentiates it again). x: [N, H, W, I], kernel: [kh, kw, I, O] (HWIO), NHWC throughout.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_DN = ("NHWC", "HWIO", "NHWC")


def tap_products(x: jax.Array, g: jax.Array, kh: int, kw: int, stride: int, precision=None) -> jax.Array:
    """dk[a, b] = sum_{n,h,w} x[n, a + s·h, b + s·w, :]ᵀ g[n, h, w, :]: [kh, kw, I, O] (x already padded)."""
    ho, wo = g.shape[1:3]
    s = stride
    return jnp.stack([jnp.stack([
        jnp.einsum("nhwi,nhwo->io", x[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s], g,
                   precision=precision)
        for b in range(kw)]) for a in range(kh)])


def _strided(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (2, 2), "VALID", dimension_numbers=_DN)


@jax.custom_vjp
def down2(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-2 'valid' cross-correlation: [N, H, W, I] -> [N, (H - kh) // 2 + 1, (W - kw) // 2 + 1, O].

    Its first-order gradients are XLA's; its input gradient is `down2_t`, whose weight gradient is one matmul per
    tap on strided slices: autodiff of XLA's input gradient w.r.t. the kernel (what R1 differentiates) is a
    window-dilated conv that XLA:CPU runs slowly (2-core AMD EPYC (avx512f), 2026-12-05; batch 32, 33 px x 64
    channels: 795 ms vs 70 ms for the R1-like double backward; the first-order weight gradient is faster as XLA's,
    25 vs 57 ms).
    """
    return _strided(x, kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def down2_t(g: jax.Array, kernel: jax.Array, x_shape: tuple) -> jax.Array:
    """The transpose of `down2` w.r.t. x: g [N, Ho, Wo, O] -> [N, H, W, I] (x_shape = (N, H, W, I)), as XLA
    computes it (a conv of the 2x-dilated g with the flipped kernel)."""
    return jax.linear_transpose(lambda x: _strided(x, kernel), jax.ShapeDtypeStruct(x_shape, g.dtype))(g)[0]


def _down2_fwd(x, kernel):
    return down2(x, kernel), (x, kernel)


def _down2_bwd(res, g):
    x, k = res
    return down2_t(g, k, x.shape), jax.vjp(lambda k: _strided(x, k), k)[1](g)[0]


def _down2_t_fwd(g, kernel, x_shape):
    return down2_t(g, kernel, x_shape), (g, kernel)


def _down2_t_bwd(x_shape, res, dx):
    g, k = res
    return down2(dx, k), tap_products(dx, g, k.shape[0], k.shape[1], 2)


down2.defvjp(_down2_fwd, _down2_bwd)
down2_t.defvjp(_down2_t_fwd, _down2_t_bwd)


def _blur(e: jax.Array, o: jax.Array, axis: int, ft: tuple) -> tuple:
    """(even, odd) output samples [.., L, ..] along `axis` from the even phase e (length L + 1) and the zero-bordered
    odd phase o (length L + 2), flipped taps ft: even[r] = ft0 o[r] + ft1 e[r] + ft2 o[r+1] + ft3 e[r+1],
    odd[r] = ft0 e[r] + ft1 o[r+1] + ft2 e[r+1] + ft3 o[r+2]."""
    n = o.shape[axis] - 2
    sl = lambda z, start: jax.lax.slice_in_dim(z, start, start + n, axis=axis)  # noqa: E731
    even = sl(o, 0) * ft[0] + sl(e, 0) * ft[1] + sl(o, 1) * ft[2] + sl(e, 1) * ft[3]
    odd = sl(e, 0) * ft[0] + sl(o, 1) * ft[1] + sl(e, 1) * ft[2] + sl(o, 2) * ft[3]
    return even, odd


def _blur_transpose(ge: jax.Array, go: jax.Array, axis: int, ft: tuple) -> tuple:
    """The transpose of `_blur`: cotangents (ge, go) [.., L, ..] -> those of (e [L + 1], o [L + 2]), each a
    shift-add over the cotangents padded once by 2 on each side."""
    n = ge.shape[axis]
    pad = [(0, 0)] * ge.ndim
    pad[axis] = (2, 2)
    pe, po = jnp.pad(ge, pad), jnp.pad(go, pad)
    sl = lambda z, start, length: jax.lax.slice_in_dim(z, start, start + length, axis=axis)  # noqa: E731
    g_e = sl(pe, 1, n + 1) * ft[3] + sl(pe, 2, n + 1) * ft[1] + sl(po, 1, n + 1) * ft[2] + sl(po, 2, n + 1) * ft[0]
    g_o = sl(pe, 2, n + 2) * ft[0] + sl(pe, 1, n + 2) * ft[2] + sl(po, 1, n + 2) * ft[1] + sl(po, 0, n + 2) * ft[3]
    return g_e, g_o


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def phase_blur(e: jax.Array, o: jax.Array, axis: int, ft: tuple) -> tuple:
    """`_blur` (ft: a tuple of 4 floats) whose gradient is `phase_blur_t`, and that one's this: autodiff's
    transpose pads each of the 8 slices' cotangents to full size, and XLA:CPU kept those as separate buffers
    (16 of [1, 130, 128, 64] per 256 px up-conv in paper256's fwd+bwd w.r.t. styles)."""
    return _blur(e, o, axis, ft)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def phase_blur_t(ge: jax.Array, go: jax.Array, axis: int, ft: tuple) -> tuple:
    """`_blur_transpose`, differentiable (its gradient is `phase_blur`)."""
    return _blur_transpose(ge, go, axis, ft)


phase_blur.defvjp(lambda e, o, axis, ft: (phase_blur(e, o, axis, ft), None),
                  lambda axis, ft, _, g: phase_blur_t(g[0], g[1], axis, ft))
phase_blur_t.defvjp(lambda ge, go, axis, ft: (phase_blur_t(ge, go, axis, ft), None),
                    lambda axis, ft, _, g: phase_blur(g[0], g[1], axis, ft))
