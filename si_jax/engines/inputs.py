"""Settings -> the inputs every edit engine shares: bin/edit.py on latents (engines.edit_cli) and on projected codes
(engines.project_edit), bin/evaluate.py (engines.evaluate_cli) and bin/fit_lambda.py (engines.fit_lambda_run): the
mask setting, the model (generator, directions, judge), the --condition_on directions, the
--lambda_model edit, and the digests that name input files in a run's settings."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib

from si_jax import world
from si_jax.editing import directions, masks
from si_jax.attributes import toyfaces
from si_jax.engines import checks, demo, errors, runs, weights
from si_jax.stylegan2 import builtin, conv_library
from si_jax.stylegan2 import params as params_lib
from si_jax.world import judges as judges_lib


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


def mask_setting(mask, masks_path, default: str) -> str:
    """--mask (a spec) / --masks (a file or folder) -> the mask setting; `default` when neither is given.

    A --mask must be auto, box:..., ellipse:... or part:NAME (a typo is named as such, not looked up as a file);
    an empty value is refused rather than read as the default."""
    if mask is not None and masks_path is not None:
        raise errors.UsageError("give --mask or --masks, not both")
    if masks_path is not None:
        checks.require(bool(masks_path), "masks", masks_path, "is empty; give a mask file or folder")
        return masks_path
    if mask is None:
        return default
    checks.require(masks.kind_of(mask) != "file", "mask", mask,
                   "is not a mask spec: use auto, box:x0,y0,x1,y1, ellipse:cx,cy,rx,ry or part:NAME "
                   "(mask files go to --masks)")
    return mask


def mask_source(spec: str, num_images: int, res: int, judges=None, mesh=None) -> masks.Masks:
    """The mask setting -> the mask function of every edit engine (`editing.masks.resolve`), with the toyfaces
    segmenter behind part:NAME (attributes.toyfaces.part_mask_fn): `judges`, or the judges loaded here (replicated
    on `mesh` when one is given, else copied to the images at each call)."""
    def part_masks(spec):
        part = toyfaces.parse_part_spec(spec)
        segmenter = judges or judges_lib.load_judges().with_options_for(conv_library.batch_options)
        if judges is None and mesh is not None:
            segmenter = segmenter.placed(functools.partial(runs.replicate, mesh=mesh))
        return toyfaces.part_mask_fn(segmenter, part)

    return masks.resolve(spec, num_images, res, part_masks)


@dataclasses.dataclass
class Model:
    """The generator and directions an edit run uses. judge: images -> [B] attribute score (demo) or None;
    judges: the toyfaces Judges replicated on the local mesh (demo) or None; judged: the attribute they judge (None
    without judges); source: the run's identity fields."""

    canonical: dict
    cfg: object
    params: dict
    dirs: dict
    judge: object
    judges: object
    source: dict
    default_mask: str
    generator_id: str
    judged: str | None = None


def load_generator(job, is_demo: bool) -> tuple:
    """-> (canonical weights, cfg computing with the job's numerics) of --weights, or of builtin:toyfaces for the
    demo: cheap next to `resolve_model` (no directions), so that engines check other inputs against the generator
    first and hand it on (`resolve_model(..., generator=)`). `job`: settings with .weights and .numerics
    (engines.settings), or absl flags (bin/fit_lambda.py; numerics then from `weights.numerics_of`)."""
    numerics = getattr(job, "numerics", None) or weights.numerics_of(job)
    return weights.load_weights(builtin.BUILTIN_TOYFACES if is_demo else job.weights, numerics)


def default_mask(job, is_demo: bool) -> str:
    """The mask when neither --mask nor --masks is given: the demo attribute's segmenter part (ValueError for an
    attribute the toyfaces world lacks), else 'auto'."""
    return demo.mask_spec(job.attribute or demo.DEMO_ATTRIBUTE) if is_demo else "auto"


def resolve_model(job, is_demo: bool, log, generator: tuple | None = None) -> Model:
    """The one model resolver of every engine (edit, edit --codes, evaluate, fit_lambda): the demo (builtin:toyfaces,
    judge-labelled directions of --attribute, segmenter masks) or --weights + --direction (refused when the
    direction was fitted for another generator). `job` as `load_generator`; `generator`: its result when the
    engine loaded it already (else loaded here). The cfg computes with the job's numerics (--precision, --conv3x3,
    ...), which a non-default value adds to `source`; the demo's directions are fitted at the default fp32 either
    way (demo.demo_setup)."""
    canonical, cfg = generator if generator is not None else load_generator(job, is_demo)
    numerics_source = weights.numerics_settings(cfg.numerics)
    if is_demo:
        attribute = job.attribute or demo.DEMO_ATTRIBUTE
        canonical, _, params, dirs, part_spec, judges = demo.demo_setup(attribute, log)
        judges = judges.placed(functools.partial(runs.replicate, mesh=runs.local_mesh()))
        return Model(canonical, cfg, params, dirs, functools.partial(judges.score, attribute), judges,
                     {"weights": builtin.BUILTIN_TOYFACES, "direction": f"demo:{attribute}", **numerics_source},
                     part_spec, params_lib.fingerprint(canonical), attribute)
    generator_id = params_lib.fingerprint(canonical)
    check_direction_generator(job.direction, generator_id)
    dirs = directions.load_directions(job.direction)
    judge, judges = judge_for(generator_id, dirs, log)
    return Model(canonical, cfg, params_lib.to_jax_params(canonical, cfg), dirs, judge, judges,
                 {"weights": generator_id, "direction": file_digest(job.direction), **numerics_source}, "auto",
                 generator_id, dirs["s"].attribute if judges is not None else None)


def judge_for(generator_id: str, dirs: dict, log) -> tuple:
    """-> (judge: images [B, R, R, 3] -> [B] logit of the directions' attribute, Judges replicated on the local
    mesh), when the generator is builtin:toyfaces and the attribute one the judges know (attributes.toyfaces.
    judged_attribute); else (None, None), with a note when only the attribute's name is unknown."""
    name = dirs["s"].attribute if "s" in dirs else None
    attribute = toyfaces.judged_attribute(generator_id, name)
    if attribute is None:
        if generator_id == toyfaces.generator_id():
            log(f"note: no judge columns: the direction's attribute {name!r} is not a toyfaces attribute "
                f"({', '.join(world.ATTRIBUTES)})")
        return None, None
    judges = judges_lib.load_judges().placed(functools.partial(runs.replicate, mesh=runs.local_mesh()))
    judges = judges.with_options_for(conv_library.batch_options)   # the XLA:CPU conv library measured per batch
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


def lambda_model_edit(job, model: Model, st, log=print) -> tuple:
    """--lambda_model FILE [--refine_steps=K] of an EditJob (engines.settings checked the pair) -> (edit_fn for
    edit_run / project_edit, run settings to add), or (None, {}) without it. The model must be for this generator,
    direction and objective (else one-line error); `log` gets a note when it was trained with other masks."""
    path = job.lambda_model
    if path is None:
        return None, {}
    from si_jax.editing import lambda_model
    from si_jax.editing import lambda_data

    config = st.intervention
    lm = lambda_model.load_model(path, expect=lambda_model.identity(model.generator_id, model.dirs, config))
    if lm.meta.get("mask_source") != st.mask:
        log(f"note: {path} was trained with masks {lm.meta.get('mask_source')!r}, this run uses {st.mask!r}")
    return (lambda_data.predicted_edit(model.params, model.cfg, lm, config, job.refine_steps),
            {"lambda_model": file_digest(path), "refine_steps": int(job.refine_steps)})


def check_directions(dirs: dict, cfg, name: str) -> None:
    """The s/z/w directions exist and have this generator's dimensions (before anything is written)."""
    want = {"s": cfg.style_dim, "z": cfg.z_dim, "w": cfg.w_dim}
    for space, dim in want.items():
        if space not in dirs:
            raise ValueError(f"{name} has no '{space}' direction (has: {', '.join(sorted(dirs))})")
        if dirs[space].dim != dim:
            raise ValueError(f"{name}: the {space}-space direction has dimension {dirs[space].dim}, this generator's "
                             f"{space} space has {dim}: it was fitted for another generator")

