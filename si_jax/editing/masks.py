"""Component masks m_c (design notes: ../shared/DESIGN.md "Masks"): 1 INSIDE the edited component, 0 outside,
float32 [N, H, W].

Four sources:
  (a) user-supplied, per image or one for all: `load_masks` (.npz / .npy / one PNG / a directory of PNGs),
      resized to the output resolution and checked by `validate_masks`;
  (b) label-free, from the S-only edit's own image difference: `auto_mask` (thresholded, then dilated);
  (c) simple regions for synthetic tests and quick runs: `box_mask`, `ellipse_mask`, `parse_mask_spec`.
  (d) a segmenter's part ('part:NAME'), given by the caller (engines: the toyfaces segmenter).
`resolve(spec, ...)` turns a mask setting (--mask / --masks) into the one mask function every edit engine uses.

Coordinate convention (one only): PIXEL coordinates of the output resolution, x = column (0..W), y = row
(0..H). Pixel (x, y) covers the unit square [x, x+1) × [y, y+1) and has its centre at (x + 0.5, y + 0.5).
Boxes are half-open: ``box_mask(h, w, x0, y0, x1, y1)`` sets rows y0..y1-1 and columns x0..x1-1. An ellipse
contains the pixels whose CENTRE lies inside or on it.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

__all__ = ["box_mask", "ellipse_mask", "parse_mask_spec", "load_masks", "validate_masks", "auto_mask", "resolve"]


# ----------------------------------------------------------------------------------------------------------------
# simple regions
# ----------------------------------------------------------------------------------------------------------------

def _check_hw(h, w):
    if int(h) != h or int(w) != w or h < 1 or w < 1:
        raise ValueError(f"mask size must be positive integers; got h={h}, w={w}")
    return int(h), int(w)


def box_mask(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """[H, W] float32, 1 on the half-open pixel box columns [x0, x1) × rows [y0, y1), 0 elsewhere.

    Requires integer coordinates with 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h (ValueError otherwise).
    """
    h, w = _check_hw(h, w)
    coords = (x0, y0, x1, y1)
    if any(isinstance(v, bool) or int(v) != v for v in coords):
        raise ValueError(f"box coordinates must be integer pixels; got {coords}")
    x0, y0, x1, y1 = (int(v) for v in coords)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"box {coords} is empty or outside the {w}x{h} (WxH) image: "
                         f"need 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h}")
    m = np.zeros((h, w), np.float32)
    m[y0:y1, x0:x1] = 1.0
    return m


def ellipse_mask(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """[H, W] float32, 1 on pixels whose centre (x + .5, y + .5) satisfies ((x+.5-cx)/rx)^2 + ((y+.5-cy)/ry)^2 <= 1.

    The centre must lie in the image (0 <= cx <= w, 0 <= cy <= h), the radii must be > 0, and at least one pixel
    must be covered (ValueError otherwise). The ellipse may extend past the image border (it is clipped).
    """
    h, w = _check_hw(h, w)
    vals = (cx, cy, rx, ry)
    if not all(np.isfinite(float(v)) for v in vals):
        raise ValueError(f"ellipse parameters must be finite; got {vals}")
    if not (0 <= cx <= w and 0 <= cy <= h):
        raise ValueError(f"ellipse centre ({cx}, {cy}) is outside the {w}x{h} (WxH) image")
    if not (rx > 0 and ry > 0):
        raise ValueError(f"ellipse radii must be > 0; got rx={rx}, ry={ry}")
    ys = (np.arange(h, dtype=np.float64) + 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float64) + 0.5)[None, :]
    m = (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0).astype(np.float32)
    if not m.any():
        raise ValueError(f"ellipse (cx={cx}, cy={cy}, rx={rx}, ry={ry}) covers no pixel centre")
    return m


_SPEC_HELP = "expected 'box:x0,y0,x1,y1' (integer pixels, half-open) or 'ellipse:cx,cy,rx,ry' (pixels)"


def parse_mask_spec(spec: str, h: int, w: int) -> np.ndarray:
    """Parse ``box:x0,y0,x1,y1`` or ``ellipse:cx,cy,rx,ry`` (pixel coordinates, see module docstring).

    Returns [H, W] float32. ValueError for a malformed spec, non-numeric / non-integer (box) values, a region
    that is empty or out of range, or one that covers the whole image (nothing left outside to preserve).
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"mask spec {spec!r}: {_SPEC_HELP}")
    kind, _, body = spec.partition(":")
    kind = kind.strip().lower()
    parts = [p.strip() for p in body.split(",")]
    if kind not in ("box", "ellipse"):
        raise ValueError(f"mask spec {spec!r}: unknown kind {kind!r}; {_SPEC_HELP}")
    if len(parts) != 4 or any(p == "" for p in parts):
        raise ValueError(f"mask spec {spec!r}: needs exactly 4 comma-separated numbers; {_SPEC_HELP}")
    try:
        if kind == "box":
            vals = [int(p) for p in parts]
        else:
            vals = [float(p) for p in parts]
    except ValueError:
        want = "integers" if kind == "box" else "numbers"
        raise ValueError(f"mask spec {spec!r}: values must be {want}; {_SPEC_HELP}") from None
    try:
        m = box_mask(h, w, *vals) if kind == "box" else ellipse_mask(h, w, *vals)
    except ValueError as e:
        raise ValueError(f"mask spec {spec!r}: {e}") from None
    if m.min() >= 1.0:
        raise ValueError(f"mask spec {spec!r} covers the whole {w}x{h} image: nothing outside it to preserve")
    return m


# ----------------------------------------------------------------------------------------------------------------
# user-supplied masks
# ----------------------------------------------------------------------------------------------------------------

def validate_masks(masks, num_images: int, height: int, width: int, *, source: str = "masks") -> np.ndarray:
    """Check a mask array and return it as float32 [N, H, W] with N = num_images.

    masks: [K, H, W], [K, H, W, 1] or [H, W] (K = 1), with K == 1 (one mask for every image; returned as a
    read-only broadcast VIEW, no copy) or K == num_images. Checks, each a ValueError naming ``source``: shape and
    count, finite values, values in [0, 1], that no mask is all ones (weights 1 - m would be zero everywhere:
    nothing to preserve, and the pixel loss would be identically 0) and that none is all zeros (no region to
    edit: e.g. a box given in the coordinates of another resolution).
    """
    try:
        arr = np.asarray(masks)
    except Exception as e:  # noqa: BLE001 - anything that is not array-like
        raise ValueError(f"{source}: not an array ({e})") from None
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{source}: masks must be numeric; got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{source}: masks must be [N, H, W], [N, H, W, 1] or [H, W]; got shape {np.shape(masks)}")
    if num_images < 1:
        raise ValueError(f"{source}: num_images must be >= 1; got {num_images}")
    if arr.shape[1:] != (height, width):
        raise ValueError(f"{source}: mask size {arr.shape[1]}x{arr.shape[2]} (HxW) != expected {height}x{width}")
    k = arr.shape[0]
    if k not in (1, num_images):
        raise ValueError(f"{source}: {k} masks for {num_images} images (need 1, shared, or exactly {num_images})")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad.reshape(k, -1).any(1)))
        raise ValueError(f"{source}: mask {i} contains non-finite values (NaN/inf)")
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{source}: mask values must lie in [0, 1]; got range [{arr.min():g}, {arr.max():g}]")
    full = (arr >= 1.0).reshape(k, -1).all(1)
    if full.any():
        raise ValueError(f"{source}: mask {int(np.argmax(full))} is all ones -- nothing outside the edit to "
                         f"preserve")
    empty = (arr <= 0.0).reshape(k, -1).all(1)
    if empty.any():
        raise ValueError(f"{source}: mask {int(np.argmax(empty))} is empty (all zeros) -- it marks no region to "
                         f"edit; check its coordinates against the {width}x{height} (WxH) image")
    if k == 1 and num_images > 1:
        arr = np.broadcast_to(arr, (num_images, height, width))
    return arr


def _resize_nearest(arr2d: np.ndarray, height: int, width: int, source="mask") -> np.ndarray:
    """Nearest-neighbour resize of one float [h, w] mask with PIL (mode 'F': values are kept exactly). A mask of
    another aspect ratio is refused (ValueError naming `source`): stretching it would move the region."""
    if arr2d.shape == (height, width):
        return arr2d
    h, w = arr2d.shape
    if h * width != w * height:
        raise ValueError(f"{source}: mask of {w}x{h} (WxH) px has another aspect ratio than the {width}x{height} "
                         f"images; give masks of {width}x{height} px (or the same aspect ratio)")
    img = Image.fromarray(np.ascontiguousarray(arr2d, dtype=np.float32))  # float32 2-D -> mode "F"
    return np.asarray(img.resize((width, height), Image.Resampling.NEAREST), np.float32)


def _read_png(path: pathlib.Path, height: int, width: int) -> np.ndarray:
    """One PNG -> binary {0, 1} float32 [H, W]: inside = luminance > 127 (8-bit) or > 32767 (16-bit)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode.startswith("I"):  # 16-bit greyscale
                binary = np.asarray(img, np.float64) > 32767
            else:
                binary = np.asarray(img.convert("L")) > 127
    except Exception as e:  # noqa: BLE001 - PIL raises many types for unreadable files
        raise ValueError(f"{path}: cannot read as an image ({e})") from None
    return _resize_nearest(binary.astype(np.float32), height, width, path)


def _read_array(path: pathlib.Path, height: int, width: int) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = sorted(z.files)
                arr = z["masks"] if "masks" in keys else None
        else:
            arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - corrupt zip / header / pickled object arrays, ...
        raise ValueError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if arr is None:
        raise ValueError(f"{path}: no 'masks' array in the .npz (keys: {keys})")
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{path}: masks must be numeric; got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{path}: masks must be [N, h, w], [N, h, w, 1] or [h, w]; got shape {arr.shape}")
    arr = arr.astype(np.float32)
    if arr.shape[1:] != (height, width):
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: masks contain non-finite values (NaN/inf)")
        arr = np.stack([_resize_nearest(m, height, width, path) for m in arr])
    return arr


def load_masks(path, num_images: int, height: int, width: int) -> np.ndarray:
    """Load user masks and return float32 [num_images, height, width] (1 inside the edited component).

    path: a ``.npz`` (array ``masks`` of shape [N, h, w] or [N, h, w, 1]; [h, w] = one mask), a ``.npy`` (same
    shapes), a single ``.png`` (the same mask for every image), or a directory of ``*.png`` files taken in
    sorted filename order, one per image (or exactly one, shared). Arrays keep their values (soft masks allowed);
    PNGs are binarised on luminance (> 127). Masks whose size differs from (height, width) but with the same aspect
    ratio are resized with nearest-neighbour interpolation (PIL); another aspect ratio is refused. The result then
    goes through `validate_masks`: 1 or num_images masks
    (one mask is broadcast as a read-only view), finite, in [0, 1], none all ones. Every problem is a ValueError
    that names the file.
    """
    p = pathlib.Path(os.fspath(path))
    if p.is_dir():
        pngs = sorted(q for q in p.iterdir() if q.suffix.lower() == ".png")
        unreadable = [q.name for q in pngs if not q.is_file()]
        if unreadable:
            raise ValueError(f"{p}: {', '.join(unreadable[:5])} {'is' if len(unreadable) == 1 else 'are'} not a "
                             "readable file (a folder, or a broken or looping link); remove or fix it")
        if not pngs:
            raise ValueError(f"{p}: directory contains no .png masks")
        if len(pngs) not in (1, num_images):
            raise ValueError(f"{p}: {len(pngs)} PNG masks for {num_images} images "
                             f"(need 1, shared, or exactly {num_images})")
        arr = np.stack([_read_png(q, height, width) for q in pngs])
        for i, q in enumerate(pngs):  # name the offending FILE for the per-mask checks
            validate_masks(arr[i], 1, height, width, source=str(q))
    elif not p.exists():
        raise ValueError(f"{p}: mask file or directory not found")
    elif p.suffix.lower() == ".png":
        arr = _read_png(p, height, width)[None]
    elif p.suffix.lower() in (".npz", ".npy"):
        arr = _read_array(p, height, width)
    else:
        raise ValueError(f"{p}: unsupported mask file type {p.suffix!r} (use .npz, .npy, .png or a directory)")
    return validate_masks(arr, num_images, height, width, source=str(p))


# ----------------------------------------------------------------------------------------------------------------
# label-free mask from the S-only edit
# ----------------------------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("dilate",))
def auto_mask(img_orig, img_s_edit, *, rel_threshold=0.2, quantile=None, dilate: int = 3, atol=1e-6):
    """Label-free component mask from the S-only edit's own change (design notes "Masks" (b); paper Fig. 2).

    img_orig = h(s), img_s_edit = h(s + Δs_n): [N, H, W, C]. Returns float32 {0, 1} [N, H, W], 1 = edited.

      d = mean_c |img_s_edit - img_orig|                                   [N, H, W]
      inside = d > max(t, atol), per image, with
          t = rel_threshold · max(d)   (default, rel_threshold = 0.2), or
          t = quantile(d, quantile)    when ``quantile`` is given (then rel_threshold is ignored);
      then binary dilation by ``dilate`` pixels with a (2·dilate+1)² square (Chebyshev distance), done as a
      stride-1 max-pool (`jax.lax.reduce_window`), so a k×k blob becomes (k+2·dilate)², clipped at the border.

    Why relative-to-max by default: the edited region's size varies a lot between attributes (eyeglasses vs
    hair), and a fixed quantile would force the same area on all of them; relative-to-max adapts the area and
    keeps only the pixels that change by a sizeable fraction of the strongest change. The comparison is strict
    and floored by ``atol`` (in image units), so an image whose S-only edit changes nothing (d == 0) -- or only
    by float noise -- gets an EMPTY mask (no NaN, no warning): the pixel loss then covers the whole image.
    The result is not checked by `validate_masks`; it can be all ones only if the edit changes every pixel.
    """
    a = jnp.asarray(img_orig, jnp.float32)
    b = jnp.asarray(img_s_edit, jnp.float32)
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"images must both be [N, H, W, C] with equal shapes; got {a.shape} and {b.shape}")
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0; got {dilate}")
    d = jnp.mean(jnp.abs(b - a), axis=-1)  # [N, H, W]
    flat = d.reshape(d.shape[0], -1)
    if quantile is None:
        t = rel_threshold * jnp.max(flat, axis=1)
    else:
        t = jnp.quantile(flat, quantile, axis=1)
    t = jnp.maximum(t, atol)
    return dilate_masks((d > t[:, None, None]).astype(jnp.float32), dilate)


def dilate_masks(m, pixels: int):
    """Binary dilation of masks [N, H, W] by `pixels` with a (2·pixels+1)² square (a stride-1 max-pool)."""
    if pixels <= 0:
        return m
    k = 2 * pixels + 1
    return jax.lax.reduce_window(jnp.asarray(m, jnp.float32), 0.0, jax.lax.max, (1, k, k), (1, 1, 1), "SAME")


# ----------------------------------------------------------------------------------------------------------------
# the mask setting -> a mask function
# ----------------------------------------------------------------------------------------------------------------

KINDS = ("auto", "box", "ellipse", "part")   # mask specs; anything else is a mask file or folder
PART = "part:"


def kind_of(spec: str) -> str:
    """'auto' | 'box' | 'ellipse' | 'part' for a mask spec, 'file' for a mask file or folder."""
    kind = spec.partition(":")[0]
    return spec if spec == "auto" else kind if kind in KINDS[1:] and ":" in spec else "file"


@dataclasses.dataclass(frozen=True)
class Masks:
    """A resolved mask setting: `masks(positions [B], img0, img_z, img_s) -> [B, R, R]` (positions: rows of the
    run's images; img0, img_z, img_s: [B, R, R, C] input, Z-only (or W) and S-only edit).

    array: [1 or N, R, R] float32 for the masks fixed before any image exists (box, ellipse, a file), else None;
    from_images: (img0, img_z, img_s) -> [B, R, R] for those made from the images ('auto': `auto_mask`, placed like
    the images; 'part:NAME': the caller's segmenter), else None."""

    spec: str
    array: np.ndarray | None = None
    from_images: Callable | None = None

    def __call__(self, positions, img0, img_z, img_s):
        if self.from_images is not None:
            return self.from_images(img0, img_z, img_s)
        if len(self.array) == 1:
            return np.repeat(self.array, len(positions), axis=0)
        return self.array[np.asarray(positions)]


def resolve(spec: str, num_images: int, res: int, part_masks=None) -> Masks:
    """The mask setting -> Masks for `num_images` images of `res` px. spec: 'auto' | 'box:x0,y0,x1,y1' |
    'ellipse:cx,cy,rx,ry' | 'part:NAME' | a mask file or folder (`load_masks`). part_masks(spec) -> (img0, img_z,
    img_s) -> [B, R, R]: the segmenter behind 'part:NAME' (ValueError for such a spec without one). Files are read
    and checked here (ValueError naming the file), before anything is computed."""
    kind = kind_of(spec)
    if kind == "auto":
        return Masks(spec, from_images=lambda img0, img_z, img_s: auto_mask(img0, img_s))
    if kind == "part":
        if part_masks is None:
            raise ValueError(f"mask spec {spec!r} needs a segmenter (the toyfaces judges); none is given here")
        return Masks(spec, from_images=part_masks(spec))
    if kind in ("box", "ellipse"):
        return Masks(spec, array=parse_mask_spec(spec, res, res)[None])
    return Masks(spec, array=load_masks(spec, num_images, res, res))
