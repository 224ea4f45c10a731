"""A folder of the user's images -> model-sized float images, every conversion noted, every bad file named.

Rules (applied per file, in sorted name order; `.png`, `.jpg`, `.jpeg`, any case):
  * EXIF orientation is applied; multi-frame files use their first frame (noted).
  * 16-bit and 32-bit integer grayscale (PIL modes I;16*, I) are scaled from their full range (65535), float
    grayscale (F) is read as [0, 1]; every other mode is converted by PIL (palette, CMYK, 1-bit, ...). 16-bit RGB
    PNGs are reduced to 8 bits by PIL itself.
  * Transparency (RGBA, LA, palette with transparency) is composited over white (noted).
  * Grayscale becomes 3 equal channels (noted).
  * A non-square image is centre-cropped to its shorter side, then resized (Lanczos) to the model resolution
    (both noted).
Values map [0, 255] (or the full 16-bit range) linearly to [-1, 1], the generator's raw range.

A file that cannot be decoded (not an image, truncated, too large for PIL's decompression-bomb guard) is not
skipped: `load_image_folder` raises ONE ValueError naming every such file, before anything is written.
"""
from __future__ import annotations

import pathlib
import warnings
from typing import NamedTuple

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ALPHA_BACKGROUND = 1.0   # composite transparency over white


class ImageFolder(NamedTuple):
    """images [N, R, R, 3] float32 in [-1, 1]; names: N file names; notes: N lists of conversion notes;
    ignored: names of files that are not PNG/JPEG (reported, not read)."""

    images: np.ndarray
    names: list
    notes: list
    ignored: list


def list_images(folder) -> tuple:
    """folder -> (image paths sorted by name, names of the other files). Errors for a missing / empty folder."""
    folder = pathlib.Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"--images {folder}: folder not found")
    if not folder.is_dir():
        raise ValueError(f"--images {folder} is a file; give a folder of PNG / JPEG images")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    # every entry named like an image is read (a broken or looping link, a folder: named as unreadable, not skipped)
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise ValueError(f"--images {folder} holds no .png / .jpg / .jpeg files")
    return images, [p.name for p in entries if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES]


def _to_unit_float(img) -> tuple:
    """A decoded PIL image -> ([H, W, 3] float32 in [0, 1], notes)."""
    notes = []
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img, np.float64)
        peak = 65535.0 if a.max(initial=0) <= 65535 else float(a.max())
        x = np.clip(a / peak, 0.0, 1.0)[..., None]
        notes.append(f"{'16' if mode.startswith('I;16') or peak == 65535.0 else '32'}-bit grayscale scaled to [0, 1]")
    elif mode == "F":
        x = np.clip(np.asarray(img, np.float64), 0.0, 1.0)[..., None]
        notes.append("float grayscale read as [0, 1]")
    else:
        has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
        gray = mode in ("L", "LA", "1", "La") or (mode == "P" and _palette_is_gray(img))
        rgba = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), np.float64) / 255.0
        x = rgba[..., :3]
        if has_alpha:
            alpha = rgba[..., 3:]
            if alpha.min() < 1.0:
                notes.append("transparency composited over white")
            x = x * alpha + ALPHA_BACKGROUND * (1.0 - alpha)
        if gray:
            notes.append("grayscale copied to 3 channels")
        if mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            notes.append(f"mode {mode} converted to RGB")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
        if not any("grayscale" in n and "channels" in n for n in notes):
            notes.append("grayscale copied to 3 channels")
    return x.astype(np.float32), notes


def _palette_is_gray(img) -> bool:
    rgb = np.asarray(img.convert("RGB"))
    return bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))


def _fit(x: np.ndarray, resolution: int) -> tuple:
    """[H, W, 3] float in [0, 1] -> ([R, R, 3], notes): centre crop to a square, then Lanczos resize."""
    from PIL import Image

    notes = []
    h, w = x.shape[:2]
    if h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = x[top:top + side, left:left + side]
        notes.append(f"centre-cropped {w}x{h} -> {side}x{side}")
    if x.shape[0] != resolution:
        notes.append(f"resized {x.shape[1]}x{x.shape[0]} -> {resolution}x{resolution}")
        chans = [Image.fromarray(x[..., c].astype(np.float32), mode="F").resize(
            (resolution, resolution), Image.Resampling.LANCZOS) for c in range(3)]
        x = np.clip(np.stack([np.asarray(c, np.float32) for c in chans], axis=-1), 0.0, 1.0)
    return x, notes


def read_image(path, resolution: int) -> tuple:
    """One file -> ([R, R, 3] float32 in [-1, 1], notes). Raises OSError / ValueError when it cannot be read."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            notes = ["first frame of a multi-frame file"] if getattr(img, "n_frames", 1) > 1 else []
            img.load()
            img = ImageOps.exif_transpose(img)
            x, more = _to_unit_float(img)
    x, fitted = _fit(x, resolution)
    return (x * 2.0 - 1.0).astype(np.float32), notes + more + fitted


def load_image_folder(folder, resolution: int) -> ImageFolder:
    """Every PNG / JPEG of `folder` (see module docstring) -> ImageFolder; ONE ValueError naming every
    unreadable file (and why)."""
    from PIL import Image

    paths, ignored = list_images(folder)
    images, notes, bad = [], [], []
    for p in paths:
        try:
            x, n = read_image(p, resolution)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as e:
            bad.append(f"{p.name} ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})")
            continue
        if not np.all(np.isfinite(x)):
            bad.append(f"{p.name} (non-finite pixel values)")
            continue
        images.append(x)
        notes.append(n)
    if bad:
        shown = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise ValueError(f"{len(bad)} of {len(paths)} image file{'s' if len(paths) > 1 else ''} in {folder} cannot "
                         f"be read: {shown}; fix or remove them (nothing was written)")
    return ImageFolder(np.stack(images), [p.name for p in paths], notes, ignored)
