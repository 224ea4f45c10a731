"""si_jax: Style Intervention (spatially disentangled StyleGAN2 edits) in JAX/Flax.

Functional API (params pytree in, arrays out; jit/vmap friendly):
    params, cfg = si_jax.load_generator('ffhq.pkl')       # .safetensors, NVlabs/TF .pkl or rosinality .pt
    w = si_jax.mapping(params, cfg, z, truncation_psi)     # [N, w_dim]
    styles = si_jax.styles_from_w(params, cfg, w)          # list of [N, dim_l], forward layer order
    img = si_jax.synthesize(params, cfg, styles)           # [N, R, R, 3] raw range
Flax NNX: si_jax.StyleGAN2.from_file(path).

The pipeline, one stage per subpackage (each may import only the stages listed before it; ARCHITECTURE.md):
    storage, metrics   leaves: validated/atomic files, image metrics (no other si_jax import)
    stylegan2/         the generator: config, ops, network, params, style space, NNX module, loading
    editing/           directions, Δs edits, Style Intervention, masks, one-batch pipeline
    evaluation/        Table 2, the figures' numbers and drawing, PNG pictures
    attributes/        the shipped generators' attributes: toyfaces directions and part masks, builtin:demo's box
    engines/           what the binaries run: resumable run folders, samples, edit/evaluate drivers, demo
"""
from si_jax.stylegan2 import G2Config as G2Config
from si_jax.stylegan2 import LayerSpec as LayerSpec
from si_jax.stylegan2 import StyleGAN2 as StyleGAN2
from si_jax.stylegan2 import StyleSpace as StyleSpace
from si_jax.stylegan2 import SynthState as SynthState
from si_jax.stylegan2 import fingerprint as fingerprint
from si_jax.stylegan2 import generate as generate
from si_jax.stylegan2 import initial_state as initial_state
from si_jax.stylegan2 import layer_forward as layer_forward
from si_jax.stylegan2 import load_canonical as load_canonical
from si_jax.stylegan2 import load_generator as load_generator
from si_jax.stylegan2 import mapping as mapping
from si_jax.stylegan2 import random_canonical as random_canonical
from si_jax.stylegan2 import run_layers as run_layers
from si_jax.stylegan2 import styles_from_w as styles_from_w
from si_jax.stylegan2 import synthesize as synthesize
from si_jax.stylegan2 import synthesize_from as synthesize_from
from si_jax.stylegan2 import to_jax_params as to_jax_params

__version__ = "0.1.0"
