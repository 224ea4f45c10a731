"""The images a Λ predictor is trained and checked on, and how the edit binaries use a trained one.

    data = edit_data(params, cfg, dirs, z, mask_fn)          # lambda_model.TrainData of latents z [N, z_dim]
    edit = predicted_edit(params, cfg, model, config, K)     # fn(EditBatch, mask) -> EditOutput (bin/edit.py)

Seeds: the predictor's training images are latents of TRAIN_SEED, its held-out images HELDOUT_SEED: disjoint from
the edit demo's and Table 2's (seed 0), the directions' (toyfaces.FIT_SEED), Table 1's fresh samples and the
shared Λ's (experiments.paper_suite).
"""
from __future__ import annotations

import numpy as np

from si_jax.editing import lambda_model, pipeline
from si_jax.stylegan2 import programs

TRAIN_SEED, HELDOUT_SEED = 6000, 6001


def edit_data(params, cfg, dirs, z, mask_fn, *, batch: int = 64, truncation_psi: float = 1.0,
              target="flip", distance: float = 3.0) -> lambda_model.TrainData:
    """Every array the objective needs for latents z [N, z_dim], computed in batches of `batch`; mask_fn(img0,
    img_z, img_s) -> [B, R, R] (e.g. attributes.toyfaces.part_mask_fn)."""
    synth = programs.synth_program(cfg)
    parts = []
    for start in range(0, len(z), batch):
        b = pipeline.prepare(params, cfg, z[start:start + batch], dirs, truncation_psi=truncation_psi,
                             target=target, distance=distance)
        img0, img_z, img_s = (np.asarray(synth(params, [s + d for s, d in zip(b.styles, ds)]))
                              for ds in ([0.0] * len(b.styles), b.ds_z, b.ds_n))
        mask = np.asarray(mask_fn(img0, img_z, img_s), np.float32)
        parts.append(([np.asarray(a) for a in b.styles], [np.asarray(a) for a in b.ds_z],
                      [np.asarray(a) for a in b.ds_n], img0, img_z, mask,
                      np.asarray(lambda_model.features(b.styles, b.ds_z, b.ds_n, mask))))
    cat = lambda k: np.concatenate([p[k] for p in parts])  # noqa: E731
    cat_list = lambda k: [np.concatenate(x) for x in zip(*[p[k] for p in parts])]  # noqa: E731
    return lambda_model.TrainData(cat_list(0), cat_list(1), cat_list(2), cat(3), cat(4), cat(5), cat(6))


def predicted_edit(params, cfg, model, config, refine_steps: int = 0):
    """The edit function of bin/edit.py --lambda_model: fn(EditBatch, mask [B, R, R]) -> pipeline.EditOutput."""
    return lambda batch, mask: lambda_model.edit_predicted(params, cfg, model, batch, mask, config, refine_steps)
