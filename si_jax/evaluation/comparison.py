"""Quantitative comparison of the edit methods: paper Table 2.

    res = compare_methods(params, cfg, z, dirs, masks, ('z', 'w', 's', 'intervention'), classifier=attr.score)
    markdown, table = table2(res)                                        # Table 2: mean ± std per method

Conventions: images NHWC float32 in the generator's raw range; masks [N, R, R], 1 INSIDE the edited component;
"outside" metrics use the pixels where the mask is 0 (si_jax.metrics). Every method is evaluated on the SAME
latents, masks and Δs_z / Δs_n (one `pipeline.prepare` per batch, then `pipeline.run_method` per method).

Per-image metrics (`edit_metrics`, arrays [N]):
  mse_outside     outside-mask MSE between h(s) and the edit (raw units; paper Table 2 "MSE")
  ssim_outside    SSIM of the outside region (metrics.ssim with mask; paper Table 2 "SSIM")
  psnr_outside    PSNR from the outside-mask MSE, dB (+inf when nothing outside changed)
  s_score_before / s_score_after / s_score_change   S-space SVM decision f_s on the flat styles, and after − before
  s_score_gain    (after − before) · target_sign: the change TOWARDS the requested attribute value
  flipped         1.0 where f_s changed sign (paper Eq. 6; its mean is metrics.flip_rate)
  classifier_*    the same four for the user's `classifier(images [N,H,W,C]) -> [N]` hook, when given (e.g. the
                  demo's RegionAttribute.score). Its positive direction is assumed to be the attribute's positive
                  class, like the directions' normals.
target_sign [N] is the sign of the Z step α (pipeline.EditBatch.alpha_z): +1 where the edit adds the attribute,
−1 where it removes it (target 'flip' goes both ways across a batch, so the raw change would average out).

Inputs without z (images projected by bin/project.py): `compare_methods(..., prepare=...)` takes each batch from
the hook (engines.project_edit.code_preparer) together with the user's ORIGINAL images. Every metric above then
compares the edit with that input image (the user's view), plus
  mse_outside_recon   outside-mask MSE between the edit and the reconstruction h(s) of the codes (what the
                      intervention's L_pix measures; the figures use the reconstruction too)

Each column belongs to an evaluator chosen by name (evaluation.evaluators: outside_mse, ssim, psnr, s_score,
classifier, judge, fd; `compare_methods(..., evaluators=...)` measures, `table2(..., evaluators=...)` shows them).

The figures (Figs. 2, 5, 6) are in evaluation.figure_data (their numbers) and evaluation.figure_panels (drawing);
bin/evaluate.py's driver is si_jax.engines.evaluate_cli.
"""
from __future__ import annotations

import time

import numpy as np

from si_jax import metrics
from si_jax.editing import batches, intervention, pipeline
from si_jax.editing import masks as masks_lib
from si_jax.evaluation import evaluators as evaluators_lib
from si_jax.stylegan2 import programs
from si_jax.stylegan2.config import G2Config

METHOD_NAMES = {"z": "Z-space", "w": "W-space", "interfacegan": "InterFaceGAN", "s": "S-space (Δs_n)",
                "intervention": "Style Intervention", "reconstruction": "reconstruction (no edit)"}
UNRANKED_ROWS = ("reconstruction",)   # rows that are no edit (the floor of projected images): never bold
# (metric key, Markdown header, better: 'low' | 'high' | None): every evaluator's, in table order
TABLE_COLUMNS = evaluators_lib.columns(evaluators_lib.resolve())


# ------------------------------------------------------------------------------------------------- Table 2

def edit_metrics(img0, img, mask, *, data_range, target_sign=None, s_direction=None, styles_before=None,
                 styles_after=None, classifier=None) -> dict:
    """Per-image metrics of ONE edit (see the module docstring for the keys): the evaluators outside_mse, ssim,
    psnr, and s_score / classifier where their inputs are given (evaluation.evaluators).

    img0: [N, R, R, C] input h(s); img: [N, R, R, C] edited; mask: [N, R, R] or [R, R]; data_range: scalar
    (SSIM/PSNR; use the SAME value for every method). target_sign: [N] of ±1 (default +1).
    s_direction + styles_before/after (lists of [N, dim_l] or flat [N, S]): the S-space classifier scores.
    classifier: images -> [N] scores, evaluated on img0 and img. Returns {key: np.ndarray [N] float}.
    """
    img0, img = np.asarray(img0, np.float32), np.asarray(img, np.float32)
    sign = np.ones(img0.shape[0], np.float32) if target_sign is None else np.asarray(target_sign, np.float32)
    tools = evaluators_lib.Tools(s_direction=s_direction, classifier=classifier)
    edited = evaluators_lib.Edited(img0, img, np.asarray(mask, np.float32), sign, data_range, styles_before,
                               styles_after)
    names = ("outside_mse", "ssim", "psnr", "s_score", "classifier")
    return evaluators_lib.measure_image(evaluators_lib.applicable(names, tools), edited, tools)


def check_methods(methods, condition_on) -> tuple:
    """Method names -> tuple, or ValueError: empty, unknown, listed twice, 'interfacegan' without `condition_on`."""
    methods = tuple(methods)
    if not methods:
        raise ValueError("no methods to compare")
    bad = [m for m in methods if m not in pipeline.METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(map(repr, bad))}; choose from {', '.join(pipeline.METHODS)}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods listed twice: {', '.join(methods)}")
    if "interfacegan" in methods and not condition_on:
        raise ValueError("method 'interfacegan' needs Z directions of other attributes to condition on "
                         "(condition_on / --condition_on)")
    return methods


def latent_preparer(params, cfg: G2Config, z, dirs: dict, *, truncation_psi: float = 1.0, target="flip",
                    distance: float = 3.0):
    """z [N, z_dim] -> prepare(positions [B] int) -> (pipeline.prepare of z[positions], None): the default
    batches of compare_methods (generated images: the input IS h(s), no separate reference image)."""
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != cfg.z_dim:
        raise ValueError(f"latents must have shape [N, {cfg.z_dim}], got {z.shape}")

    def prepare(positions):
        return pipeline.prepare(params, cfg, z[np.asarray(positions)], dirs, truncation_psi=truncation_psi,
                                target=target, distance=distance), None

    return prepare


def compare_methods(params, cfg: G2Config, z, dirs: dict, masks, methods, *,
                    config: intervention.InterventionConfig = intervention.InterventionConfig(), condition_on=(),
                    classifier=None, target="flip", distance: float = 3.0, truncation_psi: float = 1.0,
                    batch_size: int = 8, data_range=None, keep: int = 0, extra_methods=None, judge=None,
                    reference_features=None, prepare=None, evaluators=None, log=None) -> dict:
    """Run every method on the same samples and masks; per-method per-image metrics.

    z: [N, z_dim] latents (batches from `latent_preparer`); or, with `prepare`, the number of images N.
    prepare: fn(positions [B] int, the last batch padded with copies of its last index) -> (EditBatch,
    reference [B, R, R, C] or None): inputs without z, e.g. projected codes (engines.project_edit.code_preparer,
    reference = the user's original images). With a reference, the metrics compare each edit with it (module
    docstring; + 'mse_outside_recon'), while masks, the intervention and the figures see h(s).
    dirs: {'s', 'z', 'w'} Directions; masks: [N, R, R], [R, R] (shared), 'auto'
    (masks.auto_mask from the S-only edit, per image) or a function (img0, img_z, img_s) -> [B, R, R] of the
    input and the Z-only / S-only edits (e.g. a segmenter's part, attributes.toyfaces.part_mask_fn); methods:
    subset of pipeline.METHODS ('interfacegan' needs
    `condition_on`, Z Directions of other attributes). Images are processed in batches of `batch_size` (the last
    padded, so every batch reuses the same compiled programs); the intervention's loop is the one bin/edit.py
    picks for a run of that many batches (`intervention.resolve_loop`: 'one' for short runs of small images on
    CPU; the same Λ* within float tolerance). data_range: for SSIM/PSNR, default
    metrics.image_data_range of the first batch's input images (fixed for all methods and batches).
    keep: also return the inputs of the first `keep` images for the figures (see 'kept' below).
    extra_methods: {row name: fn(EditBatch, mask [B, R, R]) -> pipeline.EditOutput}, rows after `methods` (an
    intervention variant, the amortised Λ). judge: an evaluation.judged.JudgeMetrics, adding its per-image keys;
    with reference_features [M, F] also the Fréchet distance of each method's edited images ('set_metrics').
    evaluators: which columns are measured (evaluation.evaluators names, or 'a,b'): None = every one whose
    inputs are given; named, one whose inputs are missing is a ValueError.

    Returns {'num_images': N, 'methods': {method: {metric: [N]}} (keys in the module docstring),
             'evaluators': names of the evaluators measured,
             'reference': 'input' (prepare gave reference images) or 'generated',
             'seconds': {method: wall seconds}, 'data_range': float, 'masks': [N, R, R], 'target_sign': [N],
             'set_metrics': {method: {'fd': stat}} (with judge and reference_features; also row 'input'),
             'kept': None or {'styles', 'ds_z', 'ds_n': lists of [K, dim_l], 'lam': list of [K, dim_l] or None,
                              'mask': [K, R, R], 'input': [K, R, R, C], 'images': {method: [K, R, R, C]},
                              'layer_images': [L, K, R, R, C] or None, 'pix_error': [L + 1, K] or None}}.
    """
    methods = check_methods(methods, condition_on)
    tools = evaluators_lib.Tools(dirs.get("s"), classifier, judge, reference_features)
    if evaluators is not None:
        evaluators_lib.check_needs(evaluators, tools)
    evs = evaluators_lib.applicable(evaluators, tools)
    set_evs = [ev for ev in evs if ev.of_set is not None]
    extra_methods = dict(extra_methods or {})
    clash = sorted(set(extra_methods) & set(methods))
    if clash:
        raise ValueError(f"extra method names clash with methods: {', '.join(clash)}")
    rows = methods + tuple(extra_methods)
    if prepare is None:
        prepare = latent_preparer(params, cfg, z, dirs, truncation_psi=truncation_psi, target=target,
                                  distance=distance)
        n = len(z)
    else:
        n = int(z)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    res = cfg.img_resolution
    if isinstance(masks, str):
        if masks != "auto":
            raise ValueError(f"masks must be an array, a function or 'auto', got {masks!r}")
        masks = lambda img0, img_z, img_s: masks_lib.auto_mask(img0, img_s)  # noqa: E731
    from_images = callable(masks)
    if not from_images:
        masks = np.asarray(masks_lib.validate_masks(masks, n, res, res), np.float32)
    log = log or (lambda msg: None)
    synth = programs.synth_program(cfg)
    loop = intervention.resolve_loop(batches=-(-n // batch_size), resolution=res)   # for the run, as bin/edit.py
    per = {m: [] for m in rows}
    seconds = {m: 0.0 for m in rows}
    feats = {(ev.name, m): [] for ev in set_evs for m in ("input",) + rows}
    used_masks, signs, kept, against_input = [], [], [], False
    for start in range(0, n, batch_size):
        padded = batches.pad_batch(np.arange(start, min(start + batch_size, n)), batch_size)
        valid = padded.valid
        batch, reference = prepare(padded.array)
        img0 = np.asarray(synth(params, batch.styles))
        against_input = reference is not None
        ref = img0 if reference is None else np.asarray(reference, np.float32)
        if from_images:
            img_z, img_s = (np.asarray(synth(params, [s + d for s, d in zip(batch.styles, ds)]))
                            for ds in (batch.ds_z, batch.ds_n))
            mask = np.asarray(masks(img0, img_z, img_s), np.float32)
        else:
            mask = batches.pad_batch(masks[start:start + batch_size], batch_size).array
        if data_range is None:
            data_range = float(metrics.image_data_range(ref[:valid]))
        sign = batch.target_sign
        keep_here = start < keep
        outputs = {}
        for ev in set_evs:
            feats[ev.name, "input"].append(ev.features(ref[:valid], tools))
        for m in rows:
            t0 = time.perf_counter()
            if m in extra_methods:
                out = extra_methods[m](batch, mask)
            else:
                out = pipeline.run_method(params, cfg, batch, m, mask, dirs, config, target=target,
                                          distance=distance, condition_on=condition_on, return_layer_images=keep_here,
                                          loop=loop)
            image = np.asarray(out.image)
            seconds[m] += time.perf_counter() - t0
            outputs[m] = out
            edited = evaluators_lib.Edited(
                ref[:valid], image[:valid], mask[:valid], sign[:valid], data_range,
                [np.asarray(s)[:valid] for s in batch.styles], [np.asarray(s)[:valid] for s in out.styles],
                img0[:valid] if against_input else None)
            vals = evaluators_lib.measure_image(evs, edited, tools)
            for ev in set_evs:
                feats[ev.name, m].append(ev.features(image[:valid], tools))
            per[m].append(vals)
            log(f"  {m:>12}: images {start}-{start + valid - 1}, {time.perf_counter() - t0:.1f}s"
                + (f", outside MSE {float(np.mean(vals['mse_outside'])):.4g}" if "mse_outside" in vals else ""))
        used_masks.append(mask[:valid])
        signs.append(sign[:valid])
        if keep_here:
            kept.append(_kept_part(batch, img0, mask, outputs, min(valid, keep - start)))
    set_metrics = {}
    for (name, m), f in feats.items():
        ev = evaluators_lib.REGISTRY[name]
        set_metrics.setdefault(m, {}).update({key: ev.of_set(np.concatenate(f), tools) for key, _, _ in ev.columns})
    return {"num_images": n, "evaluators": [ev.name for ev in evs], "methods": {m: {k: np.concatenate([p[k] for p in per[m]]) for k in per[m][0]}
                                         for m in rows},
            "reference": "input" if against_input else "generated", "seconds": seconds, "set_metrics": set_metrics, "data_range": float(data_range),
            "masks": np.concatenate(used_masks),
            "target_sign": np.concatenate(signs), "kept": _merge_kept(kept) if kept else None}


def _kept_part(batch, img0, mask, outputs, k) -> dict:
    cut = lambda lst: [np.asarray(a)[:k] for a in lst]  # noqa: E731
    iv = outputs.get("intervention")
    res = iv.result if iv is not None else None
    return {"styles": cut(batch.styles), "ds_z": cut(batch.ds_z), "ds_n": cut(batch.ds_n),
            "lam": cut(res.lam) if res is not None else None, "mask": np.asarray(mask)[:k],
            "input": np.asarray(img0)[:k], "images": {m: np.asarray(o.image)[:k] for m, o in outputs.items()},
            "layer_images": res.layer_images[:, :k] if res is not None else None,
            "pix_error": res.pix_error[:, :k] if res is not None else None}


def _merge_kept(parts) -> dict:
    def cat_list(key):
        return None if parts[0][key] is None else [np.concatenate(x) for x in zip(*[p[key] for p in parts])]

    def cat(key, axis=0):
        return None if parts[0][key] is None else np.concatenate([p[key] for p in parts], axis=axis)

    return {"styles": cat_list("styles"), "ds_z": cat_list("ds_z"), "ds_n": cat_list("ds_n"), "lam": cat_list("lam"),
            "mask": cat("mask"), "input": cat("input"),
            "images": {m: np.concatenate([p["images"][m] for p in parts]) for m in parts[0]["images"]},
            "layer_images": cat("layer_images", 1), "pix_error": cat("pix_error", 1)}


def _stat(values) -> dict:
    v = np.asarray(values, np.float64)
    finite = bool(np.all(np.isfinite(v)))
    mean, std = (float(v.mean()), float(v.std())) if finite else (None, None)
    return {"mean": mean, "std": std, "n": int(v.size), "n_nonfinite": int(np.sum(~np.isfinite(v)))}


def _fmt(stat: dict, values) -> str:
    if stat["mean"] is None:
        v = np.asarray(values, np.float64)
        return "inf" if np.all(np.isposinf(v) | np.isfinite(v)) and np.any(np.isposinf(v)) else "nan"
    return f"{stat['mean']:.4g} ± {stat['std']:.2g}"


def _rank_value(results, stats, m, key) -> float:
    """The mean that ranks a method in a column: from the per-image values (+inf PSNR ranks best), else the
    set metric's."""
    if key in results["methods"][m]:
        return float(np.mean(np.asarray(results["methods"][m][key], np.float64)))
    return np.nan if stats[m][key]["mean"] is None else stats[m][key]["mean"]


def table2(results: dict, names: dict | None = None, evaluators=None) -> tuple:
    """Paper Table 2 from `compare_methods` output: mean ± std over samples, one row per method.

    -> (Markdown string, JSON-able dict {'num_images', 'data_range', 'rows': methods in order,
        'columns': [{key, header}],
        'methods': {method: {metric: {'mean', 'std', 'n', 'n_nonfinite'}}}, 'input_fd': stat or None}). mean/std
    are None when a value is non-finite (PSNR of an image with no change outside the mask is +inf; the table then
    says 'inf'). Set metrics (the judges' FD: std over bootstrap resamples) sit beside the per-image ones.
    The best mean of the columns with a direction (↓ / ↑) is bold, among the rows not in UNRANKED_ROWS. names:
    row labels (default METHOD_NAMES). evaluators: the columns of these evaluators only (evaluation.evaluators
    names, in their order; the statistics then hold exactly those columns), default: every column measured.
    """
    names = names or METHOD_NAMES
    methods = list(results["methods"])
    set_metrics = results.get("set_metrics") or {}
    stats = {m: {**{k: _stat(v) for k, v in results["methods"][m].items()}, **set_metrics.get(m, {})}
             for m in methods}
    shown = TABLE_COLUMNS if evaluators is None else evaluators_lib.columns(evaluators_lib.resolve(evaluators))
    cols = [c for c in shown if all(c[0] in stats[m] for m in methods)]
    if evaluators is not None:
        stats = {m: {k: stats[m][k] for k, _, _ in cols} for m in methods}
    best, ranked = {}, [m for m in methods if m not in UNRANKED_ROWS]
    for key, _, better in cols:
        means = [(v, m) for m in ranked if not np.isnan(v := _rank_value(results, stats, m, key))]
        if better and means and len(ranked) > 1:
            best[key] = (min if better == "low" else max)(means)[1]
    lines = ["| method | " + " | ".join(h for _, h, _ in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in methods:
        cells = []
        for key, _, _ in cols:
            text = _fmt(stats[m][key], results["methods"][m].get(key, np.nan))
            cells.append(f"**{text}**" if best.get(key) == m else text)
        lines.append(f"| {names.get(m, m)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"{results['num_images']} images, mean ± std over images. Outside = pixels outside the mask; MSE in "
                 f"raw generator units; SSIM/PSNR with data range {results['data_range']:.4g}. Δ→target: score "
                 "change towards the requested attribute value (S = S-space SVM decision). flip rate: fraction "
                 "whose S-space decision changed sign.")
    if results.get("reference") == "input":
        lines.append("Projected images: every column compares the edit with the ORIGINAL input image (outside, "
                     "inside, the judge's verdicts), except 'MSE outside vs recon', which compares it with the "
                     "codes' reconstruction h(s) (what the intervention's L_pix measures).")
    input_fd = set_metrics.get("input", {}).get("fd") if any(k == "fd" for k, _, _ in cols) else None
    if any(k == "judge_flipped" for k, _, _ in cols):
        fd = ("" if input_fd is None else f", and the Fréchet distance of its features to renders (± bootstrap std; "
              f"the unedited inputs: {input_fd['mean']:.3g})")
        lines.append("Judge columns (evaluation.judged): the independent classifier's flip rate and logit change of "
                     "the attribute, the fraction of the other attributes it sees flipped, the mean range-normalised "
                     f"change of its 12 nuisance estimates (identity){fd}. MSE inside: the change inside the mask.")
    table = {"num_images": int(results["num_images"]), "data_range": float(results["data_range"]), "rows": methods,
             "reference": results.get("reference", "generated"),
             "columns": [{"key": k, "header": h} for k, h, _ in cols], "methods": stats, "input_fd": input_fd,
             "seconds": {m: float(s) for m, s in results.get("seconds", {}).items()}}
    return "\n".join(lines), table
