"""Flags -> images, generator, loss networks, settings and run folder for `bin/project.py`."""
from __future__ import annotations

import time

import jax

from si_jax import projection
from si_jax.engines import cli, inputs, project_run, runs
from si_jax.stylegan2 import params as params_lib

DEFAULT_WEIGHTS = "builtin:toyfaces"


def parse_spaces(text: str) -> tuple:
    """'w,wplus,s' -> ('w', 'wplus', 's'); UsageError naming an unknown or repeated space."""
    spaces = tuple(s.strip() for s in str(text).split(",") if s.strip())
    cli.require(bool(spaces) and all(s in projection.SPACES for s in spaces) and len(set(spaces)) == len(spaces),
                "spaces", text, f"must be a comma-separated list of distinct spaces from {', '.join(projection.SPACES)}")
    return spaces


def settings_of(flags) -> project_run.ProjectSettings:
    """The flags' ProjectSettings (validated by ProjectSettings itself)."""
    lambda_vgg = flags.lambda_vgg if flags.lambda_vgg is not None else (1.0 if flags.vgg16 else 0.0)
    if lambda_vgg > 0 and not flags.vgg16:
        raise cli.UsageError(f"--lambda_vgg={lambda_vgg:g} needs --vgg16 (a torchvision vgg16 state-dict file)")
    pc = projection.ProjectConfig(
        num_steps=flags.num_steps, learning_rate=flags.learning_rate, lr_rampup=flags.lr_rampup,
        lr_rampdown=flags.lr_rampdown, code_noise=flags.code_noise, code_noise_ramp=flags.code_noise_ramp,
        noise=flags.noise, noise_reg=flags.noise_reg, lambda_pixel=flags.lambda_pixel,
        lambda_multiscale=flags.lambda_multiscale, lambda_vgg=lambda_vgg, lambda_judge=flags.lambda_judge)
    return project_run.ProjectSettings(pc, parse_spaces(flags.spaces), flags.batch_size, flags.seed)


def run(flags, log=print) -> dict:
    """Validate flags and inputs (every image decoded, VGG16 weights read; nothing created), then project into
    the run folder and print the reconstruction quality. -> the manifest."""
    t0 = time.perf_counter()
    st = settings_of(flags)
    numerics = cli.numerics_of(flags)
    if not flags.images:
        raise cli.UsageError("--images is required (a folder of PNG / JPEG images)")
    if not flags.output_dir:
        raise cli.UsageError("--output_dir is required")
    cli.check_input_files(vgg16=flags.vgg16)
    cli.check_output_dir(flags.output_dir, inputs=[flags.images, flags.weights, flags.vgg16])
    canonical, cfg = cli.load_weights(flags.weights, numerics)
    params = params_lib.to_jax_params(canonical, cfg)
    folder = projection.load_image_folder(flags.images, cfg.img_resolution)
    if cfg.img_channels != 3:
        raise ValueError(f"--weights has {cfg.img_channels} image channels; projection reads RGB images")
    aux = {"vgg": projection.load_vgg16(flags.vgg16) if st.projector.lambda_vgg > 0 else None, "judge": None}
    if aux["vgg"] is not None and cfg.img_resolution < 16:
        raise ValueError(f"--vgg16 needs images of at least 16 px; the generator makes {cfg.img_resolution} px")
    if st.projector.lambda_judge > 0:
        from si_jax.world import judges

        aux["judge"] = judges.load_judges().classifier
        if flags.weights != DEFAULT_WEIGHTS:
            log("note: --lambda_judge uses the toyfaces judge's features; it is meant for builtin:toyfaces")
    generator_id = params_lib.fingerprint(canonical)
    batch_size = runs.fit_batch_size(st.batch_size, len(folder.images), runs.local_mesh())
    if batch_size < st.batch_size:
        log(f"note: --batch_size={st.batch_size} capped at {batch_size} (the number of images)")
        st = project_run.ProjectSettings(st.projector, st.spaces, batch_size, st.seed)
    settings = {**st.to_json(), "weights": generator_id, "images_digest": inputs.file_digest(flags.images),
                "vgg16": inputs.file_digest(flags.vgg16) if aux["vgg"] is not None else None,
                **cli.numerics_settings(numerics)}
    run_dir = runs.RunDir(flags.output_dir, settings)   # checks only; created with the first finished shard
    for line in project_run.note_lines(folder):
        log(line)
    log(f"projecting {len(folder.images)} images from {flags.images} into "
        f"{', '.join(projection.SPACE_NAMES[s] for s in st.spaces)} ({st.projector.num_steps} steps, noise "
        f"{st.projector.noise}, batch {st.batch_size}, {jax.local_device_count()} local device(s)) -> {run_dir.path}")
    manifest = project_run.run_projection(run_dir, params, cfg, folder, st, aux,
                                          {"generator_id": generator_id, "weights": str(flags.weights)}, log=log)
    log("reconstruction (mean over images):\n" + project_run.describe(manifest))
    log(f"outputs: {run_dir.path / project_run.CODES}, {run_dir.path / 'recon_grid.png'}, "
        f"{run_dir.path / project_run.MANIFEST}, {run_dir.path / 'images'}/  ({time.perf_counter() - t0:.1f}s)")
    log(f"edit them: python bin/edit.py --codes={run_dir.path}" +
        ("" if flags.weights == DEFAULT_WEIGHTS else f" --weights={flags.weights} --direction=DIR.npz"))
    return manifest
