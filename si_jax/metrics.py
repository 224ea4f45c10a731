"""Image-preservation and attribute metrics: pure, batched, jit-able JAX functions.

Conventions (shared with `si_jax.editing.masks`):

* images ``a``, ``b``: ``[N, H, W, C]`` float32 in the generator's raw output range. Trained models give roughly
  [-1, 1]; untrained (test) models can give e.g. [-5, 10], so range-dependent metrics (SSIM, PSNR) take an
  explicit ``data_range`` (see `image_data_range`).
* ``mask``: ``[N, H, W]`` (or ``[H, W]``, broadcast over the batch) float in [0, 1], **1 inside** the edited
  component. Every masked metric here measures the region OUTSIDE the mask, with per-pixel weights ``1 - mask``.
* Every function returns one value per image (``[N]``) unless stated otherwise, so it can be averaged, logged per
  image, or ``vmap``ped. Shape problems raise ``ValueError`` at trace time (shapes are static under ``jit``).

`masked_l2` is the paper's pixel loss (Eq. 9) and the ONE implementation the optimisation imports.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["outside_mask_mse", "masked_l2", "ssim", "psnr", "flip_rate", "score_change", "score_gain",
           "image_data_range"]


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------

def _check_pair(a, b):
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"images must both be [N, H, W, C] with equal shapes; got {a.shape} and {b.shape}")
    return a, b


def _outside_weights(mask, a):
    """mask [N,H,W] or [H,W] (None = no mask) -> outside weights 1 - m, broadcast to [N, H, W]."""
    n, h, w, _ = a.shape
    if mask is None:
        return jnp.ones((n, h, w), jnp.float32)
    m = jnp.asarray(mask, jnp.float32)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1:] != (h, w) or m.shape[0] not in (1, n):
        raise ValueError(f"mask must be [N, H, W] or [H, W] matching images {a.shape}; got {m.shape}")
    return jnp.broadcast_to(1.0 - m, (n, h, w))


def _per_image_range(data_range, n):
    """Scalar or [N] data range -> [N, 1, 1, 1] float32."""
    dr = jnp.asarray(data_range, jnp.float32)
    if dr.ndim == 0:
        dr = jnp.full((n,), dr)
    if dr.shape != (n,):
        raise ValueError(f"data_range must be a scalar or [N={n}]; got shape {dr.shape}")
    return dr.reshape(n, 1, 1, 1)


# ----------------------------------------------------------------------------------------------------------------
# pixel metrics
# ----------------------------------------------------------------------------------------------------------------

@jax.jit
def outside_mask_mse(a, b, mask):
    """Mean squared error outside the mask.

    a, b: [N, H, W, C]; mask: [N, H, W] or [H, W] in [0, 1] (1 inside the edit).
    Returns [N]: sum((1 - m) * (a - b)^2) / (sum(1 - m) * C), i.e. the per-pixel, per-channel MSE over the
    outside region (soft masks weight pixels by 1 - m). When the outside region is empty (mask all ones) the
    result is 0, not NaN: there is nothing left to compare.
    """
    a, b = _check_pair(a, b)
    w = _outside_weights(mask, a)
    num = jnp.sum(w[..., None] * jnp.square(a - b), axis=(1, 2, 3))
    den = jnp.sum(w, axis=(1, 2)) * a.shape[-1]
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


@jax.jit
def masked_l2(a, b, mask):
    """The paper's pixel loss (Eq. 9): ||(1 - m) ⊙ (a - b)||_2 over H, W, C -- an L2 norm, NOT squared.

    a, b: [N, H, W, C]; mask: [N, H, W] or [H, W] in [0, 1] (1 inside the edit). Returns [N].

    Gradient safety: the norm is computed with the "double where" trick,
    ``q = sum(...); where(q > 0, sqrt(where(q > 0, q, 1)), 0)``. The value is the exact norm (0 at a == b, no
    epsilon bias), and ``jax.grad`` is finite everywhere: at a == b (outside the mask) it is 0, the minimum-norm
    subgradient, instead of the NaN that plain ``sqrt`` gives at 0.
    """
    a, b = _check_pair(a, b)
    w = _outside_weights(mask, a)
    q = jnp.sum(jnp.square(w[..., None] * (a - b)), axis=(1, 2, 3))
    pos = q > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, q, 1.0)), 0.0)


@jax.jit
def psnr(a, b, *, data_range, mask=None):
    """Peak signal-to-noise ratio in dB: 10 * log10(data_range^2 / MSE).

    a, b: [N, H, W, C]; data_range: scalar or [N] (peak-to-peak range of the signal, see `image_data_range`);
    mask: optional [N, H, W] / [H, W] -- then the MSE is `outside_mask_mse` (outside the mask only).
    Returns [N] float32; +inf where the (outside) MSE is exactly 0 (identical images, or an empty outside).
    """
    a, b = _check_pair(a, b)
    mse = outside_mask_mse(a, b, jnp.zeros(a.shape[:3], jnp.float32) if mask is None else mask)
    dr = _per_image_range(data_range, a.shape[0]).reshape(-1)
    pos = mse > 0
    return jnp.where(pos, 10.0 * jnp.log10(jnp.square(dr) / jnp.where(pos, mse, 1.0)), jnp.inf)


# ----------------------------------------------------------------------------------------------------------------
# SSIM
# ----------------------------------------------------------------------------------------------------------------

def _gaussian_taps(win: int, sigma: float) -> np.ndarray:
    x = np.arange(win, dtype=np.float64) - (win - 1) / 2.0
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)


def _filter_valid(x, taps):
    """Separable Gaussian filter, 'valid' region only. x: [N, H, W, C] -> [N, H-win+1, W-win+1, C].

    Written as a weighted sum of shifted slices: exact float32 arithmetic on every backend (no TF32/bf16 conv
    precision modes), and cheap for an 11-tap window.
    """
    win = len(taps)
    h, w = x.shape[1] - win + 1, x.shape[2] - win + 1
    y = sum(float(t) * x[:, k:k + h] for k, t in enumerate(taps))
    return sum(float(t) * y[:, :, k:k + w] for k, t in enumerate(taps))


@functools.partial(jax.jit, static_argnames=("win", "sigma", "k1", "k2"))
def ssim(a, b, *, data_range, mask=None, win: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
    """Structural similarity (Wang et al. 2004), Gaussian window, per channel, averaged over channels.

    a, b: [N, H, W, C] (H, W >= win); data_range: scalar or [N]; mask: optional [N, H, W] / [H, W] in [0, 1].
    Returns [N].

    Unmasked, this is exactly scikit-image's
    ``structural_similarity(a_i, b_i, channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=...)``: an ``win``-tap normalised Gaussian window (population
    statistics), the SSIM map evaluated at every pixel whose window lies fully inside the image (the
    (win-1)/2-pixel border is dropped), and the map's mean.

    Masked: measures how well the region OUTSIDE the mask is preserved, unaffected by anything inside it.
      1. ``b`` is composited with ``a``'s content inside the mask, ``b' = m*a + (1-m)*b``, so windows that
         straddle the mask boundary see identical inside content and changes inside the mask never lower the
         score (for a soft mask, in proportion to m);
      2. the SSIM map of (a, b') is averaged with weights 1 - m (restricted, like the unmasked score, to the
         pixels whose window fits in the image).
    An all-zeros mask therefore gives exactly the unmasked score; an empty outside region (all ones, or outside
    only in the dropped border) gives 1.0. ``a`` supplies the inside content, so put the reference image first
    or second consistently (the two orders differ only through windows that straddle the boundary).
    """
    a, b = _check_pair(a, b)
    n, h, w, c = a.shape
    if win % 2 != 1 or win < 1:
        raise ValueError(f"win must be a positive odd integer; got {win}")
    if h < win or w < win:
        raise ValueError(f"images ({h}x{w}) are smaller than the SSIM window ({win})")
    dr = _per_image_range(data_range, n)
    taps = _gaussian_taps(win, sigma)
    r = (win - 1) // 2

    wout = _outside_weights(mask, a)
    if mask is not None:
        b = a + wout[..., None] * (b - a)  # = m*a + (1-m)*b

    # Second moments on per-image-centred data: same maths, far less float32 cancellation for offset images.
    ac = a - jnp.mean(a, axis=(1, 2, 3), keepdims=True)
    bc = b - jnp.mean(b, axis=(1, 2, 3), keepdims=True)
    # One filter pass over all seven maps stacked on the channel axis (one small XLA graph, fast to compile).
    stats = _filter_valid(jnp.concatenate([a, b, ac, bc, ac * ac, bc * bc, ac * bc], axis=-1), taps)
    mu_a, mu_b, mu_ac, mu_bc, e_aa, e_bb, e_ab = jnp.split(stats, 7, axis=-1)
    var_a = e_aa - mu_ac * mu_ac
    var_b = e_bb - mu_bc * mu_bc
    cov = e_ab - mu_ac * mu_bc

    c1, c2 = jnp.square(k1 * dr), jnp.square(k2 * dr)
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))

    if mask is None:
        return jnp.mean(smap, axis=(1, 2, 3))
    wv = wout[:, r:h - r, r:w - r]
    num = jnp.sum(wv[..., None] * smap, axis=(1, 2, 3))
    den = jnp.sum(wv, axis=(1, 2)) * c
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 1.0)


# ----------------------------------------------------------------------------------------------------------------
# attribute scores and ranges
# ----------------------------------------------------------------------------------------------------------------

@jax.jit
def flip_rate(score_before, score_after):
    """Fraction of images whose classifier score changed sign (paper Proposition 1, Eq. 6: f(s)·f(ŝ) < 0).

    score_before, score_after: [N]. Returns a float32 scalar in [0, 1]. A score of exactly 0 on either side is
    NOT a flip (the product is not < 0).
    """
    before, after = jnp.asarray(score_before, jnp.float32), jnp.asarray(score_after, jnp.float32)
    if before.ndim != 1 or before.shape != after.shape:
        raise ValueError(f"scores must both be [N]; got {before.shape} and {after.shape}")
    return jnp.mean((before * after < 0).astype(jnp.float32))


@jax.jit
def score_change(score_before, score_after):
    """Per-image classifier score change ``after - before``. [N], [N] -> [N] float32."""
    before, after = jnp.asarray(score_before, jnp.float32), jnp.asarray(score_after, jnp.float32)
    if before.shape != after.shape:
        raise ValueError(f"score shapes differ: {before.shape} and {after.shape}")
    return after - before


def score_gain(score_before, score_after, target_sign) -> np.ndarray:
    """Per-image score change TOWARDS the target: (after − before) · target_sign, as paper Table 2 measures it.

    score_before, score_after, target_sign: [N] (target_sign ±1: +1 where the edit should add the attribute, the
    classifier's positive class; −1 where it should remove it). -> [N] float32 (numpy). With a 'flip' target the
    images on either side move in opposite directions: their raw changes cancel in a mean, their gains do not.
    """
    before, after = np.asarray(score_before, np.float32), np.asarray(score_after, np.float32)
    sign = np.asarray(target_sign, np.float32)
    if before.shape != after.shape or before.shape != sign.shape:
        raise ValueError(f"shapes differ: before {before.shape}, after {after.shape}, target_sign {sign.shape}")
    return (after - before) * sign


def image_data_range(images, *more):
    """Peak-to-peak value range (max - min) over ALL given image arrays, as a float32 scalar.

    Use it as ``data_range`` for `ssim` / `psnr`, e.g. ``image_data_range(img_orig, img_edit)``. Trained
    generators output roughly [-1, 1] (range ~2), but untrained test models do not (e.g. [-5, 10]), so a fixed
    2.0 would make SSIM's stabilising constants meaningless there. Pass the SAME range when comparing methods.
    A constant input (range 0) returns 1.0 so that the SSIM constants stay positive.
    """
    arrays = [jnp.asarray(x, jnp.float32) for x in (images, *more)]
    lo = functools.reduce(jnp.minimum, [jnp.min(x) for x in arrays])
    hi = functools.reduce(jnp.maximum, [jnp.max(x) for x in arrays])
    r = hi - lo
    return jnp.where(r > 0, r, jnp.float32(1.0))


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [Na, F], [Nb, F] (as in FID, in float64):
    ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½), via symmetric eigendecompositions (no complex sqrtm)."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance needs two [N >= 2, F] arrays of equal F, got {a.shape} and {b.shape}")
    mu, ca, cb = a.mean(0) - b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def sqrt_psd(m):
        vals, vecs = np.linalg.eigh((m + m.T) / 2)
        return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T

    root_a = sqrt_psd(ca)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cb @ root_a), 0, None)).sum()
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2 * cross)
