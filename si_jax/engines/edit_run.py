"""Batch editing of many samples: the engine behind `bin/edit.py` (resumable shards, devices, hosts, outputs).

Per shard (one fixed-size batch, the last one padded): Δs's, mask, the chosen method, metrics; written atomically
as `shards/shard_XXXXX.npz` with `index` [n], `z` [n, z_dim], `styles_in`/`styles_out` [n, S], `lam` [n, S]
(intervention; zeros otherwise), `mse_outside` [n], `score_before`/`score_after` [n] (S-space classifier),
`target_sign` [n] (±1: the edit adds / removes the attribute), `judge_before`/`judge_after` [n] (an independent
judge's attribute score, when one is given), and per image `images/XXXXXX.png` (input | output | mask). When
every shard exists: `grid.png` (inputs vs outputs), `summary.json`, `index.html` and `per_image.csv` (a page to
browse and sort the images, flagging the failures; evaluation.report), written together.

summary.json: method, attribute (the direction's), target; mse_outside_mean/std; the direction fields of
evaluation.report.direction_summary (score changes towards each image's target, flip rates of the S-space SVM and
of the judge, how often they disagree about the input; their `definitions` are in the file); lambda_mean; the
settings. (Before: `flip_rate` = svm_flip_rate, `score_change_mean` = svm_score_change_raw_mean,
`judge_score_change_mean` = judge_score_change_raw_mean.)

Every file is a function of the settings and the inputs (the PNG display range comes from shard 0's input
images, summary.json holds no wall-clock time), so a killed and resumed run, or a rerun of a finished one, writes
the same bytes as an uninterrupted run. Nothing is written for a shard whose arrays are not all finite.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
import zipfile

import jax
import numpy as np

from si_jax import metrics, storage
from si_jax.editing import batches, edits, intervention, masks, pipeline
from si_jax.engines import checks, errors, hosts, runs
from si_jax.evaluation import comparison, pictures, report
from si_jax.stylegan2 import programs

GRID_IMAGES, GRID_COLUMNS = 16, 8


@dataclasses.dataclass(frozen=True)
class EditSettings:
    """Everything (besides generator, directions and latents) that fixes the outputs. The intervention's
    hyper-parameters are its InterventionConfig (the objective is the config's: `objective`). Built from the flags
    by engines.settings; mask, truncation_psi and batch_size are then resolved by the engine (the demo's part mask,
    the samples' psi, the batch capped at the number of images): None means "not resolved yet"."""

    method: str = "intervention"
    mask: str | None = "auto"  # 'auto' | 'box:x0,y0,x1,y1' | 'ellipse:cx,cy,rx,ry' | 'part:NAME' | a mask file path
    target: str = "flip"
    distance: float = 3.0
    s_scale: float | None = None
    truncation_psi: float | None = 1.0
    batch_size: int = 8
    loop: str = "auto"   # how the Adam steps run (intervention.resolve_loop; 'auto' decided by the run's batch count)
    intervention: intervention.InterventionConfig = intervention.InterventionConfig()

    def __post_init__(self):
        """UsageError naming the first bad setting (the config checks its own fields)."""
        req = checks.require
        req(self.method in pipeline.METHODS, "method", self.method, f"must be one of {', '.join(pipeline.METHODS)}")
        check_target(self.target, self.distance)
        req(self.loop in intervention.LOOPS, "loop", self.loop, f"must be one of {', '.join(intervention.LOOPS)}")
        req(checks.is_int(self.batch_size) and self.batch_size >= 1, "batch_size", self.batch_size,
            "must be an integer >= 1")
        checks.check_finite_flags(s_scale=self.s_scale, truncation_psi=self.truncation_psi)

    @property
    def objective(self) -> str:
        return objective_of(self.intervention)

    def hint(self) -> str:
        """The likely cause when a result is NaN / inf (errors.likely_cause of the settings that scale the edit)."""
        return errors.likely_cause(truncation_psi=self.truncation_psi, distance=self.distance, s_scale=self.s_scale,
                                   learning_rate=self.intervention.learning_rate)

    def record(self) -> dict:
        """The flat dict of a run's settings (run.json, summary.json), as it has always been written: the
        config's fields beside the others, its objective by name (pixel_loss follows from it)."""
        config = {k: v for k, v in dataclasses.asdict(self.intervention).items() if k != "pixel_loss"}
        flat = {k: getattr(self, k) for k in ("method", "mask", "target", "distance", "s_scale", "truncation_psi",
                                                "batch_size", "loop")}
        return {k: (float(v) if isinstance(v, np.floating) else v)
                for k, v in {**flat, **config, "objective": self.objective}.items()}


def check_target(target: str, distance: float) -> None:
    """--target / --distance of the Z edit (bin/edit.py and bin/evaluate.py): UsageError naming the bad one."""
    checks.require(target in edits.TARGETS, "target", target, f"must be one of {', '.join(edits.TARGETS)}")
    checks.check_finite_flags(distance=distance)
    checks.require(target != "flip" or distance > 0, "distance", distance, "must be > 0 with --target=flip")


def objective_of(config: intervention.InterventionConfig) -> str:
    """'paper' when `config` is Eq. 11's loss (intervention.config_for('paper', ...) of its own fields), else
    'keep_edit'."""
    return "paper" if config == intervention.config_for("paper", **dataclasses.asdict(config)) else "keep_edit"


def edit_shard(params, cfg, dirs, z, positions, mask_source: masks.Masks, st: EditSettings, mesh,
               condition_on=(), judge=None, on_compiled=None, edit_fn=None, loop: str = "auto") -> dict:
    """Edit one padded batch. z: [B, z_dim] -> dict of per-image arrays (see module docstring). on_compiled:
    progress of the intervention's layer programs, when this batch compiles them (`hosts.compile_counter`). loop:
    the intervention's loop (`intervention.resolve_loop`; `run_edits` resolves st.loop for the whole run).

    params must be replicated on `mesh` (`runs.replicate`, once per run): z is sharded over it before anything is
    synthesised, and every per-image array (styles, Δs's, images, mask, metrics) stays sharded until it is written.
    edit_fn(EditBatch, mask) -> EditOutput replaces st.method (e.g. a learned Λ, editing.lambda_data).
    """
    batch = pipeline.prepare(params, cfg, runs.shard_batch(np.asarray(z, np.float32), mesh), dirs,
                             truncation_psi=st.truncation_psi, target=st.target, distance=st.distance,
                             s_scale=st.s_scale)
    img0, img_z, img_s = edit_inputs(params, cfg, batch)
    mask = runs.shard_batch(mask_source(positions, img0, img_z, img_s), mesh)
    out = edit_fn(batch, mask) if edit_fn is not None else pipeline.run_method(
        params, cfg, batch, st.method, mask, dirs, st.intervention, target=st.target, distance=st.distance,
        condition_on=condition_on, on_layer=_layer_progress(), on_compiled=on_compiled, loop=loop)
    image = runs.shard_batch(np.asarray(out.image), mesh)
    on_device = {"styles_in": list(batch.styles), "styles_out": list(out.styles), "mask": mask, "img_in": img0,
                 "mse_outside": metrics.outside_mask_mse(image, img0, mask),
                 **({} if out.lam is None else {"lam": list(out.lam)}),
                 **({} if judge is None else {"judge_before": judge(img0), "judge_after": judge(image)})}
    host = {k: np.concatenate(v, axis=1) if isinstance(v, list) else np.asarray(v, np.float32)
            for k, v in jax.device_get(on_device).items()}   # one fetch per batch
    host.setdefault("lam", np.zeros_like(host["styles_in"]))
    return {"z": np.asarray(z), **host, "img_out": np.asarray(out.image), "target_sign": batch.target_sign,
            "score_before": dirs["s"].decision(host["styles_in"]).astype(np.float32),
            "score_after": dirs["s"].decision(host["styles_out"]).astype(np.float32)}


def edit_inputs(params, cfg, batch: pipeline.EditBatch) -> tuple:
    """-> (img0, img_z, img_s): [B, R, R, C] device arrays h(s), h(s + Δs_z), h(s + Δs_n), placed like the batch."""
    synth = programs.synth_program(cfg)
    return tuple(synth(params, batch.styles if ds is None else [s + d for s, d in zip(batch.styles, ds)])
                 for ds in (None, batch.ds_z, batch.ds_n))


def _layer_progress(every_s: float = 10.0):
    """on_layer callback: a line per finished layer, but only once a shard has run for `every_s` (large models,
    where waiting for each layer costs nothing next to its run time; before that it never waits)."""
    start = time.perf_counter()

    def report(i, n, pending):
        if time.perf_counter() - start > every_s:
            jax.block_until_ready(pending)
            print(f"    layer {i + 1}/{n} done ({time.perf_counter() - start:.0f}s into this batch)", file=sys.stderr,
                  flush=True)

    return report


def write_shard(run: runs.RunDir, k: int, positions, arrays: dict, image_keys=("img_in", "img_out"),
                lo_hi=(-1.0, 1.0), grid_images: int = GRID_IMAGES) -> None:
    """Shard k's files (on the writer thread, `runs.ShardWriter`): per image one PNG of the `image_keys` images
    side by side plus the mask over the last, the raw images of the first `grid_images` for grid.png (before the
    shard, so a kill cannot orphan them), then the shard file with every other array, which marks it done."""
    run.create()
    (run.path / "images").mkdir(exist_ok=True)
    for row, i in enumerate(positions):
        tiles = [pictures.to_uint8(arrays[key][row], *lo_hi) for key in image_keys]
        tiles.append(pictures.mask_overlay(tiles[-1], arrays["mask"][row]))
        pictures.save_png(run.path / "images" / f"{int(i):06d}.png",
                          pictures.grid([tiles], scale=pictures.upscale_for_viewing(tiles[0].shape[0])))
    if positions[0] < grid_images:
        storage.save_npz_atomic(preview_path(run, k), **{key: arrays[key] for key in image_keys})
    run.write_shard(k, index=positions, **{key: v for key, v in arrays.items() if key not in (*image_keys, "mask")})


def preview_path(run: runs.RunDir, k: int):
    return run.path / "shards" / f"preview_{k:05d}.npz"


def display_range(params, cfg, dirs, z_all, st: EditSettings, mesh) -> tuple:
    """The PNG display range of the whole run, from shard 0's input images: fixed by the settings, so every
    resume writes the same bytes (run_edits takes process 0's, `runs.from_process_0`, so every process does
    too). Also checks shard 0's inputs (before anything is written). params: replicated on `mesh`."""
    padded = batches.pad_batch(z_all[:st.batch_size], st.batch_size)
    batch = pipeline.prepare(params, cfg, runs.shard_batch(padded.array, mesh), dirs, truncation_psi=st.truncation_psi,
                             target=st.target, distance=st.distance, s_scale=st.s_scale)
    img0 = np.asarray(programs.synth_program(cfg)(params, batch.styles))[:padded.valid]
    errors.finite_or_error("input images", img0, st.hint())
    return pictures.display_range(img0)


def run_edits(run: runs.RunDir, params, cfg, dirs, z_all, st: EditSettings, mask_source: masks.Masks, *,
              condition_on=(), judge=None, extra=None, log=print, edit_fn=None) -> dict | None:
    """Edit every sample of z_all [N, z_dim] into `run`, skipping finished shards. Returns the summary once all
    shards exist (on process 0; None on the other processes of a multi-host run, after a final barrier).
    params are replicated over the local devices here, once. `judge`: an independent attribute score
    images [B, R, R, 3] -> [B] (e.g. the toyfaces classifier; its params replicated like `Judges.placed`), recorded
    per image as judge_before / judge_after and summarised as the judge's flip rate. `extra`: {file name: bytes
    or writer} written with grid.png and summary.json. Every array is checked finite before its shard is
    written (a NaN / inf is an error naming the samples and the likely setting)."""

    mesh = runs.local_mesh()
    n, bsz = len(z_all), runs.fit_batch_size(st.batch_size, len(z_all), mesh)
    if bsz != st.batch_size:
        raise ValueError(f"--batch_size={st.batch_size} must be capped at {bsz} for {n} images (runs.fit_batch_size)")
    num_shards = -(-n // bsz)
    params = runs.replicate(params, mesh)   # once: every program of the run reads this copy on every device
    lo_hi = runs.from_process_0(display_range(params, cfg, dirs, z_all, st, mesh))
    loop, on_compiled = run_loop(st, num_shards, cfg.img_resolution, log)

    def compute(k, positions):
        return edit_shard(params, cfg, dirs, batches.pad_batch(z_all[positions], bsz).array,
                          batches.pad_batch(positions, bsz).array, mask_source, st, mesh, condition_on, judge,
                          on_compiled, edit_fn, loop)

    if not runs.run_shards(run, n, bsz, compute, functools.partial(write_shard, run, lo_hi=lo_hi), hint=st.hint(),
                           barrier_name="si_jax.edit.done", log=log,
                           heartbeat=lambda pos: f"editing images {pos[0]}-{pos[-1]}"):
        return None
    return finish(run, num_shards, st, lo_hi, extra, attribute=dirs["s"].attribute)


def run_loop(st: EditSettings, num_shards: int, resolution: int, log) -> tuple:
    """(the intervention's loop for the whole run, its compile-progress callback). Decided by the run's whole size
    (batches, image resolution), not by what is left of it, so that a resumed run computes exactly as the first one
    did."""
    loop = intervention.resolve_loop(st.loop, batches=num_shards, resolution=resolution)
    what = "program of '{}', one for all layers as the run is short," if loop == "one" else "layer programs of '{}'"
    return loop, hosts.compile_counter(what.format(st.method), log)


def read_previews(run: runs.RunDir, num_shards: int, batch_size: int, num_images: int = GRID_IMAGES) -> list:
    """The preview arrays ({key: [n, ...]}) of the shards holding the first `num_images` images, in order
    (ValueError naming a missing or damaged one, and how to recover)."""
    previews = []
    for k in range(min(num_shards, -(-num_images // batch_size))):
        try:
            with np.load(preview_path(run, k), allow_pickle=False) as p:
                previews.append({key: p[key] for key in p.files})
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{preview_path(run, k)} is missing or damaged ({e}); delete "
                             f"{run.shard_path(k).name} and re-run the same command") from None
    return previews


def finish(run: runs.RunDir, num_shards: int, st: EditSettings, lo_hi=None, extra=None, attribute=None) -> dict:
    """grid.png of the first shards' inputs vs outputs, summary.json (module docstring), index.html and
    per_image.csv, written together (with `extra`, {file name: bytes or writer}). Deterministic: a function of the
    shards and settings only. lo_hi: the display range (default: from shard 0's input images, as
    `display_range`); attribute: the edited attribute's name (the direction's)."""
    allv = run.read_all(num_shards)
    if "target_sign" not in allv:
        raise ValueError(f"{run.shard_path(0)} was written by an older si_jax (no target_sign); delete "
                         f"{run.path / 'shards'} and re-run the same command")
    previews = read_previews(run, num_shards, st.batch_size)
    outputs = storage.Outputs()
    img_in = np.concatenate([p["img_in"] for p in previews])[:GRID_IMAGES]
    img_out = np.concatenate([p["img_out"] for p in previews])[:GRID_IMAGES]
    lo_hi = lo_hi or pictures.display_range(previews[0]["img_in"])
    rows = [[pictures.to_uint8(x, *lo_hi) for x in imgs[c:c + GRID_COLUMNS]]
            for c in range(0, len(img_in), GRID_COLUMNS) for imgs in (img_in, img_out)]
    outputs.add(run.path / "grid.png", pictures.png_bytes(
        pictures.grid(rows, scale=pictures.upscale_for_viewing(img_in.shape[1])),
        caption=f"each pair of rows: input above, {st.method} edit below"))
    mse = allv["mse_outside"]
    judged = {"judge_before": allv["judge_before"], "judge_after": allv["judge_after"]} if "judge_before" in allv \
        else {}   # the independent judge's verdict (toyfaces classifier), not the S-space SVM's
    summary = {"method": st.method, "attribute": attribute, "target": st.target, "num_images": int(len(mse)),
               "mse_outside_mean": float(mse.mean()), "mse_outside_std": float(mse.std()),
               **report.direction_summary(allv["target_sign"], allv["score_before"], allv["score_after"], **judged),
               "lambda_mean": float(allv["lam"].mean())}
    summary["definitions"] = {k: v for k, v in report.DIRECTION_DEFINITIONS.items() if k in summary}
    summary["settings"] = run.settings
    page_rows = report.edit_rows(allv["index"], allv["target_sign"], allv["score_before"], allv["score_after"], mse,
                                 thumbs=[f"images/{int(i):06d}.png" for i in allv["index"]], **judged)
    add_report(outputs, run.path, page_rows, report.EDIT_COLUMNS, summary,
               f"{attribute}: {comparison.METHOD_NAMES.get(st.method, st.method)}, {len(mse)} images",
               ["picture: input | edit | mask (darkened outside)"])
    outputs.add_json(run.path / "summary.json", summary)
    for name, data in (extra or {}).items():
        outputs.add(run.path / name, data)
    run.remove_top_level_temps()
    outputs.commit()
    return summary


def add_report(outputs: storage.Outputs, folder, rows, columns, summary: dict, title: str, notes=()) -> None:
    """Stage `folder`/index.html and per_image.csv (evaluation.report) of `rows`, with the summary's scalars."""
    outputs.add_text(folder / "index.html", report.render_html(title, rows, columns, summary=summary, notes=notes))
    outputs.add_text(folder / "per_image.csv", report.render_csv(rows, columns))


def describe(summary: dict) -> str:
    return json.dumps({k: v for k, v in summary.items() if k not in ("settings", "definitions")}, indent=2)
