"""The engine of bin/evaluate.py (settings -> validated inputs -> Table 2 and the figures on disk), so that the binary
stays a thin shell.

    table = run(job, out)                    # job: engines.settings.EvalJob; out: --output_dir (None: the demo's)
    # = run_evaluation(resolve_inputs(job, out), job): everything checked before anything is computed or written

With --codes=DIR (a bin/project.py folder, --space as bin/edit.py) the projected images are evaluated instead of
samples: methods of pipeline.CODE_METHODS (the latent edit is the W-space one; 'interfacegan' conditions on the
--condition_on files' W normals), batches from engines.project_edit.code_preparer. Table 2 then compares every
edit with the ORIGINAL input image (+ a column against the reconstruction, which the intervention's L_pix and the
figures use) and adds the row 'reconstruction' (the codes unedited: the floor of every outside error).

Outputs in --output_dir: table2.md, table2.json, fig5_interpolation.png/.json, fig6_layers.png, fig6_mse.png/.json,
fig2_channels.png, fig2_iou.json (see bin/evaluate.py), and index.html + per_image.csv: one row per method and
image (evaluation.report; pictures of the first --fig_images images as inline thumbnails).

Table 2's columns are evaluators chosen by name (--evaluators, evaluation.evaluators; default: every one that
applies, the table as it always was). Their results are also APPENDED to evaluations.jsonl in --output_dir, one
line per row and evaluator (evaluators.records: the attribute, the settings' digest, the statistics): the one file
that is not written atomically, like bin/train.py's metrics.jsonl (storage.append_lines, after the other outputs
are in place), so that evaluations written into the same folder with --overwrite accumulate.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import pathlib
import time

import numpy as np

from si_jax import storage
from si_jax.editing import intervention
from si_jax.editing import masks as masks_lib
from si_jax.engines import checks, edit_run, errors, evaluate_outputs, hosts
from si_jax.evaluation import comparison, evaluators, figure_data, judged, report
from si_jax.stylegan2 import conv_library, programs
from si_jax.stylegan2.config import G2Config

DEMO_STEPS_PER_LAYER = 10  # the demo stays around a minute on 2 CPU cores; real models: InterventionConfig
DEFAULT_METHODS = ("z", "w", "interfacegan", "s", "intervention")   # --methods (with --codes: without z)
DEFAULT_NUM_SAMPLES, DEFAULT_SEED, DEFAULT_TRUNCATION_PSI = 6, 0, 1.0   # samples only (not with --codes)
DEFAULT_COEFFS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
JSONL_FILE = "evaluations.jsonl"
PAGE_EVALUATORS = ("outside_mse", "ssim", "s_score")   # per_image.csv / index.html show their values
OUTPUT_FILES = (JSONL_FILE, "table2.md", "table2.json", "fig5_interpolation.png", "fig5_interpolation.json", "fig6_layers.png",
                "fig6_mse.png", "fig6_mse.json", "fig2_channels.png", "fig2_iou.json", "index.html", "per_image.csv")


@dataclasses.dataclass
class EvalInputs:
    """Everything bin/evaluate.py resolved and validated before computing (nothing is written before this)."""

    params: dict
    cfg: G2Config
    dirs: dict
    z: np.ndarray                 # [N, z_dim]; None with codes
    masks: object                 # [1 or N, R, R] float32 or fn(img0, img_z, img_s) -> [B, R, R]
    mask_desc: str
    methods: tuple
    skipped: dict
    condition_on: list
    config: intervention.InterventionConfig
    coeffs: tuple
    fig_layer: int
    out_dir: pathlib.Path
    is_demo: bool = False
    judge: object = None          # evaluation.judged.JudgeMetrics (the demo: the toyfaces judges' columns)
    codes: object = None          # engines.project_edit.CodeInputs (--codes) or None
    predicted: object = None      # --lambda_model: fn(EditBatch, mask) -> EditOutput (row 'predicted') or None
    evaluators: tuple | None = None   # --evaluators (names) or None: every one that applies

    @property
    def num_images(self) -> int:
        return len(self.codes.styles) if self.codes is not None else len(self.z)


def parse_methods(text: str, codes: bool = False) -> tuple:
    """--methods 'z,w,s' -> ('z', 'w', 's'), checked (comparison.check_methods; interfacegan is sorted out later;
    with `codes` only methods that apply to projected codes)."""
    methods = tuple(m.strip() for m in str(text).split(",") if m.strip())
    comparison.check_methods(methods, condition_on=(True,))
    if codes:
        from si_jax.engines import project_edit

        project_edit.check_code_methods(methods, "methods")
    return methods


def parse_coeffs(text: str) -> tuple:
    """--coeffs '0,0.5,1' -> (0.0, 0.5, 1.0): at least one, all finite."""
    try:
        coeffs = tuple(float(c) for c in str(text).split(",") if c.strip())
    except ValueError:
        raise ValueError(f"--coeffs must be comma-separated numbers, got {text!r}") from None
    if not coeffs or not all(math.isfinite(c) for c in coeffs):
        raise ValueError(f"--coeffs must be comma-separated finite numbers, got {text!r}")
    return coeffs


def check_output_dir(path, overwrite: bool) -> pathlib.Path:
    """--output_dir: a writable folder (or not there yet), empty unless `overwrite`, whose output names are not
    folders. -> the path (nothing is created)."""
    p = pathlib.Path(path)
    if p.exists() and not p.is_dir():
        raise FileExistsError(f"--output_dir {p} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise FileExistsError(f"--output_dir {p} is not empty; pass --overwrite to write into it")
    checks.check_output_dir(p)
    for name in OUTPUT_FILES:
        if (p / name).is_dir():
            raise FileExistsError(f"{p / name} is a folder; remove it or choose another --output_dir")
    return p


def sample_settings(job) -> tuple:
    """-> (num_samples, seed, truncation_psi) of an EvalJob with their defaults. With --codes none of them applies
    (every projected image is evaluated, codes have no z): given, they are a UsageError, as --space without
    --codes (a --space that is no space too)."""
    given = [name for name in ("num_samples", "seed", "truncation_psi") if getattr(job, name, None) is not None]
    if getattr(job, "codes", None):
        from si_jax.engines import project_edit

        project_edit.code_space(job.space)
        if given:
            raise errors.UsageError(f"--{given[0]} does not apply to --codes (every projected image is evaluated; "
                                    "codes have no z)")
    elif getattr(job, "space", None):
        raise errors.UsageError("--space picks the code space of --codes; give --codes=DIR (from bin/project.py)")
    num = DEFAULT_NUM_SAMPLES if job.num_samples is None else job.num_samples
    seed = DEFAULT_SEED if job.seed is None else job.seed
    psi = DEFAULT_TRUNCATION_PSI if job.truncation_psi is None else job.truncation_psi
    checks.require(num >= 1, "num_samples", num, "must be >= 1")
    checks.require(seed >= 0, "seed", seed, "must be >= 0")
    return num, seed, psi


def resolve_inputs(job, out=None, log=print) -> EvalInputs:
    """An EvalJob (engines.settings: its flags already checked) and --output_dir (None: the demo's si_jax_eval_demo)
    -> validated EvalInputs. Raises ValueError / FileNotFoundError / FileExistsError naming the problem."""
    from si_jax.engines import demo, inputs, project_edit, samples
    from si_jax.stylegan2 import params as params_lib
    from si_jax.world import judges as judges_lib

    is_demo = job.is_demo
    codes_path = job.codes
    methods = job.method_list
    space = project_edit.code_space(job.space) if codes_path else None
    num_samples, seed, psi = job.sample_settings
    coeffs = job.coeff_list
    config = job.intervention
    mask_flag = inputs.mask_setting(job.mask, job.masks, default=None)
    checks.check_input_files(direction=job.direction, condition_on=list(job.condition_on),
                             lambda_model=job.lambda_model)
    out_dir = out or ("si_jax_eval_demo" if is_demo else None)
    if not out_dir:
        raise ValueError("--output_dir is required")
    out_dir = check_output_dir(out_dir, job.overwrite)
    checks.check_not_inputs([out_dir / name for name in OUTPUT_FILES],
                            [job.weights, job.direction, job.masks, codes_path, *job.condition_on])
    attribute = job.attribute or demo.DEMO_ATTRIBUTE
    # validate the cheap things against the generator's layout before the model fits or loads its directions
    generator = inputs.load_generator(job, is_demo)
    canonical, cfg = generator
    mask_spec = mask_flag or inputs.default_mask(job, is_demo)
    gid = params_lib.fingerprint(canonical)
    if not is_demo:
        inputs.check_direction_generator(job.direction, gid)
    params = params_lib.to_jax_params(canonical, cfg)
    codes = project_edit.load_code_inputs(codes_path, space, params, cfg, gid) if codes_path else None
    n, res = (len(codes.styles) if codes is not None else num_samples), cfg.img_resolution
    judges = judges_lib.load_judges().with_options_for(conv_library.batch_options) \
        if masks_lib.kind_of(mask_spec) == "part" else None
    resolved = inputs.mask_source(mask_spec, n, res, judges)
    masks = resolved.from_images or resolved.array   # compare_methods': a function of the images, or the masks
    fig_layer = figure_data.resolve_layer(cfg, job.fig_layer)
    condition_on = (inputs.load_condition_on(job.condition_on, "w", cfg.w_dim) if codes is not None else
                    inputs.load_condition_on(job.condition_on, "z", cfg.z_dim))
    skipped = {}
    if "interfacegan" in methods and not condition_on:
        skipped["interfacegan"] = "needs --condition_on direction files of other attributes (none given)"
        methods = tuple(m for m in methods if m != "interfacegan")
        if not methods:
            raise ValueError("nothing to compare: 'interfacegan' needs --condition_on and no other method was given")
    if is_demo and codes is None:   # the banner is about the generated demo samples, not the user's projected images
        log(demo.banner(attribute).replace("bin/edit.py", "bin/evaluate.py"))
    model = inputs.resolve_model(job, is_demo, log, generator)
    dirs = model.dirs
    judge = None if model.judges is None else judged.JudgeMetrics(model.judges, model.judged)
    inputs.check_directions(dirs, cfg, job.direction or "demo")
    chosen = job.evaluator_list
    if chosen is not None:
        evaluators.check_needs(chosen, evaluators.Tools(s_direction=dirs.get("s"), judge=judge))
    predicted = None
    if job.lambda_model:
        from si_jax.editing import lambda_data, lambda_model

        lm = lambda_model.load_model(job.lambda_model, expect=lambda_model.identity(gid, dirs, config))
        predicted = lambda_data.predicted_edit(params, cfg, lm, config)
    z = samples.latents(seed, range(n), cfg.z_dim) if codes is None else None
    return EvalInputs(params, cfg, dirs, z, masks, mask_spec, methods, skipped, condition_on, config, coeffs,
                      fig_layer, out_dir, is_demo, judge, codes, predicted, chosen)


def run_evaluation(inp: EvalInputs, job, log=print) -> dict:
    """Compute Table 2 and the figures, then write them into inp.out_dir (created only now). -> the table dict."""
    for m, why in inp.skipped.items():
        log(f"note: skipping method '{m}': {why}")
    cfg, params, n = inp.cfg, inp.params, inp.num_images
    _, seed, psi = job.sample_settings
    if inp.codes is None:
        what, images, prepare, extra_methods = f"{n} samples (seed {seed})", inp.z, None, None
    else:
        from si_jax import projection
        from si_jax.editing import pipeline
        from si_jax.engines import project_edit

        what = (f"{n} projected images ({projection.SPACE_NAMES[inp.codes.space]} codes from {job.codes}; the "
                "latent edit is the W-space one, outside errors against the input images)")
        images = n
        prepare = project_edit.code_preparer(params, cfg, inp.codes, inp.dirs, target=job.target,
                                             distance=job.distance)
        synth = programs.synth_program(cfg)
        extra_methods = {"reconstruction": lambda batch, mask: pipeline.EditOutput(
            batch.styles, np.asarray(synth(params, batch.styles)))}
    if inp.predicted is not None:
        extra_methods = {**(extra_methods or {}), "predicted": inp.predicted}
    log(f"comparing {', '.join(inp.methods)} on {what}: attribute '{inp.dirs['s'].attribute}', target "
        f"{job.target}, mask {inp.mask_desc}, {inp.config.steps_per_layer} steps/layer")
    t0 = time.perf_counter()
    keep = min(job.fig_images, n)
    log(f"  (each method's programs compile on the first batch; {hosts.compile_note()})")
    with hosts.heartbeat("comparing the methods (a line per method and batch)", log=log):
        results = comparison.compare_methods(
            params, cfg, images, inp.dirs, inp.masks, inp.methods, config=inp.config, condition_on=inp.condition_on,
            target=job.target, distance=job.distance, truncation_psi=psi,
            batch_size=errors.note_batch_size(min(job.batch_size, n)), keep=keep, extra_methods=extra_methods,
            judge=inp.judge, prepare=prepare, log=log, evaluators=None if inp.evaluators is None else tuple(
                inp.evaluators) + tuple(e for e in PAGE_EVALUATORS if e not in inp.evaluators))
    hint = errors.likely_cause(truncation_psi=psi, distance=job.distance, learning_rate=inp.config.learning_rate)
    for m, values in results["methods"].items():   # PSNR is +inf where nothing outside changed: not an error
        for key, v in values.items():
            errors.finite_or_error(f"{comparison.METHOD_NAMES.get(m, m)}: {key}",
                                   np.where(np.isposinf(v), 0.0, v) if key == "psnr_outside" else v, hint)
    markdown, table = comparison.table2(results, evaluators=inp.evaluators)
    coverage = float(np.mean(results["masks"]))
    sign = results["target_sign"]
    targets = {"add": int(np.sum(sign > 0)), "remove": int(np.sum(sign < 0))}
    log(f"targets: add '{inp.dirs['s'].attribute}' to {targets['add']} images, remove it from {targets['remove']} "
        "(per image: index.html, per_image.csv)")
    table.update(skipped=inp.skipped, demo=inp.is_demo, settings=_settings(inp, job), mask_coverage=coverage,
                 attribute=inp.dirs["s"].attribute, targets=targets)
    first = next(iter(results["methods"].values()))   # every method starts from the same inputs
    if "judge_before" in first:
        table["judge_svm_disagree_rate"] = float(np.mean((first["judge_before"] > 0) != (first["s_score_before"] > 0)))
        log(f"the judge and the S-space SVM disagree about {table['judge_svm_disagree_rate']:.0%} of the inputs "
            "(flag judge_disagrees in index.html)")
    if coverage > 0.5:
        log(f"note: the masks cover {100 * coverage:.0f}% of the image on average: the outside metrics see few "
            "pixels (SSIM ignores a 5-pixel border, and is 1 when nothing outside is left)")
    kept = results["kept"]
    pngs, extra = {}, {}
    if kept["lam"] is not None:
        evaluate_outputs.fig5_and_fig6(inp.params, inp.cfg, kept, inp.coeffs, pngs, extra, log,
                      latent="W edit" if inp.codes is not None else "Z edit")
    else:
        log("note: Figs. 5 and 6 need the 'intervention' method; not drawn")
    evaluate_outputs.fig2(inp, job, kept, pngs, extra, log)
    table["seconds_total"] = time.perf_counter() - t0
    page = evaluate_outputs.page_rows(results, inp.codes.names if inp.codes is not None else None)
    texts = {"index.html": report.render_html(
        f"{inp.dirs['s'].attribute}: Table 2 per image ({n} images x {len(inp.methods)} methods)", page,
        evaluate_outputs.PAGE_COLUMNS, summary={"attribute": table["attribute"], "targets": targets, "num_images": n,
                               "methods": ", ".join(inp.methods), "mask": inp.mask_desc},
        notes=["picture (first --fig_images images): the edit's input h(s) | the edit | mask (darkened outside)",
               "one row per method and image; see table2.md for the means"]),
        "per_image.csv": report.render_csv(page, evaluate_outputs.PAGE_COLUMNS)}
    evaluate_outputs.write_outputs(inp.out_dir, markdown, table, pngs, extra, log, texts)
    lines = [storage.json_line(r) for r in evaluators.records(
        table, attribute=table["attribute"], num_images=n,
        settings_digest=hashlib.sha256(storage.json_bytes(table["settings"])).hexdigest()[:16])]
    storage.append_lines(inp.out_dir / JSONL_FILE, lines)
    log(f"appended {len(lines)} lines (a row and evaluator each) to {inp.out_dir / JSONL_FILE}")
    if inp.is_demo and inp.codes is None:
        log("(that was the demo: the built-in toyfaces generator, its classifier as the judge and its segmenter's "
            "masks; pass --weights and --direction to evaluate your own model)")
    return table


def _settings(inp: EvalInputs, job) -> dict:
    from si_jax.engines import demo

    _, seed, psi = job.sample_settings
    codes = {} if inp.codes is None else {"codes": str(job.codes), "codes_space": inp.codes.space}
    return {"weights": "builtin:toyfaces" if inp.is_demo else job.weights,
            "direction": job.direction or f"demo:{job.attribute or demo.DEMO_ATTRIBUTE}",
            "num_samples": inp.num_images, "seed": None if codes else seed, **codes, "mask": inp.mask_desc,
            "methods": list(inp.methods),
            "condition_on": list(job.condition_on), "target": job.target, "distance": job.distance,
            "truncation_psi": None if codes else psi, "steps_per_layer": inp.config.steps_per_layer,
            "learning_rate": inp.config.learning_rate, "objective": edit_run.objective_of(inp.config),
            "pixel_loss": inp.config.pixel_loss, "lambda_inside": inp.config.lambda_inside,
            "lambda_attr": inp.config.lambda_attr, "lambda_norm": inp.config.lambda_norm,
            "lambda_init": inp.config.lambda_init,
            "batch_size": job.batch_size, "coeffs": list(inp.coeffs), "fig_layer": inp.fig_layer,
            "top_frac": job.top_frac, "evaluators": list(inp.evaluators or evaluators.DEFAULT)}


def run(job, out=None, log=print) -> dict:
    """bin/evaluate.py: an EvalJob (engines.settings) and --output_dir (None: the demo's) -> validate every input,
    then compute and write. -> the table dict."""
    return run_evaluation(resolve_inputs(job, out, log), job, log)
