"""Batch editing of many samples: the engine behind `bin/edit.py` (resumable shards, devices, hosts, outputs).

Per shard (one fixed-size batch, the last one padded): Δs's, mask, the chosen method, metrics; written atomically
as `shards/shard_XXXXX.npz` with `index` [n], `z` [n, z_dim], `styles_in`/`styles_out` [n, S], `lam` [n, S]
(intervention; zeros otherwise), `mse_outside` [n], `score_before`/`score_after` [n] (S-space classifier), and
per image `images/XXXXXX.png` (input | output | mask). When every shard exists: `grid.png` (inputs vs outputs)
and `summary.json`.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

import jax.numpy as jnp
import numpy as np

from si_jax import metrics, storage
from si_jax.editing import batches, intervention, masks, pipeline
from si_jax.engines import cli, runs
from si_jax.evaluation import pictures

GRID_IMAGES = 16


@dataclasses.dataclass(frozen=True)
class EditSettings:
    """Everything (besides generator, directions and latents) that fixes the outputs."""

    method: str = "intervention"
    mask: str = "auto"  # 'auto' | 'box:x0,y0,x1,y1' | 'ellipse:cx,cy,rx,ry' | a mask file path
    target: str = "flip"
    distance: float = 3.0
    s_scale: float | None = None
    truncation_psi: float = 1.0
    batch_size: int = 8
    steps_per_layer: int = intervention.InterventionConfig.steps_per_layer
    learning_rate: float = intervention.InterventionConfig.learning_rate
    lambda_attr: float = intervention.InterventionConfig.lambda_attr
    lambda_norm: float = intervention.InterventionConfig.lambda_norm
    lambda_init: float = intervention.InterventionConfig.lambda_init

    def __post_init__(self):
        if self.method not in pipeline.METHODS:
            raise ValueError(f"--method must be one of {', '.join(pipeline.METHODS)}, got {self.method!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")

    @property
    def intervention_config(self) -> intervention.InterventionConfig:
        return intervention.InterventionConfig(self.steps_per_layer, self.learning_rate, self.lambda_attr,
                                               self.lambda_norm, self.lambda_init)


class MaskSource:
    """Resolves the --mask/--masks setting to [B, R, R] arrays for a batch of sample indices."""

    def __init__(self, spec: str, num_images: int, res: int):
        self.spec, self.res, self.array = spec, res, None
        if spec.startswith(("box:", "ellipse:")):
            self.array = masks.parse_mask_spec(spec, res, res)[None]
        elif spec != "auto":
            self.array = masks.load_masks(spec, num_images, res, res)

    def __call__(self, positions, img0, img_s) -> np.ndarray:
        """positions: [B] rows into the run's sample list; img0, img_s: [B, R, R, C] input and S-only edit."""
        if self.array is None:
            return np.asarray(masks.auto_mask(img0, img_s), np.float32)
        if len(self.array) == 1:
            return np.repeat(self.array, len(positions), axis=0)
        return self.array[np.asarray(positions)]


def _flat(styles) -> np.ndarray:
    return np.concatenate([np.asarray(s) for s in styles], axis=1)


def edit_shard(params, cfg, dirs, z, positions, mask_source: MaskSource, st: EditSettings, mesh,
               condition_on=()) -> dict:
    """Edit one padded batch. z: [B, z_dim] -> dict of per-image arrays (see module docstring)."""
    batch = pipeline.prepare(params, cfg, z, dirs, truncation_psi=st.truncation_psi, target=st.target,
                             distance=st.distance, s_scale=st.s_scale)
    synth = intervention.synth_program(cfg)
    img0 = np.asarray(synth(params, batch.styles))
    img_s = np.asarray(synth(params, [s + d for s, d in zip(batch.styles, batch.ds_n)]))
    mask = mask_source(positions, img0, img_s)
    if mesh.devices.size > 1:
        batch.styles, batch.ds_z, batch.ds_n = runs.shard_batch((batch.styles, batch.ds_z, batch.ds_n), mesh)
        mask = runs.shard_batch(jnp.asarray(mask), mesh)
    out = pipeline.run_method(params, cfg, batch, st.method, mask, dirs, st.intervention_config,
                              target=st.target, distance=st.distance, condition_on=condition_on,
                              on_layer=_layer_progress())
    s_in, s_out = _flat(batch.styles), _flat(out.styles)
    lam = _flat(out.lam) if out.lam is not None else np.zeros_like(s_in)
    return {"z": np.asarray(z), "styles_in": s_in, "styles_out": s_out, "lam": lam,
            "mse_outside": np.asarray(metrics.outside_mask_mse(out.image, img0, np.asarray(mask))),
            "score_before": dirs["s"].decision(s_in).astype(np.float32),
            "score_after": dirs["s"].decision(s_out).astype(np.float32),
            "mask": np.asarray(mask, np.float32), "img_in": img0, "img_out": np.asarray(out.image)}


def _layer_progress(every_s: float = 10.0):
    """on_layer callback: a line per layer, but only once a shard has run for `every_s` (large models)."""
    start = time.perf_counter()

    def report(i, n):
        if time.perf_counter() - start > every_s:
            print(f"    layer {i + 1}/{n} done ({time.perf_counter() - start:.0f}s into this batch)", file=sys.stderr,
                  flush=True)

    return report


def _save_pngs(run: runs.RunDir, index, arrays, lo_hi):
    (run.path / "images").mkdir(exist_ok=True)
    for row, i in enumerate(index):
        a, b = pictures.to_uint8(arrays["img_in"][row], *lo_hi), pictures.to_uint8(arrays["img_out"][row], *lo_hi)
        tiles = [a, b, pictures.mask_overlay(b, arrays["mask"][row])]
        pictures.save_png(run.path / "images" / f"{int(i):06d}.png",
                         pictures.grid([tiles], scale=pictures.upscale_for_viewing(a.shape[0])))


def run_edits(run: runs.RunDir, params, cfg, dirs, z_all, st: EditSettings, mask_source: MaskSource, *,
              condition_on=(), log=print) -> dict | None:
    """Edit every sample of z_all [N, z_dim] into `run`, skipping finished shards. Returns the summary once all
    shards exist (None on a process that is not the last to finish in a multi-host run)."""
    mesh = runs.local_mesh()
    runs.check_batch_size(st.batch_size, mesh)
    n, bsz = len(z_all), st.batch_size
    num_shards = -(-n // bsz)
    todo = [k for k in runs.my_shards(num_shards) if not run.is_done(k)]
    if len(todo) < len(runs.my_shards(num_shards)):
        log(f"resuming: {len(runs.my_shards(num_shards)) - len(todo)} of {num_shards} shards already done")
    lo_hi = None
    for k in cli.progress(todo, len(todo) * bsz, bsz, "images"):
        positions = np.arange(k * bsz, min((k + 1) * bsz, n))
        padded = batches.pad_batch(z_all[positions], bsz)
        pos_padded = batches.pad_batch(positions, bsz).array
        arrays = edit_shard(params, cfg, dirs, padded.array, pos_padded, mask_source, st, mesh, condition_on)
        arrays = {key: v[:padded.valid] for key, v in arrays.items()}
        lo_hi = lo_hi or pictures.display_range(arrays["img_in"])
        _save_pngs(run, positions, arrays, lo_hi)
        if k * bsz < GRID_IMAGES:  # raw images for grid.png, before the shard so a kill cannot orphan it
            storage.save_npz_atomic(run.path / "shards" / f"preview_{k:05d}.npz", img_in=arrays["img_in"],
                               img_out=arrays["img_out"])
        run.write_shard(k, index=positions, **{key: v for key, v in arrays.items()
                                               if key not in ("img_in", "img_out", "mask")})
    if not all(run.is_done(k) for k in range(num_shards)):
        return None
    return finish(run, num_shards, st, lo_hi)


def finish(run: runs.RunDir, num_shards: int, st: EditSettings, lo_hi=None) -> dict:
    """grid.png of the first shards' inputs vs outputs, and summary.json (means, stds, flip rate)."""
    allv = run.read_all(num_shards)
    previews = [np.load(p) for p in sorted((run.path / "shards").glob("preview_*.npz"))]
    if previews:
        img_in = np.concatenate([p["img_in"] for p in previews])[:GRID_IMAGES]
        img_out = np.concatenate([p["img_out"] for p in previews])[:GRID_IMAGES]
        lo_hi = lo_hi or pictures.display_range(img_in)
        rows = [[pictures.to_uint8(x, *lo_hi) for x in img_in], [pictures.to_uint8(x, *lo_hi) for x in img_out]]
        pictures.save_png(run.path / "grid.png", pictures.grid(rows, scale=pictures.upscale_for_viewing(
            img_in.shape[1])), caption=f"top: input, bottom: {st.method} edit")
    mse, before, after = allv["mse_outside"], allv["score_before"], allv["score_after"]
    summary = {"method": st.method, "num_images": int(len(mse)),
               "mse_outside_mean": float(mse.mean()), "mse_outside_std": float(mse.std()),
               "score_change_mean": float((after - before).mean()),
               "flip_rate": float(metrics.flip_rate(before, after)),
               "lambda_mean": float(allv["lam"].mean()), "settings": run.settings,
               "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    runs.write_json_atomic(run.path / "summary.json", summary)
    return summary


def describe(summary: dict) -> str:
    return json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=2)
