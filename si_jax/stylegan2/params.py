"""Canonical weights (flat NVlabs-named numpy dict, see weights_convert/FORMATS.md) <-> the JAX params pytree.

`to_jax_params` / `from_jax_params` convert both ways; `equalized_lr_scales` gives the per-leaf gains that make
Adam on the pytree NVlabs' equalized-learning-rate Adam (derivation in its docstring).

The pytree folds the equalized-learning-rate gains that are constant into the arrays once (mapping and affine
gains, conv weights to HWIO). Conv weights stay unscaled, as in NVlabs: demodulation makes their gain a no-op.

    {'mapping': {'fc': [{'w': [in, out], 'b': [out]}, ...], 'w_avg': [w_dim]},
     'const': [4, 4, C],
     'layers': [  # one per style layer, forward order (cfg.layers)
        {'affine_w': [w_dim, dim], 'affine_b': [dim], 'weight': [k, k, in, out], 'bias': [out],
         + conv only: 'noise_const': [R, R], 'noise_strength': []}, ...]}
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.storage import fingerprint  # noqa: F401  (re-exported: a generator's fingerprint)
from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config


def _get(canonical: dict, key: str, shape: tuple) -> np.ndarray:
    if key not in canonical:
        raise ValueError(f"weights are missing tensor {key!r}")
    arr = np.asarray(canonical[key], np.float32)
    if arr.shape != tuple(shape):
        raise ValueError(f"tensor {key!r} has shape {arr.shape}, the config implies {tuple(shape)}")
    return arr


def to_jax_params(canonical: dict, cfg: G2Config, dtype=jnp.float32) -> dict:
    """Canonical flat dict -> params pytree (float32 device arrays). Validates every shape against `cfg`."""
    lr, fc, dim_in = cfg.mapping_lr_multiplier, [], cfg.z_dim
    for i in range(cfg.mapping_layers):
        w = _get(canonical, f"mapping.fc{i}.weight", (cfg.w_dim, dim_in))
        b = _get(canonical, f"mapping.fc{i}.bias", (cfg.w_dim,))
        fc.append({"w": w.T * np.float32(lr / math.sqrt(dim_in)), "b": b * np.float32(lr)})
        dim_in = cfg.w_dim
    c4 = cfg.channel_dict[4]
    params = {
        "mapping": {"fc": fc, "w_avg": _get(canonical, "mapping.w_avg", (cfg.w_dim,))},
        "const": _get(canonical, "synthesis.b4.const", (c4, 4, 4)).transpose(1, 2, 0),
        "layers": [],
    }
    for spec in cfg.layers:
        p, k = f"synthesis.{spec.name}", 3 if spec.kind == "conv" else 1
        lp = {
            "affine_w": _get(canonical, f"{p}.affine.weight", (spec.dim, cfg.w_dim)).T
            * np.float32(1 / math.sqrt(cfg.w_dim)),
            "affine_b": _get(canonical, f"{p}.affine.bias", (spec.dim,)),
            "weight": _get(canonical, f"{p}.weight", (spec.out_ch, spec.in_ch, k, k)).transpose(2, 3, 1, 0),
            "bias": _get(canonical, f"{p}.bias", (spec.out_ch,)),
        }
        if spec.kind == "conv":
            lp["noise_const"] = _get(canonical, f"{p}.noise_const", (spec.res, spec.res))
            lp["noise_strength"] = _get(canonical, f"{p}.noise_strength", ())
        params["layers"].append(lp)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)


def from_jax_params(params, cfg: G2Config) -> dict:
    """Params pytree -> canonical flat dict (float32 numpy): the exact inverse of `to_jax_params`.

    The gains are divided out in float64 and rounded once, so to_jax_params(from_jax_params(p)) == p to within
    one float32 rounding (relative 1e-7) and the round trip canonical -> pytree -> canonical likewise.
    """
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    out, lr, dim_in = {}, cfg.mapping_lr_multiplier, cfg.z_dim
    for i, layer in enumerate(params["mapping"]["fc"]):
        out[f"mapping.fc{i}.weight"] = f64(layer["w"]).T / float(np.float32(lr / math.sqrt(dim_in)))
        out[f"mapping.fc{i}.bias"] = f64(layer["b"]) / float(np.float32(lr))
        dim_in = cfg.w_dim
    out["mapping.w_avg"] = f64(params["mapping"]["w_avg"])
    out["synthesis.b4.const"] = f64(params["const"]).transpose(2, 0, 1)
    for spec, lp in zip(cfg.layers, params["layers"]):
        p = f"synthesis.{spec.name}"
        out[f"{p}.affine.weight"] = f64(lp["affine_w"]).T / float(np.float32(1 / math.sqrt(cfg.w_dim)))
        out[f"{p}.affine.bias"] = f64(lp["affine_b"])
        out[f"{p}.weight"] = f64(lp["weight"]).transpose(3, 2, 0, 1)
        out[f"{p}.bias"] = f64(lp["bias"])
        if spec.kind == "conv":
            out[f"{p}.noise_const"] = f64(lp["noise_const"])
            out[f"{p}.noise_strength"] = f64(lp["noise_strength"])
    return {k: np.array(v, np.float32, order="C") for k, v in out.items()}


def equalized_lr_scales(cfg: G2Config) -> dict:
    """Per-leaf gains g (a pytree like `to_jax_params`' output, python floats) for equalized-lr training.

    NVlabs trains the STORED weights θ and runs the layer with g·θ (g = lr_mul/√fan_in for a mapping fc weight,
    lr_mul for its bias, 1/√w_dim for an affine weight, 1 for everything else; conv weights carry no gain because
    demodulation cancels it; the toRGB gain scales the style, not the weight). The pytree holds the runtime value
    φ = g·θ. With ∂L/∂θ = g·∂L/∂φ, one Adam step on θ moves φ by

        Δφ = g·Δθ = g · Adam(g·∂L/∂φ) = g · Adam(∂L/∂φ)   (Adam is invariant to the gradient's scale up to ε),

    so training φ is exactly NVlabs' Adam when the gradient is multiplied by g before Adam (this only matters
    through ε = 1e-8) and Adam's step by g after it (`si_jax.training` does both). Buffers get 0: mapping.w_avg
    (a running mean, tracked outside the trainable params) and noise_const (fixed).

    >>> cfg = G2Config.make(8, 64, 16, 8, 8, mapping_layers=2)
    >>> equalized_lr_scales(cfg)['mapping']['fc'][0]['w'] == 0.01 / math.sqrt(8)
    True
    """
    lr, fc, dim_in = cfg.mapping_lr_multiplier, [], cfg.z_dim
    for _ in range(cfg.mapping_layers):
        fc.append({"w": lr / math.sqrt(dim_in), "b": lr})
        dim_in = cfg.w_dim
    layers = []
    for spec in cfg.layers:
        lp = {"affine_w": 1 / math.sqrt(cfg.w_dim), "affine_b": 1.0, "weight": 1.0, "bias": 1.0}
        if spec.kind == "conv":
            lp.update(noise_const=0.0, noise_strength=1.0)
        layers.append(lp)
    return {"mapping": {"fc": fc, "w_avg": 0.0}, "const": 1.0, "layers": layers}


def random_canonical(cfg: G2Config, seed: int = 0, *, noise_strength: float = 0.1) -> dict:
    """A randomly initialised generator in canonical form (NVlabs init: N(0,1) weights, affine bias 1).

    Biases and noise strengths get small random values (as the fixtures do) so that every parameter matters.
    w_avg is the mean mapping output over 4096 seeded z.  Same FLOPs as a trained model of that config.
    """
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
    out, dim_in = {}, cfg.z_dim
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"] = normal(cfg.w_dim, dim_in) / np.float32(cfg.mapping_lr_multiplier)
        out[f"mapping.fc{i}.bias"] = 0.1 * normal(cfg.w_dim) / np.float32(cfg.mapping_lr_multiplier)
        dim_in = cfg.w_dim
    out["synthesis.b4.const"] = normal(cfg.channel_dict[4], 4, 4)
    for spec in cfg.layers:
        p, k = f"synthesis.{spec.name}", 3 if spec.kind == "conv" else 1
        out[f"{p}.weight"] = normal(spec.out_ch, spec.in_ch, k, k)
        out[f"{p}.bias"] = 0.1 * normal(spec.out_ch)
        out[f"{p}.affine.weight"] = normal(spec.dim, cfg.w_dim)
        out[f"{p}.affine.bias"] = 1 + 0.1 * normal(spec.dim)
        if spec.kind == "conv":
            out[f"{p}.noise_const"] = normal(spec.res, spec.res)
            out[f"{p}.noise_strength"] = np.asarray(noise_strength * rng.standard_normal(), np.float32)
    out["mapping.w_avg"] = np.zeros(cfg.w_dim, np.float32)
    z = np.random.default_rng(seed + 1).standard_normal((4096, cfg.z_dim)).astype(np.float32)
    w = network.mapping(to_jax_params(out, cfg), cfg, jnp.asarray(z))
    out["mapping.w_avg"] = np.asarray(w.mean(axis=0), np.float32)
    return out
