"""The toyfaces world wired into the binaries: judge-labelled directions and segmenter part masks.

The paper labels generated faces with an attribute classifier and masks them with a face parser; here the
independent judges of si_jax.world play both roles for the shipped generator `builtin:toyfaces`:

    dirs = fit_directions(params, cfg, judges, 'eyeglasses')           # label 2000 samples, fit S / Z / W SVMs
    mask = part_masks(judges, 'glasses', img0, img_z)                  # [N, R, R]: the part in either, dilated

The mask is the part in the input OR in the Z-space edit: the intervention localises the Z edit, so an added part
(glasses put on) must be inside. (The S-only edit barely adds the part: masks from it covered 3.5 % of the image
for eyeglasses instead of 9.3 %, and the intervention then learned to undo the edit; RESULTS.md.)
"""
from __future__ import annotations

import functools

import numpy as np

from si_jax import world
from si_jax.editing import directions, masks
from si_jax.stylegan2 import programs
from si_jax.stylegan2.latents import latents
from si_jax.stylegan2.style_space import StyleSpace

FIT_SAMPLES = 2000
FIT_SEED = 1000   # latents for fitting are disjoint from the edited ones (seed 0 by default)
MASK_DILATE = 1   # pixels at 32 px: the part's antialiased fringe and the segmenter's 1-px uncertainty
PART_SPEC = masks.PART


def check_attribute(attribute: str) -> str:
    if attribute not in world.ATTRIBUTES:
        raise ValueError(f"--attribute must be one of {', '.join(world.ATTRIBUTES)}, got {attribute!r}")
    return attribute


def sample_codes(params, cfg, score, *, num: int, seed: int, batch: int = 500) -> dict:
    """Sample `num` images of latent seed `seed` and score them: {'z' [N, z_dim], 'w' [N, w_dim], 's' [N, S],
    'scores' = score(images [B, R, R, 3]) concatenated ([N] or [N, A])}."""
    z = latents(seed, range(num), cfg.z_dim)
    gen = programs.generate_program(cfg)   # in the XLA:CPU conv library measured for the batch
    space, ws, ss, scores = StyleSpace.of(cfg), [], [], []
    for start in range(0, num, batch):
        w, s, img = gen(params, z[start:start + batch])
        ws.append(np.asarray(w))
        ss.append(np.asarray(space.concat(s)))
        scores.append(np.asarray(score(img)))
    return {"z": z, "w": np.concatenate(ws), "s": np.concatenate(ss), "scores": np.concatenate(scores)}


def fit_three(codes: dict, y, attribute: str) -> dict:
    """S (L1), Z and W (L2) directions of labels y [N] bool on sample_codes' codes."""
    return {space: directions.fit_direction(codes[space], y, space=space, attribute=attribute)
            for space in ("s", "z", "w")}


def fit_scored_directions(params, cfg, score, attribute: str, *, threshold=0.0, num: int = FIT_SAMPLES,
                          seed: int = FIT_SEED) -> tuple:
    """Sample `num` images, label them score(images [B,R,R,3]) -> [B] > threshold ('median': balanced classes),
    fit s (L1), z and w (L2) directions. -> (directions {'s', 'z', 'w'}, labels [num] bool)."""
    codes = sample_codes(params, cfg, score, num=num, seed=seed)
    scores = codes["scores"]
    y = scores > (np.median(scores) if threshold == "median" else threshold)
    return fit_three(codes, y, attribute), y


def fit_directions(params, cfg, judges, attribute: str, *, num: int = FIT_SAMPLES, seed: int = FIT_SEED,
                   log=print) -> dict:
    """Sample `num` images, label `attribute` with the classifier (logit > 0), fit s / z / w directions."""
    dirs, y = fit_scored_directions(params, cfg, lambda img: judges.score(attribute, img), attribute, num=num,
                                    seed=seed)
    log(f"toyfaces: sampled {num} images, the classifier finds '{attribute}' in {y.mean():.0%} of them")
    return dirs


@functools.lru_cache(maxsize=1)
def generator_id() -> str:
    """The weight fingerprint of builtin:toyfaces (what the judges can judge: images of the toyfaces world)."""
    from si_jax.stylegan2 import builtin, loading
    from si_jax.stylegan2 import params as params_lib

    return params_lib.fingerprint(loading.load_canonical(builtin.BUILTIN_TOYFACES)[0])


def judged_attribute(weights_id: str, attribute) -> str | None:
    """The toyfaces attribute the judges can check for an edit of `attribute` (a direction's name) on the
    generator of fingerprint `weights_id`: `attribute` when the generator is builtin:toyfaces (any copy of its
    weights) and the attribute one of world.ATTRIBUTES; else None (no judge)."""
    return attribute if attribute in world.ATTRIBUTES and weights_id == generator_id() else None


def parse_part_spec(spec: str) -> str:
    """'part:glasses' -> 'glasses' (a segmenter class)."""
    part = spec[len(PART_SPEC):]
    if part not in world.PARTS:
        raise ValueError(f"mask spec {spec!r}: unknown part (parts: {', '.join(world.PARTS)})")
    return part


def part_masks(judges, part: str, img0, img_edit, dilate: int = MASK_DILATE) -> np.ndarray:
    """[N, R, R] float32: 1 where the segmenter sees `part` in the input OR in the edit (the Z-space edit, see
    above), dilated by `dilate` px (scaled with the resolution)."""
    m = np.maximum(judges.part_mask(part, img0), judges.part_mask(part, img_edit))
    return np.asarray(masks.dilate_masks(m, dilate * max(1, m.shape[-1] // 32)), np.float32)


def part_mask_fn(judges, part: str):
    """The mask callable of evaluation.compare_methods / engines.edit_run: (img0, img_z, img_s) -> part_masks of
    the input and the Z edit."""
    return lambda img0, img_z, img_s: part_masks(judges, part, img0, img_z)
