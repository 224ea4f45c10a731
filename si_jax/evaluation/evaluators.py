"""Table 2's columns as evaluators chosen by name (bin/evaluate.py --evaluators, engines' paper suite).

    chosen = resolve("outside_mse,ssim,judge")          # -> (Evaluator, ...); unknown name: ValueError listing them
    vals = measure_image(chosen, Edited(ref, img, mask, sign, data_range), Tools(s_direction=d))   # {key: [B]}

An Evaluator is (name, needs, columns, per_image, features, of_set): `needs` names the Tools fields it cannot do
without; `columns` are its Table 2 columns (metric key, Markdown header, better: 'low' | 'high' | None), in table
order. A per-image evaluator maps one batch of one method's edits to {key: [B] float32}; a set evaluator (FD) maps
images to features [B, F] (`features`) and a whole row's features to one statistic (`of_set`).

    name         columns (keys)                                 needs
    outside_mse  mse_outside (+ mse_outside_recon, projected)   -
    ssim         ssim_outside                                   -
    psnr         psnr_outside                                   -
    s_score      s_score_gain, flipped (+ _before/_after/_change)   s_direction (the S-space SVM)
    classifier   classifier_gain (+ _before/_after/_change)     classifier (images -> [N] scores)
    judge        inside_mse, judge_flipped, judge_gain, others_flipped, nuisance_change   judge (the toyfaces judges)
    fd           fd (Fréchet distance of the row's images)      judge, reference_features

DEFAULT is every name in this order: with it, each evaluator whose needs are met runs (Table 2 as it always was).
Named explicitly, an evaluator whose needs are not met is an error (`check_needs`). `register` adds a plug-in.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from si_jax import metrics
from si_jax.evaluation import judged


class Edited(NamedTuple):
    """One batch of one method's edits. reference, image: [B, R, R, C] (what the edit is compared with: h(s), or the
    user's input image for projected codes); mask [B, R, R] (1 inside); target_sign [B] ±1; data_range: scalar
    (SSIM / PSNR; the same for every method); styles_before/after: lists of [B, dim_l] (or flat [B, S]) or None;
    recon: [B, R, R, C] the codes' reconstruction h(s) when reference is the input image, else None."""

    reference: np.ndarray
    image: np.ndarray
    mask: np.ndarray
    target_sign: np.ndarray
    data_range: float
    styles_before: object = None
    styles_after: object = None
    recon: np.ndarray | None = None


class Tools(NamedTuple):
    """What evaluators may need besides the images: the S-space SVM (editing.directions.Direction), a classifier
    hook images -> [N], the toyfaces judges (judged.JudgeMetrics) and the FD's reference features [M, F]."""

    s_direction: object = None
    classifier: Callable | None = None
    judge: judged.JudgeMetrics | None = None
    reference_features: np.ndarray | None = None


class Evaluator(NamedTuple):
    name: str
    needs: tuple
    columns: tuple
    per_image: Callable | None = None    # (Edited, Tools) -> {key: [B]}
    features: Callable | None = None     # (images [B, R, R, C], Tools) -> [B, F]
    of_set: Callable | None = None       # (features [N, F], Tools) -> {'mean', 'std', 'n', 'n_nonfinite'}


def _flat(styles) -> np.ndarray:
    """A list over layers of [N, dim_l] -> flat [N, S]; an array is taken as already flat."""
    if isinstance(styles, (list, tuple)):
        return np.concatenate([np.asarray(s) for s in styles], axis=-1)
    return np.asarray(styles)


def _outside_mse(e: Edited, t: Tools) -> dict:
    out = {"mse_outside": metrics.outside_mask_mse(e.image, e.reference, e.mask)}
    if e.recon is not None:
        out["mse_outside_recon"] = metrics.outside_mask_mse(e.image, e.recon, e.mask)
    return out


def _ssim(e: Edited, t: Tools) -> dict:
    return {"ssim_outside": metrics.ssim(e.reference, e.image, data_range=e.data_range, mask=e.mask)}


def _psnr(e: Edited, t: Tools) -> dict:
    return {"psnr_outside": metrics.psnr(e.image, e.reference, data_range=e.data_range, mask=e.mask)}


def _scores(prefix: str, before, after, sign) -> dict:
    return {f"{prefix}_before": before, f"{prefix}_after": after,
            f"{prefix}_change": metrics.score_change(before, after), f"{prefix}_gain": metrics.score_gain(
                before, after, sign)}


def _s_score(e: Edited, t: Tools) -> dict:
    if e.styles_before is None or e.styles_after is None:
        return {}
    before = t.s_direction.decision(_flat(e.styles_before)).astype(np.float32)
    after = t.s_direction.decision(_flat(e.styles_after)).astype(np.float32)
    return {**_scores("s_score", before, after, e.target_sign), "flipped": (before * after < 0).astype(np.float32)}


def _classifier(e: Edited, t: Tools) -> dict:
    n = len(e.reference)
    before = np.asarray(t.classifier(e.reference), np.float32).reshape(n)
    after = np.asarray(t.classifier(e.image), np.float32).reshape(n)
    return _scores("classifier", before, after, e.target_sign)


def _judge(e: Edited, t: Tools) -> dict:
    return t.judge(e.reference, e.image, e.mask, e.target_sign)


def _judge_features(images, t: Tools) -> np.ndarray:
    return t.judge.features(images)


def _fd(features, t: Tools) -> dict:
    return judged.frechet_with_spread(features, t.reference_features)


_JUDGE = dict((c[0], c) for c in judged.JUDGE_COLUMNS)
REGISTRY = {e.name: e for e in (
    Evaluator("outside_mse", (), (("mse_outside", "MSE outside ↓", "low"),
                                  ("mse_outside_recon", "MSE outside vs recon ↓", "low")), _outside_mse),
    Evaluator("ssim", (), (("ssim_outside", "SSIM outside ↑", "high"),), _ssim),
    Evaluator("psnr", (), (("psnr_outside", "PSNR outside (dB) ↑", "high"),), _psnr),
    Evaluator("s_score", ("s_direction",), (("s_score_gain", "S score Δ→target", None), ("flipped", "flip rate", None)),
              _s_score),
    Evaluator("classifier", ("classifier",), (("classifier_gain", "classifier Δ→target", None),), _classifier),
    Evaluator("judge", ("judge",), tuple(c for k, c in _JUDGE.items() if k != "fd"), _judge),
    Evaluator("fd", ("judge", "reference_features"), (_JUDGE["fd"],), features=_judge_features, of_set=_fd),
)}
DEFAULT = tuple(REGISTRY)
NEEDS_WORDS = {"s_direction": "an S-space direction ('s' in the direction file)",
               "classifier": "a classifier hook (compare_methods' classifier=)",
               "judge": "the toyfaces judges (builtin:toyfaces, its demo or its directions)",
               "reference_features": "reference features of real images (the paper suite's FD reference)"}


def register(ev: Evaluator) -> Evaluator:
    """Add an evaluator to REGISTRY (a plug-in column; ValueError when its name is taken). -> ev. DEFAULT stays
    Table 2's own columns: a registered evaluator runs when named."""
    if ev.name in REGISTRY:
        raise ValueError(f"an evaluator named {ev.name!r} exists already")
    REGISTRY[ev.name] = ev
    return ev


def parse(names) -> tuple:
    """'outside_mse,ssim' or a sequence of names -> names (tuple, in the given order); None: DEFAULT. ValueError
    for an unknown name (listing the known ones), a name given twice, or none at all.

    >>> parse("ssim, outside_mse")
    ('ssim', 'outside_mse')
    >>> parse("sharpness")
    Traceback (most recent call last):
    ...
    ValueError: unknown evaluator(s) 'sharpness'; known: outside_mse, ssim, psnr, s_score, classifier, judge, fd
    """
    if names is None:
        return DEFAULT
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(names)
    bad = [n for n in names if n not in REGISTRY]
    if bad:
        raise ValueError(f"unknown evaluator(s) {', '.join(map(repr, bad))}; known: {', '.join(REGISTRY)}")
    if not names:
        raise ValueError(f"no evaluators given; known: {', '.join(REGISTRY)}")
    if len(set(names)) != len(names):
        raise ValueError(f"evaluators listed twice: {', '.join(names)}")
    return names


def resolve(names=None) -> tuple:
    """`parse`, then -> (Evaluator, ...)."""
    return tuple(REGISTRY[n] for n in parse(names))


def met(ev: Evaluator, tools: Tools) -> bool:
    return all(getattr(tools, need) is not None for need in ev.needs)


def check_needs(names, tools: Tools) -> None:
    """ValueError naming the first evaluator of `names` (explicitly chosen) whose needs `tools` lacks."""
    for ev in resolve(names):
        missing = [n for n in ev.needs if getattr(tools, n) is None]
        if missing:
            raise ValueError(f"evaluator '{ev.name}' needs {NEEDS_WORDS[missing[0]]}; leave it out of the "
                             "evaluators")


def applicable(names, tools: Tools) -> tuple:
    """The Evaluators of `names` (None: DEFAULT) whose needs `tools` meets, in order."""
    return tuple(ev for ev in resolve(names) if met(ev, tools))


def measure_image(evs, edited: Edited, tools: Tools) -> dict:
    """The per-image evaluators of `evs` on one batch -> {key: [B] float32} (their keys merged, in order)."""
    out = {}
    for ev in evs:
        if ev.per_image is not None:
            out.update(ev.per_image(edited, tools))
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def columns(evs) -> tuple:
    """The Table 2 columns (key, header, better) of evaluators `evs`, in order."""
    return tuple(c for ev in evs for c in ev.columns)


def records(table: dict, **context) -> list:
    """comparison.table2's dict -> one JSON-able record per row (method) and evaluator with a column in the table:
    {**context, 'method', 'evaluator', 'values': {column key: {'mean', 'std', 'n', 'n_nonfinite'}}} (the lines of
    a run folder's evaluations.jsonl)."""
    shown = [c["key"] for c in table["columns"]]
    out = []
    for m in table["rows"]:
        for ev in REGISTRY.values():
            keys = [k for k, _, _ in ev.columns if k in shown]
            if keys:
                out.append({**context, "method": m, "evaluator": ev.name,
                            "values": {k: table["methods"][m][k] for k in keys}})
    return out
