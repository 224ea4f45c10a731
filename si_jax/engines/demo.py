"""The embedded default of `bin/edit.py` and `bin/evaluate.py`: the shipped toyfaces generator and judges.

sample -> label with the classifier -> fit S / Z / W directions -> edit with masks from the segmenter. Everything
is deterministic (the shipped weights, the latents of engines.samples.latents, the judges).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib

from si_jax import world
from si_jax.editing import directions
from si_jax.attributes import toyfaces
from si_jax.engines import errors, hosts
from si_jax.stylegan2 import builtin, conv_library, loading
from si_jax.stylegan2 import params as params_lib
from si_jax.world import judges as judges_lib

DEMO_ATTRIBUTE = "eyeglasses"
# The fitted demo directions are kept here (SI_JAX_DEMO_DIRECTIONS overrides the folder; '' turns the cache off).
DIRECTIONS_CACHE = os.path.join("~", ".cache", "si_jax", "demo_directions")
DIRECTIONS_CACHE_VERSION = 1   # bump when the fit (toyfaces.fit_directions) changes

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
    judges = judges_lib.load_judges().with_options_for(conv_library.batch_options)   # XLA:CPU's conv library
    dirs = cached_directions(params, cfg, judges, toyfaces.check_attribute(attribute),
                             params_lib.fingerprint(canonical), log=log)
    return canonical, cfg, params, dirs, mask_spec(attribute), judges


def mask_spec(attribute: str = DEMO_ATTRIBUTE) -> str:
    """The demo's mask of `attribute`: 'part:NAME', the segmenter's part of it (ValueError for an attribute the
    toyfaces world lacks)."""
    return toyfaces.PART_SPEC + world.ATTRIBUTE_PART[toyfaces.check_attribute(attribute)]


def directions_cache_dir() -> pathlib.Path | None:
    folder = os.environ.get("SI_JAX_DEMO_DIRECTIONS", DIRECTIONS_CACHE)
    return pathlib.Path(os.path.expanduser(folder)) if folder else None


def cached_directions(params, cfg, judges, attribute: str, generator_id: str, *, num: int = toyfaces.FIT_SAMPLES,
                      seed: int = toyfaces.FIT_SEED, log=print, cache_dir=None) -> dict:
    """`toyfaces.fit_directions` of the demo, kept in `cache_dir` (default `directions_cache_dir()`) as a code-free
    .npz keyed by everything the fit depends on: the generator's and the classifier's fingerprints, the attribute,
    num, seed, cfg.numerics, scikit-learn's version and DIRECTIONS_CACHE_VERSION. A damaged or unreadable file is
    fitted again and replaced; the log says which happened."""
    import sklearn

    key = {"generator": generator_id, "classifier": judges_lib.fingerprint(judges.classifier), "attribute": attribute,
           "num": num, "seed": seed, "numerics": repr(cfg.numerics), "sklearn": sklearn.__version__,
           "version": DIRECTIONS_CACHE_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = directions_cache_dir() if cache_dir is None else pathlib.Path(cache_dir)
    path = None if folder is None else folder / f"{attribute}_{digest}.npz"
    if path is not None and path.is_file():
        try:
            dirs = directions.load_directions(path, expect_generator_id=generator_id)
            log(f"toyfaces: reused the '{attribute}' directions fitted on {num} classifier-labelled samples before "
                f"({path}; delete it to fit again)")
            return dirs
        except ValueError as e:
            log(f"toyfaces: {path} is damaged ({e}); fitting again")
    where = f"kept in {path.parent}" if path is not None else "not kept: SI_JAX_DEMO_DIRECTIONS=''"
    log(f"toyfaces: labelling {num} samples with the classifier and fitting the S / Z / W directions of "
        f"'{attribute}' (first run only; {where})")
    with hosts.heartbeat(f"sampling and labelling {num} images, fitting the directions", log=log):
        dirs = toyfaces.fit_directions(params, cfg, judges, attribute, num=num, seed=seed, log=log)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            directions.save_directions(path, dirs, generator_id=generator_id)
        except OSError as e:   # a cache that cannot be written costs the next run a refit, nothing else
            log(f"note: could not keep the demo directions in {path} ({errors.os_error_message(e)})")
    return dirs


def banner(attribute: str = DEMO_ATTRIBUTE) -> str:
    return BANNER.format(attr=attribute, part=world.ATTRIBUTE_PART[attribute], attrs=", ".join(world.ATTRIBUTES))
