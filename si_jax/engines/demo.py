"""The embedded default of `bin/edit.py` and `bin/evaluate.py`: the shipped toyfaces generator and judges.

sample -> label with the classifier -> fit S / Z / W directions -> edit with masks from the segmenter. Everything
is deterministic (the shipped weights, the latents of engines.samples.latents, the judges).
"""
from __future__ import annotations

from si_jax import world
from si_jax.engines import toyfaces
from si_jax.stylegan2 import builtin, loading
from si_jax.stylegan2 import params as params_lib
from si_jax.world import judges as judges_lib

DEMO_ATTRIBUTE = "eyeglasses"

BANNER = """\
=====================================================================================================
 si_jax DEMO: no --weights/--direction given, so this ran on the built-in toyfaces StyleGAN2 (32x32,
 trained by si_jax on its procedural face world) and the attribute '{attr}', labelled by the shipped
 classifier; the mask is the segmenter's '{part}' region in each image or its Z edit. Other attributes:
 --attribute=({attrs}). To edit real images:
   python bin/convert_weights.py --input=stylegan2-ffhq-config-f.pkl --output=ffhq.safetensors
   python bin/sample.py --weights=ffhq.safetensors --num_samples=10000 --seed=0 --output_dir=samples
   (label the samples, e.g. labels.csv with index,score)
   python bin/fit_direction.py --samples=samples --labels=labels.csv --ratio=0.25 --output=smile.npz
   python bin/edit.py --weights=ffhq.safetensors --direction=smile.npz --num_samples=64 --mask=auto \\
       --output_dir=edits
=====================================================================================================
"""


def demo_setup(attribute: str = DEMO_ATTRIBUTE, log=print):
    """-> (canonical, cfg, params, directions, mask spec, judges) of the embedded default."""
    canonical, cfg = loading.load_canonical(builtin.BUILTIN_TOYFACES)
    params = params_lib.to_jax_params(canonical, cfg)
    judges = judges_lib.load_judges()
    dirs = toyfaces.fit_directions(params, cfg, judges, toyfaces.check_attribute(attribute), log=log)
    return canonical, cfg, params, dirs, toyfaces.PART_SPEC + world.ATTRIBUTE_PART[attribute], judges


def banner(attribute: str = DEMO_ATTRIBUTE) -> str:
    return BANNER.format(attr=attribute, part=world.ATTRIBUTE_PART[attribute], attrs=", ".join(world.ATTRIBUTES))
