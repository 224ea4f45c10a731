"""How good is a toyfaces generator? Measured by the independent judges, not by eye.

    report = quality_report(params, cfg, judges, num=5000)
    report['fd']                 Fréchet distance, classifier features of generated vs rendered images
    report['fd_floor']           the same between two disjoint sets of rendered images (what 'perfect' scores)
    report['attribute_freq']     {attribute: (generated, world)} share of images the classifier finds it in
    report['parts_found']        share of generated images in which the segmenter finds every always-present part
"""
from __future__ import annotations

import jax
import numpy as np

from si_jax import metrics
from si_jax.stylegan2 import programs
from si_jax.world.factors import ATTRIBUTES, PARTS
from si_jax.world.renderer import render_batch

ALWAYS_PRESENT = ("background", "skin", "hair", "eyes", "mouth", "brows")  # glasses only with eyeglasses
MIN_PART_PIXELS = 2
SAMPLE_SEED, WORLD_SEEDS = 7, (11, 12)  # disjoint from the judges' training (1) and evaluation (99) streams


def generated(params, cfg, num: int, *, seed: int = SAMPLE_SEED, batch: int = 500, truncation_psi: float = 1.0):
    """Yield batches of generated images [b, R, R, 3] for z ~ N(0, I) of `seed` (noise const), in the XLA:CPU conv
    library measured faster for the batch (programs.PerBatch)."""
    gen = programs.generate_program(cfg, truncation_psi)
    for start in range(0, num, batch):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), start)
        yield gen(params, jax.random.normal(key, (min(batch, num - start), cfg.z_dim)))[2]


def rendered(num: int, seed: int, resolution: int, batch: int = 500):
    for start in range(0, num, batch):
        yield render_batch(seed, np.arange(start, min(start + batch, num)), resolution)["images"]


def judge_stats(judges, batches) -> dict:
    """Classifier features [N, F], attribute decisions [N, A] and 'all parts found' [N] over image batches."""
    feats, attrs, found = [], [], []
    for images in batches:
        out = judges.outputs(images)
        feats.append(np.asarray(out["features"]))
        attrs.append(np.asarray(out["logits"]) > 0)
        parts = judges.parts(images)
        counts = np.stack([(parts == PARTS.index(p)).sum((1, 2)) for p in ALWAYS_PRESENT], -1)
        found.append(np.all(counts >= MIN_PART_PIXELS, -1))
    return {"features": np.concatenate(feats), "attributes": np.concatenate(attrs), "found": np.concatenate(found)}


def quality_report(params, cfg, judges, *, num: int = 5000, truncation_psi: float = 1.0) -> dict:
    """The generator's quality numbers (see the module docstring), num generated vs num rendered images."""
    res = cfg.img_resolution
    gen = judge_stats(judges, generated(params, cfg, num, truncation_psi=truncation_psi))
    ref = judge_stats(judges, rendered(num, WORLD_SEEDS[0], res))
    ref2 = judge_stats(judges, rendered(num, WORLD_SEEDS[1], res))
    return {"num": num, "truncation_psi": truncation_psi,
            "fd": round(metrics.frechet_distance(gen["features"], ref["features"]), 4),
            "fd_floor": round(metrics.frechet_distance(ref2["features"], ref["features"]), 4),
            "attribute_freq": {a: (round(float(gen["attributes"][:, i].mean()), 4),
                                   round(float(ref["attributes"][:, i].mean()), 4)) for i, a in enumerate(ATTRIBUTES)},
            "parts_found": round(float(gen["found"].mean()), 4),
            "parts_found_world": round(float(ref["found"].mean()), 4)}
