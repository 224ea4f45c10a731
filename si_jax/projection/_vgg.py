"""An optional perceptual loss from a VGG16 whose weights the user supplies (torchvision `vgg16` state dict).

The file is what `torch.save(torchvision.models.vgg16(weights=...).state_dict(), path)` writes; it is read by
`weights_convert.torch_storage.read_torch_zip` (a restricted unpickler: no code from the file runs). Only the
13 convolutions of `features` are used (`features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight` [O, I, 3, 3] and
`.bias` [O]); the classifier is ignored. Channel counts are read from the file, so a small file of the same
layout (tests) works the same way as the real 528 MB one.

Distance (LPIPS-like, without LPIPS' learned per-channel weights, which torchvision does not ship):
    d(x, t) = Σ_b mean_{h,w} ‖ f̂_b(x) − f̂_b(t) ‖²,   f̂ = f / (‖f‖_channels + 1e-10)
over the ReLU outputs that end each of the 5 blocks (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3). Images in
[-1, 1] are mapped to [0, 1] and standardised with the ImageNet mean / std torchvision's weights expect; they are
used at their own resolution.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

# indices of the convolutions in torchvision's vgg16().features; a block ends before each max-pool
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
BLOCK_ENDS = (2, 7, 14, 21, 28)          # last conv of each block (its ReLU output is a feature map)
POOL_AFTER = (2, 7, 14, 21)              # max-pool 2x2 after these convs (the one after 28 is not needed)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def load_vgg16(path) -> list:
    """torchvision vgg16 state-dict file -> list of 13 (kernel [3, 3, I, O] HWIO, bias [O]) float32 pairs.

    ValueError naming the file and the first problem (missing key, wrong shape, channel chain broken)."""
    from weights_convert.errors import WeightsFormatError
    from weights_convert.torch_storage import read_torch_zip

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--vgg16 {path}: file not found")
    try:
        sd = read_torch_zip(path, str(path))
    except WeightsFormatError as e:
        raise ValueError(f"--vgg16 {path}: {e}") from None
    if not isinstance(sd, dict):
        raise ValueError(f"--vgg16 {path}: holds a {type(sd).__name__}, not a state dict; save "  # noqa: TRY004
                         "vgg16().state_dict() with torch.save")   # (a bad input file: one-line error, exit 1)
    layers, prev = [], 3
    for i in CONV_INDICES:
        w, b = sd.get(f"features.{i}.weight"), sd.get(f"features.{i}.bias")
        if not isinstance(w, np.ndarray) or not isinstance(b, np.ndarray):
            raise ValueError(f"--vgg16 {path}: no tensor 'features.{i}.weight' / '.bias'; expected a "  # noqa: TRY004
                             "torchvision vgg16 state dict")
        if w.ndim != 4 or w.shape[1:] != (prev, 3, 3) or b.shape != (w.shape[0],):
            raise ValueError(f"--vgg16 {path}: features.{i}.weight has shape {w.shape} (bias {b.shape}), expected "
                             f"[O, {prev}, 3, 3] and [O]")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ValueError(f"--vgg16 {path}: features.{i} holds NaN or infinite values")
        layers.append((jnp.asarray(np.transpose(w, (2, 3, 1, 0)), jnp.float32), jnp.asarray(b, jnp.float32)))
        prev = w.shape[0]
    return layers


def vgg_features(layers, images) -> list:
    """images [N, H, W, 3] in [-1, 1] -> the 5 block outputs (ReLU), list of [N, H_b, W_b, C_b]."""
    x = ((images + 1.0) * 0.5 - IMAGENET_MEAN) / IMAGENET_STD
    feats = []
    for idx, (k, b) in zip(CONV_INDICES, layers):
        x = jax.nn.relu(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + b)
        if idx in BLOCK_ENDS:
            feats.append(x)
        if idx in POOL_AFTER:
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return feats


def perceptual_distance(layers, a, b) -> jax.Array:
    """a, b: [N, H, W, 3] in [-1, 1] -> [N] (module docstring). Needs H, W >= 16 (5 blocks, 4 pools)."""
    def unit(f):
        return f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + 1e-10)

    fa, fb = vgg_features(layers, a), vgg_features(layers, b)
    return sum(jnp.mean(jnp.sum(jnp.square(unit(x) - unit(y)), axis=-1), axis=(1, 2)) for x, y in zip(fa, fb))
