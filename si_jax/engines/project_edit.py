"""Editing projected codes (`bin/edit.py --codes=DIR`): the images of a bin/project.py folder, every method.

Projected codes have no z. Per shard the batch is `pipeline.prepare_from_codes` of the chosen space's styles
(`--space`, default wplus): the latent edit the intervention localises is the W-space edit Δs_w at the codes'
reference w, so methods are intervention, w, s and interfacegan (W-space conditional); 'z' is refused. The
intervention measures L_pix against the RECONSTRUCTION h(s) (what the codes reproduce); the summary also reports
every method's outside-mask error against the ORIGINAL input image and the judge's verdict on input and edit.

Run folder (a RunDir, resumable, byte-identical on resume like engines.edit_run):
    shards/shard_XXXXX.npz  `index`, `styles_in` / `styles_out` / `lam` [n, S], `mse_outside` (edit vs
                            reconstruction), `mse_outside_input` (edit vs input), `mse_recon` (reconstruction vs
                            input, whole image), `score_before` / `score_after` (S-space SVM), and with a judge
                            `judge_input` / `judge_before` (reconstruction) / `judge_after` [n]
    images/XXXXXX.png       input | reconstruction | edit | mask
    grid.png, summary.json, index.html, per_image.csv   written together at the end (grid: rows of inputs,
                            reconstructions, edits; summary keys as engines.edit_run's, plus the errors against
                            the input; the judge's flip rate and disagreement are about the INPUT image)

`bin/evaluate.py --codes` (engines.evaluate_cli) shares the checks (`code_space`, `check_code_methods`),
`load_code_inputs` and, through `code_preparer`, `code_batch`.
"""
from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from si_jax import metrics, projection, storage
from si_jax.editing import batches, pipeline
from si_jax.engines import checks, edit_run, errors, inputs, project_run, runs
from si_jax.evaluation import comparison, pictures, report
from si_jax.stylegan2.style_space import StyleSpace

DEFAULT_SPACE = "wplus"
GRID_IMAGES, GRID_COLUMNS = 8, 8


@dataclasses.dataclass
class CodeInputs:
    """What an edit of projected codes starts from. names [N]; target [N, R, R, 3] (the user's images, model
    resolution); styles [N, S] (flat, of `space`); w_ref [N, w_dim]; manifest: projection.json."""

    names: np.ndarray
    target: np.ndarray
    styles: np.ndarray
    w_ref: np.ndarray
    space: str
    manifest: dict


def load_code_inputs(path, space: str, params, cfg, generator_id: str) -> CodeInputs:
    """A finished bin/project.py folder -> CodeInputs (ValueError naming the folder when it is unfinished, of
    another generator, or lacks `space`)."""
    data = project_run.load_codes(path, space, generator_id)
    if data["styles"].shape[1:] != (cfg.style_dim,):
        raise ValueError(f"--codes {path}: styles of dimension {data['styles'].shape[1:]}, the generator has "
                         f"{cfg.style_dim}")
    if data["code"].shape[1:] != projection.code_shape(cfg, space):
        raise ValueError(f"--codes {path}: code_{space} of shape {data['code'].shape[1:]}, the generator's is "
                         f"{projection.code_shape(cfg, space)}; project with the same --weights")
    if data["target"].shape[1] != cfg.img_resolution:
        raise ValueError(f"--codes {path}: its images are {data['target'].shape[1]} px, the generator makes "
                         f"{cfg.img_resolution} px; project them with the same --weights")
    return CodeInputs(data["names"], data["target"], data["styles"],
                      projection.reference_w(params, cfg, data["styles"]), space, data["manifest"])


def code_space(space) -> str:
    """--space (None: DEFAULT_SPACE) -> the code space, UsageError naming a bad one."""
    space = space or DEFAULT_SPACE
    checks.require(space in projection.SPACES, "space", space, f"must be one of {', '.join(projection.SPACES)}")
    return space


def check_code_methods(methods, flag: str = "method") -> None:
    """UsageError unless every method applies to codes (pipeline.CODE_METHODS: not 'z', codes have no z)."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    checks.require(all(m in pipeline.CODE_METHODS for m in methods), flag, ",".join(methods),
                   "needs z latents, which projected codes do not have; their latent edit is the W-space one: use "
                   f"{'one' if flag == 'method' else 'some'} of {', '.join(pipeline.CODE_METHODS)}")


def code_batch(params, cfg, styles_flat, w_ref, dirs, *, target="flip", distance=3.0,
               s_scale=None) -> pipeline.EditBatch:
    """styles_flat [B, S], w_ref [B, w_dim] -> the EditBatch of every method (pipeline.prepare_from_codes)."""
    return pipeline.prepare_from_codes(params, cfg, styles_flat, w_ref, dirs, target=target, distance=distance,
                                       s_scale=s_scale)


def code_preparer(params, cfg, codes: CodeInputs, dirs, *, target="flip", distance=3.0, s_scale=None):
    """-> prepare(positions [B] int) -> (code_batch of those codes, their original images [B, R, R, 3]): the
    `prepare` hook of evaluation.comparison.compare_methods (outside metrics against the user's images)."""
    def prepare(positions):
        pos = np.asarray(positions)
        return (code_batch(params, cfg, codes.styles[pos], codes.w_ref[pos], dirs, target=target, distance=distance,
                           s_scale=s_scale), codes.target[pos])

    return prepare


def mask_function(spec: str, num_images: int, res: int, judges=None):
    """The mask setting of projected codes (img0: the reconstruction, img_z: the W-space edit, img_s: the S-only
    edit; part:NAME: the segmenter's part in the reconstruction or the W edit): `inputs.mask_source`, the one mask
    resolver (bin/fit_lambda.py's masks come through here too)."""
    return inputs.mask_source(spec, num_images, res, judges)


def edit_code_shard(params, cfg, dirs, styles, w_ref, target_imgs, positions, mask_fn, st, mesh,
                    condition_on=(), judge=None, on_compiled=None, edit_fn=None, loop: str = "auto") -> dict:
    """Edit one padded batch of codes. styles [B, S], w_ref [B, w_dim], target_imgs [B, R, R, 3]. on_compiled,
    edit_fn, loop: as engines.edit_run.edit_shard's.

    params must be replicated on `mesh` (`runs.replicate`); the codes are sharded over it before anything is
    synthesised (as engines.edit_run.edit_shard)."""
    styles, w_ref, target_imgs = runs.shard_batch(tuple(np.asarray(a, np.float32) for a in (styles, w_ref,
                                                                                               target_imgs)), mesh)
    batch = code_batch(params, cfg, styles, w_ref, dirs, target=st.target, distance=st.distance, s_scale=st.s_scale)
    img0, img_z, img_s = edit_run.edit_inputs(params, cfg, batch)
    mask = runs.shard_batch(np.asarray(mask_fn(positions, img0, img_z, img_s), np.float32), mesh)
    out = edit_fn(batch, mask) if edit_fn is not None else pipeline.run_method(
        params, cfg, batch, st.method, mask, dirs, st.intervention, target=st.target, distance=st.distance,
        condition_on=condition_on, on_compiled=on_compiled, loop=loop)
    space = StyleSpace.of(cfg)
    s_in, s_out = np.asarray(space.concat(batch.styles)), np.asarray(space.concat(out.styles))
    img = runs.shard_batch(np.asarray(out.image), mesh)
    return {"styles_in": s_in, "styles_out": s_out,
            "lam": np.asarray(space.concat(out.lam)) if out.lam is not None else np.zeros_like(s_in),
            "mse_outside": np.asarray(metrics.outside_mask_mse(img, img0, mask)),
            "mse_outside_input": np.asarray(metrics.outside_mask_mse(img, target_imgs, mask)),
            "mse_recon": np.asarray(jnp.mean(jnp.square(img0 - target_imgs), axis=(1, 2, 3))),
            "score_before": dirs["s"].decision(s_in).astype(np.float32),
            "score_after": dirs["s"].decision(s_out).astype(np.float32), "target_sign": batch.target_sign,
            "mask": np.asarray(mask), "img_in": np.asarray(target_imgs), "img_recon": np.asarray(img0),
            "img_out": np.asarray(img),
            **({} if judge is None else {"judge_input": np.asarray(judge(target_imgs), np.float32),
                                         "judge_before": np.asarray(judge(img0), np.float32),
                                         "judge_after": np.asarray(judge(img), np.float32)})}


def run_code_edits(run: runs.RunDir, params, cfg, dirs, codes: CodeInputs, st, mask_fn, *, condition_on=(),
                   judge=None, extra=None, log=print, edit_fn=None) -> dict | None:
    """Edit every code into `run`, skipping finished shards. -> the summary (on process 0; None on the other
    processes of a multi-host run, which edit their own shards, `runs.my_shards`, and meet at a final barrier)."""
    mesh = runs.local_mesh()
    params = runs.replicate(params, mesh)   # once (see edit_code_shard)
    n, bsz = len(codes.styles), st.batch_size
    num_shards = -(-n // bsz)
    loop, on_compiled = edit_run.run_loop(st, num_shards, cfg.img_resolution, log)

    def compute(k, pos):
        def pad(a):
            return batches.pad_batch(a[pos], bsz).array

        return edit_code_shard(params, cfg, dirs, pad(codes.styles), pad(codes.w_ref), pad(codes.target),
                               batches.pad_batch(pos, bsz).array, mask_fn, st, mesh, condition_on, judge, on_compiled,
                               edit_fn, loop)

    def write(k, pos, arrays):
        edit_run.write_shard(run, k, pos, arrays, ("img_in", "img_recon", "img_out"), grid_images=GRID_IMAGES)

    if not runs.run_shards(run, n, bsz, compute, write, hint=st.hint(), barrier_name="si_jax.edit_codes.done",
                           log=log, heartbeat=lambda pos: f"editing images {pos[0]}-{pos[-1]}"):
        return None
    return finish(run, num_shards, st, codes, extra, attribute=dirs["s"].attribute)


def finish(run: runs.RunDir, num_shards: int, st, codes: CodeInputs, extra=None, attribute=None) -> dict:
    """grid.png (rows: inputs, reconstructions, edits), summary.json, index.html and per_image.csv, written
    together (deterministic). The judge's before is its verdict on the user's INPUT image (and so is its
    disagreement with the SVM, which only sees the codes); attribute: the edited attribute's name."""
    allv = run.read_all(num_shards)
    if "target_sign" not in allv:
        raise ValueError(f"{run.shard_path(0)} was written by an older si_jax (no target_sign); delete "
                         f"{run.path / 'shards'} and re-run the same command")
    previews = edit_run.read_previews(run, num_shards, st.batch_size, GRID_IMAGES)
    rows = []
    for key in ("img_in", "img_recon", "img_out"):
        imgs = np.concatenate([p[key] for p in previews])[:GRID_IMAGES]
        rows.append([pictures.to_uint8(x) for x in imgs[:GRID_COLUMNS]])
    outputs = storage.Outputs()
    space_name = projection.SPACE_NAMES[codes.space]
    outputs.add(run.path / "grid.png", pictures.png_bytes(
        pictures.grid(rows, scale=pictures.upscale_for_viewing(rows[0][0].shape[0])),
        caption=f"rows: input, {space_name} reconstruction, {st.method} edit"))
    before, after, sign = allv["score_before"], allv["score_after"], allv["target_sign"]
    judged, extra_judged = {}, {}
    if "judge_after" in allv:
        ji, jb, ja = allv["judge_input"], allv["judge_before"], allv["judge_after"]
        judged = {"judge_before": ji, "judge_after": ja}
        extra_judged = {"judge_flip_rate_vs_reconstruction": float(metrics.flip_rate(jb, ja)),
                        "judge_reconstruction_agrees": float(np.mean((ji > 0) == (jb > 0)))}
    summary = {"method": st.method, "attribute": attribute, "target": st.target, "codes_space": codes.space,
               "num_images": len(before), "latent_edit": "W-space (projected codes have no z)",
               "mse_outside_mean": float(allv["mse_outside"].mean()),
               "mse_outside_std": float(allv["mse_outside"].std()),
               "mse_outside_input_mean": float(allv["mse_outside_input"].mean()),
               "mse_outside_input_std": float(allv["mse_outside_input"].std()),
               "mse_reconstruction_mean": float(allv["mse_recon"].mean()),
               **report.direction_summary(sign, before, after, **judged), **extra_judged,
               "lambda_mean": float(allv["lam"].mean())}
    summary["definitions"] = {
        **{k: v for k, v in report.DIRECTION_DEFINITIONS.items() if k in summary},
        "mse_outside_mean": "outside-mask MSE of the edit against the reconstruction (what the intervention keeps)",
        "mse_outside_input_mean": "outside-mask MSE of the edit against the original input image",
        **({"judge_flip_rate": "the judge's label changed between the input image and the edit"} if judged else {})}
    summary["settings"] = run.settings
    errors.finite_numbers_or_error(summary, "summary", st.hint())
    names = [str(nm) for nm in codes.names[allv["index"]]]
    page_rows = report.edit_rows(allv["index"], sign, before, after, allv["mse_outside"], names=names,
                                 thumbs=[f"images/{int(i):06d}.png" for i in allv["index"]],
                                 extra={"mse_outside_input": allv["mse_outside_input"],
                                        "mse_recon": allv["mse_recon"]}, **judged)
    columns = report.EDIT_COLUMNS[:-1] + (("mse_outside", "MSE outside vs recon", 5),
                                          ("mse_outside_input", "MSE outside vs input", 5),
                                          ("mse_recon", "recon MSE", 5))
    edit_run.add_report(outputs, run.path, page_rows, columns, summary,
                        f"{attribute}: {comparison.METHOD_NAMES.get(st.method, st.method)} on {len(before)} "
                        f"projected images ({space_name})",
                        ["picture: input | reconstruction | edit | mask (darkened outside)",
                         "judge before: its verdict on the input image; SVM: on the codes"])
    outputs.add_json(run.path / "summary.json", summary)
    for name, data in (extra or {}).items():
        outputs.add(run.path / name, data)
    run.remove_top_level_temps()
    outputs.commit()
    return summary


# ------------------------------------------------------------------------------------------------ bin/edit.py

def run(job, out, log=print) -> dict | None:
    """bin/edit.py --codes=DIR: an EditJob (engines.settings: its flags checked) and the run folder -> check the
    inputs (nothing is created), edit every projected image into the run folder, print the summary. -> the summary
    (None on the processes other than 0 of a multi-host run)."""
    t0 = time.perf_counter()
    is_demo, st = job.is_demo, job.edit
    space = code_space(job.space)
    mask_flag = inputs.mask_setting(st.mask, job.masks, default=None)
    out_dir = out
    if not out_dir:
        raise errors.UsageError("--output_dir is required with --codes")
    checks.check_input_files(lambda_model=job.lambda_model, direction=job.direction,
                             condition_on=list(job.condition_on))
    checks.check_output_dir(out_dir, inputs=[job.weights, job.direction, job.codes, job.masks, *job.condition_on])
    model = inputs.resolve_model(job, is_demo, log)
    cfg, params, dirs, judge, judges, source = (model.cfg, model.params, model.dirs, model.judge, model.judges,
                                                model.source)
    generator_id, mask_spec = model.generator_id, mask_flag or model.default_mask
    inputs.check_directions(dirs, cfg, job.direction or "demo")
    codes = load_code_inputs(job.codes, space, params, cfg, generator_id)
    condition_on = inputs.load_condition_on(job.condition_on, "w", cfg.w_dim)
    batch_size = runs.fit_batch_size(st.batch_size, len(codes.styles), runs.local_mesh())
    if batch_size < st.batch_size:
        log(f"note: --batch_size={st.batch_size} capped at {batch_size} (the number of images)")
    st = dataclasses.replace(st, mask=mask_spec, truncation_psi=1.0, batch_size=batch_size)
    mask_fn = mask_function(mask_spec, len(codes.styles), cfg.img_resolution, judges)
    settings = {**st.record(), **source, "codes": str(job.codes), "codes_space": space,
                "codes_digest": inputs.file_digest(f"{job.codes}/{project_run.CODES}"),
                "masks_digest": inputs.file_digest(mask_spec) if job.masks else None,
                "condition_on": [inputs.file_digest(p) for p in job.condition_on]}
    edit_fn, lam_settings = inputs.lambda_model_edit(job, model, st, log)
    settings.update(lam_settings)
    run_dir = runs.RunDir(out_dir, settings)
    log(f"editing {len(codes.styles)} projected images ({projection.SPACE_NAMES[space]} codes from {job.codes}): "
        f"attribute '{dirs['s'].attribute}', target {st.target}, method '{st.method}', into {run_dir.path}; the "
        "latent edit is the W-space one (codes have no z)")
    summary = run_code_edits(run_dir, params, cfg, dirs, codes, st, mask_fn, condition_on=condition_on, judge=judge,
                             log=log, edit_fn=edit_fn)
    if summary is None:
        return None
    log(edit_run.describe(summary))
    for line in report.notes_on(summary):
        log(line)
    log(f"outputs: {run_dir.path / 'index.html'} (browse and sort the images), {run_dir.path / 'grid.png'} (input / "
        f"reconstruction / edit), {run_dir.path / 'summary.json'}, {run_dir.path / 'per_image.csv'}, "
        f"{run_dir.path / 'images'}/  ({time.perf_counter() - t0:.1f}s)")
    return summary
