"""Toyfaces renderer: factor sets -> RGB images and exact part segmentations.

The image is composited from layers in painter's order (LAYERS, bottom to top), each an implicit shape with an
antialiased coverage a and a colour. Front to back, layer k's visible weight is w_k = a_k * prod_{j above k}
(1 - a_j); rgb = shading * sum_k w_k colour_k and `part_weight` sums w_k per part (it sums to 1 per pixel).
seg is the topmost layer with a >= 0.5 (the pixel centre is inside its shape). A part's *support* is
part_weight > 0; seg == p implies p's support. Each attribute drives only the layers of its part, so two factor
sets differing in one attribute give bitwise-equal rgb outside that part's support in both images.
"""
import jax
import jax.numpy as jnp

from si_jax.world import factors as factors_lib
from si_jax.world import shapes as S

PARTS = factors_lib.PARTS
LAYERS = (('background', 'background'), ('hair_back', 'hair'), ('neck', 'skin'), ('face', 'skin'),
          ('nose', 'skin'), ('eyes', 'eyes'), ('brows', 'brows'), ('mouth', 'mouth'), ('hair_front', 'hair'),
          ('glasses', 'glasses'))  # (layer, part), bottom to top


def _geometry(f):
    """Per-image parameters [N, 1, 1] (colours [N, 1, 1, 3]): the factors plus derived geometry and colours.

    Everything derived here depends on nuisance factors only, except 'hair' (blond_hair), used by hair layers only.
    """
    g = {k: jnp.asarray(v, jnp.float32)[:, None, None] for k, v in f.items()}
    g['cx'] = 0.05 * g['shift_x']
    g['cy'] = 0.05 + 0.05 * g['shift_y']
    g['a'] = 0.45 + 0.05 * g['face_width']   # face half-width
    g['b'] = 0.57 + 0.05 * g['face_height']  # face half-height
    g['fx'] = g['cx'] + 0.07 * g['yaw']      # feature column (yaw moves the features sideways)
    g['hx'] = g['cx'] - 0.03 * g['yaw']      # hair column (moves a little the other way)
    g['ey'] = g['cy'] - 0.10 + 0.04 * g['pitch']  # eye row
    g['ex'] = 0.19 + 0.1 * (g['a'] - 0.45)        # eye offset from the feature column
    g['skin'] = S.mix((0.96, 0.80, 0.68), (0.34, 0.21, 0.14), g['skin_tone'] ** 1.4)  # [N, 1, 1, 3]
    t = 0.5 * (g['hair_tone'] + 1.0)
    g['hair'] = S.mix(S.mix((0.09, 0.06, 0.05), (0.36, 0.22, 0.12), t),
                      S.mix((0.74, 0.56, 0.30), (0.98, 0.88, 0.58), t), g['blond_hair'])
    g['brow'] = S.mix((0.10, 0.07, 0.05), (0.30, 0.20, 0.12), t)
    return g


def _head_layers(g, x, y, px):
    """Background, hair back, neck, face and nose: list of (sdf [N, R, R], colour [N, ?, ?, 3])."""
    bg = S.hsv_to_rgb(g['bg_hue'], 0.35, 0.78 - 0.08 * y)
    xh, yh = x - g['hx'], y - (g['cy'] - 0.10)
    back = jnp.minimum(S.sd_ellipse(xh, yh, g['a'] + 0.13, g['b'] + 0.10),
                       S.sd_box(xh, y - g['cy'] - 0.35 * g['hair_length'], g['a'] + 0.11,
                                0.15 + 0.35 * g['hair_length'], 0.12))
    neck = S.sd_box(x - g['cx'], y - g['cy'] - 0.75, 0.17 + 0.04 * g['face_width'], 0.55, 0.05)
    xf, yf = x - g['cx'], y - g['cy']
    jaw = 1.0 - 0.22 * jnp.clip(yf / g['b'], 0.0, 1.0) ** 2  # narrower towards the chin
    face = S.sd_ellipse(xf / jaw, yf, g['a'], g['b']) * (0.5 + 0.5 * jaw)
    nose = S.sd_ellipse(x - g['fx'] - 0.02 * g['yaw'], y - g['ey'] - 0.22, 0.045, 0.07)
    return [(jnp.float32(-1.0), bg), (back, g['hair']), (neck, g['skin'] * 0.8),
            (face, g['skin']), (nose, g['skin'] * 0.84)]


def _eye_layers(g, x, y, px):
    """Eyes (white + iris) and brows."""
    dx = jnp.abs(x - g['fx']) - g['ex']
    eyes = S.sd_ellipse(dx, y - g['ey'], 0.085, 0.052)
    iris = S.sd_ellipse(dx - 0.015 * g['yaw'] * jnp.sign(x - g['fx']), y - g['ey'], 0.05, 0.05)
    eye_col = S.mix((0.96, 0.95, 0.93), (0.13, 0.09, 0.07), S.coverage(iris, px))
    r = jnp.where(g['thick_brows'] > 0.5, 0.06, 0.034)
    by = g['ey'] - 0.17 - 0.6 * (r - 0.034)
    brows = S.sd_segment(dx, y, -0.08, by + 0.015, 0.09 + 0.5 * (r - 0.034), by - 0.005, r)
    return [(eyes, eye_col), (brows, g['brow'])]


def _mouth_layer(g, x, y, px):
    """Mouth: closed = curved lips line, open = dark crescent with lips rim and teeth; curvature = smile."""
    smile, open_ = g['smile'] > 0.5, g['mouth_open'] > 0.5
    hw = jnp.where(smile, 0.19, 0.15)
    k = jnp.where(smile, 3.2, -0.6)  # corners up (smaller y) for k > 0
    dx = x - g['fx']
    my = g['cy'] + 0.33 * g['b'] / 0.57 + 0.04 * g['pitch']
    v = (y - my + k * (dx * dx - hw * hw / 2)) / jnp.sqrt(1.0 + (2 * k * dx) ** 2)
    lips = S.mix(g['skin'], (0.72, 0.20, 0.22), 0.6)
    closed = S.sd_segment(dx, v, -hw, 0.0, hw, 0.0, 0.042)
    h = 0.095
    opened = S.sd_ellipse(dx, v, hw, h)
    inner = S.coverage(S.sd_ellipse(dx, v, hw - 0.04, h - 0.035), px)
    teeth = S.coverage(S.sd_below_curve(v, -0.02, 0.0), px) * jnp.where(smile, 1.0, 0.0)
    inside = S.mix((0.22, 0.04, 0.06), (0.93, 0.91, 0.86), teeth)
    colour = jnp.where(open_[..., None], S.mix(lips, inside, inner), lips)
    return [(jnp.where(open_, opened, closed), colour)]


def _front_layers(g, x, y, px):
    """Hair front (cap; bangs bring its lower edge down over the forehead) and glasses."""
    xh = x - g['hx']
    cap = S.sd_ellipse(xh, y - (g['cy'] - 0.10), g['a'] + 0.09, g['b'] + 0.06)
    line_bangs = g['ey'] - 0.235 + 0.3 * xh * xh + 0.02 * jnp.cos(xh * 38.0)
    slope_bangs = 0.6 * xh - 0.76 * jnp.sin(xh * 38.0)
    line_plain = g['cy'] - 0.52 + 1.1 * xh * xh
    hair_line = jnp.where(g['bangs'] > 0.5, line_bangs, line_plain)
    slope = jnp.where(g['bangs'] > 0.5, slope_bangs, 2.2 * xh)
    front = jnp.maximum(cap, S.sd_below_curve(y, hair_line, slope))
    dx, dy = jnp.abs(x - g['fx']) - g['ex'], y - g['ey']
    rims = jnp.abs(S.sd_ellipse(dx, dy, 0.155, 0.11)) - 0.04
    bridge = S.sd_segment(x - g['fx'], dy, -(g['ex'] - 0.15), -0.02, g['ex'] - 0.15, -0.02, 0.03)
    arms = S.sd_segment(dx, dy, 0.15, -0.02, g['a'] + 0.02 - g['ex'], -0.04, 0.028)
    glasses = jnp.minimum(jnp.minimum(rims, bridge), arms)
    glasses = jnp.where(g['eyeglasses'] > 0.5, glasses, 10.0)
    return [(front, g['hair']), (glasses, jnp.asarray((0.06, 0.06, 0.08)))]


def _shading(g, x, y):
    """Lighting [N, R, R]: a soft gradient along the light direction plus a vignette; the same for all layers."""
    rx, ry = x - g['cx'], y - g['cy']
    return 1.0 + 0.22 * (g['light_x'] * rx + g['light_y'] * ry) - 0.12 * (rx * rx + ry * ry)


def _render_parts(f, resolution):
    g = _geometry(f)
    x, y = S.pixel_grid(resolution)
    px = 2.0 / resolution
    layers = _head_layers(g, x, y, px) + _eye_layers(g, x, y, px) + _mouth_layer(g, x, y, px) + \
        _front_layers(g, x, y, px)
    n = g['cx'].shape[0]
    full = (n, resolution, resolution)
    part_index = [PARTS.index(part) for _, part in LAYERS]
    cov = [jnp.ones(full, jnp.float32)] + [jnp.broadcast_to(S.coverage(s, px), full) for s, _ in layers[1:]]
    rgb = jnp.zeros(full + (3,), jnp.float32)
    part_w = [jnp.zeros(full, jnp.float32) for _ in PARTS]
    through = jnp.ones(full, jnp.float32)  # prod of (1 - a) over the layers above
    for k in reversed(range(len(layers))):
        w = cov[k] * through
        rgb = rgb + w[..., None] * layers[k][1]
        part_w[part_index[k]] = part_w[part_index[k]] + w
        through = through * (1.0 - cov[k])
    seg = jnp.zeros(full, jnp.int32)
    for k in range(1, len(layers)):
        seg = jnp.where(cov[k] >= 0.5, part_index[k], seg)
    rgb = jnp.clip(rgb * _shading(g, x, y)[..., None], 0.0, 1.0) * 2.0 - 1.0
    return rgb, seg, jnp.stack(part_w, axis=-1)


_render_parts_jit = jax.jit(_render_parts, static_argnames='resolution')
_render_jit = jax.jit(lambda f, resolution: _render_parts(f, resolution)[:2], static_argnames='resolution')


def _canonical(factors):
    """The factor set as strong-typed float32 arrays [N], exactly the names the renderer reads (one compile per
    batch size and resolution, whatever the caller's dtypes or extra keys)."""
    names = factors_lib.ATTRIBUTES + factors_lib.NUISANCE
    missing = [k for k in names if k not in factors]
    if missing:
        raise KeyError(f"factor set lacks {missing}")
    return {k: jnp.asarray(factors[k], jnp.float32) for k in names}


def render_parts(factors, resolution=32):
    """(rgb [N, R, R, 3] float32 in [-1, 1], seg [N, R, R] int32 (PARTS ids), part_weight [N, R, R, P] float32).

    part_weight[..., p] is the visible share of part p in the pixel (sums to 1); > 0 is p's exact support.
    jit-compiled per (N, resolution).
    """
    return _render_parts_jit(_canonical(factors), resolution=resolution)


def render(factors, resolution=32):
    """(rgb [N, R, R, 3] float32 in [-1, 1], seg [N, R, R] int32 PARTS ids) of a factor set (dict of [N])."""
    return _render_jit(_canonical(factors), resolution=resolution)


def render_batch(seed, indices, resolution=32):
    """Images `indices` of world `seed`: dict(images [N, R, R, 3], seg [N, R, R], attributes [N, A] bool,
    nuisance [N, K] float32, factors (the factor set))."""
    f = factors_lib.sample_factors(seed, jnp.asarray(indices))
    rgb, seg = render(f, resolution)
    return dict(images=rgb, seg=seg, attributes=factors_lib.attributes_of(f),
                nuisance=factors_lib.nuisance_of(f), factors=f)
