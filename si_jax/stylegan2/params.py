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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.storage import fingerprint  # noqa: F401  (re-exported: a generator's fingerprint)
from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config


class Leaf(NamedTuple):
    """One row of the name table: canonical `name` (shape `shape`) <-> pytree `path`. The pytree holds
    gain · stored, transposed by `axes` (None: as is); `trained`: False for the buffers mapping.w_avg, noise_const."""

    name: str
    path: tuple
    shape: tuple
    axes: tuple | None = None
    gain: float = 1.0
    trained: bool = True


def leaves(cfg: G2Config) -> list:
    """The name table of the si_jax pytree: every tensor of a generator, in pytree order. `to_jax_params`,
    `from_jax_params` and `equalized_lr_scales` all read it.

    >>> cfg = G2Config.make(8, 64, 16, 8, 8, mapping_layers=2)
    >>> [(leaf.name, leaf.path) for leaf in leaves(cfg)][:2]
    [('mapping.fc0.weight', ('mapping', 'fc', 0, 'w')), ('mapping.fc0.bias', ('mapping', 'fc', 0, 'b'))]
    >>> len(leaves(cfg)) == 2 * 2 + 2 + 5 * 4 + 3 * 2   # 2 fc, w_avg + const, 5 layers, 3 of them convs (noise)
    True
    """
    lr, w_dim, dim_in = cfg.mapping_lr_multiplier, cfg.w_dim, cfg.z_dim
    out = []
    for i in range(cfg.mapping_layers):
        out += [Leaf(f"mapping.fc{i}.weight", ("mapping", "fc", i, "w"), (w_dim, dim_in), (1, 0),
                     lr / math.sqrt(dim_in)),
                Leaf(f"mapping.fc{i}.bias", ("mapping", "fc", i, "b"), (w_dim,), gain=lr)]
        dim_in = w_dim
    out += [Leaf("mapping.w_avg", ("mapping", "w_avg"), (w_dim,), trained=False),
            Leaf("synthesis.b4.const", ("const",), (cfg.channel_dict[4], 4, 4), (1, 2, 0))]
    for j, spec in enumerate(cfg.layers):
        p, k = f"synthesis.{spec.name}", 3 if spec.kind == "conv" else 1
        out += [Leaf(f"{p}.affine.weight", ("layers", j, "affine_w"), (spec.dim, w_dim), (1, 0),
                     1 / math.sqrt(w_dim)),
                Leaf(f"{p}.affine.bias", ("layers", j, "affine_b"), (spec.dim,)),
                Leaf(f"{p}.weight", ("layers", j, "weight"), (spec.out_ch, spec.in_ch, k, k), (2, 3, 1, 0)),
                Leaf(f"{p}.bias", ("layers", j, "bias"), (spec.out_ch,))]
        if spec.kind == "conv":
            out += [Leaf(f"{p}.noise_const", ("layers", j, "noise_const"), (spec.res, spec.res), trained=False),
                    Leaf(f"{p}.noise_strength", ("layers", j, "noise_strength"), ())]
    return out


def _tree(cfg: G2Config, value) -> dict:
    """The pytree with value(leaf) at each of `leaves(cfg)`."""
    tree = {"mapping": {"fc": [{} for _ in range(cfg.mapping_layers)]}, "const": None,
            "layers": [{} for _ in cfg.layers]}
    for leaf in leaves(cfg):
        node = tree
        for key in leaf.path[:-1]:
            node = node[key]
        node[leaf.path[-1]] = value(leaf)
    return tree


def _get(canonical: dict, key: str, shape: tuple) -> np.ndarray:
    if key not in canonical:
        raise ValueError(f"weights are missing tensor {key!r}")
    arr = np.asarray(canonical[key], np.float32)
    if arr.shape != tuple(shape):
        raise ValueError(f"tensor {key!r} has shape {arr.shape}, the config implies {tuple(shape)}")
    return arr


def to_jax_params(canonical: dict, cfg: G2Config, dtype=jnp.float32) -> dict:
    """Canonical flat dict -> params pytree (float32 device arrays). Validates every shape against `cfg`."""
    def value(leaf):
        arr = _get(canonical, leaf.name, leaf.shape)
        return (arr if leaf.axes is None else arr.transpose(leaf.axes)) * np.float32(leaf.gain)

    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), _tree(cfg, value))


def from_jax_params(params, cfg: G2Config) -> dict:
    """Params pytree -> canonical flat dict (float32 numpy): the exact inverse of `to_jax_params`.

    The gains are divided out in float64 and rounded once, so to_jax_params(from_jax_params(p)) == p to within
    one float32 rounding (relative 1e-7) and the round trip canonical -> pytree -> canonical likewise.
    """
    out = {}
    for leaf in leaves(cfg):
        node = params
        for key in leaf.path:
            node = node[key]
        arr = np.asarray(node, np.float64)
        arr = arr if leaf.axes is None else arr.transpose(np.argsort(leaf.axes))
        out[leaf.name] = np.array(arr / float(np.float32(leaf.gain)), np.float32, order="C")
    return out


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
    return _tree(cfg, lambda leaf: leaf.gain if leaf.trained else 0.0)


def random_canonical(cfg: G2Config, seed: int = 0, *, noise_strength: float = 0.1) -> dict:
    """A randomly initialised generator in canonical form (NVlabs init: N(0,1) weights, affine bias 1).

    Biases and noise strengths get small random values (as the fixtures do) so that every parameter matters.
    w_avg is the mean mapping output over 4096 seeded z (the same bits on any number of CPU cores). Same FLOPs
    as a trained model of that config.
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
    # the mean in float64 on the host: XLA's float32 reduction sums in an order that depends on the CPU threads, and
    # builtin:demo (hence its fingerprint, which direction files carry) changed with the cores (1 vs 2, 2026-12-06)
    out["mapping.w_avg"] = np.asarray(w, np.float64).mean(axis=0).astype(np.float32)
    return out
