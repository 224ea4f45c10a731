"""Flags -> latents, settings and run folder for `bin/edit.py` (kept here so the binary stays a thin shell); what it
shares with `--codes` (engines.project_edit) and bin/evaluate.py is in engines.inputs."""
from __future__ import annotations

import pathlib

import jax

from si_jax.editing import directions
from si_jax.engines import cli, demo, edit_run, runs, samples
from si_jax.engines.inputs import (check_directions, check_lambda_flags, file_digest, lambda_model_edit,
                                   load_condition_on, mask_setting, resolve_model, settings_of, vars_of)
from si_jax.evaluation import report

DEMO_DIR = "si_jax_demo"
DEFAULT_NUM_SAMPLES, DEFAULT_SEED = 16, 0


def demo_dir(attribute=None) -> str:
    """The demo's default run folder: DEMO_DIR for the default attribute, DEMO_DIR_<attribute> for another (so
    that `bin/edit.py --attribute=smile` after `bin/edit.py` starts a run of its own instead of being refused)."""
    attribute = attribute or demo.DEMO_ATTRIBUTE
    return DEMO_DIR if attribute == demo.DEMO_ATTRIBUTE else f"{DEMO_DIR}_{attribute}"


def sample_flags(flags) -> tuple:
    """-> (num_samples, seed) with their defaults; UsageError for values out of range."""
    num = DEFAULT_NUM_SAMPLES if flags.num_samples is None else flags.num_samples
    seed = DEFAULT_SEED if flags.seed is None else flags.seed
    cli.require(num >= 1, "num_samples", num, "must be >= 1")
    cli.require(seed >= 0, "seed", seed, "must be >= 0")
    return num, seed


def configure_jax(cache_dir: str, multihost: bool, flags=None) -> None:
    """`cli.setup_jax` (persistent compilation cache, quiet XLA logs), then the hosts (`cli.start_hosts`):
    jax.distributed for --multihost, with --coordinator_address / --num_processes / --process_id from `flags` when
    it has them; a multi-process launch without --multihost is refused."""
    cli.setup_jax(cache_dir)
    cli.start_hosts(multihost, **{k: getattr(flags, k, None) for k in ("coordinator_address", "num_processes",
                                                                        "process_id")})


def _log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


def _latents(flags, z_dim: int, generator_id: str) -> tuple:
    """-> (z [N, z_dim], description for the settings, truncation psi). With --samples: the samples' z and their
    truncation psi, refused when they come from another generator or --truncation_psi contradicts them."""
    if flags.samples:
        data = samples.load_samples(flags.samples)
        manifest = data["manifest"]
        if manifest["generator_id"] != generator_id:
            raise ValueError(f"{flags.samples} was sampled from generator {manifest['generator_id']}, but --weights "
                             f"is generator {generator_id}; sample with the same weights")
        if data["z"].shape[1] != z_dim:
            raise ValueError(f"{flags.samples} holds z of dimension {data['z'].shape[1]}, the generator has {z_dim}")
        psi = float(manifest["truncation_psi"])
        cli.require(flags.truncation_psi in (None, psi), "truncation_psi", flags.truncation_psi,
                    f"contradicts the samples' truncation_psi {psi:g} ({flags.samples}); omit it with --samples")
        return data["z"], {"samples": str(flags.samples), "samples_digest": file_digest(
            pathlib.Path(flags.samples) / samples.MANIFEST)}, psi
    psi = 1.0 if flags.truncation_psi is None else flags.truncation_psi
    num, seed = sample_flags(flags)
    return samples.latents(seed, range(num), z_dim), {"num_samples": num, "seed": seed}, psi


def run(flags, is_demo: bool) -> None:
    """Validate the flags, resolve generator, directions, latents, masks and settings (nothing is created), then
    edit into the run folder (created with the first finished shard) and print the summary. With --codes (a
    bin/project.py folder) the projected images are edited instead (engines.project_edit)."""
    import time

    if getattr(flags, "codes", None):
        from si_jax.engines import project_edit

        project_edit.run(flags, is_demo, _log)
        return
    if getattr(flags, "space", None):
        raise cli.UsageError("--space picks the code space of --codes; give --codes=DIR (from bin/project.py)")

    t0 = time.perf_counter()
    settings_of(flags)   # every numeric flag, before anything is loaded
    cli.numerics_of(flags)
    check_lambda_flags(flags)
    mask_flag = mask_setting(flags.mask, flags.masks, default=None)
    out_dir = flags.output_dir or (demo_dir(flags.attribute) if is_demo else None)
    if not out_dir:
        raise cli.UsageError("--output_dir is required")
    if not flags.samples:
        sample_flags(flags)
    if flags.method == "interfacegan" and not flags.condition_on:
        raise cli.UsageError("--method=interfacegan needs --condition_on direction files of other attributes")
    cli.check_input_files(direction=flags.direction, condition_on=list(flags.condition_on))
    inputs = [flags.weights, flags.direction, flags.samples, flags.masks, *flags.condition_on]
    cli.check_output_dir(out_dir, inputs=inputs)
    if is_demo:
        _log(demo.banner(flags.attribute or demo.DEMO_ATTRIBUTE))
    model = resolve_model(flags, is_demo, _log)
    cfg, params, dirs, judge, source = model.cfg, model.params, model.dirs, model.judge, model.source
    generator_id, mask_spec = model.generator_id, mask_flag or model.default_mask
    check_directions(dirs, cfg, flags.direction or "demo")
    z, latent_source, psi = _latents(flags, cfg.z_dim, generator_id)
    condition_on = load_condition_on(flags.condition_on, "z", cfg.z_dim)
    batch_size = runs.fit_batch_size(flags.batch_size, len(z), runs.local_mesh())
    if batch_size < flags.batch_size:
        _log(f"note: --batch_size={flags.batch_size} capped at {batch_size} (the number of images)")
    st = settings_of(flags, mask=mask_spec, truncation_psi=psi, batch_size=batch_size)
    mask_source = edit_run.MaskSource(mask_spec, len(z), cfg.img_resolution, runs.local_mesh())
    settings = {**vars_of(st), **source, **latent_source,
                "masks_digest": file_digest(mask_spec) if mask_source.array is not None and
                not mask_spec.startswith(("box:", "ellipse:")) else None,
                "condition_on": [file_digest(p) for p in flags.condition_on]}
    edit_fn, lam_settings = lambda_model_edit(flags, model, st, _log)
    settings.update(lam_settings)
    run_dir = runs.RunDir(out_dir, settings)   # checks only; created with the first finished shard
    extra = {}
    if is_demo:
        extra = {"direction.npz": lambda tmp: directions.save_directions(tmp, dirs, generator_id=generator_id),
                 "table1.md": (directions.table1_report(dirs) + "\n").encode()}
        _log(directions.table1_report(dirs))
    _log(f"editing {len(z)} images: attribute '{dirs['s'].attribute}', target {st.target}, method '{st.method}', "
         f"into {run_dir.path} (batch {st.batch_size}, {jax.local_device_count()} local device(s))")
    summary = edit_run.run_edits(run_dir, params, cfg, dirs, z, st, mask_source, condition_on=condition_on,
                                 judge=judge, extra=extra, log=_log, edit_fn=edit_fn)
    if summary is not None:
        _log(edit_run.describe(summary))
        for line in report.notes_on(summary):
            _log(line)
        _log(f"outputs: {run_dir.path / 'index.html'} (browse and sort the images), {run_dir.path / 'grid.png'}, "
             f"{run_dir.path / 'summary.json'}, {run_dir.path / 'per_image.csv'}, {run_dir.path / 'images'}/")
        _log(f"finished in {time.perf_counter() - t0:.1f}s")
    if is_demo:
        _log("(that was the demo; see the commands in the banner above to edit real images)")
