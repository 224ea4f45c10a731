"""Signed-distance primitives, antialiased coverage and colour helpers for the toyfaces renderer.

Coordinates are normalised image coordinates: x to the right, y downwards, both spanning [-1, 1] across the
image, pixel centres at (i + 0.5) * 2 / R - 1. A signed distance (sdf) is negative inside a shape, in the same
units. Every function broadcasts: points and shape parameters may be arrays of any mutually broadcastable shapes
(the renderer uses x [1, 1, R], y [1, R, 1] and per-image parameters [N, 1, 1]).
"""
import jax.numpy as jnp

COVERAGE_SNAP = 1e-3  # coverages below this become exactly 0, above 1 - this exactly 1 (see `coverage`)


def pixel_grid(resolution: int):
    """Pixel-centre coordinates (x [1, 1, R], y [1, R, 1]) in [-1, 1]; x varies along the last axis."""
    c = (jnp.arange(resolution, dtype=jnp.float32) + 0.5) * (2.0 / resolution) - 1.0
    return c[None, None, :], c[None, :, None]


def coverage(sdf, pixel: float):
    """Antialiased coverage in [0, 1] of a shape with signed distance `sdf`, for pixels `pixel` units wide.

    A linear ramp over one pixel across the edge: clip(0.5 - sdf / pixel, 0, 1), so coverage >= 0.5 exactly where
    the pixel centre is inside (sdf <= 0, up to rounding) and coverage is exactly 0 once the centre is half a pixel
    outside. Values within COVERAGE_SNAP of 0 or 1 are snapped to 0 or 1: compositing then never multiplies more
    than a few factors in (1e-3, 1), so visible weights cannot underflow to 0 (which keeps part supports exact).
    """
    a = jnp.clip(0.5 - sdf / pixel, 0.0, 1.0)
    return jnp.where(a < COVERAGE_SNAP, 0.0, jnp.where(a > 1.0 - COVERAGE_SNAP, 1.0, a))


def sd_ellipse(x, y, a, b):
    """Approximate signed distance to the axis-aligned ellipse (x/a)^2 + (y/b)^2 = 1 centred at the origin.

    First-order (distance = f / |grad f|) estimate with f = |p / r| - 1: exact on the boundary's normal for
    circles, within a few percent near the boundary for the aspect ratios used here.
    """
    k0 = jnp.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = jnp.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
    return jnp.where(k1 > 1e-6, k0 * (k0 - 1.0) / jnp.maximum(k1, 1e-6), -jnp.minimum(a, b))


def sd_segment(x, y, ax, ay, bx, by, radius):
    """Signed distance to the capsule of half-thickness `radius` around the segment (ax, ay)-(bx, by)."""
    px, py, dx, dy = x - ax, y - ay, bx - ax, by - ay
    t = jnp.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return jnp.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2) - radius


def sd_box(x, y, hx, hy, radius):
    """Signed distance to the box |x| <= hx, |y| <= hy centred at the origin, corners rounded by `radius`."""
    qx = jnp.abs(x) - hx + radius
    qy = jnp.abs(y) - hy + radius
    outside = jnp.sqrt(jnp.maximum(qx, 0.0) ** 2 + jnp.maximum(qy, 0.0) ** 2)
    return outside + jnp.minimum(jnp.maximum(qx, qy), 0.0) - radius


def sd_below_curve(y, curve, slope):
    """Signed distance (first order) to the region above the curve y = curve(x) (y down: inside = y < curve)."""
    return (y - curve) / jnp.sqrt(1.0 + slope * slope)


def mix(c0, c1, t):
    """Linear interpolation c0 + (c1 - c0) * t of colours c0, c1 ([3] or [..., 3]) by t [...] (no channel axis)."""
    c0, c1 = jnp.asarray(c0, jnp.float32), jnp.asarray(c1, jnp.float32)
    return c0 + (c1 - c0) * jnp.asarray(t, jnp.float32)[..., None]


def hsv_to_rgb(h, s, v):
    """HSV (each [...], hue in [0, 1) turns) to RGB [..., 3] in [0, 1]."""
    n = jnp.asarray([5.0, 3.0, 1.0], jnp.float32)
    k = jnp.mod(n + jnp.asarray(h)[..., None] * 6.0, 6.0)
    ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
    return jnp.asarray(v)[..., None] * (1.0 - jnp.asarray(s)[..., None] * ramp)
