"""Atomic training checkpoints (no pickles) and the G_ema export.

A checkpoint is ONE folder `ckpt_SSSSSSSSS` (S = step) holding
    state.safetensors   every array of the TrainState, named by its key path (e.g. ".g['layers'][0]['weight']")
    meta.json           {"format": "si_jax-train-checkpoint", "version": 1, "step", "kimg", "data_position"
                        (images consumed), "settings", "signature" (hash of names, shapes, dtypes), "si_jax_version",
                        + whatever the caller adds}
It is written under a temporary name in the same folder, fsynced, then renamed: a reader (or a resumed run) sees
a complete checkpoint or none. `save` keeps the newest `keep` (2) checkpoints.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil

import jax
import numpy as np

from si_jax import storage
from si_jax.stylegan2 import params as params_lib
from si_jax.stylegan2.config import G2Config
from si_jax.training.state import with_w_avg

FORMAT, VERSION = "si_jax-train-checkpoint", 1
STATE_FILE, META_FILE, PREFIX = "state.safetensors", "meta.json", "ckpt_"


def leaves(state) -> dict:
    """Pytree of arrays or `jax.ShapeDtypeStruct`s -> {key path: leaf}, in the pytree's leaf order."""
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def flatten(state) -> dict:
    """Pytree -> {key path: numpy array}, in the pytree's leaf order."""
    return {name: np.asarray(leaf) for name, leaf in leaves(state).items()}


def signature(state) -> str:
    """Short hash of the pytree's leaf names, shapes and dtypes (what a checkpoint must match to be restored)."""
    layout = [(name, list(a.shape), str(np.dtype(a.dtype))) for name, a in leaves(state).items()]
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()[:16]


def save(folder, state, meta: dict, *, keep: int = 2) -> pathlib.Path:
    """Write `state` (+ `meta`, JSON-able) as folder/ckpt_<step> atomically; prune to the newest `keep`."""
    from safetensors.numpy import save as st_save

    import si_jax

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = flatten(state)
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise FloatingPointError(f"not writing a checkpoint: state array {name} has non-finite values")
    step = int(arrays[".step"])
    meta = {"format": FORMAT, "version": VERSION, "step": step, "signature": signature(state),
            "si_jax_version": si_jax.__version__, **meta}
    final = folder / f"{PREFIX}{step:09d}"
    tmp = folder / f".tmp_{PREFIX}{step:09d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    storage.write_atomic(tmp / STATE_FILE, st_save(arrays), fsync=True)
    storage.write_atomic(tmp / META_FILE, json.dumps(meta, indent=1, sort_keys=True).encode(), fsync=True)
    if final.exists():  # the same step written again (a re-run): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in all_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_temporary(folder) -> None:
    """Delete half-written checkpoint folders a killed run left behind (one run per folder at a time)."""
    folder = pathlib.Path(folder)
    if folder.is_dir():
        for p in folder.glob(f".tmp_{PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)


def all_checkpoints(folder) -> list:
    """Complete checkpoint folders in `folder`, oldest first (temporary folders are ignored)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / META_FILE).is_file() and (p / STATE_FILE).is_file())


def latest(folder) -> pathlib.Path | None:
    found = all_checkpoints(folder)
    return found[-1] if found else None


def read_meta(path) -> dict:
    path = pathlib.Path(path)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable checkpoint metadata ({e})") from None
    return storage.check_format_header(meta, path, "training checkpoint", FORMAT, VERSION)


def restore(path, template):
    """Checkpoint folder -> (state shaped like `template` (arrays or `jax.ShapeDtypeStruct`s, e.g. from
    `jax.eval_shape`), meta). ValueError naming the first mismatch or damage (unreadable, non-finite values)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = pathlib.Path(path)
    meta = read_meta(path)
    try:
        arrays = load_file(str(path / STATE_FILE))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: unreadable checkpoint state ({e})") from None
    want = leaves(template)
    for name, a in want.items():
        if name not in arrays:
            raise ValueError(f"{path}: checkpoint has no array {name} (it was written for another model)")
        got = arrays[name]
        if got.shape != a.shape or got.dtype != a.dtype:
            raise ValueError(f"{path}: checkpoint array {name} is {got.dtype}{list(got.shape)}, this model needs "
                             f"{a.dtype}{list(a.shape)}")
        if np.issubdtype(got.dtype, np.inexact) and not np.all(np.isfinite(got)):
            raise ValueError(f"{path}: checkpoint array {name} holds NaN or infinite values (damaged)")
    extra = sorted(set(arrays) - set(want))
    if extra:
        raise ValueError(f"{path}: checkpoint has an array this model lacks: {extra[0]}")
    if meta.get("signature") != signature(template):
        raise ValueError(f"{path}: checkpoint structure signature {meta.get('signature')} != {signature(template)}")
    treedef = jax.tree_util.tree_structure(template)
    return jax.tree_util.tree_unflatten(treedef, [arrays[name] for name in want]), meta


def export_generator(path, g_ema: dict, w_avg, cfg: G2Config) -> dict:
    """Write G_ema (+ w_avg) as a canonical .safetensors that `si_jax.load_generator` reads; -> the canonical dict.

    The config's source_format is 'nvlabs' (the canonical names and layouts are those of an NVlabs G_ema).
    """
    import weights_convert

    canonical = params_lib.from_jax_params(with_w_avg(jax.device_get(g_ema), np.asarray(w_avg)), cfg)
    config = {**cfg.to_dict(), "source_format": "nvlabs"}
    weights_convert.save_safetensors(path, canonical, config)
    return canonical
