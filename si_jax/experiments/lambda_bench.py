"""The learned Λ measured by the toyfaces judges beside per-image SI and the shared Λ (bench/lambda_model.py, tests).

    row = compare('eyeglasses', num_train=256, num_heldout=64, steps=150, refine=(0, 2),
                  targets=('objective', 'distill'))

Protocol (experiments.paper_suite's): the classifier labels FIT_SEED samples, S/Z/W directions are fit on them; every
method edits the SAME held-out latents (seed paper_suite.EVAL_SEED, the first num_heldout: Table 2's images) with
the same Δs and the segmenter's part masks. Rows: 'z' (the Z edit), 'intervention' (per-image SI, optional),
'amortised' (ONE Λ fit on num_shared images of paper_suite.AMORTISED_SEED), 'predicted' (K = 0) and
'predicted_K<k>' (refined, k Adam steps per layer) for the predictor trained on the objective; rows 'distill' and
'distill+objective' (and their '_K<k>') for the predictor trained with those targets (editing.lambda_distill), whose
fixed cost includes per-image SI on every training image. The predictors are trained on lambda_data.TRAIN_SEED
images.
Wall times are measured here, on whatever machine runs it; per 1,000 images = fixed cost + per-image cost × 1000.
"""
from __future__ import annotations

import time

import numpy as np

from si_jax import world
from si_jax.attributes import toyfaces
from si_jax.editing import intervention, lambda_data, lambda_distill, lambda_model, pipeline
from si_jax.engines import samples
from si_jax.evaluation import comparison, judged
from si_jax.experiments import paper_suite
from si_jax.stylegan2 import conv_library, loading
from si_jax.world import judges as judges_lib


ROW_OF_TARGET = {"objective": "predicted", "distill": "distill", "distill+objective": "distill+objective"}


def compare(attribute: str, *, num_train: int = 256, num_heldout: int = 64, steps: int = 150, refine=(0,),
            num_shared: int = 64, si: bool = True, num_fit: int = toyfaces.FIT_SAMPLES, batch_size: int = 32,
            learning_rate: float = 1e-3, targets=("objective",), distill_steps: int = 400, log=print) -> dict:
    """-> {'attribute', 'rows': {row: {'judge_flips', 'mse_outside', 'flips_over_z', 'mse_over_z',
    'seconds_per_image', 'fixed_seconds', 'seconds_per_1000'}}, 'train_curve' (of the first target),
    'settings'}."""
    config = intervention.InterventionConfig()
    params, cfg = loading.load_generator("builtin:toyfaces")
    judges = judges_lib.load_judges().with_options_for(conv_library.batch_options)   # XLA:CPU's conv library
    dirs = toyfaces.fit_directions(params, cfg, judges, attribute, num=num_fit, log=lambda m: None)
    mask_fn = toyfaces.part_mask_fn(judges, world.ATTRIBUTE_PART[attribute])
    t0 = time.perf_counter()
    data = lambda_data.edit_data(params, cfg, dirs, samples.latents(lambda_data.TRAIN_SEED, range(num_train),
                                                                    cfg.z_dim), mask_fn)
    t_data, t_label, fixed, models, curves, lam_star = time.perf_counter() - t0, 0.0, {}, {}, {}, None
    for target in targets:
        t0, row = time.perf_counter(), ROW_OF_TARGET[target]
        model = lambda_model.init_model(cfg, data.feats)
        if target != "objective":
            if lam_star is None:   # labelled once; every distilling target is charged for it
                lam_star = lambda_distill.si_targets(params, cfg, data, config, batch=batch_size)
                t_label, t0 = time.perf_counter() - t0, time.perf_counter()
            model, curves[row] = lambda_distill.train_distill(model, data.feats, lam_star, steps=distill_steps)
        if target != "distill":
            model, _, curves[row] = lambda_model.train_amortised(params, cfg, model, data, config, steps=steps,
                                                                 batch_size=batch_size, learning_rate=learning_rate)
        models[row] = model
        fixed[row] = t_data + time.perf_counter() - t0 + (t_label if target != "objective" else 0.0)
        log(f"{attribute}: {target} predictor on {num_train} images ({fixed[row]:.0f} s incl. data), loss "
            f"{curves[row][0]:.4f} -> {np.mean(curves[row][-10:]):.4f}")
    t0 = time.perf_counter()
    shared = paper_suite.amortised_lambda(params, cfg, dirs, mask_fn, paper_suite.SuiteSettings(
        num_amortised=num_shared, config=config))
    fixed["amortised"] = time.perf_counter() - t0

    def amortised(batch, mask):
        styles, image = intervention.apply_lambda(params, cfg, batch.styles, batch.ds_z, batch.ds_n, shared)
        return pipeline.EditOutput(styles, image)

    extra = {"amortised": amortised}
    for row, model in models.items():
        for k in refine:
            extra[row if k == 0 else f"{row}_K{k}"] = lambda_data.predicted_edit(params, cfg, model, config, k)
    z = samples.latents(paper_suite.EVAL_SEED, range(num_heldout), cfg.z_dim)
    res = comparison.compare_methods(params, cfg, z, dirs, mask_fn, ("z", "intervention") if si else ("z",),
                                     config=config, batch_size=min(batch_size, num_heldout), extra_methods=extra,
                                     judge=judged.JudgeMetrics(judges, attribute))
    z_row = res["methods"]["z"]
    rows = {}
    for m, v in res["methods"].items():
        flips, mse = float(np.mean(v["judge_flipped"])), float(np.mean(v["mse_outside"]))
        per_image = res["seconds"][m] / num_heldout
        fx = fixed.get(m.split("_K")[0], 0.0)
        rows[m] = {"judge_flips": flips, "mse_outside": mse,
                   "flips_over_z": flips / max(float(np.mean(z_row["judge_flipped"])), 1e-12),
                   "mse_over_z": mse / max(float(np.mean(z_row["mse_outside"])), 1e-12),
                   "seconds_per_image": per_image, "fixed_seconds": fx, "seconds_per_1000": fx + 1000 * per_image}
        log(f"  {m:>14}: flips/Z {rows[m]['flips_over_z']:.2f}  MSE/Z {rows[m]['mse_over_z']:.3f}  "
            f"1000 images {rows[m]['seconds_per_1000']:.0f} s")
    first = curves[ROW_OF_TARGET[targets[0]]]
    return {"attribute": attribute, "rows": rows, "train_curve": [float(c) for c in first],
            "train_curves": {row: [float(c) for c in curve] for row, curve in curves.items()},
            "settings": {"num_train": num_train, "num_heldout": num_heldout, "steps": steps, "refine": list(refine),
                         "num_shared": num_shared, "num_fit": num_fit, "batch_size": batch_size,
                         "learning_rate": learning_rate, "train_seed": lambda_data.TRAIN_SEED,
                         "eval_seed": paper_suite.EVAL_SEED, "targets": list(targets),
                         "distill_steps": distill_steps}}
