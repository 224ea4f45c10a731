"""The numbers behind the paper's analysis figures: Fig. 5 (interpolation strip) and Fig. 2 (channel/mask IoU).

    strip = interpolation_strip(params, cfg, styles, ds_z, ds_n, lam_star, coeffs)    # Fig. 5: [K, B, R, R, C]
    mse = strip_outside_mse(strip, img0, mask)                                          # [K, B]
    best = channel_mask_iou(params, cfg, styles, mask, layer)                          # Fig. 2: [(channel, IoU)]

Fig. 6 needs no extra computation (`intervene(..., return_layer_images=True)`); the pictures of all three are
drawn by figure_panels. Conventions as in evaluation.comparison: images NHWC float32 in the generator's raw
range, masks [B, R, R] with 1 inside the edited component, styles lists over layers of [B, dim_l].
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from si_jax import metrics
from si_jax.stylegan2 import programs
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace

FIG2_UPSAMPLING = "bilinear"


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
    synth = programs.synth_program(cfg)
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


def channel_maps(params, cfg: G2Config, styles, layer: int) -> np.ndarray:
    """Feature maps after conv layer `layer` (activation x after bias + lrelu), upsampled to the image resolution
    with bilinear interpolation (half-pixel centres, jax.image.resize; as in network/GAN dissection).
    styles: list of [B, dim_l] -> [B, R, R, C_layer] float32."""
    layer = _check_conv_layer(cfg, layer)
    program = programs.features_program(cfg, layer, FIG2_UPSAMPLING)
    return np.asarray(program(params, [jnp.asarray(s) for s in styles]))


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
