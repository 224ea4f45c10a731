"""The embedded default of `bin/edit.py`: sample -> label -> fit -> (edit), on the built-in generator.

Everything is deterministic: the demo generator (stylegan2.builtin), the latents (engines.samples.latents) and
the synthetic attribute (mean red inside a box; the box is the mask).
"""
from __future__ import annotations

import jax
import numpy as np

from si_jax.editing import directions
from si_jax.engines import samples, synthetic
from si_jax.stylegan2 import builtin, network, params as params_lib
from si_jax.stylegan2.style_space import StyleSpace

FIT_SAMPLES = 2000
FIT_SEED = 1000  # latents for fitting are disjoint from the edited ones (seed 0 by default)

BANNER = """\
=====================================================================================================
 si_jax DEMO: no --weights/--direction given, so this ran on a small built-in random 32x32 StyleGAN2
 and a synthetic attribute ("{attr}": mean red inside the box {box}; the box is the mask).
 To edit real images:
   python bin/convert_weights.py --input=stylegan2-ffhq-config-f.pkl --output=ffhq.safetensors
   python bin/sample.py --weights=ffhq.safetensors --num_samples=10000 --seed=0 --output_dir=samples
   (label the samples, e.g. labels.csv with index,score)
   python bin/fit_direction.py --samples=samples --labels=labels.csv --ratio=0.25 --output=smile.npz
   python bin/edit.py --weights=ffhq.safetensors --direction=smile.npz --num_samples=64 --mask=auto \\
       --output_dir=edits
=====================================================================================================
"""


def fit_demo_directions(params, cfg, log=print) -> dict:
    """Fit s (L1), z and w (L2) directions of the synthetic attribute on FIT_SAMPLES sampled images."""
    attr = synthetic.RegionAttribute()
    z = samples.latents(FIT_SEED, range(FIT_SAMPLES), cfg.z_dim)
    gen = jax.jit(lambda p, z: network.generate(p, cfg, z))
    ws, ss, ys = [], [], []
    space = StyleSpace.of(cfg)
    for start in range(0, FIT_SAMPLES, 500):
        w, s, img = gen(params, z[start:start + 500])
        ws.append(np.asarray(w))
        ss.append(np.asarray(space.concat(s)))
        ys.append(attr.score(np.asarray(img)))
    score = np.concatenate(ys)
    y = score > np.median(score)
    log(f"demo: sampled {FIT_SAMPLES} images, labelled '{attr.name}' by the mean red inside {attr.box_spec}")
    return {"s": directions.fit_direction(np.concatenate(ss), y, space="s", attribute=attr.name),
            "z": directions.fit_direction(z, y, space="z", attribute=attr.name),
            "w": directions.fit_direction(np.concatenate(ws), y, space="w", attribute=attr.name)}


def demo_setup(log=print):
    """-> (canonical, cfg, params, directions, mask spec) of the demo."""
    canonical, cfg = builtin.demo_generator()
    params = params_lib.to_jax_params(canonical, cfg)
    return canonical, cfg, params, fit_demo_directions(params, cfg, log), synthetic.RegionAttribute().box_spec


def banner() -> str:
    attr = synthetic.RegionAttribute()
    return BANNER.format(attr=attr.name, box=attr.box_spec)
