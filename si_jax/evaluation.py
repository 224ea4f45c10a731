"""Quantitative comparison and the paper's analysis figures: Table 2, Fig. 2, Fig. 5, Fig. 6.

    res = compare_methods(params, cfg, z, dirs, masks, ('z', 'w', 's', 'intervention'), classifier=attr.score)
    markdown, table = table2(res)                                        # Table 2: mean ± std per method
    strip = interpolation_strip(params, cfg, styles, ds_z, ds_n, lam_star, coeffs)    # Fig. 5
    best = channel_mask_iou(params, cfg, styles, mask, layer)            # Fig. 2
    (and `fig6_layers_image` / `fig6_mse_plot` from `intervene(..., return_layer_images=True)`)

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

The end of the module drives `bin/evaluate.py` (flags -> inputs -> outputs), so the binary stays a thin shell.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from si_jax import cli, figures, intervention, masks as masks_lib, metrics, pipeline, stylegan2
from si_jax.config import G2Config
from si_jax.style_space import StyleSpace

METHOD_NAMES = {"z": "Z-space", "w": "W-space", "interfacegan": "InterFaceGAN", "s": "S-space (Δs_n)",
                "intervention": "Style Intervention"}
# (metric key, Markdown header, better: 'low' | 'high' | None)
TABLE_COLUMNS = (("mse_outside", "MSE outside ↓", "low"), ("ssim_outside", "SSIM outside ↑", "high"),
                 ("psnr_outside", "PSNR outside (dB) ↑", "high"), ("s_score_gain", "S score Δ→target", None),
                 ("flipped", "flip rate", None), ("classifier_gain", "classifier Δ→target", None))
DEMO_STEPS_PER_LAYER = 10  # the demo stays around a minute on 2 CPU cores; real models: InterventionConfig
DEFAULT_COEFFS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
FIG2_UPSAMPLING = "bilinear"


# ------------------------------------------------------------------------------------------------- Table 2

def _flat(styles) -> np.ndarray:
    return np.concatenate([np.asarray(s) for s in styles], axis=-1)


def edit_metrics(img0, img, mask, *, data_range, target_sign=None, s_direction=None, styles_before=None,
                 styles_after=None, classifier=None) -> dict:
    """Per-image metrics of ONE edit (see the module docstring for the keys).

    img0: [N, R, R, C] input h(s); img: [N, R, R, C] edited; mask: [N, R, R] or [R, R]; data_range: scalar
    (SSIM/PSNR; use the SAME value for every method). target_sign: [N] of ±1 (default +1).
    s_direction + styles_before/after (lists of [N, dim_l] or flat [N, S]): the S-space classifier scores.
    classifier: images -> [N] scores, evaluated on img0 and img. Returns {key: np.ndarray [N] float}.
    """
    img0, img = np.asarray(img0, np.float32), np.asarray(img, np.float32)
    n = img0.shape[0]
    mask = np.asarray(mask, np.float32)
    sign = np.ones(n, np.float32) if target_sign is None else np.asarray(target_sign, np.float32)
    out = {"mse_outside": metrics.outside_mask_mse(img, img0, mask),
           "ssim_outside": metrics.ssim(img0, img, data_range=data_range, mask=mask),
           "psnr_outside": metrics.psnr(img, img0, data_range=data_range, mask=mask)}
    if s_direction is not None and styles_before is not None and styles_after is not None:
        flat = (lambda s: np.asarray(s) if not isinstance(s, (list, tuple)) else _flat(s))
        before = s_direction.decision(flat(styles_before)).astype(np.float32)
        after = s_direction.decision(flat(styles_after)).astype(np.float32)
        out.update(s_score_before=before, s_score_after=after, s_score_change=metrics.score_change(before, after),
                   s_score_gain=metrics.score_change(before, after) * sign,
                   flipped=(before * after < 0).astype(np.float32))
    if classifier is not None:
        before = np.asarray(classifier(img0), np.float32).reshape(n)
        after = np.asarray(classifier(img), np.float32).reshape(n)
        out.update(classifier_before=before, classifier_after=after,
                   classifier_change=metrics.score_change(before, after),
                   classifier_gain=metrics.score_change(before, after) * sign)
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def _check_methods(methods, condition_on) -> tuple:
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


def compare_methods(params, cfg: G2Config, z, dirs: dict, masks, methods, *,
                    config: intervention.InterventionConfig = intervention.InterventionConfig(), condition_on=(),
                    classifier=None, target="flip", distance: float = 3.0, truncation_psi: float = 1.0,
                    batch_size: int = 8, data_range=None, keep: int = 0, log=None) -> dict:
    """Run every method on the same samples and masks; per-method per-image metrics.

    z: [N, z_dim]; dirs: {'s', 'z', 'w'} Directions; masks: [N, R, R], [R, R] (shared) or 'auto'
    (masks.auto_mask from the S-only edit, per image); methods: subset of pipeline.METHODS ('interfacegan' needs
    `condition_on`, Z Directions of other attributes). Images are processed in batches of `batch_size` (the last
    padded, so every batch reuses the same compiled programs). data_range: for SSIM/PSNR, default
    metrics.image_data_range of the first batch's input images (fixed for all methods and batches).
    keep: also return the inputs of the first `keep` images for the figures (see 'kept' below).

    Returns {'num_images': N, 'methods': {method: {metric: [N]}} (keys in the module docstring),
             'seconds': {method: wall seconds}, 'data_range': float, 'masks': [N, R, R], 'target_sign': [N],
             'kept': None or {'styles', 'ds_z', 'ds_n': lists of [K, dim_l], 'lam': list of [K, dim_l] or None,
                              'mask': [K, R, R], 'input': [K, R, R, C], 'images': {method: [K, R, R, C]},
                              'layer_images': [L, K, R, R, C] or None, 'pix_error': [L + 1, K] or None}}.
    """
    methods = _check_methods(methods, condition_on)
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != cfg.z_dim:
        raise ValueError(f"latents must have shape [N, {cfg.z_dim}], got {z.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n, res = len(z), cfg.img_resolution
    auto = isinstance(masks, str)
    if auto and masks != "auto":
        raise ValueError(f"masks must be an array or 'auto', got {masks!r}")
    if not auto:
        masks = np.asarray(masks_lib.validate_masks(masks, n, res, res), np.float32)
    log = log or (lambda msg: None)
    synth = intervention._synth_program(cfg)
    per = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    used_masks, signs, kept = [], [], []
    for start in range(0, n, batch_size):
        padded = cli.pad_batch(z[start:start + batch_size], batch_size)
        valid = padded.valid
        batch = pipeline.prepare(params, cfg, padded.array, dirs, truncation_psi=truncation_psi, target=target,
                                 distance=distance)
        img0 = np.asarray(synth(params, batch.styles))
        if auto:
            img_s = synth(params, [s + d for s, d in zip(batch.styles, batch.ds_n)])
            mask = np.asarray(masks_lib.auto_mask(img0, img_s), np.float32)
        else:
            mask = cli.pad_batch(masks[start:start + batch_size], batch_size).array
        if data_range is None:
            data_range = float(metrics.image_data_range(img0[:valid]))
        sign = np.where(np.asarray(batch.alpha_z) >= 0, 1.0, -1.0).astype(np.float32)
        keep_here = start < keep
        outputs = {}
        for m in methods:
            t0 = time.perf_counter()
            out = pipeline.run_method(params, cfg, batch, m, mask, dirs, config, target=target, distance=distance,
                                      condition_on=condition_on, return_layer_images=keep_here)
            image = np.asarray(out.image)
            seconds[m] += time.perf_counter() - t0
            outputs[m] = out
            vals = edit_metrics(img0[:valid], image[:valid], mask[:valid], data_range=data_range,
                                target_sign=sign[:valid], s_direction=dirs.get("s"),
                                styles_before=[np.asarray(s)[:valid] for s in batch.styles],
                                styles_after=[np.asarray(s)[:valid] for s in out.styles], classifier=classifier)
            per[m].append(vals)
            log(f"  {m:>12}: images {start}-{start + valid - 1}, {time.perf_counter() - t0:.1f}s, outside MSE "
                f"{float(np.mean(vals['mse_outside'])):.4g}")
        used_masks.append(mask[:valid])
        signs.append(sign[:valid])
        if keep_here:
            kept.append(_kept_part(batch, img0, mask, outputs, min(valid, keep - start)))
    return {"num_images": n, "methods": {m: {k: np.concatenate([p[k] for p in per[m]]) for k in per[m][0]}
                                         for m in methods},
            "seconds": seconds, "data_range": float(data_range), "masks": np.concatenate(used_masks),
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


def table2(results: dict) -> tuple:
    """Paper Table 2 from `compare_methods` output: mean ± std over samples, one row per method.

    -> (Markdown string, JSON-able dict {'num_images', 'data_range', 'rows': methods in order,
        'columns': [{key, header}],
        'methods': {method: {metric: {'mean', 'std', 'n', 'n_nonfinite'}}}}). mean/std are None when a value is
    non-finite (PSNR of an image with no change outside the mask is +inf; the table then says 'inf').
    The best mean of the MSE / SSIM / PSNR columns is bold.
    """
    methods = list(results["methods"])
    cols = [c for c in TABLE_COLUMNS if all(c[0] in results["methods"][m] for m in methods)]
    stats = {m: {k: _stat(v) for k, v in results["methods"][m].items()} for m in methods}
    best = {}
    for key, _, better in cols:
        means = [(float(np.mean(np.asarray(results["methods"][m][key], np.float64))), m) for m in methods]
        means = [(v, m) for v, m in means if not np.isnan(v)]  # +inf PSNR (nothing changed outside) ranks best
        if better and means and len(methods) > 1:
            best[key] = (min if better == "low" else max)(means)[1]
    lines = ["| method | " + " | ".join(h for _, h, _ in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for m in methods:
        cells = []
        for key, _, _ in cols:
            text = _fmt(stats[m][key], results["methods"][m][key])
            cells.append(f"**{text}**" if best.get(key) == m else text)
        lines.append(f"| {METHOD_NAMES.get(m, m)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"{results['num_images']} images, mean ± std over images. Outside = pixels outside the mask; MSE in "
                 f"raw generator units; SSIM/PSNR with data range {results['data_range']:.4g}. Δ→target: score "
                 "change towards the requested attribute value (S = S-space SVM decision). flip rate: fraction "
                 "whose S-space decision changed sign.")
    table = {"num_images": int(results["num_images"]), "data_range": float(results["data_range"]), "rows": methods,
             "columns": [{"key": k, "header": h} for k, h, _ in cols], "methods": stats,
             "seconds": {m: float(s) for m, s in results.get("seconds", {}).items()}}
    return "\n".join(lines), table


# ------------------------------------------------------------------------------------------------- Fig. 5

def interpolation_strip(params, cfg: G2Config, styles, ds_z, ds_n, lam_star, coeffs) -> np.ndarray:
    """Fig. 5: Λ* fixed, the coefficient of Δs_n varied.

    Eq. 8 writes the intervention's edit as Δs_m(Λ*) = (1 − Λ*)⊙Δs_z + Λ*⊙Δs_n. "Change the coefficient of Δs_n"
    (paper Sec. 4.3) is taken literally: the Δs_n term is scaled by c, the Δs_z term is left as it is:

        s(c) = s + (1 − Λ*)⊙Δs_z + c·Λ*⊙Δs_n          image_c = h(s(c))

    so c = 1 is exactly the Style Intervention result, c = 0 keeps only the Z-space part that Λ* let through
    (no Δs_n at all), and c > 1 extrapolates along Δs_n. (Scaling the whole Δs_m would also scale the Z-space
    part, i.e. change the coefficient of Δs_z too.) If the locality of the result came from the optimisation
    alone, moving c would bring back changes outside the mask; the paper's claim is that it does not
    (`strip_outside_mse`).

    styles, ds_z, ds_n, lam_star: lists over layers of [B, dim_l]; coeffs: [K] floats -> images [K, B, R, R, C].
    """
    coeffs = np.asarray(coeffs, np.float32).reshape(-1)
    if coeffs.size == 0 or not np.all(np.isfinite(coeffs)):
        raise ValueError(f"coeffs must be a non-empty list of finite numbers, got {coeffs.tolist()}")
    base = [jnp.asarray(s) + (1.0 - jnp.asarray(l)) * jnp.asarray(dz) for s, dz, l in zip(styles, ds_z, lam_star)]
    along = [jnp.asarray(l) * jnp.asarray(dn) for dn, l in zip(ds_n, lam_star)]
    synth = intervention._synth_program(cfg)
    return np.stack([np.asarray(synth(params, [b + float(c) * a for b, a in zip(base, along)])) for c in coeffs])


def strip_outside_mse(strip, img0, mask) -> np.ndarray:
    """Outside-mask MSE of every strip image against the input: strip [K, B, R, R, C], img0 [B, R, R, C],
    mask [B, R, R] -> [K, B]."""
    return np.stack([np.asarray(metrics.outside_mask_mse(s, img0, mask)) for s in np.asarray(strip)])


# ------------------------------------------------------------------------------------------------- Fig. 2

def _check_conv_layer(cfg: G2Config, layer: int) -> int:
    n = len(cfg.layers)
    if not isinstance(layer, (int, np.integer)) or not -n <= layer < n:
        raise ValueError(f"layer must be an index into the {n} style layers, got {layer!r}")
    layer = int(layer) % n
    if cfg.layers[layer].kind != "conv":
        convs = [f"{i} ({l.name})" for i, l in enumerate(cfg.layers) if l.kind == "conv"]
        raise ValueError(f"layer {layer} ({cfg.layers[layer].name}) is a toRGB layer; Fig. 2 needs a conv layer: "
                         f"{', '.join(convs)}")
    return layer


def resolve_layer(cfg: G2Config, spec) -> int:
    """A conv layer from an index ('7', '-2') or a name ('b16.conv1'); '' or None = `default_fig2_layer`."""
    if spec is None or str(spec).strip() == "":
        return default_fig2_layer(cfg)
    text = str(spec).strip()
    try:
        idx = int(text)
    except ValueError:
        try:
            idx = StyleSpace.of(cfg).layer_index(text)
        except KeyError as e:
            raise ValueError(str(e).strip("'\"")) from None
    return _check_conv_layer(cfg, idx)


def default_fig2_layer(cfg: G2Config) -> int:
    """The last conv layer at resolution min(R / 2, 64): mid-level features, like the paper's Fig. 2."""
    target = min(cfg.img_resolution // 2, 64) if cfg.img_resolution > 4 else 4
    return max(i for i, l in enumerate(cfg.layers) if l.kind == "conv" and l.res <= target)


@functools.lru_cache(maxsize=None)
def _features_program(cfg: G2Config, layer: int):
    """styles -> activations x after style layer `layer`, upsampled (bilinear) to the image resolution."""
    def run(params, styles):
        b = styles[0].shape[0]
        x = stylegan2.run_layers(params, cfg, stylegan2.initial_state(params, b), styles, 0, layer + 1).x
        r = cfg.img_resolution
        return jax.image.resize(x, (b, r, r, x.shape[-1]), method=FIG2_UPSAMPLING)

    return jax.jit(run)


def channel_maps(params, cfg: G2Config, styles, layer: int) -> np.ndarray:
    """Feature maps after conv layer `layer` (activation x after bias + lrelu), upsampled to the image resolution
    with bilinear interpolation (half-pixel centres, jax.image.resize; as in network/GAN dissection).
    styles: list of [B, dim_l] -> [B, R, R, C_layer] float32."""
    layer = _check_conv_layer(cfg, layer)
    return np.asarray(_features_program(cfg, layer)(params, [jnp.asarray(s) for s in styles]))


def top_fraction_maps(maps, top_frac: float = 0.05) -> np.ndarray:
    """Binarise each channel of each image: 1 at its top `top_frac` spatial locations (values >= the k-th largest,
    k = ceil(top_frac·R·R); ties at the threshold are all kept), 0 elsewhere. maps: [B, R, R, C] -> bool."""
    if not 0.0 < top_frac <= 1.0:
        raise ValueError(f"top_frac must be in (0, 1], got {top_frac}")
    maps = jnp.asarray(maps, jnp.float32)
    b, h, w, c = maps.shape
    k = max(1, int(math.ceil(top_frac * h * w)))
    flat = jnp.moveaxis(maps.reshape(b, h * w, c), 1, 2)                     # [B, C, HW]
    kth = jax.lax.top_k(flat, k)[0][..., -1]                                  # [B, C]
    return np.asarray(maps >= kth[:, None, None, :])


def mask_ious(binary, mask) -> np.ndarray:
    """IoU of each channel's binary map with the mask (> 0.5 = inside). binary: [B, R, R, C] bool, mask: [B, R, R]
    or [R, R] -> [B, C] (0 where both are empty)."""
    binary = np.asarray(binary, bool)
    m = np.broadcast_to(np.asarray(mask) > 0.5, binary.shape[:3])[..., None]
    inter = np.sum(binary & m, axis=(1, 2))
    union = np.sum(binary | m, axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float64)


def iou_upper_bound(binary, mask, channel: int = 0) -> np.ndarray:
    """Highest IoU any map with as many pixels as `binary[..., channel]` can reach against the mask, per image:
    min(|map|, |mask|) / max(|map|, |mask|). With a 5 % map and a larger mask it is well below 1. -> [B]."""
    a = np.sum(np.asarray(binary)[..., channel], axis=(1, 2)).astype(np.float64)
    m = np.sum(np.broadcast_to(np.asarray(mask) > 0.5, a.shape + np.asarray(binary).shape[1:3]), axis=(1, 2))
    return np.minimum(a, m) / np.maximum(np.maximum(a, m), 1)


def channel_ious(params, cfg: G2Config, styles, mask, layer: int, top_frac: float = 0.05,
                 batch_size: int = 8) -> tuple:
    """Per-image per-channel IoU of the binarised feature maps with the mask.
    -> (iou [B, C] float64, binary maps [B, R, R, C] bool). Processed in chunks of `batch_size` images."""
    layer = _check_conv_layer(cfg, layer)
    b = np.asarray(styles[0]).shape[0]
    mask = np.broadcast_to(np.asarray(mask, np.float32), (b, cfg.img_resolution, cfg.img_resolution))
    ious, bins = [], []
    for start in range(0, b, batch_size):
        chunk = [np.asarray(s)[start:start + batch_size] for s in styles]
        binary = top_fraction_maps(channel_maps(params, cfg, chunk, layer), top_frac)
        ious.append(mask_ious(binary, mask[start:start + batch_size]))
        bins.append(binary)
    return np.concatenate(ious), np.concatenate(bins)


def channel_mask_iou(params, cfg: G2Config, styles, mask, layer: int, top_frac: float = 0.05, k: int = 5) -> list:
    """Fig. 2: channels of conv layer `layer` whose top-`top_frac` activation region best matches the mask.

    Feature maps after the layer (`channel_maps`: bilinear upsampling to the image resolution), binarised per
    channel per image at the top 5 % locations (`top_fraction_maps`), IoU with the mask per image, averaged over
    images. styles: lists of [B, dim_l]; mask: [B, R, R] or [R, R]. -> [(channel, mean IoU)] of the best k,
    best first.
    """
    iou, _ = channel_ious(params, cfg, styles, mask, layer, top_frac)
    mean = iou.mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:k]
    return [(int(c), float(mean[c])) for c in order]


# ------------------------------------------------------------------------------------------------- drawing

def _display_size(res: int) -> int:
    return res * figures.upscale_for_viewing(res) if res < 128 else min(res, 256)


def _tile(img_u8: np.ndarray, size: int, smooth: bool = False) -> np.ndarray:
    if img_u8.shape[0] == size:
        return img_u8
    pil = Image.fromarray(np.ascontiguousarray(img_u8))
    return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR if smooth and size < img_u8.shape[0]
                                 else Image.Resampling.NEAREST))


def _tiles(images, lo, hi, size) -> list:
    return [_tile(figures.to_uint8(x, lo, hi)[..., :3] if x.shape[-1] >= 3 else
                  np.repeat(figures.to_uint8(x, lo, hi), 3, -1), size, smooth=True) for x in np.asarray(images)]


def _outline(tile: np.ndarray, mask, colour=(255, 40, 40)) -> np.ndarray:
    """Draw the mask boundary (resized to the tile) in `colour`."""
    size = tile.shape[0]
    m = _tile((np.asarray(mask) > 0.5).astype(np.uint8) * 255, size) > 127
    edge = np.zeros_like(m)
    edge[1:] |= m[1:] != m[:-1]
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    out = tile.copy()
    out[edge] = colour
    return out


def _diff_tile(a, b, scale, size) -> np.ndarray:
    """|a − b| averaged over channels, 0..scale -> black..white."""
    d = np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)), axis=-1) / max(scale, 1e-12)
    g = (np.clip(d, 0, 1) * 255 + 0.5).astype(np.uint8)
    return _tile(np.repeat(g[..., None], 3, -1), size)


def labelled_grid(rows, col_labels=(), row_labels=(), pad: int = 2) -> np.ndarray:
    """figures.grid plus a band of column labels on top and row labels on the left (PIL default font)."""
    body = figures.grid(rows, pad=pad)
    tile_h, tile_w = rows[0][0].shape[:2]
    top = 14 * max([1] + [str(s).count("\n") + 1 for s in col_labels]) + 2 if col_labels else 0
    left = 6 * max([0] + [len(str(s)) for s in row_labels]) + 8 if row_labels else 0
    img = Image.new("RGB", (body.shape[1] + left, body.shape[0] + top), "white")
    img.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(img)
    for j, text in enumerate(col_labels):
        draw.multiline_text((left + pad + j * (tile_w + pad) + 2, 2), str(text), fill="black", spacing=3)
    for i, text in enumerate(row_labels):
        draw.text((3, top + pad + i * (tile_h + pad) + tile_h // 2 - 5), str(text), fill="black")
    return np.asarray(img)


def fig5_image(strip, img0, mask, coeffs, mse) -> tuple:
    """Fig. 5 picture: per sample two rows, the strip (input first) and |image − input| (mask outlined).
    strip [K, B, R, R, C], img0 [B, R, R, C], mask [B, R, R], mse [K, B] -> (uint8 image, caption)."""
    strip, img0 = np.asarray(strip), np.asarray(img0)
    lo, hi = figures.display_range(img0)
    size = _display_size(img0.shape[1])
    scale = float(np.percentile(np.mean(np.abs(strip - img0[None]), -1), 99.5)) or 1.0
    rows, labels = [], []
    for b in range(img0.shape[0]):
        imgs = _tiles(np.concatenate([img0[b:b + 1], strip[:, b]]), lo, hi, size)
        rows.append([_outline(imgs[0], mask[b])] + imgs[1:])
        blank = np.full_like(imgs[0], 255)
        rows.append([blank] + [_outline(_diff_tile(strip[k, b], img0[b], scale, size), mask[b])
                               for k in range(len(coeffs))])
        labels += [f"#{b}", "|diff|"]
    cols = ["input"] + [f"c={c:g}\nMSE {np.mean(mse[k]):.3g}" for k, c in enumerate(coeffs)]
    caption = ("Fig. 5: lam* fixed, s(c) = s + (1 - lam*) ds_z + c lam* ds_n (c=1: the Style Intervention result).\n"
               "Rows: image, then |image - input| (white = %.3g); red: mask. MSE: outside-mask MSE vs input, mean "
               "over samples." % scale)
    return labelled_grid(rows, cols, labels), caption


def _layer_columns(num_layers: int, max_cols: int) -> list:
    """Layer indices to show: all when they fit, else evenly spaced, always including the last."""
    if num_layers <= max_cols:
        return list(range(num_layers))
    idx = np.unique(np.round(np.linspace(0, num_layers - 1, max_cols)).astype(int))
    return sorted(set(idx.tolist()) | {num_layers - 1})


def fig6_layers_image(layer_images, img_z, img0, mask, layer_names, pix_error, max_layer_cols: int = 12) -> tuple:
    """Fig. 6(a): rows = images, columns = Z edit, result after layer 1..L (subsampled to `max_layer_cols`, the
    last always kept), input (mask outlined). layer_images [L, B, R, R, C]; img_z, img0 [B, R, R, C];
    pix_error [L + 1, B]. -> (uint8 image, caption)."""
    layer_images = np.asarray(layer_images)
    lo, hi = figures.display_range(img0)
    size = _display_size(img0.shape[1])
    cols = _layer_columns(layer_images.shape[0], max_layer_cols)
    rows = []
    for b in range(img0.shape[0]):
        seq = np.concatenate([img_z[b:b + 1], layer_images[cols, b], img0[b:b + 1]])
        tiles = _tiles(seq, lo, hi, size)
        tiles[-1] = _outline(tiles[-1], mask[b])
        rows.append(tiles)
    mean = np.mean(pix_error, axis=1)
    labels = [f"Z edit\n{mean[0]:.3g}"] + [f"{i + 1}:{layer_names[i]}\n{mean[i + 1]:.3g}" for i in cols] + ["input"]
    caption = (f"Fig. 6: result after optimising each style layer (columns; {len(cols)} of {layer_images.shape[0]} "
               "layers shown), mean outside-mask MSE under each label")
    return labelled_grid(rows, labels, [f"#{b}" for b in range(img0.shape[0])]), caption


def fig6_mse_plot(pix_error, max_lines: int = 3) -> np.ndarray:
    """Fig. 6(b): outside-mask MSE after each layer (x: 0 = Z edit, i = after layer i); mean over images plus the
    first `max_lines` images. pix_error [L + 1, B] -> uint8 image."""
    pix = np.asarray(pix_error, np.float64)
    series = {"mean": pix.mean(axis=1)}
    for b in range(min(max_lines, pix.shape[1]) if pix.shape[1] > 1 else 0):
        series[f"image {b}"] = pix[:, b]
    return figures.line_plot(series, width=480, height=260,
                             title="outside-mask MSE after layer i (x=0: Z edit, x=L: final)")


def fig2_image(images, mask, binary, channels, ious, layer_name, max_rows: int = 6) -> tuple:
    """Fig. 2 picture: rows = images; columns: image (mask outlined), mask, the binarised top-5 % map of each chosen
    channel (white: map ∩ mask, cyan: map only, red: mask only), per-image IoU written on the tile.
    binary [B, R, R, C] bool; channels [k]; ious [B, C]. -> (uint8 image, caption)."""
    images = np.asarray(images)
    lo, hi = figures.display_range(images)
    size = _display_size(images.shape[1])
    rows = []
    for b in range(min(max_rows, images.shape[0])):
        m = np.asarray(mask[b]) > 0.5
        row = [_outline(_tiles(images[b:b + 1], lo, hi, size)[0], m),
               _tile(np.repeat((m[..., None] * 255).astype(np.uint8), 3, -1), size)]
        for c in channels:
            a = binary[b, ..., c]
            rgb = np.zeros(a.shape + (3,), np.uint8)
            rgb[a & m] = (255, 255, 255)
            rgb[a & ~m] = (0, 200, 220)
            rgb[~a & m] = (170, 30, 30)
            pil = Image.fromarray(_tile(rgb, size))
            ImageDraw.Draw(pil).text((3, 2), f"{ious[b, c]:.2f}", fill=(255, 230, 0))
            row.append(np.asarray(pil))
        rows.append(row)
    mean = ious.mean(axis=0)
    cols = ["image", "mask"] + [f"ch {c}\nIoU {mean[c]:.2f}" for c in channels]
    frac = np.mean(binary[..., channels[0]]) if len(channels) else 0.0
    caption = (f"Fig. 2: layer {layer_name}, top-{100 * frac:.0f}% locations of each channel's activation "
               f"({FIG2_UPSAMPLING} upsampled) vs mask; white: overlap, cyan: map only,\nred: mask only; per-image "
               f"IoU in yellow, mean under the label (highest possible mean IoU here: "
               f"{float(np.mean(iou_upper_bound(binary, mask, channels[0]))) if len(channels) else 0:.2f})")
    return labelled_grid(rows, cols, [f"#{b}" for b in range(len(rows))]), caption


# ------------------------------------------------------------------------------------------------- bin/evaluate.py

@dataclasses.dataclass
class EvalInputs:
    """Everything bin/evaluate.py resolved and validated before computing (nothing is written before this)."""

    params: dict
    cfg: G2Config
    dirs: dict
    z: np.ndarray
    masks: object                 # [N, R, R] float32 or 'auto'
    mask_desc: str
    methods: tuple
    skipped: dict
    condition_on: list
    config: intervention.InterventionConfig
    coeffs: tuple
    fig_layer: int
    out_dir: pathlib.Path
    classifier: object = None
    is_demo: bool = False


def parse_methods(text: str) -> tuple:
    methods = tuple(m.strip() for m in str(text).split(",") if m.strip())
    _check_methods(methods, condition_on=(True,))
    return methods


def parse_coeffs(text: str) -> tuple:
    try:
        coeffs = tuple(float(c) for c in str(text).split(",") if c.strip())
    except ValueError:
        raise ValueError(f"--coeffs must be comma-separated numbers, got {text!r}") from None
    if not coeffs or not all(math.isfinite(c) for c in coeffs):
        raise ValueError(f"--coeffs must be comma-separated finite numbers, got {text!r}")
    return coeffs


def check_output_dir(path, overwrite: bool) -> pathlib.Path:
    p = pathlib.Path(path)
    if p.exists() and not p.is_dir():
        raise FileExistsError(f"--output_dir {p} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise FileExistsError(f"--output_dir {p} is not empty; pass --overwrite to write into it")
    return p


def resolve_inputs(flags, is_demo: bool, log=print) -> EvalInputs:
    """Flags -> validated EvalInputs. Raises ValueError / FileNotFoundError / FileExistsError naming the problem."""
    from si_jax import demo, directions, editing_cli, io, params as params_lib, samples, synthetic

    methods = parse_methods(flags.methods)
    coeffs = parse_coeffs(flags.coeffs)
    for name in ("num_samples", "batch_size", "fig_images"):
        if getattr(flags, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(flags, name)}")
    if not 0.0 < flags.top_frac <= 1.0:
        raise ValueError(f"--top_frac must be in (0, 1], got {flags.top_frac}")
    steps = flags.steps_per_layer if flags.steps_per_layer is not None else (
        DEMO_STEPS_PER_LAYER if is_demo else intervention.InterventionConfig.steps_per_layer)
    config = intervention.InterventionConfig(steps_per_layer=steps, learning_rate=flags.learning_rate)
    out_dir = flags.output_dir or ("si_jax_eval_demo" if is_demo else None)
    if not out_dir:
        raise ValueError("--output_dir is required")
    out_dir = check_output_dir(out_dir, flags.overwrite)
    if is_demo:  # validate the cheap things against the demo generator's layout before fitting its directions
        cfg = synthetic.DEMO_CONFIG
        mask_spec = flags.mask or flags.masks or synthetic.RegionAttribute().box_spec
    else:
        canonical, cfg = io.load_canonical(flags.weights)
        mask_spec = flags.masks or flags.mask or "auto"
    n, res = flags.num_samples, cfg.img_resolution
    if mask_spec == "auto":
        masks = "auto"
    elif mask_spec.startswith(("box:", "ellipse:")):
        masks = np.broadcast_to(masks_lib.parse_mask_spec(mask_spec, res, res), (n, res, res))
    else:
        masks = masks_lib.load_masks(mask_spec, n, res, res)
    fig_layer = resolve_layer(cfg, flags.fig_layer)
    condition_on = [directions.load_directions(p)["z"] for p in flags.condition_on]
    for path, d in zip(flags.condition_on, condition_on):
        if d.dim != cfg.z_dim:
            raise ValueError(f"--condition_on {path}: Z direction of dimension {d.dim}, the generator has {cfg.z_dim}")
    skipped = {}
    if "interfacegan" in methods and not condition_on:
        skipped["interfacegan"] = "needs --condition_on direction files of other attributes (none given)"
        methods = tuple(m for m in methods if m != "interfacegan")
        if not methods:
            raise ValueError("nothing to compare: 'interfacegan' needs --condition_on and no other method was given")
    classifier = None
    if is_demo:
        log(demo.banner().replace("bin/edit.py", "bin/evaluate.py"))
        _, cfg, params, dirs, _ = demo.demo_setup(log)
        classifier = synthetic.RegionAttribute().score
    else:
        params = params_lib.to_jax_params(canonical, cfg)
        dirs = directions.load_directions(flags.direction)
        meta = directions.load_directions_meta(flags.direction)
        gid = params_lib.fingerprint(canonical)
        if meta.get("generator_id") not in (None, gid):
            raise ValueError(f"{flags.direction} was fitted for another generator (id {meta['generator_id']}, "
                             f"--weights has {gid})")
    editing_cli.check_directions(dirs, cfg, flags.direction or "demo")
    z = samples.latents(flags.seed, range(n), cfg.z_dim)
    return EvalInputs(params, cfg, dirs, z, masks, mask_spec, methods, skipped, condition_on, config, coeffs,
                      fig_layer, out_dir, classifier, is_demo)


def run_evaluation(inp: EvalInputs, flags, log=print) -> dict:
    """Compute Table 2 and the figures, then write them into inp.out_dir (created only now). -> the table dict."""
    from si_jax import runs

    for m, why in inp.skipped.items():
        log(f"note: skipping method '{m}': {why}")
    cfg, params = inp.cfg, inp.params
    log(f"comparing {', '.join(inp.methods)} on {len(inp.z)} samples (seed {flags.seed}), mask {inp.mask_desc}, "
        f"{inp.config.steps_per_layer} steps/layer")
    t0 = time.perf_counter()
    keep = min(flags.fig_images, len(inp.z))
    results = compare_methods(params, cfg, inp.z, inp.dirs, inp.masks, inp.methods, config=inp.config,
                              condition_on=inp.condition_on, classifier=inp.classifier, target=flags.target,
                              distance=flags.distance, truncation_psi=flags.truncation_psi,
                              batch_size=min(flags.batch_size, len(inp.z)), keep=keep, log=log)
    markdown, table = table2(results)
    coverage = float(np.mean(results["masks"]))
    table.update(skipped=inp.skipped, demo=inp.is_demo, settings=_settings(inp, flags), mask_coverage=coverage)
    if coverage > 0.5:
        log(f"note: the masks cover {100 * coverage:.0f}% of the image on average: the outside metrics see few "
            "pixels (SSIM ignores a 5-pixel border, and is 1 when nothing outside is left)")
    kept = results["kept"]
    pngs, extra = {}, {}
    names = [l.name for l in cfg.layers]
    if kept["lam"] is not None:
        strip = interpolation_strip(params, cfg, kept["styles"], kept["ds_z"], kept["ds_n"], kept["lam"],
                                    inp.coeffs)
        mse = strip_outside_mse(strip, kept["input"], kept["mask"])
        pngs["fig5_interpolation.png"] = fig5_image(strip, kept["input"], kept["mask"], inp.coeffs, mse)
        extra["fig5_interpolation.json"] = {
            "definition": "s(c) = s + (1 - lam*) * ds_z + c * lam* * ds_n; c = 1 is the Style Intervention result",
            "coeffs": list(inp.coeffs), "mse_outside_mean": mse.mean(axis=1).tolist(),
            "mse_outside_per_image": mse.T.tolist(), "z_edit_mse_outside_mean": float(kept["pix_error"][0].mean())}
        log("Fig. 5 outside-mask MSE along the strip (mean over %d samples; Z edit: %.4g): %s" % (
            keep, kept["pix_error"][0].mean(), ", ".join(f"c={c:g}: {v:.4g}" for c, v in
                                                         zip(inp.coeffs, mse.mean(axis=1)))))
        img_z = kept["images"]["z"] if "z" in kept["images"] else np.asarray(intervention._synth_program(cfg)(
            params, [s + d for s, d in zip(kept["styles"], kept["ds_z"])]))
        pngs["fig6_layers.png"] = fig6_layers_image(kept["layer_images"], img_z, kept["input"], kept["mask"], names,
                                                    kept["pix_error"])
        pngs["fig6_mse.png"] = (fig6_mse_plot(kept["pix_error"]), None)
        extra["fig6_mse.json"] = {"layers": ["Z edit"] + names, "mse_outside_mean": kept["pix_error"].mean(1).tolist(),
                                  "mse_outside_per_image": kept["pix_error"].T.tolist()}
    else:
        log("note: Figs. 5 and 6 need the 'intervention' method; not drawn")
    iou, binary = channel_ious(params, cfg, kept["styles"], kept["mask"], inp.fig_layer, flags.top_frac,
                               flags.batch_size)
    mean = iou.mean(axis=0)
    best = [int(c) for c in np.argsort(-mean, kind="stable")[:flags.top_channels]]
    pngs["fig2_channels.png"] = fig2_image(kept["input"], kept["mask"], binary, best, iou, names[inp.fig_layer])
    extra["fig2_iou.json"] = {"layer": inp.fig_layer, "layer_name": names[inp.fig_layer], "top_frac": flags.top_frac,
                              "upsampling": FIG2_UPSAMPLING, "num_images": int(iou.shape[0]),
                              "num_channels": int(iou.shape[1]),
                              "iou_upper_bound_mean": float(np.mean(iou_upper_bound(binary, kept["mask"], best[0]))),
                              "channels": [{"channel": c, "mean_iou": float(mean[c]),
                                            "per_image_iou": iou[:, c].tolist()} for c in best]}
    log(f"Fig. 2 ({names[inp.fig_layer]}): best channels by mean IoU with the mask: "
        + ", ".join(f"{c} ({mean[c]:.3f})" for c in best))
    table["seconds_total"] = time.perf_counter() - t0
    out = inp.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "table2.md").write_text(markdown + "\n")
    runs.write_json_atomic(out / "table2.json", table)
    for name, obj in extra.items():
        runs.write_json_atomic(out / name, obj)
    for name, (img, caption) in pngs.items():
        figures.save_png(out / name, img, caption=caption)
    log("")
    log(markdown)
    log("")
    log(f"outputs in {out}: table2.md, table2.json, " + ", ".join(sorted(list(pngs) + list(extra))))
    if inp.is_demo:
        log("(that was the demo: a random 32x32 generator and a synthetic attribute; pass --weights and --direction "
            "to evaluate a real model)")
    return table


def _settings(inp: EvalInputs, flags) -> dict:
    return {"weights": "builtin:demo" if inp.is_demo else flags.weights, "direction": flags.direction or "demo",
            "num_samples": len(inp.z), "seed": flags.seed, "mask": inp.mask_desc, "methods": list(inp.methods),
            "condition_on": list(flags.condition_on), "target": flags.target, "distance": flags.distance,
            "truncation_psi": flags.truncation_psi, "steps_per_layer": inp.config.steps_per_layer,
            "learning_rate": inp.config.learning_rate, "batch_size": flags.batch_size, "coeffs": list(inp.coeffs),
            "fig_layer": inp.fig_layer, "top_frac": flags.top_frac}


def main(flags, is_demo: bool, log=print) -> dict:
    """bin/evaluate.py: validate everything, then compute and write."""
    return run_evaluation(resolve_inputs(flags, is_demo, log), flags, log)
