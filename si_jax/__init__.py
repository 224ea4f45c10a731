"""si_jax: Style Intervention (spatially disentangled StyleGAN2 edits) in JAX/Flax.

Functional API (params pytree in, arrays out; jit/vmap friendly):
    params, cfg = si_jax.load_generator('ffhq.pkl')       # .safetensors, NVlabs/TF .pkl or rosinality .pt
    w = si_jax.mapping(params, cfg, z, truncation_psi)     # [N, w_dim]
    styles = si_jax.styles_from_w(params, cfg, w)          # list of [N, dim_l], forward layer order
    img = si_jax.synthesize(params, cfg, styles)           # [N, R, R, 3] raw range
Flax NNX: si_jax.StyleGAN2.from_file(path).
"""
from si_jax.config import G2Config, LayerSpec
from si_jax.io import load_canonical, load_generator
from si_jax.module import StyleGAN2
from si_jax.params import fingerprint, random_canonical, to_jax_params
from si_jax.style_space import StyleSpace
from si_jax.stylegan2 import (SynthState, generate, initial_state, layer_forward, mapping, run_layers,
                              styles_from_w, synthesize, synthesize_from)

__version__ = "0.1.0"
