"""The engine of `bin/project.py`: a ProjectJob (engines.settings) and a run folder -> images, generator, loss
networks, then the resumable projection (engines.project_run); `run(job, out)`."""
from __future__ import annotations

import time

import jax

from si_jax import projection
from si_jax.engines import checks, errors, inputs, project_run, runs, weights
from si_jax.stylegan2 import params as params_lib

DEFAULT_WEIGHTS = "builtin:toyfaces"


def run(job, out, log=print) -> dict:
    """A ProjectJob (engines.settings: its flags checked) and the run folder (--output_dir): check the inputs
    (every image decoded, VGG16 weights read; nothing created), then project into the run folder and print the
    reconstruction quality. -> the manifest."""
    t0 = time.perf_counter()
    st, numerics = job.run, job.numerics
    if not out:
        raise errors.UsageError("--output_dir is required")
    checks.check_input_files(vgg16=job.vgg16)
    checks.check_output_dir(out, inputs=[job.images, job.weights, job.vgg16])
    canonical, cfg = weights.load_weights(job.weights, numerics)
    params = params_lib.to_jax_params(canonical, cfg)
    folder = projection.load_image_folder(job.images, cfg.img_resolution)
    if cfg.img_channels != 3:
        raise ValueError(f"--weights has {cfg.img_channels} image channels; projection reads RGB images")
    vgg = projection.load_vgg16(job.vgg16) if st.projector.lambda_vgg > 0 else None
    if vgg is not None and cfg.img_resolution < 16:
        raise ValueError(f"--vgg16 needs images of at least 16 px; the generator makes {cfg.img_resolution} px")
    judge = None
    if st.projector.lambda_judge > 0:
        from si_jax.world import judges

        judge = judges.load_judges().classifier
        if job.weights != DEFAULT_WEIGHTS:
            log("note: --lambda_judge uses the toyfaces judge's features; it is meant for builtin:toyfaces")
    aux = projection.ProjectAux(vgg=vgg, judge=judge)
    generator_id = params_lib.fingerprint(canonical)
    batch_size = runs.fit_batch_size(st.batch_size, len(folder.images), runs.local_mesh())
    if batch_size < st.batch_size:
        log(f"note: --batch_size={st.batch_size} capped at {batch_size} (the number of images)")
        st = project_run.ProjectSettings(st.projector, st.spaces, batch_size, st.seed)
    settings = {**st.to_json(), "weights": generator_id, "images_digest": inputs.file_digest(job.images),
                "vgg16": inputs.file_digest(job.vgg16) if aux.vgg is not None else None,
                **weights.numerics_settings(numerics)}
    run_dir = runs.RunDir(out, settings)   # checks only; created with the first finished shard
    for line in project_run.note_lines(folder):
        log(line)
    log(f"projecting {len(folder.images)} images from {job.images} into "
        f"{', '.join(projection.SPACE_NAMES[s] for s in st.spaces)} ({st.projector.num_steps} steps, noise "
        f"{st.projector.noise}, batch {st.batch_size}, {jax.local_device_count()} local device(s)) -> {run_dir.path}")
    manifest = project_run.run_projection(run_dir, params, cfg, folder, st, aux,
                                          {"generator_id": generator_id, "weights": str(job.weights)}, log=log)
    log("reconstruction (mean over images):\n" + project_run.describe(manifest))
    log(f"outputs: {run_dir.path / project_run.CODES}, {run_dir.path / 'recon_grid.png'}, "
        f"{run_dir.path / project_run.MANIFEST}, {run_dir.path / 'images'}/  ({time.perf_counter() - t0:.1f}s)")
    log(f"edit them: python bin/edit.py --codes={run_dir.path}" +
        ("" if job.weights == DEFAULT_WEIGHTS else f" --weights={job.weights} --direction=DIR.npz"))
    return manifest
