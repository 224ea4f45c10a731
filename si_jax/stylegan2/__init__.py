"""The StyleGAN2 generator G = h∘f as pure JAX functions, and everything needed to load one.

    config       G2Config (frozen, the jit static argument) and the style-layer layout
    numerics     Numerics (a G2Config field): conv algorithms per backend, precision fp32 / tf32 / bf16
    ops, conv3x3 building blocks: modulated conv, FIR up-sampling, 3x3 conv algorithms (NHWC)
    kernels      kernel forms computed once per weights (prepare): faster synthesis w.r.t. styles, same values
    network      mapping f, affine w -> styles, synthesis h from styles (layer by layer)
    programs     their compiled programs, cached per G2Config (synth_program, ...): every stage calls these
    params       canonical (NVlabs-named numpy dict) -> params pytree; random init; fingerprint
    style_space  S as an object: names, dims, offsets, flat <-> per layer
    module       the Flax NNX face of the same functions
    discriminator  the NVlabs resnet D (for si_jax.training)
    builtin, loading   generators that ship with si_jax; any weights file -> (params, cfg)

May import: weights_convert (formats) and si_jax.storage/metrics. Nothing above it.
"""
from si_jax.stylegan2.config import G2Config as G2Config
from si_jax.stylegan2.config import LayerSpec as LayerSpec
from si_jax.stylegan2.loading import load_canonical as load_canonical
from si_jax.stylegan2.loading import load_generator as load_generator
from si_jax.stylegan2.module import StyleGAN2 as StyleGAN2
from si_jax.stylegan2.network import SynthState as SynthState
from si_jax.stylegan2.network import generate as generate
from si_jax.stylegan2.network import initial_state as initial_state
from si_jax.stylegan2.network import layer_forward as layer_forward
from si_jax.stylegan2.network import mapping as mapping
from si_jax.stylegan2.network import run_layers as run_layers
from si_jax.stylegan2.network import states_before_layers as states_before_layers
from si_jax.stylegan2.network import styles_from_w as styles_from_w
from si_jax.stylegan2.network import synthesize as synthesize
from si_jax.stylegan2.network import synthesize_from as synthesize_from
from si_jax.stylegan2.numerics import Numerics as Numerics
from si_jax.stylegan2.params import fingerprint as fingerprint
from si_jax.stylegan2.params import random_canonical as random_canonical
from si_jax.stylegan2.params import to_jax_params as to_jax_params
from si_jax.stylegan2.style_space import StyleSpace as StyleSpace
