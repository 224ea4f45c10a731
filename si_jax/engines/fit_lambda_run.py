"""Training a Λ predictor: the engine behind `bin/fit_lambda.py` (resumable, progress lines, held-out report).

Output folder:
    lambda_model.safetensors   the predictor (si_jax.editing.lambda_model; metadata: generator, direction digest,
                               mask source, objective, training images)
    loss_curve.png             batch-mean objective per training step
    heldout.json               on the held-out images: the objective, outside-mask MSE (and with the toyfaces
                               judges the judged flip rate) of the predicted Λ beside the Z edit (Λ = 0)
    checkpoint.safetensors     (while training) weights, Adam state, curve: re-running the same command resumes
The final three files are written together; the checkpoint is removed after them.

--target (editing.lambda_distill.TARGETS, recorded as the model's training.target): 'objective' trains on the
intervention's own objective (`--steps` Adam steps); 'distill' first labels every training image with per-image
SI's Λ* and regresses the predictor onto it (`--distill_steps`); 'distill+objective' does both, in that order.
A resumed run continues the objective phase (the labels and the regression are not checkpointed).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import numpy as np

from si_jax import metrics, storage
from si_jax.editing import intervention, lambda_data, lambda_distill, lambda_model
from si_jax.engines import checks, errors, samples
from si_jax.evaluation import pictures

MODEL_FILE, CURVE_FILE, REPORT_FILE, CKPT_FILE = ("lambda_model.safetensors", "loss_curve.png", "heldout.json",
                                                  "checkpoint.safetensors")


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Everything besides generator, directions and masks that fixes the model."""

    num_train: int = 256
    num_heldout: int = 32
    steps: int = 150   # RESULTS.md: on 256 images 300 steps overfit (higher held-out objective, fewer flips)
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = lambda_data.TRAIN_SEED
    heldout_seed: int = lambda_data.HELDOUT_SEED
    target: str = "objective"
    distill_steps: int = 400

    def __post_init__(self):
        checks.require(self.target in lambda_distill.TARGETS, "target", self.target,
                       f"must be one of {', '.join(lambda_distill.TARGETS)}")
        for name in ("num_train", "num_heldout", "steps", "batch_size", "distill_steps"):
            v = getattr(self, name)
            checks.require(checks.is_int(v) and v >= 1, name, v, "must be an integer >= 1")
        checks.check_finite_flags(learning_rate=self.learning_rate)
        checks.require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        for name in ("seed", "heldout_seed"):
            checks.require(getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        checks.require(self.seed != self.heldout_seed, "heldout_seed", self.heldout_seed,
                       "must differ from --seed (held-out images must not be training images)")


def _ckpt_bytes(model, opt_state, curve, key: str) -> bytes:
    from safetensors.numpy import save

    leaves = jax.tree_util.tree_leaves((model.params, opt_state))
    tensors = {f"leaf_{i:04d}": np.asarray(v) for i, v in enumerate(leaves)}
    tensors["curve"] = np.asarray(curve, np.float32)
    return save(tensors, metadata={"key": key, "step": str(len(curve))})


def _load_ckpt(path: pathlib.Path, model, opt_state, key: str):
    """-> (model, opt_state, curve) from a checkpoint of the same settings, or None (no / another checkpoint)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "numpy") as f:
            if (f.metadata() or {}).get("key") != key:
                raise ValueError(f"{path} was written by another training setup; delete it or choose another "
                                 "--output_dir")
            t = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is damaged ({str(e).splitlines()[0]}); delete it and re-run") from None
    leaves, treedef = jax.tree_util.tree_flatten((model.params, opt_state))
    if len(t) - 1 != len(leaves):
        raise ValueError(f"{path} does not match this model; delete it and re-run")
    params, opt_state = jax.tree_util.tree_unflatten(treedef, [t[f"leaf_{i:04d}"] for i in range(len(leaves))])
    return dataclasses.replace(model, params=params), opt_state, list(t["curve"])


def heldout_report(params, cfg, model, data, config, judge=None) -> dict:
    """Held-out numbers of the predicted Λ beside the Z edit (Λ = 0): mean objective, outside MSE (and its ratio),
    and with `judge` (evaluation.judged.JudgeMetrics) the judged flip rate."""
    st, dz, dn, img0, img_z, mask, _ = data.take(np.arange(len(data)))
    lam = lambda_model.predict(model, st, dz, dn, mask)
    rows = {}
    for name, l in (("z", [np.zeros_like(a) for a in st]), ("predicted", lam)):
        _, img = intervention.apply_lambda(params, cfg, st, dz, dn, l)
        row = {"objective": float(np.mean(lambda_model.losses(params, cfg, l, st, dz, dn, img0, img_z, mask,
                                                                  config))),
               "mse_outside": float(np.mean(metrics.outside_mask_mse(img, img0, mask)))}
        if judge is not None:
            row["judge_flip_rate"] = float(np.mean(judge(img0, img, mask, np.ones(len(img)))["judge_flipped"]))
        rows[name] = row
    rows["predicted"]["mse_outside_over_z"] = rows["predicted"]["mse_outside"] / max(rows["z"]["mse_outside"], 1e-12)
    if judge is not None:
        rows["predicted"]["judge_flips_over_z"] = (rows["predicted"]["judge_flip_rate"] /
                                                   max(rows["z"]["judge_flip_rate"], 1e-12))
    rows["lambda_mean"] = float(np.mean(np.concatenate([np.asarray(a) for a in lam], -1)))
    return errors.finite_numbers_or_error(rows, "held-out report", "the settings --learning_rate or the inputs")


def fit(params, cfg, dirs, mask_fn, out_dir, st: FitSettings, config, meta: dict, *, judge=None,
        log=print, every_s: float = 10.0) -> dict:
    """Train, resume from out_dir's checkpoint, write the outputs (module docstring). -> the held-out report.
    meta: the model's identity and provenance (lambda_model.identity + mask source), stored in its file."""
    out = pathlib.Path(out_dir)
    t0 = time.perf_counter()
    log(f"preparing {st.num_train} training images (seed {st.seed}) and {st.num_heldout} held-out (seed "
        f"{st.heldout_seed}) ...")
    train = lambda_data.edit_data(params, cfg, dirs, samples.latents(st.seed, range(st.num_train), cfg.z_dim),
                                  mask_fn)
    held = lambda_data.edit_data(params, cfg, dirs, samples.latents(st.heldout_seed, range(st.num_heldout),
                                                                    cfg.z_dim), mask_fn)
    errors.finite_or_error("training features", train.feats, "the inputs (--weights / --direction)")
    meta = {**meta, "training": {**dataclasses.asdict(st), "indices": f"0..{st.num_train - 1}",
                                 "heldout_indices": f"0..{st.num_heldout - 1}"},
            "config": dataclasses.asdict(config)}
    model = lambda_model.init_model(cfg, train.feats)
    model = dataclasses.replace(model, meta={**model.meta, **meta})
    key = storage.fingerprint({"mean": model.mean}) + json.dumps(meta, sort_keys=True)
    opt_state = lambda_model._train_step(cfg, model.net, float(st.learning_rate))[0].init(model.params)
    ckpt = out / CKPT_FILE
    restored = _load_ckpt(ckpt, model, opt_state, key)
    curve = []
    if restored is not None:
        model, opt_state, curve = restored
        log(f"resuming from {ckpt} at step {len(curve)} of {st.steps}")
    log(f"data ready ({time.perf_counter() - t0:.0f} s)")
    distilled = []
    if st.target != "objective" and restored is None:
        model, distilled = _distill(params, cfg, model, train, config, st, log)
    objective_steps = 0 if st.target == "distill" else st.steps
    if objective_steps:
        log(f"training on the objective: {st.steps} steps of {st.batch_size} images")
    state = {"last": time.perf_counter(), "start": time.perf_counter(), "first": len(curve)}

    def on_step(k, value, model, opt_state, curve):
        now = time.perf_counter()
        if now - state["last"] >= every_s or k + 1 == st.steps:
            done = k + 1 - state["first"]
            eta = (st.steps - k - 1) * (now - state["start"]) / max(done, 1)
            log(f"  step {k + 1}/{st.steps}  loss {value:.5f}  ETA {eta:.0f}s")
            out.mkdir(parents=True, exist_ok=True)
            storage.write_atomic(ckpt, _ckpt_bytes(model, opt_state, curve, key))
            state["last"] = now

    model, opt_state, curve = lambda_model.train_amortised(
        params, cfg, model, train, config, steps=objective_steps, batch_size=st.batch_size,
        learning_rate=st.learning_rate, seed=st.seed, start=len(curve), opt_state=opt_state, curve=curve,
        on_step=on_step)
    report = heldout_report(params, cfg, model, held, config, judge)
    last = curve if len(curve) else distilled
    report.update(train_seconds=time.perf_counter() - t0, final_train_loss=float(np.mean(last[-10:])),
                  target=st.target)
    series = {k: v for k, v in (("distillation BCE", distilled), ("batch-mean objective", curve)) if len(v)}
    outputs = storage.Outputs()
    outputs.add(out / MODEL_FILE, lambda_model.model_bytes(model))
    outputs.add(out / CURVE_FILE, pictures.png_bytes(pictures.line_plot(series, title=f"Λ predictor training "
                                                                                      f"({st.target})")))
    outputs.add_json(out / REPORT_FILE, {**report, "meta": meta})
    out.mkdir(parents=True, exist_ok=True)
    outputs.commit()
    ckpt.unlink(missing_ok=True)
    log(json.dumps(report, indent=2))
    log(f"outputs: {out / MODEL_FILE}, {out / CURVE_FILE}, {out / REPORT_FILE}")
    return report


def _distill(params, cfg, model, train, config, st: FitSettings, log) -> tuple:
    """Label the training images with per-image SI's Λ* and regress the model onto them. -> (model, BCE curve)."""
    t0 = time.perf_counter()
    log(f"labelling {len(train)} training images with per-image SI (distillation targets) ...")
    lam_star = lambda_distill.si_targets(params, cfg, train, config, on_batch=lambda done, total: log(
        f"  labelled {done}/{total} ({time.perf_counter() - t0:.0f} s)"))
    model, curve = lambda_distill.train_distill(model, train.feats, lam_star, steps=st.distill_steps,
                                                seed=st.seed)
    log(f"distilled: {st.distill_steps} steps, BCE {curve[0]:.4f} -> {np.mean(curve[-10:]):.4f} "
        f"({time.perf_counter() - t0:.0f} s with the labels)")
    return model, curve


def mask_fn_of(spec: str, res: int, judges=None):
    """--mask spec (auto | box: | ellipse: | part:NAME) -> fn(img0, img_z, img_s) -> [B, R, R] for the training
    images (per-image mask files belong to the user's images, not to these samples: refused)."""
    from si_jax.engines import inputs, project_edit

    inputs.mask_setting(spec, None, default=None)
    fn = project_edit.mask_function(spec, 1, res, judges)
    return lambda img0, img_z, img_s: np.asarray(fn(np.arange(len(img0)), img0, img_z, img_s), np.float32)


def run(job, out=None, log=print) -> dict:
    """bin/fit_lambda.py: a LambdaJob (engines.tool_settings: its flags already checked) and --output_dir (None:
    the demo's DEMO_DIR) -> validate the inputs (nothing created), resolve generator, directions and masks (the
    demo's: builtin:toyfaces, --attribute, the segmenter's part), then `fit`. -> the held-out report."""
    from si_jax.engines import demo, inputs
    from si_jax.evaluation import judged

    is_demo = job.is_demo
    if not (out or is_demo):
        raise errors.UsageError("--output_dir is required")
    out = pathlib.Path(out or DEMO_DIR)
    checks.check_input_files(direction=job.direction)
    checks.check_output_dir(out, inputs=[job.weights, job.direction])
    if out.is_dir():
        checks.check_output_free(out / MODEL_FILE, job.overwrite)
    model = inputs.resolve_model(job, is_demo, log)
    inputs.check_directions(model.dirs, model.cfg, job.direction or "demo")
    spec = job.mask or model.default_mask
    judges = model.judges if is_demo else None
    mask_fn = mask_fn_of(spec, model.cfg.img_resolution, judges)
    config = job.intervention
    meta = {**lambda_model.identity(model.generator_id, model.dirs, config), "mask_source": spec,
            "objective_name": job.objective, "source": model.source}
    judge = judged.JudgeMetrics(judges, job.attribute or demo.DEMO_ATTRIBUTE) if is_demo else None
    return fit(model.params, model.cfg, model.dirs, mask_fn, out, job.fit, config, meta, judge=judge, log=log)


DEMO_DIR = "si_jax_lambda_demo"
