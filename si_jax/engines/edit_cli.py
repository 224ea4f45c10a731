"""The engine of `bin/edit.py`: an EditJob (engines.settings) and a run folder -> latents, model, masks, then the
resumable edit (engines.edit_run); `run(job, out)`. What it shares with `--codes` (engines.project_edit) and
bin/evaluate.py is in engines.inputs."""
from __future__ import annotations

import dataclasses
import pathlib

import jax

from si_jax.editing import directions, masks
from si_jax.engines import checks, demo, edit_run, errors, hosts, runs, samples
from si_jax.engines.inputs import (check_directions, file_digest, lambda_model_edit, load_condition_on,
                                   mask_setting, resolve_model)
from si_jax.engines.inputs import mask_source as mask_source_of
from si_jax.evaluation import report

DEMO_DIR = "si_jax_demo"
DEFAULT_NUM_SAMPLES, DEFAULT_SEED = 16, 0


def demo_dir(attribute=None) -> str:
    """The demo's default run folder: DEMO_DIR for the default attribute, DEMO_DIR_<attribute> for another (so
    that `bin/edit.py --attribute=smile` after `bin/edit.py` starts a run of its own instead of being refused)."""
    attribute = attribute or demo.DEMO_ATTRIBUTE
    return DEMO_DIR if attribute == demo.DEMO_ATTRIBUTE else f"{DEMO_DIR}_{attribute}"


def configure_jax(cache_dir: str, multihost: bool, flags=None) -> None:
    """`hosts.setup_jax` (persistent compilation cache, quiet XLA logs), then the hosts (`hosts.start_hosts`):
    jax.distributed for --multihost, with --coordinator_address / --num_processes / --process_id from `flags` when
    it has them; a multi-process launch without --multihost is refused."""
    hosts.setup_jax(cache_dir)
    hosts.start_hosts(multihost, **{k: getattr(flags, k, None) for k in ("coordinator_address", "num_processes",
                                                                        "process_id")})


def _log(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


def _latents(job, z_dim: int, generator_id: str) -> tuple:
    """-> (z [N, z_dim], description for the settings, truncation psi). With --samples: the samples' z and their
    truncation psi, refused when they come from another generator or --truncation_psi contradicts them."""
    if job.samples:
        data = samples.load_samples(job.samples)
        manifest = data["manifest"]
        if manifest["generator_id"] != generator_id:
            raise ValueError(f"{job.samples} was sampled from generator {manifest['generator_id']}, but --weights "
                             f"is generator {generator_id}; sample with the same weights")
        if data["z"].shape[1] != z_dim:
            raise ValueError(f"{job.samples} holds z of dimension {data['z'].shape[1]}, the generator has {z_dim}")
        psi = float(manifest["truncation_psi"])
        checks.require(job.edit.truncation_psi in (None, psi), "truncation_psi", job.edit.truncation_psi,
                       f"contradicts the samples' truncation_psi {psi:g} ({job.samples}); omit it with --samples")
        return data["z"], {"samples": str(job.samples), "samples_digest": file_digest(
            pathlib.Path(job.samples) / samples.MANIFEST)}, psi
    psi = 1.0 if job.edit.truncation_psi is None else job.edit.truncation_psi
    num = DEFAULT_NUM_SAMPLES if job.num_samples is None else job.num_samples
    seed = DEFAULT_SEED if job.seed is None else job.seed
    return samples.latents(seed, range(num), z_dim), {"num_samples": num, "seed": seed}, psi


def run(job, out=None) -> dict | None:
    """bin/edit.py: an EditJob (engines.settings: its flags checked) and the run folder (--output_dir; None: the
    demo's `demo_dir`). Checks the input files and the folder, resolves generator, directions, latents, masks and
    settings (nothing is created), then edits into the run folder (created with the first finished shard) and
    prints the summary. -> the summary (None on processes other than 0). With --codes (a bin/project.py folder)
    the projected images are edited instead (engines.project_edit)."""
    import time

    if job.codes:
        from si_jax.engines import project_edit

        return project_edit.run(job, out, _log)
    t0 = time.perf_counter()
    is_demo, st = job.is_demo, job.edit
    mask_flag = mask_setting(st.mask, job.masks, default=None)
    out_dir = out or (demo_dir(job.attribute) if is_demo else None)
    if not out_dir:
        raise errors.UsageError("--output_dir is required")
    checks.check_input_files(lambda_model=job.lambda_model, direction=job.direction,
                             condition_on=list(job.condition_on))
    inputs = [job.weights, job.direction, job.samples, job.masks, *job.condition_on]
    checks.check_output_dir(out_dir, inputs=inputs)
    if is_demo:
        _log(demo.banner(job.attribute or demo.DEMO_ATTRIBUTE))
    model = resolve_model(job, is_demo, _log)
    cfg, params, dirs, judge, source = model.cfg, model.params, model.dirs, model.judge, model.source
    generator_id, mask_spec = model.generator_id, mask_flag or model.default_mask
    check_directions(dirs, cfg, job.direction or "demo")
    z, latent_source, psi = _latents(job, cfg.z_dim, generator_id)
    condition_on = load_condition_on(job.condition_on, "z", cfg.z_dim)
    batch_size = runs.fit_batch_size(st.batch_size, len(z), runs.local_mesh())
    if batch_size < st.batch_size:
        _log(f"note: --batch_size={st.batch_size} capped at {batch_size} (the number of images)")
    st = dataclasses.replace(st, mask=mask_spec, truncation_psi=psi, batch_size=batch_size)
    mask_source = mask_source_of(mask_spec, len(z), cfg.img_resolution, mesh=runs.local_mesh())
    settings = {**st.record(), **source, **latent_source,
                "masks_digest": file_digest(mask_spec) if masks.kind_of(mask_spec) == "file" else None,
                "condition_on": [file_digest(p) for p in job.condition_on]}
    edit_fn, lam_settings = lambda_model_edit(job, model, st, _log)
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
    return summary
