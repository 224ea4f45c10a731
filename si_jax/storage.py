"""Files every stage writes or reads: validated .npz arrays, atomic .npz writes, versioned JSON headers, and the
content fingerprint that ties a file to the weights it came from.

A leaf: imports nothing of si_jax.
"""
from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np


def load_npz_array(path, key: str, *, ndim: int, last_dim: int | None = None) -> np.ndarray:
    """One float32 array from an .npz, validated: present, rank `ndim`, last dim, finite. No pickles."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data:
                raise ValueError(f"{path}: no array '{key}' (has: {', '.join(data.files) or 'none'})")
            arr = np.asarray(data[key])
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    if arr.ndim != ndim or (last_dim is not None and arr.shape[-1] != last_dim):
        want = f"rank {ndim}" + (f" with last dimension {last_dim}" if last_dim is not None else "")
        raise ValueError(f"{path}: '{key}' has shape {arr.shape}, expected {want}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: '{key}' is not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: '{key}' contains NaN or infinite values")
    return arr


def save_npz_atomic(path, **arrays) -> None:
    """np.savez to a temp file in the same folder, then rename: readers never see half a file."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_format_header(header, where, what: str, fmt: str, version: int) -> dict:
    """A parsed JSON header must be a dict with "format" == fmt and "version" == version.

    -> header; ValueError naming `where` (the file) and `what` (e.g. 'directions file') otherwise.
    """
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise ValueError(f"{where} is not an si_jax {what} (format is not {fmt!r})")
    if header.get("version") != version:
        raise ValueError(f"{where}: {what} version {header.get('version')!r} is not supported "
                         f"(this si_jax reads version {version})")
    return header


def fingerprint(arrays: dict) -> str:
    """A short content hash of named arrays (names, shapes and float32 values), e.g. a generator's canonical
    weights or a judge's, to tie outputs and shipped files to the exact weights."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key], np.float32)
        h.update(key.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
