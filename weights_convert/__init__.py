"""Safe readers for StyleGAN2 weights (NVlabs .pkl, TF .pkl, rosinality .pt) -> canonical params + config.

No torch, no TensorFlow, and no code from any file is ever run: pickles go through a restricted unpickler with
a per-format allow-list of inert stand-ins (see FORMATS.md). The canonical form (flat NVlabs `G_ema` names,
float32 arrays, plus a config dict) is documented in `canonical.py`; `save_safetensors` / `load_safetensors`
store it as a .safetensors file with the config in its metadata.
"""
from __future__ import annotations

import io
import pathlib

from weights_convert import nvlabs, rosinality, safe_pickle, tf
from weights_convert.canonical import (count_parameters, load_safetensors, remove_temp_files, save_safetensors,
                                      style_dim, validate)
from weights_convert.common import describe, read_bytes
from weights_convert.errors import UnsafePickleError, WeightsFormatError, one_line
from weights_convert.nvlabs import read_nvlabs_pkl
from weights_convert.rosinality import read_rosinality_pt
from weights_convert.tf import read_tf_pkl

__all__ = ["read_weights", "read_nvlabs_pkl", "read_tf_pkl", "read_rosinality_pt", "save_safetensors",
           "remove_temp_files", "load_safetensors", "WeightsFormatError", "UnsafePickleError", "count_parameters", "style_dim",
           "validate", "detect_format"]


def _is_safetensors(head: bytes) -> bool:
    """8-byte little-endian header length, then a JSON header starting with '{'."""
    return len(head) >= 10 and int.from_bytes(head[:8], "little") >= 2 and head[8:9] == b"{"


def detect_format(data: bytes) -> str:
    """'safetensors' | 'torch_zip' | 'torch_legacy' | 'pickle' | 'unknown', from the first 16 bytes.

    >>> import pickle
    >>> detect_format(b"PK\x03\x04rest"), detect_format(pickle.dumps({}, protocol=4)), detect_format(b"GIF89a")
    ('torch_zip', 'pickle', 'unknown')
    """
    if data.startswith(rosinality.ZIP_MAGIC):
        return "torch_zip"
    if data.startswith(rosinality.LEGACY_PREFIX):
        return "torch_legacy"
    if _is_safetensors(data):
        return "safetensors"
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        return "pickle"
    return "unknown"


def read_weights(path) -> tuple:
    """Any supported weights file -> (canonical params, config); the format is detected from the content.

    zip magic or legacy torch.save stream -> rosinality; a pickle whose top object is a dict with 'G_ema' ->
    NVlabs; a tuple (G, D, Gs) of TF Networks -> TF; a .safetensors written by `save_safetensors`.
    Raises FileNotFoundError, WeightsFormatError (UnsafePickleError for a refused global).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    kind = detect_format(head)
    if kind in ("torch_zip", "torch_legacy"):
        return read_rosinality_pt(path)
    if kind == "safetensors":
        return load_safetensors(path)
    data, source = read_bytes(path)
    allowed = {**nvlabs.allowed_globals(source), **tf.ALLOWED_GLOBALS}
    try:
        obj, used = safe_pickle.restricted_load(io.BytesIO(data), allowed, source, "NVlabs or TF StyleGAN2 pickle")
    except UnsafePickleError:
        raise
    except WeightsFormatError:
        if kind == "pickle":
            raise
        raise WeightsFormatError(one_line(
            f"{source}: not a recognised weights file (expected an NVlabs/TF pickle, a rosinality torch "
            f"checkpoint or an si_jax .safetensors; file starts with {data[:12]!r})")) from None
    if isinstance(obj, dict) and "G_ema" in obj:
        fmt_allowed, reader = nvlabs.allowed_globals(source), nvlabs.from_snapshot
    elif tf.is_tf_networks(obj):
        fmt_allowed, reader = tf.ALLOWED_GLOBALS, tf.from_networks
    else:
        raise WeightsFormatError(one_line(
            f"{source}: pickle holds {describe(obj)}; expected an NVlabs snapshot (dict with 'G_ema') or a "
            "TF (G, D, Gs) tuple"))
    foreign = sorted(g for g in used if tuple(g.rsplit(".", 1)) not in fmt_allowed)
    if foreign:
        raise WeightsFormatError(f"{source}: pickle uses global '{foreign[0]}', which does not belong in "
                                 "this format")
    return reader(obj, source)
