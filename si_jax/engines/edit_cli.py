"""Flags -> inputs, settings and run folder for `bin/edit.py` (kept here so the binary stays a thin shell)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib

import jax
import numpy as np

from si_jax import world
from si_jax.editing import directions
from si_jax.engines import cli, demo, edit_run, runs, samples, toyfaces
from si_jax.evaluation import report
from si_jax.stylegan2 import builtin
from si_jax.stylegan2 import params as params_lib
from si_jax.world import judges as judges_lib

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


MASK_KINDS = ("auto", "box", "ellipse", "part")


def mask_setting(mask, masks_path, default: str) -> str:
    """--mask (a spec) / --masks (a file or folder) -> the mask setting; `default` when neither is given.

    A --mask must be auto, box:..., ellipse:... or part:NAME (a typo is named as such, not looked up as a file);
    an empty value is refused rather than read as the default."""
    if mask is not None and masks_path is not None:
        raise cli.UsageError("give --mask or --masks, not both")
    if masks_path is not None:
        cli.require(bool(masks_path), "masks", masks_path, "is empty; give a mask file or folder")
        return masks_path
    if mask is None:
        return default
    kind = mask.partition(":")[0]
    cli.require(mask == "auto" or (kind in MASK_KINDS[1:] and ":" in mask), "mask", mask,
                "is not a mask spec: use auto, box:x0,y0,x1,y1, ellipse:cx,cy,rx,ry or part:NAME "
                "(mask files go to --masks)")
    return mask


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


def settings_of(flags, **override) -> edit_run.EditSettings:
    """The flags' EditSettings (validated by EditSettings itself), with `override` applied."""
    values = dict(method=flags.method, mask="auto", target=flags.target, distance=flags.distance,
                  s_scale=flags.s_scale, truncation_psi=1.0 if flags.truncation_psi is None else flags.truncation_psi,
                  batch_size=flags.batch_size, steps_per_layer=flags.steps_per_layer,
                  learning_rate=flags.learning_rate, lambda_attr=flags.lambda_attr, lambda_norm=flags.lambda_norm,
                  lambda_init=flags.lambda_init, objective=flags.objective, lambda_inside=flags.lambda_inside,
                  loop=getattr(flags, "loop", "auto"))   # bin/evaluate.py has no --loop
    return edit_run.EditSettings(**{**values, **override})


@dataclasses.dataclass
class Model:
    """The generator and directions an edit run uses. judge: images -> [B] attribute score (demo) or None;
    judges: the toyfaces Judges replicated on the local mesh (demo) or None; source: the run's identity fields."""

    canonical: dict
    cfg: object
    params: dict
    dirs: dict
    judge: object
    judges: object
    source: dict
    default_mask: str
    generator_id: str


def resolve_model(flags, is_demo: bool, log) -> Model:
    """The demo (builtin:toyfaces, judge-labelled directions of --attribute, segmenter masks) or --weights +
    --direction (refused when the direction was fitted for another generator). The cfg computes with the flags'
    numerics (--precision, --conv3x3, ...; `cli.numerics_of`), which a non-default value adds to `source`; the
    demo's directions are fitted at the default fp32 either way."""
    numerics = cli.numerics_of(flags)
    if is_demo:
        attribute = flags.attribute or demo.DEMO_ATTRIBUTE
        canonical, cfg, params, dirs, part_spec, judges = demo.demo_setup(attribute, log)
        judges = judges.placed(functools.partial(runs.replicate, mesh=runs.local_mesh()))
        return Model(canonical, cli.with_numerics(cfg, numerics), params, dirs,
                     functools.partial(judges.score, attribute), judges,
                     {"weights": builtin.BUILTIN_TOYFACES, "direction": f"demo:{attribute}",
                      **cli.numerics_settings(numerics)}, part_spec, params_lib.fingerprint(canonical))
    canonical, cfg = cli.load_weights(flags.weights, numerics)
    generator_id = params_lib.fingerprint(canonical)
    check_direction_generator(flags.direction, generator_id)
    dirs = directions.load_directions(flags.direction)
    judge, judges = judge_for(generator_id, dirs, log)
    return Model(canonical, cfg, params_lib.to_jax_params(canonical, cfg), dirs, judge, judges,
                 {"weights": generator_id, "direction": file_digest(flags.direction),
                  **cli.numerics_settings(numerics)}, "auto", generator_id)


def judge_for(generator_id: str, dirs: dict, log) -> tuple:
    """-> (judge: images [B, R, R, 3] -> [B] logit of the directions' attribute, Judges replicated on the local
    mesh), when the generator is builtin:toyfaces and the attribute one the judges know (engines.toyfaces.
    judged_attribute); else (None, None), with a note when only the attribute's name is unknown."""
    name = dirs["s"].attribute if "s" in dirs else None
    attribute = toyfaces.judged_attribute(generator_id, name)
    if attribute is None:
        if generator_id == toyfaces.generator_id():
            log(f"note: no judge columns: the direction's attribute {name!r} is not a toyfaces attribute "
                f"({', '.join(world.ATTRIBUTES)})")
        return None, None
    judges = judges_lib.load_judges().placed(functools.partial(runs.replicate, mesh=runs.local_mesh()))
    log(f"judge: the toyfaces classifier scores '{attribute}' on every input and edit (independent of the "
        "S-space SVM)")
    return functools.partial(judges.score, attribute), judges


def check_direction_generator(path, generator_id: str) -> None:
    """ValueError when the direction file at `path` records a generator id other than `generator_id` (files
    without one are accepted). Read from the header alone, before the arrays."""
    meta = directions.load_directions_meta(path)
    if meta.get("generator_id") not in (None, generator_id):
        raise ValueError(f"{path} was fitted for another generator (id {meta['generator_id']}, --weights has "
                         f"{generator_id})")


def load_condition_on(paths, space: str, dim: int) -> list:
    """--condition_on files -> their `space` ('z' for latents, 'w' for projected codes) Directions, each of
    dimension `dim` (ValueError naming the file otherwise)."""
    out = []
    for path in paths:
        dirs = directions.load_directions(path)
        if space not in dirs:
            raise ValueError(f"--condition_on {path} has no '{space}' direction (has: {', '.join(sorted(dirs))})")
        out.append(dirs[space])
    for path, d in zip(paths, out):
        if d.dim != dim:
            raise ValueError(f"--condition_on {path}: {space.upper()} direction of dimension {d.dim}, the generator "
                             f"has {dim}")
    return out


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
    edit_fn, lam_settings = lambda_model_edit(flags, model, st)
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


def check_lambda_flags(flags) -> None:
    """--lambda_model / --refine_steps (before anything is loaded): a file, method intervention, K >= 0."""
    path, k = getattr(flags, "lambda_model", None), getattr(flags, "refine_steps", 0)
    cli.require(cli.is_int(k) and k >= 0, "refine_steps", k, "must be an integer >= 0")
    if path is None:
        cli.require(k == 0, "refine_steps", k, "needs --lambda_model (it refines the predicted Λ)")
        return
    cli.require(flags.method == "intervention", "method", flags.method, "cannot use --lambda_model (it predicts "
                "the intervention's Λ); use --method=intervention")
    cli.check_input_files(lambda_model=path)


def lambda_model_edit(flags, model: Model, st) -> tuple:
    """--lambda_model FILE [--refine_steps=K] -> (edit_fn for edit_run / project_edit, run settings to add), or
    (None, {}) without it. The model must be for this generator, direction and objective (else one-line error)."""
    check_lambda_flags(flags)
    path = getattr(flags, "lambda_model", None)
    if path is None:
        return None, {}
    from si_jax.editing import lambda_model
    from si_jax.engines import lambda_data

    config = st.intervention_config
    lm = lambda_model.load_model(path, expect=lambda_model.identity(model.generator_id, model.dirs, config))
    if lm.meta.get("mask_source") != st.mask:
        _log(f"note: {path} was trained with masks {lm.meta.get('mask_source')!r}, this run uses {st.mask!r}")
    return (lambda_data.predicted_edit(model.params, model.cfg, lm, config, flags.refine_steps),
            {"lambda_model": file_digest(path), "refine_steps": int(flags.refine_steps)})


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
