"""Same-size 3x3 convolution by Winograd minimal filtering (Lavin & Gray 2016), and the direct conv it replaces.

    y = conv3x3(x, kernel, algo, precision)   # x: [N, H, W, I], kernel: [3, 3, I, O] -> [N, H, W, O]
                                              # algo 'winograd2d' | 'rows'; precision 'highest' | 'default'

'winograd2d' is F(2x2, 3x3) on 2-D tiles (one batched matmul over the 16 tile positions); 'rows' is F(4, 3) along
rows only, followed by 1x3 convs along columns. Both stay in float32 within a few 1e-6 of the direct conv. The
gradient is the direct conv's (custom_vjp), which measured faster. Which layers use which:
`si_jax.stylegan2.numerics.Numerics.conv3x3_for`. `precision` is lax's (None = jax's default matmul precision).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_DN = ("NHWC", "HWIO", "NHWC")


def direct(x: jax.Array, kernel: jax.Array, padding, precision=None) -> jax.Array:
    """Stride-1 cross-correlation. x: [N, H, W, I], kernel: [kh, kw, I, O], padding ((lo, hi), (lo, hi))."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DN, precision=precision)


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


def winograd2d(x: jax.Array, kernel: jax.Array, spec=_F23, precision=None) -> jax.Array:
    """'Same' 3x3 conv by Winograd F(m x m, 3x3) on 2-D tiles: one batched matmul over the alpha^2 positions."""
    m, bt, g, at = spec
    alpha = len(bt)
    n, h, w, c = x.shape
    th, tw = -(-h // m), -(-w // m)
    xp = jnp.pad(x, ((0, 0), (1, m * th + 1 - h), (1, m * tw + 1 - w), (0, 0)))
    v_rows = [_lincomb(_tiles(xp, 1, m, alpha, th), row) for row in bt]
    v = [_lincomb(_tiles(vr, 2, m, alpha, tw), row) for vr in v_rows for row in bt]
    v = jnp.stack(v).reshape(alpha * alpha, n * th * tw, c)
    u_rows = [_lincomb(_taps_of(kernel, 0), row) for row in g]  # alpha x [3, I, O]
    u = jnp.stack([_lincomb(_taps_of(ur, 0), row) for ur in u_rows for row in g])  # [alpha^2, I, O]
    prod = jnp.einsum("tpi,tio->tpo", v, u, precision=precision).reshape(alpha, alpha, n, th, tw, -1)
    y_rows = [_lincomb(_taps_of(prod, 0), row) for row in at]  # m x [alpha, N, th, tw, O]
    y = jnp.stack([jnp.stack([_lincomb(_taps_of(yr, 0), row) for row in at], 3) for yr in y_rows], 2)
    return y.reshape(n, m * th, m * tw, -1)[:, :h, :w]  # y was [N, th, m, tw, m, O]


def winograd_rows(x: jax.Array, kernel: jax.Array, spec=_F43, precision=None) -> jax.Array:
    """'Same' 3x3 conv by Winograd F(m, 3) along rows: alpha 1x3 convs along columns on row-transformed input."""
    m, bt, g, at = spec
    alpha = len(bt)
    n, h, w, c = x.shape
    th = -(-h // m)
    xp = jnp.pad(x, ((0, 0), (1, m * th + 1 - h), (0, 0), (0, 0)))
    v = [_lincomb(_tiles(xp, 1, m, alpha, th), row) for row in bt]  # alpha x [N, th, W, I]
    u = [_lincomb(_taps_of(kernel, 0), row) for row in g]  # alpha x [3, I, O]
    prod = [direct(vi, ui[None], ((0, 0), (1, 1)), precision) for vi, ui in zip(v, u)]  # alpha x [N, th, W, O]
    y = jnp.stack([_lincomb(prod, row) for row in at], 2)  # [N, th, m, W, O]
    return y.reshape(n, m * th, w, -1)[:, :h]


_ALGORITHMS = {"winograd2d": winograd2d, "rows": winograd_rows}


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv3x3(x: jax.Array, kernel: jax.Array, algo: str, precision=None) -> jax.Array:
    """'Same' 3x3 conv by a Winograd algorithm; its gradient is the direct conv's (`_bwd`).

    Measured on paper256, batch 1, 2 CPU threads: autodiff through the transforms made fwd+bwd slower than with
    direct convs (0.85 s vs 0.63 s), and a Winograd input gradient (flipped kernel, I/O swapped) was still slower
    (0.63 s) than the direct conv's gradient behind a Winograd forward (0.53 s).
    """
    return _ALGORITHMS[algo](x, kernel, precision=precision)


def _fwd(x, kernel, algo, precision):
    return conv3x3(x, kernel, algo, precision), (x, kernel)


def _bwd(algo, precision, res, dy):
    x, kernel = res
    _, vjp = jax.vjp(lambda x, k: direct(x, k, ((1, 1), (1, 1)), precision), x, kernel)
    return vjp(dy)


conv3x3.defvjp(_fwd, _bwd)
