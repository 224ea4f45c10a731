"""StyleGAN2 generator G = h o f as pure functions: mapping, affine (w -> styles) and synthesis from styles alone.

Params are the pytree of `params.to_jax_params`; `cfg` is a `G2Config` (static). Synthesis is a fold over
the style layers in forward order on a state (x, img), so that an edit can start from the saved state before
layer i (`synthesize_from`): the layer-wise intervention reuses the activations of already-fixed layers.

How it computes is `cfg.numerics` (si_jax.stylegan2.numerics): conv algorithms and precision. With precision
'bf16' the activations x of layers at resolution >= its bf16 resolution are bfloat16 (`cfg.layer_dtype`); styles,
demodulation, the toRGB outputs added to the image, and the image itself are always float32.

Every function taking params also takes `kernels.prepare(params, cfg)` (each layer's kernel forms computed once per
weights: faster per call when differentiating w.r.t. styles, the same values).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from si_jax.stylegan2 import ops
from si_jax.stylegan2.config import G2Config, LayerSpec

NOISE_MODES = ("const", "random", "none")


class SynthState(NamedTuple):
    """Activations between two style layers. x: [N, R, R, C]; img: [N, R', R', img_channels] or None."""

    x: jax.Array
    img: Optional[jax.Array]


# --- mapping f: z -> w ----------------------------------------------------------------------------------------
def mapping(params, cfg: G2Config, z: jax.Array, truncation_psi: float = 1.0) -> jax.Array:
    """z: [N, z_dim] -> w: [N, w_dim]. 2nd-moment normalisation, 8 lrelu FC layers, truncation towards w_avg."""
    mp = params["mapping"]
    x = z.astype(jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=1, keepdims=True) + 1e-8)
    precision = cfg.numerics.matmul_precision(jnp.float32)
    for layer in mp["fc"]:
        x = ops.bias_act(jnp.matmul(x, layer["w"], precision=precision), layer["b"], act="lrelu")
    if truncation_psi != 1.0:
        x = mp["w_avg"] + truncation_psi * (x - mp["w_avg"])
    return x


# --- affine A_l: w -> s_l -------------------------------------------------------------------------------------
def styles_from_w(params, cfg: G2Config, w: jax.Array) -> list:
    """Per-layer styles (affine outputs, before any toRGB weight gain).

    w: [N, w_dim] (same w for every layer) or ws: [N, num_ws, w_dim] -> list over `cfg.layers` of [N, dim_l].
    """
    out, precision = [], cfg.numerics.matmul_precision(jnp.float32)
    for spec, lp in zip(cfg.layers, params["layers"]):
        wl = w if w.ndim == 2 else w[:, spec.w_index]
        out.append(jnp.matmul(wl, lp["affine_w"], precision=precision) + lp["affine_b"])
    return out


# --- synthesis h: styles -> image -----------------------------------------------------------------------------
def initial_state(params, batch: int) -> SynthState:
    """The learned 4x4 constant broadcast to the batch: x [N, 4, 4, C], no image yet."""
    const = params["const"]
    return SynthState(jnp.broadcast_to(const[None], (batch,) + const.shape), None)


def _noise(lp, spec: LayerSpec, batch: int, noise_mode: str, key) -> Optional[jax.Array]:
    """Per-pixel noise shared by all channels: [1 or N, R, R, 1] (already times noise_strength), or None."""
    if noise_mode == "none":
        return None
    if noise_mode == "const":
        return (lp["noise_const"] * lp["noise_strength"])[None, :, :, None]
    if noise_mode == "random":
        if key is None:
            raise ValueError("noise_mode='random' needs a PRNG key")
        sub = jax.random.fold_in(key, spec.conv_index)
        return jax.random.normal(sub, (batch, spec.res, spec.res, 1)) * lp["noise_strength"]
    raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def layer_forward(lp, spec: LayerSpec, cfg: G2Config, state: SynthState, s: jax.Array,
                  noise_mode: str = "const", key=None) -> SynthState:
    """Apply one style layer. s: [N, spec.dim] float32.

    The layer runs in `cfg.layer_dtype(spec.res)` (x is cast on entry; a conv layer's output stays in it); a
    toRGB output is cast to float32 before its bias, clamp and the add to the float32 image (NVlabs: torgb output
    .to(float32) before img.add_).
    """
    x = state.x.astype(cfg.layer_dtype(spec.res))
    if spec.kind == "conv":
        y = ops.modulated_conv(x, lp["weight"], s, demodulate=True, up=spec.up,
                               resample_filter=cfg.resample_filter, numerics=cfg.numerics,
                               prepared=lp.get("prepared"))
        noise = _noise(lp, spec, y.shape[0], noise_mode, key) if cfg.use_noise else None
        if noise is not None:
            y = y + noise.astype(y.dtype)
        return SynthState(ops.bias_act(y, lp["bias"], act="lrelu", clamp=cfg.conv_clamp), state.img)
    gain = 1.0 / math.sqrt(spec.in_ch)  # ToRGB weight gain, applied to the style (NVlabs ToRGBLayer)
    y = ops.modulated_conv(x, lp["weight"], s * gain, demodulate=False, up=False, numerics=cfg.numerics,
                           prepared=lp.get("prepared"))
    y = ops.bias_act(y.astype(jnp.float32), lp["bias"], act="linear", clamp=cfg.conv_clamp)
    img = state.img
    if img is not None and img.shape[1] != y.shape[1]:
        img = ops.upsample_2d(img, cfg.resample_filter)
    return SynthState(state.x, y if img is None else img + y)


def run_layers(params, cfg: G2Config, state: SynthState, styles, start: int, stop: int,
               noise_mode: str = "const", key=None) -> SynthState:
    """Apply style layers start..stop-1 to `state`. styles: list over all layers of [N, dim_l]."""
    for i in range(start, stop):
        state = layer_forward(params["layers"][i], cfg.layers[i], cfg, state, styles[i], noise_mode, key)
    return state


def states_before_layers(params, cfg: G2Config, styles) -> list:
    """The SynthState before each style layer: [num_layers] states, states[0] = initial_state (constant noise;
    eagerly, or inside `jax.eval_shape` for their shapes). styles: list over all layers of [N, dim_l]."""
    states, state = [], initial_state(params, styles[0].shape[0])
    for i in range(len(cfg.layers)):
        states.append(state)
        state = layer_forward(params["layers"][i], cfg.layers[i], cfg, state, styles[i])
    return states


def synthesize(params, cfg: G2Config, styles, noise_mode: str = "const", key=None) -> jax.Array:
    """h(s): styles (list of [N, dim_l], forward order) -> image [N, R, R, img_channels], raw range, float32."""
    state = initial_state(params, styles[0].shape[0])
    return run_layers(params, cfg, state, styles, 0, len(cfg.layers), noise_mode, key).img


def synthesize_from(params, cfg: G2Config, state: SynthState, styles, start: int,
                    noise_mode: str = "const", key=None) -> jax.Array:
    """Finish synthesis from the state before layer `start` (as returned by `run_layers(..., 0, start)`)."""
    return run_layers(params, cfg, state, styles, start, len(cfg.layers), noise_mode, key).img


def generate(params, cfg: G2Config, z: jax.Array, truncation_psi: float = 1.0, noise_mode: str = "const",
             key=None):
    """z: [N, z_dim] -> (w [N, w_dim], styles list of [N, dim_l], image [N, R, R, img_channels])."""
    w = mapping(params, cfg, z, truncation_psi)
    styles = styles_from_w(params, cfg, w)
    return w, styles, synthesize(params, cfg, styles, noise_mode, key)
