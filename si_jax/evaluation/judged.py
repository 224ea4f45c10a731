"""Table 2 columns measured by the toyfaces judges, independent of the S-space SVM that the methods were fit with.

    judge = JudgeMetrics(judges, 'smile')
    per_image = judge(img0, img, mask, sign)          # {key: [N]}, merged into comparison.edit_metrics' output
    fd = judge.frechet(img, reference_features)       # realism of a SET of images (one number)

Per-image keys (the judged attribute a, target_sign ±1 per image, see comparison):
  judge_before / judge_after   classifier logit of a (> 0: present) on the input and the edit
  judge_gain                   (after − before) · target_sign: the change towards the requested value
  judge_flipped                1 where the judged label of a changed (the edit reached the other side)
  others_flipped               fraction of the OTHER attributes whose judged label changed (entanglement)
  others_change                mean |Δ logit| over the other attributes
  nuisance_change              mean |Δ| of the classifier's nuisance estimates over the 12 factors, each divided
                               by its range (bg_hue circular): the toy world's identity (paper's ID column)
  inside_mse                   MSE inside the mask between input and edit: how much the part itself changed
"""
from __future__ import annotations

import numpy as np

from si_jax import metrics
from si_jax.world import ATTRIBUTES, NUISANCE, NUISANCE_RANGE
from si_jax.world import judges as judges_lib
from si_jax.world.judge_training import nuisance_difference

JUDGE_COLUMNS = (("inside_mse", "MSE inside", None), ("judge_flipped", "judge flip rate", None),
                 ("judge_gain", "judge Δ→target", None), ("others_flipped", "other attrs flipped ↓", "low"),
                 ("nuisance_change", "identity Δ ↓", "low"), ("fd", "FD ↓", "low"))
_SPAN = np.array([NUISANCE_RANGE[k][1] - NUISANCE_RANGE[k][0] for k in NUISANCE], np.float32)


class JudgeMetrics:
    """The judges' per-image metrics for edits of `attribute` (keys in the module docstring)."""

    def __init__(self, judges: judges_lib.Judges, attribute: str):
        if attribute not in ATTRIBUTES:
            raise ValueError(f"unknown toyfaces attribute {attribute!r}; expected one of {', '.join(ATTRIBUTES)}")
        self.judges, self.attribute, self.index = judges, attribute, ATTRIBUTES.index(attribute)

    def outputs(self, images) -> dict:
        """images [N, R, R, 3] -> {'logits' [N, A], 'nuisance' [N, K], 'features' [N, F]} as numpy."""
        return {k: np.asarray(v) for k, v in self.judges.outputs(images).items()}

    def __call__(self, img0, img, mask, target_sign) -> dict:
        """img0, img: [N, R, R, 3]; mask: [N, R, R] (1 inside); target_sign: [N] ±1. -> {key: [N] float32}."""
        a, b = self.outputs(img0), self.outputs(img)
        la, lb = a["logits"], b["logits"]
        others = [i for i in range(len(ATTRIBUTES)) if i != self.index]
        i = self.index
        nuis = np.abs(np.asarray(nuisance_difference(b["nuisance"], a["nuisance"]))) / _SPAN
        out = {"judge_before": la[:, i], "judge_after": lb[:, i],
               "judge_gain": metrics.score_gain(la[:, i], lb[:, i], target_sign),
               "judge_flipped": (la[:, i] * lb[:, i] < 0),
               "others_flipped": np.mean(la[:, others] * lb[:, others] < 0, axis=1),
               "others_change": np.mean(np.abs(lb[:, others] - la[:, others]), axis=1),
               "nuisance_change": np.mean(nuis, axis=1),
               "inside_mse": np.asarray(metrics.outside_mask_mse(img, img0, 1.0 - np.asarray(mask, np.float32)))}
        return {k: np.asarray(v, np.float32) for k, v in out.items()}

    def features(self, images) -> np.ndarray:
        """[N, F] classifier features (the space of the Fréchet distance)."""
        return self.outputs(images)["features"]


def frechet_with_spread(features, reference, *, resamples: int = 20, seed: int = 0) -> dict:
    """Fréchet distance of a set of features [N, F] to reference features [M, F], with the std over bootstrap
    resamples of the set (an FD is one number per set; the spread says how much of a difference is noise).
    -> {'mean', 'std', 'n', 'n_nonfinite'} like comparison's per-metric statistics."""
    features = np.asarray(features, np.float64)
    rng = np.random.default_rng(seed)
    boot = [metrics.frechet_distance(features[rng.integers(0, len(features), len(features))], reference)
            for _ in range(resamples)]
    return {"mean": float(metrics.frechet_distance(features, reference)), "std": float(np.std(boot)),
            "n": int(len(features)), "n_nonfinite": 0}
