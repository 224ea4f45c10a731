"""Sample folders written by `bin/sample.py`, and the rule that fixes each sample's latent.

    data = load_samples('runs/ffhq_10k')      # {'z', 'w', 'styles', 'index', 'manifest'}

Folder layout (a `si_jax.engines.runs.RunDir`):

    run.json                  the settings (generator fingerprint, num_samples, seed, truncation_psi, batch_size, ...)
    shards/shard_XXXXX.npz    shard k = samples [k·B, min((k+1)·B, N)), B = batch_size: `index` int64 [n],
                              `z` [n, z_dim], `w` [n, w_dim], `styles` [n, S] (flat, forward layer order), float32
    images/XXXXXX.png         (--save_images) sample i's image, 8-bit, mapped from manifest['images']['display_range']
    contact_sheet.png         (--save_images) the first <= 64 images, 8 per row
    manifest.json             written last, when every shard exists: the folder is complete iff it is there

Latents: z[i] = numpy.random.default_rng([seed, i]).standard_normal(z_dim) cast to float32 (`latents`: the rule
of si_jax.stylegan2.latents, which the stages below engines use too). It depends only on (seed, i): not on batch
size, shard layout, device or host count. w and styles are computed by the same jitted program for every shard;
across device counts they agree to float round-off (~1e-6).
"""
from __future__ import annotations

import json
import math
import pathlib
import zipfile

import numpy as np

from si_jax import storage
from si_jax.stylegan2.latents import Z_RULE, latents  # noqa: F401 - `samples.latents` is the README's name for the rule

MANIFEST = "manifest.json"
FORMAT = "si_jax.samples"
VERSION = 1
ARRAYS = ("index", "z", "w", "styles")


def shard_ranges(num_samples: int, shard_size: int) -> list:
    """[(start, count)] of each shard: shard k holds samples k·shard_size ... (the last one may be shorter)."""
    return [(s, min(shard_size, num_samples - s)) for s in range(0, num_samples, shard_size)]


def shard_file(k: int) -> str:
    """Shard k's path relative to the folder (the same name as `RunDir.shard_path`)."""
    return f"shards/shard_{k:05d}.npz"


def image_file(i: int) -> str:
    """Sample i's image path relative to the folder."""
    return f"images/{i:06d}.png"


def _unfinished_message(folder: pathlib.Path) -> str | None:
    """A description of an unfinished bin/sample.py run in `folder`, or None if it does not hold one."""
    try:
        settings = json.loads((folder / "run.json").read_text())
        total = math.ceil(int(settings["num_samples"]) / int(settings["batch_size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    done = sum(1 for k in range(total) if (folder / shard_file(k)).is_file())
    return (f"{folder} holds an unfinished sampling run ({done} of {total} shards, no {MANIFEST}); re-run the "
            "same bin/sample.py command to finish it")


def load_manifest(folder) -> dict:
    """The manifest of a finished sample folder; FileNotFoundError / ValueError saying what is wrong."""
    folder = pathlib.Path(folder)
    if folder.is_file():
        raise ValueError(f"samples folder {folder} is a file; give the folder bin/sample.py wrote")
    if not folder.is_dir():
        raise FileNotFoundError(f"samples folder {folder} not found")
    path = folder / MANIFEST
    if not path.is_file():
        unfinished = _unfinished_message(folder)
        if unfinished:
            raise ValueError(unfinished)
        raise FileNotFoundError(f"{folder} has no {MANIFEST}: not a bin/sample.py output folder")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    storage.check_format_header(manifest, path, "samples manifest", FORMAT, VERSION)
    fix = "the manifest is damaged: delete it and re-run bin/sample.py's command"
    storage.check_fields(manifest, path, fix, num_samples="size", z_dim="size", w_dim="size", style_dim="size",
                         truncation_psi="number", generator_id="text", shards="list")
    for k, entry in enumerate(manifest["shards"]):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: shards[{k}] is {entry!r}, expected {{'file', 'start', 'count'}}; {fix}")
        storage.check_fields(entry, f"{path}: shards[{k}]", fix, file="text", start="count", count="size")
    return manifest


def load_samples(folder) -> dict:
    """Read a finished `bin/sample.py` folder.

    -> {'z': [N, z_dim], 'w': [N, w_dim], 'styles': [N, S] float32, 'index': [N] int64 (= 0..N-1),
        'manifest': dict}. Errors name the problem: folder or manifest missing, unfinished run, shard missing or
    inconsistent with the manifest.
    """
    folder = pathlib.Path(folder)
    manifest = load_manifest(folder)
    dims = {"z": manifest["z_dim"], "w": manifest["w_dim"], "styles": manifest["style_dim"]}
    parts = {key: [] for key in ARRAYS}
    start = 0
    for entry in manifest["shards"]:
        path = folder / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: shard {entry['file']} listed in {MANIFEST} is missing")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in ARRAYS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is not a readable samples shard ({e})") from None
        n = int(entry["count"])
        want_index = np.arange(start, start + n)
        if entry["start"] != start or not np.array_equal(arrays["index"], want_index):
            raise ValueError(f"{path}: indices do not match {MANIFEST} (expected {start}..{start + n - 1})")
        for key, dim in dims.items():
            if arrays[key].shape != (n, dim):
                raise ValueError(f"{path}: '{key}' has shape {arrays[key].shape}, expected {(n, dim)}")
        for key in ("z", "w", "styles"):
            if not np.all(np.isfinite(arrays[key])):
                raise ValueError(f"{path}: '{key}' holds NaN or infinite values; delete this shard and {MANIFEST} "
                                 "and re-run bin/sample.py's command")
        for key in ARRAYS:
            parts[key].append(arrays[key])
        start += n
    if start != manifest["num_samples"]:
        raise ValueError(f"{folder}: shards hold {start} samples, {MANIFEST} says {manifest['num_samples']}")
    out = {key: np.concatenate(v) for key, v in parts.items()}
    out["manifest"] = manifest
    return out
