"""Same-size 3x3 convolution by Winograd minimal filtering (Lavin & Gray 2016), and the direct conv it replaces.

    y = conv3x3(x, kernel, kernel_t, u, algo, precision)   # x: [N, H, W, I], kernel: [3, 3, I, O] -> [N, H, W, O]
        # u = kernel_transform(kernel, algo); kernel_t = transposed(kernel) or None;
        # algo 'winograd2d' | 'winograd4x4' | 'rows'
    y = direct_t(x, kernel, kernel_t, padding, precision)   # the direct conv, input gradient with kernel_t
    y = winograd_t(x, kernel, kernel_t, u, u_t, specs, padding, precision)   # any padding, 1-3 taps per axis
        # u = transform(kernel, specs): the polyphase up-conv's 2-tap phase convs by F(m, 2) on 2-D tiles
        # (winograd_valid) or along rows (specs (rows, None): winograd_rows) (ops)

'winograd2d' is F(2x2, 3x3) on 2-D tiles (one batched matmul over the 16 tile positions); 'winograd4x4' is
F(4x4, 3x3) the same way (36 positions, 4 multiplications per output instead of 9 for F(2x2)); 'rows' is F(4, 3)
along rows only, followed by 1x3 convs along columns. All stay in float32 within ~1e-5 of the direct conv's max
(F(2x2) ~1e-6, rows ~2e-6, F(4x4) ~5e-6: the larger tile amplifies rounding more). Which layers use which:
`si_jax.stylegan2.numerics.Numerics.conv3x3_for`. `precision` is lax's (None = jax's default matmul precision).

The kernel forms (`kernel_transform`'s u, `transposed`'s flipped kernel with I/O swapped) depend on the weights
only: si_jax.stylegan2.kernels computes them once per weights for synthesis w.r.t. styles, or inline (inside the
function differentiated w.r.t. the weights). The convs here take them as arguments and give them zero cotangents:
the gradient w.r.t. the weights is returned for `kernel` alone (exact, as the value depends on the kernel alone).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.stylegan2 import convgrad

_DN = ("NHWC", "HWIO", "NHWC")
# min(I, O) below which a kernel counts as narrow: its Winograd forms are cheap to derive per call (ops.conv_2d
# derives them inline when none are prepared) and 'rows' takes its weight gradient through the transforms.
NARROW = 128


def direct(x: jax.Array, kernel: jax.Array, padding, precision=None) -> jax.Array:
    """Stride-1 cross-correlation. x: [N, H, W, I], kernel: [kh, kw, I, O], padding ((lo, hi), (lo, hi)).

    A 1x1 kernel is one matmul over the channels, then the padding (zeros; negative: cropped): XLA CPU's 1x1 conv
    measured ~3x slower than the matmul ([1, 512, 512, 64] -> 32 channels, the polyphase up-conv's odd-odd phase;
    ~9x with 3 outputs, toRGB; 2-core AMD EPYC, BENCHMARKS.md 2026-12-05 "config-f 1024 forward")."""
    if kernel.shape[:2] == (1, 1):
        return _pad2d(jnp.matmul(x, kernel[0, 0], precision=precision), padding)
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DN, precision=precision)


def _pad2d(x: jax.Array, padding) -> jax.Array:
    """x [N, H, W, C] with ((lo, hi), (lo, hi)) zeros on H and W (negative: cropped)."""
    if all(p == 0 for pad in padding for p in pad):
        return x
    (lh, hh), (lw, hw) = padding
    return jax.lax.pad(x, np.zeros((), x.dtype), ((0, 0, 0), (lh, hh, 0), (lw, hw, 0), (0, 0, 0)))


def transposed(kernel: jax.Array) -> jax.Array:
    """The kernel of a conv's input gradient: spatially flipped, I/O swapped. [kh, kw, I, O] -> [kh, kw, O, I]."""
    return jnp.flip(kernel, (0, 1)).swapaxes(2, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def direct_t(x: jax.Array, kernel: jax.Array, kernel_t: jax.Array, padding, precision=None,
             tap_grad: bool = False) -> jax.Array:
    """`direct` whose input gradient is the direct conv of dy with kernel_t = transposed(kernel), given.

    XLA's own input gradient flips and transposes the kernel per call (for a [3, 3, 512, 512] kernel a 9.4 MB copy,
    at batch 1 as costly as the conv; BENCHMARKS.md); given once per weights it is not copied at all.
    tap_grad: the weight gradient as one [I, O] matmul per tap (for the small even kernels of the polyphase up-conv,
    where XLA CPU's weight-gradient conv is slow: 371 vs 48 ms on the 64-channel 32 px training config, 2-core
    AMD EPYC), else XLA's.
    Same values as `direct` and its autodiff to float32 rounding, first and second order (tests/test_stylegan2.py).
    """
    return direct(x, kernel, padding, precision)


def _direct_t_fwd(x, kernel, kernel_t, padding, precision, tap_grad):
    return direct(x, kernel, padding, precision), (x, kernel, kernel_t)


def _direct_t_bwd(padding, precision, tap_grad, res, g):
    x, k, kt = res
    dx = direct_t(g, kt, k, _padding_t(k, padding), precision, tap_grad)
    if not tap_grad:
        return dx, jax.vjp(lambda k: direct(x, k, padding, precision), k)[1](g)[0], None
    return dx, _tap_grad(x, g, k, padding, precision), None


def _padding_t(kernel, padding):
    """The padding of a stride-1 conv's input gradient (a conv of dy with the transposed kernel)."""
    return tuple((taps - 1 - lo, taps - 1 - hi) for taps, (lo, hi) in zip(kernel.shape[:2], padding))


def _tap_grad(x, g, kernel, padding, precision):
    """The weight gradient of a stride-1 conv as one [I, O] matmul per tap (convgrad.tap_products)."""
    xp = _pad2d(x, padding)   # negative: cropped (the input gradient of a padded 1x1 conv)
    return convgrad.tap_products(xp, g, kernel.shape[0], kernel.shape[1], 1, precision)


direct_t.defvjp(_direct_t_fwd, _direct_t_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def winograd_t(x: jax.Array, kernel: jax.Array, kernel_t: jax.Array, u: jax.Array, u_t: jax.Array, specs, padding,
               precision=None) -> jax.Array:
    """`winograd_valid(x, u, specs, padding)` with u = transform(kernel, specs), as direct_t(x, kernel, kernel_t,
    padding, precision, tap_grad=True) computes it directly: the input gradient by the same algorithm from
    u_t = transform(kernel_t, specs) (kernel_t = transposed(kernel)); the weight gradient w.r.t. `kernel` alone,
    one [I, O] matmul per tap (kernel_t, u, u_t get zero cotangents). For the polyphase up-conv's phase convs."""
    return _winograd(x, u, specs, padding, precision)


def _winograd(x, u, specs, padding, precision):
    """winograd_valid, or winograd_rows for specs (rows, None)."""
    if specs[1] is None:
        return winograd_rows(x, u, specs[0], precision, padding)
    return winograd_valid(x, u, specs, padding, precision)


def _winograd_t_fwd(x, kernel, kernel_t, u, u_t, specs, padding, precision):
    return _winograd(x, u, specs, padding, precision), (x, kernel, kernel_t, u, u_t)


def _winograd_t_bwd(specs, padding, precision, res, g):
    x, k, kt, u, ut = res
    dx = winograd_t(g, kt, k, ut, u, specs, _padding_t(k, padding), precision)
    return dx, _tap_grad(x, g, k, padding, precision), None, None, None


winograd_t.defvjp(_winograd_t_fwd, _winograd_t_bwd)


# F(2, 3) (Lavin & Gray 2016) and F(4, 3) with interpolation points 0, 1, -1, 2, -1/2, inf. Max error relative to
# float64 on a [1, 64, 64, 256] map: direct conv 6.0e-7, these points 2.2e-6, the textbook points 0, +-1, +-2
# 3.4e-6 (2-core CPU, jax 0.10.2). y = AT [(G g) * (BT d)].
_F23 = (2, ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        ((1, 0, 0), (.5, .5, .5), (.5, -.5, .5), (0, 0, 1)),
        ((1, 1, 1, 0), (0, 1, -1, -1)))
_F43 = (4, ((1, 1.5, -2, -1.5, 1, 0), (0, -1, -2.5, -.5, 1, 0), (0, 1, .5, -2.5, 1, 0), (0, -.5, -1, .5, 1, 0),
            (0, 2, -1, -2, 1, 0), (0, 1, 1.5, -2, -1.5, 1)),
        ((1, 0, 0), (-1 / 3, -1 / 3, -1 / 3), (1 / 3, -1 / 3, 1 / 3), (1 / 15, 2 / 15, 4 / 15),
         (-16 / 15, 8 / 15, -4 / 15), (0, 0, 1)),
        ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -.5, 0), (0, 1, 1, 4, .25, 0), (0, 1, -1, 8, -.125, 1)))

# F(2, 2) and F(4, 2) (2-tap kernels: the polyphase up-conv's even phases; points 0, 1, -1, -1/2, inf for F(4, 2):
# of 0, +-1, +-1/2, 2 the smallest float32 error on random 1-D data, 3.0e-7 of the max) and ONE, an axis of 1 tap.
F22 = (2, ((1, -1, 0), (0, 1, 0), (0, -1, 1)), ((1, 0), (1, 1), (0, 1)), ((1, 1, 0), (0, 1, 1)))
F42 = (4, ((-.5, -1, .5, 1, 0), (0, .5, 1.5, 1, 0), (0, -.5, -.5, 1, 0), (0, -1, 0, 1, 0), (0, -.5, -1, .5, 1)),
        ((-2, 0), (1 / 3, 1 / 3), (-1, 1), (8 / 3, -4 / 3), (0, 1)),
        ((1, 1, 1, 1, 0), (0, 1, -1, -.5, 0), (0, 1, 1, .25, 0), (0, 1, -1, -.125, 1)))
ONE = (1, ((1,),), ((1,),), ((1,),))


def _lincomb(parts, coeffs):
    """sum_j coeffs[j] * parts[j], skipping zero coefficients (exact for +-1); in the parts' dtype (a float32
    coefficient would promote bf16 parts to float32, and the conv after it would then mix dtypes)."""
    out = None
    for c, p in zip(coeffs, parts):
        if c == 0:
            continue
        term = p if c == 1 else -p if c == -1 else p * np.asarray(c, p.dtype)
        out = term if out is None else out + term
    return out


def _tiles(x, axis: int, m: int, alpha: int, count: int):
    """The alpha strided views x[j :: m] (count each) along `axis` that make up overlapping tiles of size alpha."""
    return [jax.lax.slice_in_dim(x, j, j + m * (count - 1) + 1, stride=m, axis=axis) for j in range(alpha)]


def _taps_of(k, axis):
    return [jax.lax.index_in_dim(k, i, axis, keepdims=False) for i in range(k.shape[axis])]


def transform(kernel: jax.Array, specs) -> jax.Array:
    """Winograd's 2-D kernel transform G_h k G_w^T of kernel [r_h, r_w, I, O] for specs (rows, cols) (each a spec
    tuple (m, BT, G, AT); ONE for an axis of 1 tap) -> [alpha_h * alpha_w, I, O]; cols None (rows only, its
    taps direct: `winograd_rows`): a tuple of alpha_h [1, r_w, I, O]."""
    u_rows = [_lincomb(_taps_of(kernel, 0), row) for row in specs[0][2]]  # alpha_h x [r_w, I, O]
    if specs[1] is None:   # along rows only (winograd_rows): alpha_h [1, r_w, I, O]
        return tuple(ur[None] for ur in u_rows)
    return jnp.stack([_lincomb(_taps_of(ur, 0), row) for ur in u_rows for row in specs[1][2]])


def kernel_transform(kernel: jax.Array, algo: str) -> jax.Array:
    """Winograd's kernel transform: [3, 3, I, O] -> 'winograd2d' / 'winograd4x4': G k G^T [alpha^2, I, O] (16 /
    36 positions); 'rows': G k [alpha, 3, I, O] (along rows)."""
    g = _SPECS[algo]
    if algo == "rows":
        return jnp.stack([_lincomb(_taps_of(kernel, 0), row) for row in g[2]])
    return transform(kernel, (g, g))


def winograd2d(x: jax.Array, u: jax.Array, spec=_F23, precision=None) -> jax.Array:
    """'Same' 3x3 conv by Winograd F(m x m, 3x3) on 2-D tiles: one batched matmul over the alpha^2 positions.
    u: kernel_transform(kernel, algo) [alpha^2, I, O] for algo 'winograd2d' (spec F(2, 3)) or 'winograd4x4' (F(4, 3)).
    """
    return winograd_valid(x, u, (spec, spec), ((1, 1), (1, 1)), precision)


def winograd_valid(x: jax.Array, u: jax.Array, specs, padding, precision=None) -> jax.Array:
    """Stride-1 cross-correlation with zero padding ((lo, hi), (lo, hi)) of x [N, H, W, I] with a kernel of
    r_h x r_w taps by Winograd F(m_h x m_w, r_h x r_w) on 2-D tiles, one batched matmul over the alpha_h * alpha_w
    positions: u = transform(kernel, specs) [alpha_h * alpha_w, I, O] -> [N, H + lo + hi - r_h + 1, ..., O].
    An axis of spec ONE (1 tap) is not tiled; its padding (zeros; negative: cropped) is applied to the output."""
    (mh, bth, gh, ath), (mw, btw, gw, atw) = specs
    r = (len(gh[0]), len(gw[0]))
    n, h, w, c = x.shape
    out = [size + lo + hi - taps + 1 for size, (lo, hi), taps in zip((h, w), padding, r)]
    out = [size if taps == 1 else o for size, o, taps in zip((h, w), out, r)]
    th, tw = -(-out[0] // mh), -(-out[1] // mw)
    pads = [(0, 0, 0) if taps == 1 else (lo, m * t + taps - 1 - size - lo, 0)
            for (lo, _), taps, m, t, size in zip(padding, r, (mh, mw), (th, tw), (h, w))]
    xp = jax.lax.pad(x, np.zeros((), x.dtype), ((0, 0, 0), *pads, (0, 0, 0)))
    v_rows = [_lincomb(_tiles(xp, 1, mh, len(bth), th), row) for row in bth]
    v = [_lincomb(_tiles(vr, 2, mw, len(btw), tw), row) for vr in v_rows for row in btw]
    v = jnp.stack(v).reshape(len(v), n * th * tw, c)
    prod = jnp.einsum("tpi,tio->tpo", v, u, precision=precision).reshape(len(bth), len(btw), n, th, tw, -1)
    y_rows = [_lincomb(_taps_of(prod, 0), row) for row in ath]  # m_h x [alpha_w, N, th, tw, O]
    y = jnp.stack([jnp.stack([_lincomb(_taps_of(yr, 0), row) for row in atw], 3) for yr in y_rows], 2)
    y = y.reshape(n, mh * th, mw * tw, -1)[:, :out[0], :out[1]]  # y was [N, th, m_h, tw, m_w, O]
    return _pad2d(y, [pad if taps == 1 else (0, 0) for pad, taps in zip(padding, r)])


def winograd_rows(x: jax.Array, u: jax.Array, spec=_F43, precision=None, padding=((1, 1), (1, 1))) -> jax.Array:
    """Stride-1 correlation (by default the 'same' 3x3 conv) by Winograd F(m, r) along rows: alpha 1 x k_w convs
    along columns on row-transformed input. u: kernel_transform(kernel, 'rows') [alpha, k_w, I, O], or
    `rows_kernels` of it (alpha [1, k_w, I, O] arrays: the prepared form, whose kernels the convs read as they are;
    slices of u are copied per call). padding ((lo, hi), (lo, hi)): zeros (cols: negative crops)."""
    m, bt, g, at = spec
    alpha, (lo, hi) = len(bt), padding[0]
    n, h, w, c = x.shape
    out_h = h + lo + hi - len(g[0]) + 1
    th = -(-out_h // m)
    xp = jax.lax.pad(x, np.zeros((), x.dtype), ((0, 0, 0), (lo, m * th + len(g[0]) - 1 - h - lo, 0), (0, 0, 0),
                                                (0, 0, 0)))
    v = [_lincomb(_tiles(xp, 1, m, alpha, th), row) for row in bt]  # alpha x [N, th, W, I]
    u = u if isinstance(u, (tuple, list)) else rows_kernels(u)
    prod = [direct(vi, u[i], ((0, 0), padding[1]), precision) for i, vi in enumerate(v)]  # alpha x [N, th, W', O]
    y = jnp.stack([_lincomb(prod, row) for row in at], 2)  # [N, th, m, W', O]
    return y.reshape(n, m * th, y.shape[3], -1)[:, :out_h]


def rows_kernels(u: jax.Array) -> tuple:
    """kernel_transform(..., 'rows') [alpha, 3, I, O] as the alpha 1x3 kernels [1, 3, I, O] of `winograd_rows`."""
    return tuple(u[i][None] for i in range(u.shape[0]))


_ALGORITHMS = {"winograd2d": winograd2d, "winograd4x4": functools.partial(winograd2d, spec=_F43),
               "rows": winograd_rows}
_SPECS = {"winograd2d": _F23, "winograd4x4": _F43, "rows": _F43}


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def conv3x3(x: jax.Array, kernel: jax.Array, kernel_t, u: jax.Array, u_t, algo: str, precision=None) -> jax.Array:
    """'Same' 3x3 conv by a Winograd algorithm from u = kernel_transform(kernel, algo); its gradient (`_bwd`): the
    input gradient by the same algorithm from u_t = kernel_transform(kernel_t, algo) when given (with kernel_t =
    transposed(kernel)), else the direct conv's (`direct_t` with kernel_t, or XLA's when kernel_t is None); the
    weight gradient w.r.t. `kernel` only (`weight_grad`; u, kernel_t and u_t get zero cotangents).

    Measured on paper256, batch 1, 2-core AMD EPYC (avx512f, loaded, 2026-12-05): autodiff through the transforms
    made fwd+bwd slower than with direct convs (0.85 s vs 0.63 s), and a Winograd input gradient with its kernel
    transform computed per call was still slower (0.63 s) than the direct conv's gradient behind a Winograd forward
    (0.53 s); with the transform computed once per weights (si_jax.stylegan2.kernels) it is faster (BENCHMARKS.md,
    2026-12-05).
    """
    return _ALGORITHMS[algo](x, u, precision=precision)


def _fwd(x, kernel, kernel_t, u, u_t, algo, precision):
    return conv3x3(x, kernel, kernel_t, u, u_t, algo, precision), (x, kernel, kernel_t, u, u_t)


def _bwd(algo, precision, res, dy):
    x, kernel, kernel_t, u, u_t = res
    same = ((1, 1), (1, 1))
    if kernel_t is None:
        dx = jax.vjp(lambda x: direct(x, kernel, same, precision), x)[1](dy)[0]
        return dx, weight_grad(x, kernel, dy, algo, precision), None, None, None
    if u_t is None:
        dx = direct_t(dy, kernel_t, kernel, same, precision)
    else:
        dx = conv3x3(dy, kernel_t, kernel, u_t, u, algo, precision)
    return dx, weight_grad(x, kernel, dy, algo, precision), None, None, None


def weight_grad(x: jax.Array, kernel: jax.Array, dy: jax.Array, algo: str, precision=None) -> jax.Array:
    """The gradient of sum(dy * conv3x3(x, kernel)) w.r.t. kernel [3, 3, I, O] (x [N, H, W, I], dy [N, H, W, O]):
    for 'rows' on kernels narrower than NARROW through F(4, 3)'s transforms (the 1x3 convs' weight gradients on
    the row-transformed x, about half the direct conv's multiplications: measured in the training step, 32 px x 64
    channels, batch 32, 2-core AMD EPYC, BENCHMARKS.md 2026-12-05 late; not measured on wide kernels), else the
    direct conv's (XLA's)."""
    if algo == "rows" and min(kernel.shape[2:]) < NARROW:
        return jax.vjp(lambda k: winograd_rows(x, kernel_transform(k, algo), precision=precision), kernel)[1](dy)[0]
    return jax.vjp(lambda k: direct(x, k, ((1, 1), (1, 1)), precision), kernel)[1](dy)[0]


conv3x3.defvjp(_fwd, _bwd)
