"""Flags -> inputs, settings and run folder for `bin/edit.py` (kept here so the binary stays a thin shell)."""
from __future__ import annotations

import hashlib
import os
import pathlib

import jax
import numpy as np

from si_jax.editing import directions
from si_jax.engines import demo, edit_run, runs, samples
from si_jax.stylegan2 import loading, params as params_lib

DEMO_DIR = "si_jax_demo"


def configure_jax(cache_dir: str, multihost: bool) -> None:
    """Persistent compilation cache (cuts cold start) and, for --multihost, jax.distributed."""
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if multihost:
        jax.distributed.initialize()


def file_digest(path) -> str:
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


def _latents(flags, z_dim: int, generator_id: str) -> tuple:
    """-> (z [N, z_dim], description for the settings)."""
    if flags.samples:
        data = samples.load_samples(flags.samples)
        if data["manifest"].get("generator_fingerprint", generator_id) != generator_id:
            raise ValueError(f"{flags.samples} was sampled from another generator than --weights")
        if data["z"].shape[1] != z_dim:
            raise ValueError(f"{flags.samples} holds z of dimension {data['z'].shape[1]}, the generator has {z_dim}")
        return data["z"], {"samples": str(flags.samples), "samples_digest": file_digest(
            pathlib.Path(flags.samples) / samples.MANIFEST)}
    if flags.num_samples < 1:
        raise ValueError(f"--num_samples must be >= 1, got {flags.num_samples}")
    return samples.latents(flags.seed, range(flags.num_samples), z_dim), {"num_samples": flags.num_samples,
                                                                         "seed": flags.seed}


def run(flags, is_demo: bool) -> None:
    """Resolve generator, directions, latents, masks and settings; edit into the run folder; print the summary."""
    if is_demo:
        _log(demo.banner())
        canonical, cfg, params, dirs, box = demo.demo_setup(_log)
        source = {"weights": "builtin:demo", "direction": "demo"}
        mask_spec = flags.mask or (flags.masks or box)
    else:
        canonical, cfg = loading.load_canonical(flags.weights)
        params = params_lib.to_jax_params(canonical, cfg)
        dirs = directions.load_directions(flags.direction)
        source = {"weights": params_lib.fingerprint(canonical), "direction": file_digest(flags.direction)}
        mask_spec = flags.masks or flags.mask or "auto"
    generator_id = params_lib.fingerprint(canonical)
    meta = {} if is_demo else directions.load_directions_meta(flags.direction)
    if meta.get("generator_id") not in (None, generator_id):
        raise ValueError(f"{flags.direction} was fitted for another generator (id {meta['generator_id']}, "
                         f"--weights has {generator_id})")
    check_directions(dirs, cfg, flags.direction or "demo")
    z, latent_source = _latents(flags, cfg.z_dim, generator_id)
    condition_on = [directions.load_directions(p)["z"] for p in flags.condition_on]
    st = edit_run.EditSettings(flags.method, mask_spec, flags.target, flags.distance, flags.s_scale,
                               flags.truncation_psi, flags.batch_size, flags.steps_per_layer, flags.learning_rate,
                               flags.lambda_attr, flags.lambda_norm, flags.lambda_init)
    mask_source = edit_run.MaskSource(mask_spec, len(z), cfg.img_resolution)
    settings = {**vars_of(st), **source, **latent_source,
                "masks_digest": file_digest(mask_spec) if mask_source.array is not None and
                not mask_spec.startswith(("box:", "ellipse:")) else None,
                "condition_on": [file_digest(p) for p in flags.condition_on]}
    out_dir = flags.output_dir or (DEMO_DIR if is_demo else None)
    if not out_dir:
        raise ValueError("--output_dir is required")
    if jax.process_count() > 1:  # process 0 creates the folder first; the others then check the same settings
        from jax.experimental import multihost_utils

        if jax.process_index() == 0:
            runs.RunDir(out_dir, settings)
        multihost_utils.sync_global_devices("si_jax_run_dir")
    run_dir = runs.RunDir(out_dir, settings, primary=jax.process_index() == 0)
    if is_demo:
        directions.save_directions(run_dir.path / "direction.npz", dirs, generator_id=generator_id)
        (run_dir.path / "table1.md").write_text(directions.table1_report(dirs) + "\n")
        _log(directions.table1_report(dirs))
    _log(f"editing {len(z)} images with method '{st.method}' into {run_dir.path} "
         f"(batch {st.batch_size}, {jax.local_device_count()} local device(s))")
    summary = edit_run.run_edits(run_dir, params, cfg, dirs, z, st, mask_source, condition_on=condition_on,
                                 log=_log)
    if summary is not None:
        _log(edit_run.describe(summary))
        _log(f"outputs: {run_dir.path / 'grid.png'}, {run_dir.path / 'summary.json'}, {run_dir.path / 'images'}/")
    if is_demo:
        _log("(that was the demo; see the commands in the banner above to edit real images)")


def check_directions(dirs: dict, cfg, name: str) -> None:
    """The s/z/w directions exist and have this generator's dimensions (before anything is written)."""
    want = {"s": cfg.style_dim, "z": cfg.z_dim, "w": cfg.w_dim}
    for space, dim in want.items():
        if space not in dirs:
            raise ValueError(f"{name} has no '{space}' direction (has: {', '.join(sorted(dirs))})")
        if dirs[space].dim != dim:
            raise ValueError(f"{name}: the {space}-space direction has dimension {dirs[space].dim}, this generator's "
                             f"{space} space has {dim}: it was fitted for another generator")


def vars_of(st) -> dict:
    import dataclasses

    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in dataclasses.asdict(st).items()}
