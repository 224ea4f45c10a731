"""si_jax.metrics: masked pixel metrics, SSIM (checked against independent implementations), PSNR, flips."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from si_jax import metrics

RNG = np.random.default_rng(1234)


def _rand(shape, scale=1.0, offset=0.0):
    return (RNG.normal(size=shape) * scale + offset).astype(np.float32)


def _structured(n=2, h=40, w=48, c=3):
    """Gradients, a checkerboard, sinusoids and a bright square, per channel; plus a distorted copy."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [xx / w * 2 - 1,
             ((xx // 4 + yy // 4) % 2) * 1.6 - 0.8,
             np.sin(xx / 3.0) * np.cos(yy / 5.0)]
    base = np.stack(chans[:c], -1)
    base[10:22, 12:30] += 0.7
    a = np.stack([base * (1 + 0.3 * i) + 0.1 * i for i in range(n)]).astype(np.float32)
    b = ndimage.gaussian_filter(a, sigma=(0, 1.0, 1.0, 0)) + 0.05 * _rand(a.shape)
    b[:, 5:15, 30:44] = -b[:, 5:15, 30:44]  # a structural change
    return a, b.astype(np.float32)


def _box(n, h, w, y0, y1, x0, x1):
    m = np.zeros((n, h, w), np.float32)
    m[:, y0:y1, x0:x1] = 1.0
    return m


# ---------------------------------------------------------------------------------------------------------------
# independent SSIM reference (scipy, float64), also used for the masked definition
# ---------------------------------------------------------------------------------------------------------------

def _ssim_ref_map(x, y, data_range, sigma=1.5, truncate=3.5):
    """One image [H, W, C] -> (SSIM map [H-2r, W-2r, C], r), Wang et al. 2004 with scipy's Gaussian filter."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    f = lambda z: ndimage.gaussian_filter(z, sigma=(sigma, sigma, 0), truncate=truncate, mode="reflect")
    ux, uy = f(x), f(y)
    vx, vy, vxy = f(x * x) - ux * ux, f(y * y) - uy * uy, f(x * y) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    r = int(truncate * sigma + 0.5)
    return s[r:-r, r:-r], r


def _ssim_ref(a, b, data_range, mask=None):
    out = []
    for i in range(a.shape[0]):
        x, y = a[i], b[i]
        if mask is None:
            s, _ = _ssim_ref_map(x, y, data_range)
            out.append(s.mean())
            continue
        m = mask[i].astype(np.float64)[..., None]
        y = m * x + (1 - m) * y  # the inside of the second image is taken from the first
        s, r = _ssim_ref_map(x, y, data_range)
        wgt = np.broadcast_to(1 - m[r:-r, r:-r], s.shape)
        out.append((wgt * s).sum() / wgt.sum())
    return np.array(out)


# ---------------------------------------------------------------------------------------------------------------
# identities and masks
# ---------------------------------------------------------------------------------------------------------------

def test_identical_images():
    a = _rand((3, 24, 24, 3), 3.0, 2.0)
    mask = _box(3, 24, 24, 5, 12, 6, 15)
    dr = metrics.image_data_range(a)
    for m in (None, mask):
        np.testing.assert_allclose(metrics.ssim(a, a, data_range=dr, mask=m), 1.0, atol=1e-6)
        assert np.all(np.isposinf(np.asarray(metrics.psnr(a, a, data_range=dr, mask=m))))
    np.testing.assert_array_equal(metrics.outside_mask_mse(a, a, mask), 0.0)
    np.testing.assert_array_equal(metrics.masked_l2(a, a, mask), 0.0)


def test_constant_shift_outside_gives_delta_squared():
    n, h, w, delta = 2, 20, 24, 0.37
    a = _rand((n, h, w, 3))
    mask = _box(n, h, w, 4, 11, 3, 17)
    b = a + delta
    b[mask.astype(bool)] += _rand((int(mask.sum()), 3), 5.0)  # arbitrary changes inside must not count
    # float32: (a + delta) - a carries ~|a| * 6e-8 of rounding, so delta^2 holds to ~1e-5 relative, not better
    np.testing.assert_allclose(metrics.outside_mask_mse(a, b, mask), delta ** 2, rtol=1e-4)
    np.testing.assert_allclose(metrics.psnr(a, b, data_range=2.0, mask=mask),
                               10 * np.log10(4.0 / delta ** 2), rtol=1e-5)
    # unmasked, the inside changes do count
    assert np.all(np.asarray(metrics.psnr(a, b, data_range=2.0)) < 10 * np.log10(4.0 / delta ** 2) - 1)


def test_changes_only_inside_the_mask_are_invisible():
    a, _ = _structured()
    n, h, w, _c = a.shape
    mask = _box(n, h, w, 8, 26, 10, 30)
    b = a.copy()
    b[mask.astype(bool)] = _rand((int(mask.sum()), 3), 2.0)
    dr = metrics.image_data_range(a, b)
    np.testing.assert_array_equal(metrics.outside_mask_mse(a, b, mask), 0.0)
    np.testing.assert_array_equal(metrics.masked_l2(a, b, mask), 0.0)
    np.testing.assert_allclose(metrics.ssim(a, b, data_range=dr, mask=mask), 1.0, atol=1e-6)
    assert np.all(np.isposinf(np.asarray(metrics.psnr(a, b, data_range=dr, mask=mask))))
    # ... while the unmasked metrics do see them
    assert np.all(np.asarray(metrics.ssim(a, b, data_range=dr)) < 0.95)
    assert np.all(np.asarray(metrics.outside_mask_mse(a, b, np.zeros((h, w), np.float32))) > 0.01)


def test_zero_mask_equals_unmasked_metric():
    a, b = _structured()
    zeros = np.zeros(a.shape[:3], np.float32)
    dr = metrics.image_data_range(a, b)
    np.testing.assert_allclose(metrics.outside_mask_mse(a, b, zeros), np.mean((a - b) ** 2, axis=(1, 2, 3)),
                               rtol=1e-5)
    np.testing.assert_allclose(metrics.ssim(a, b, data_range=dr, mask=zeros), metrics.ssim(a, b, data_range=dr),
                               atol=1e-6)
    np.testing.assert_allclose(metrics.psnr(a, b, data_range=dr, mask=zeros), metrics.psnr(a, b, data_range=dr),
                               rtol=1e-6)
    np.testing.assert_allclose(metrics.masked_l2(a, b, zeros), np.sqrt(np.sum((a - b) ** 2, axis=(1, 2, 3))),
                               rtol=1e-5)
    # a [H, W] mask broadcasts over the batch
    np.testing.assert_allclose(metrics.outside_mask_mse(a, b, zeros[0]), metrics.outside_mask_mse(a, b, zeros))


def test_all_ones_mask_gives_zero_not_nan():
    a, b = _rand((2, 16, 16, 3)), _rand((2, 16, 16, 3))
    ones = np.ones((2, 16, 16), np.float32)
    for v in (metrics.outside_mask_mse(a, b, ones), metrics.masked_l2(a, b, ones)):
        np.testing.assert_array_equal(v, 0.0)
    np.testing.assert_array_equal(metrics.ssim(a, b, data_range=4.0, mask=ones), 1.0)
    assert np.all(np.isposinf(np.asarray(metrics.psnr(a, b, data_range=4.0, mask=ones))))
    # gradients through the empty-outside case stay finite too
    g = jax.grad(lambda x: metrics.outside_mask_mse(x, b, ones).sum())(jnp.asarray(a))
    assert np.all(np.isfinite(np.asarray(g)))


def test_soft_mask_weights_normalised():
    a, b = _rand((2, 12, 12, 2)), _rand((2, 12, 12, 2))
    half = np.full((2, 12, 12), 0.5, np.float32)
    # uniform weights cancel in the normalisation
    np.testing.assert_allclose(metrics.outside_mask_mse(a, b, half), np.mean((a - b) ** 2, axis=(1, 2, 3)),
                               rtol=1e-5)
    m = RNG.uniform(size=(2, 12, 12)).astype(np.float32)
    wgt = (1 - m)[..., None]
    want = (wgt * (a - b) ** 2).sum((1, 2, 3)) / ((1 - m).sum((1, 2)) * 2)
    np.testing.assert_allclose(metrics.outside_mask_mse(a, b, m), want, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# SSIM against independent implementations
# ---------------------------------------------------------------------------------------------------------------

def _cases():
    a, b = _structured()
    yield "structured", a, b
    x = _rand((3, 33, 29, 3), 3.0, 2.5)  # untrained-model-like range, odd sizes
    yield "random", x, x + _rand(x.shape, 1.5)
    g = RNG.uniform(-1, 1, size=(2, 24, 24, 1)).astype(np.float32)
    yield "grey", g, np.clip(g * 0.8 + 0.1 + _rand(g.shape, 0.1), -1, 1)


@pytest.mark.parametrize("case", ["structured", "random", "grey"])
def test_ssim_matches_scikit_image(case):
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    _, a, b = next(c for c in _cases() if c[0] == case)
    dr = float(metrics.image_data_range(a, b))
    ours = np.asarray(metrics.ssim(a, b, data_range=dr))
    ref = [structural_similarity(a[i].astype(np.float64), b[i].astype(np.float64), channel_axis=-1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=dr)
           for i in range(a.shape[0])]
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert np.ptp(ref) > 1e-3 or a.shape[0] == 1 or case == "grey"  # per-image values, not one batch value


@pytest.mark.parametrize("case", ["structured", "random", "grey"])
def test_ssim_matches_scipy_reference_with_and_without_mask(case):
    _, a, b = next(c for c in _cases() if c[0] == case)
    n, h, w, _ = a.shape
    dr = float(metrics.image_data_range(a, b))
    np.testing.assert_allclose(metrics.ssim(a, b, data_range=dr), _ssim_ref(a, b, dr), atol=1e-4)
    hard = _box(n, h, w, h // 4, h // 2, w // 3, w - 4)
    soft = RNG.uniform(size=(n, h, w)).astype(np.float32)
    for m in (hard, soft):
        ours = np.asarray(metrics.ssim(a, b, data_range=dr, mask=m))
        np.testing.assert_allclose(ours, _ssim_ref(a, b, dr, m), atol=1e-4)
    assert np.all(np.abs(ours - np.asarray(metrics.ssim(a, b, data_range=dr))) > 1e-5)  # the mask matters


def test_ssim_per_image_data_range_and_jit_vmap():
    a, b = _structured()
    per_image = np.asarray(metrics.ssim(a, b, data_range=np.array([2.0, 5.0], np.float32)))
    np.testing.assert_allclose(per_image[0], metrics.ssim(a[:1], b[:1], data_range=2.0)[0], atol=1e-6)
    np.testing.assert_allclose(per_image[1], metrics.ssim(a[1:], b[1:], data_range=5.0)[0], atol=1e-6)
    assert abs(per_image[0] - metrics.ssim(a[:1], b[:1], data_range=5.0)[0]) > 1e-4  # the range matters
    mask = _box(2, 40, 48, 5, 20, 5, 20)
    f = jax.jit(lambda x, y, m: metrics.ssim(x, y, data_range=2.0, mask=m))
    np.testing.assert_allclose(f(a, b, mask), metrics.ssim(a, b, data_range=2.0, mask=mask), atol=1e-6)
    v = jax.vmap(lambda x, y, m: metrics.outside_mask_mse(x[None], y[None], m[None])[0])(a, b, mask)
    np.testing.assert_allclose(v, metrics.outside_mask_mse(a, b, mask), rtol=1e-6)


def test_shape_errors():
    a = _rand((2, 8, 8, 3))
    with pytest.raises(ValueError, match="smaller than the SSIM window"):
        metrics.ssim(a, a, data_range=1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        metrics.outside_mask_mse(a, a[:1], np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="mask must be"):
        metrics.masked_l2(a, a, np.zeros((2, 8, 7)))
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(a, a, data_range=np.ones(3))


# ---------------------------------------------------------------------------------------------------------------
# the pixel loss (Eq. 9)
# ---------------------------------------------------------------------------------------------------------------

def test_masked_l2_hand_case():
    b = np.zeros((1, 2, 2, 1), np.float32)
    a = np.array([3.0, 4.0, 5.0, 2.0], np.float32).reshape(1, 2, 2, 1)
    mask = np.array([[[1.0, 0.0], [0.0, 0.5]]], np.float32)
    # pixel 0 inside (dropped); 4 and 5 outside; the soft pixel's DIFFERENCE is weighted: (0.5 * 2)^2 = 1
    np.testing.assert_allclose(metrics.masked_l2(a, b, mask), [np.sqrt(16 + 25 + 1)], rtol=1e-6)
    two = np.concatenate([a, 2 * a])
    np.testing.assert_allclose(metrics.masked_l2(two, np.zeros_like(two), mask[0]),
                               [np.sqrt(42), 2 * np.sqrt(42)], rtol=1e-6)


def test_masked_l2_gradient_finite_at_equality_and_exact_elsewhere():
    a = jnp.asarray(_rand((2, 6, 6, 3)))
    mask = jnp.asarray(RNG.uniform(size=(2, 6, 6)).astype(np.float32))
    loss = lambda x, y: metrics.masked_l2(x, y, mask).sum()
    g = np.asarray(jax.grad(loss)(a, a))
    assert np.all(np.isfinite(g)) and np.all(g == 0)
    assert np.all(np.isfinite(np.asarray(jax.grad(loss, argnums=1)(a, a))))
    b = a + jnp.asarray(_rand(a.shape))
    wgt = (1 - mask)[..., None] ** 2
    norm = np.sqrt(np.sum(np.asarray(wgt * (a - b) ** 2), axis=(1, 2, 3)))
    want = np.asarray(wgt * (a - b)) / norm[:, None, None, None]
    np.testing.assert_allclose(jax.grad(loss)(a, b), want, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# attribute scores and the data range
# ---------------------------------------------------------------------------------------------------------------

def test_flip_rate_and_score_change_hand_case():
    before = np.array([1.0, -2.0, 3.0, 0.5, -1.0], np.float32)
    after = np.array([-1.0, -1.0, -3.0, 0.0, 2.0], np.float32)
    # flips: 0 (+ -> -), 2 (+ -> -), 4 (- -> +); 1 keeps its sign; 3 lands on 0, which is not a flip
    assert float(metrics.flip_rate(before, after)) == pytest.approx(0.6)
    assert float(metrics.flip_rate(before, before)) == 0.0
    np.testing.assert_allclose(metrics.score_change(before, after), [-2.0, 1.0, -6.0, -0.5, 3.0])
    with pytest.raises(ValueError):
        metrics.flip_rate(before, after[:3])


def test_image_data_range():
    a = np.full((1, 4, 4, 3), -5.0, np.float32)
    b = np.full((2, 4, 4, 3), 10.0, np.float32)
    assert float(metrics.image_data_range(a, b)) == 15.0
    x = _rand((2, 8, 8, 3))
    assert float(metrics.image_data_range(x)) == pytest.approx(float(x.max() - x.min()))
    assert float(metrics.image_data_range(np.zeros((1, 4, 4, 3)))) == 1.0  # constant input: safe fallback


def test_frechet_distance_matches_scipy_sqrtm_and_is_zero_for_the_same_set():
    import scipy.linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    b = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 1.0
    ca, cb, mu = np.cov(a, rowvar=False), np.cov(b, rowvar=False), a.mean(0) - b.mean(0)
    ref = mu @ mu + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(ref, rel=1e-9)
    assert abs(metrics.frechet_distance(a, a)) < 1e-9
    with pytest.raises(ValueError, match="equal F"):
        metrics.frechet_distance(a, b[:, :4])
