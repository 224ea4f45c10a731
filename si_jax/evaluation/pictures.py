"""Pictures: raw generator output -> PNG, before/after pairs, grids and labelled strips (PIL only)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from si_jax import storage


def to_uint8(images, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """[..., H, W, C] raw range -> uint8, mapping [lo, hi] to [0, 255] and clipping (StyleGAN convention: [-1,1])."""
    x = (np.asarray(images, np.float32) - lo) / (hi - lo)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def display_range(images) -> tuple:
    """(lo, hi) for display: [-1, 1] when the images live there (trained models), else their 1st/99th percentiles,
    so that untrained demo models are visible too."""
    x = np.asarray(images, np.float32)
    lo, hi = np.percentile(x, [1, 99])
    if lo >= -1.5 and hi <= 1.5:
        return -1.0, 1.0
    return float(lo), float(max(hi, lo + 1e-6))


def grid(rows, pad: int = 2, scale: int = 1) -> np.ndarray:
    """rows: list of lists of [H, W, 3] uint8 tiles (equal sizes) -> one [H', W', 3] uint8 image, white gaps."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = tile[..., :3] if tile.shape[-1] >= 3 else np.repeat(tile, 3, axis=-1)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def upscale_for_viewing(tile_size: int) -> int:
    """Integer factor that brings small (demo) images to at least ~128 px per tile."""
    return max(1, 128 // max(tile_size, 1))


def png_bytes(image: np.ndarray, caption: str | None = None) -> bytes:
    """[H, W, 3] uint8 -> PNG bytes (a function of the pixels and caption only); an optional caption band on top."""
    img = Image.fromarray(image)
    if caption:
        band = Image.new("RGB", (img.width, 14 * (caption.count("\n") + 1) + 4), "white")
        ImageDraw.Draw(band).text((3, 2), caption, fill="black")
        canvas = Image.new("RGB", (img.width, img.height + band.height), "white")
        canvas.paste(band, (0, 0))
        canvas.paste(img, (0, band.height))
        img = canvas
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_png(path, image: np.ndarray, caption: str | None = None) -> None:
    """Write [H, W, 3] uint8 atomically (storage.write_atomic); an optional caption band on top."""
    storage.write_atomic(path, png_bytes(image, caption))


def mask_overlay(image_u8: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Darken outside the mask ([H, W], 1 inside) so the edited region stands out."""
    m = np.asarray(mask, np.float32)[..., None]
    return (image_u8 * (0.35 + 0.65 * m)).astype(np.uint8)


def line_plot(series: dict, width: int = 360, height: int = 220, title: str = "", x_ticks=()) -> np.ndarray:
    """Minimal line plot: {label: [values]} -> [H, W, 3] uint8 (no matplotlib dependency). x_ticks: [(index into
    the values, label)] marked under the x axis."""
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 50, width - 10, 20, height - (38 if x_ticks else 25)
    n = max(len(v) for v in series.values())
    for i, label in x_ticks:
        x = left + (right - left) * i / max(n - 1, 1)
        d.line([(x, bottom), (x, bottom + 4)], fill="black")
        d.text((x - 3 * len(label), bottom + 5), label, fill="black")
    vals = np.concatenate([np.asarray(v, np.float64) for v in series.values()])
    lo, hi = float(vals.min()), float(vals.max())
    hi = hi if hi > lo else lo + 1.0
    d.rectangle([left, top, right, bottom], outline="black")
    d.text((4, top - 2), f"{hi:.3g}", fill="black")
    d.text((4, bottom - 10), f"{lo:.3g}", fill="black")
    d.text((left, 3), title, fill="black")
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"]
    for k, (label, v) in enumerate(series.items()):
        v = np.asarray(v, np.float64)
        xs = left + (right - left) * np.arange(len(v)) / max(len(v) - 1, 1)
        ys = bottom - (bottom - top) * (v - lo) / (hi - lo)
        c = colours[k % len(colours)]
        d.line(list(zip(xs, ys)), fill=c, width=2)
        d.text((left + 5 + 90 * k, bottom + (18 if x_ticks else 5)), label, fill=c)
    return np.asarray(img)
