"""The toyfaces world wired into the binaries: judge-labelled directions and segmenter part masks.

The paper labels generated faces with an attribute classifier and masks them with a face parser; here the
independent judges of si_jax.world play both roles for the shipped generator `builtin:toyfaces`:

    dirs = fit_directions(params, cfg, judges, 'eyeglasses')           # label 2000 samples, fit S / Z / W SVMs
    mask = part_masks(judges, 'glasses', img0, img_edit)               # [N, R, R]: the part in either, dilated
"""
from __future__ import annotations

import jax
import numpy as np

from si_jax import world
from si_jax.editing import directions, masks
from si_jax.engines import samples
from si_jax.stylegan2 import network
from si_jax.stylegan2.style_space import StyleSpace

FIT_SAMPLES = 2000
FIT_SEED = 1000   # latents for fitting are disjoint from the edited ones (seed 0 by default)
MASK_DILATE = 1   # pixels at 32 px: the part's antialiased fringe and the segmenter's 1-px uncertainty
PART_SPEC = "part:"

def check_attribute(attribute: str) -> str:
    if attribute not in world.ATTRIBUTES:
        raise ValueError(f"--attribute must be one of {', '.join(world.ATTRIBUTES)}, got {attribute!r}")
    return attribute


def fit_scored_directions(params, cfg, score, attribute: str, *, threshold=0.0, num: int = FIT_SAMPLES,
                          seed: int = FIT_SEED) -> tuple:
    """Sample `num` images, label them score(images [B,R,R,3]) -> [B] > threshold ('median': balanced classes),
    fit s (L1), z and w (L2) directions. -> (directions {'s', 'z', 'w'}, labels [num] bool)."""
    z = samples.latents(seed, range(num), cfg.z_dim)
    gen = jax.jit(lambda p, z: network.generate(p, cfg, z))
    space, ws, ss, scores = StyleSpace.of(cfg), [], [], []
    for start in range(0, num, 500):
        w, s, img = gen(params, z[start:start + 500])
        ws.append(np.asarray(w))
        ss.append(np.asarray(space.concat(s)))
        scores.append(np.asarray(score(img)))
    scores = np.concatenate(scores)
    y = scores > (np.median(scores) if threshold == "median" else threshold)
    return {"s": directions.fit_direction(np.concatenate(ss), y, space="s", attribute=attribute),
            "z": directions.fit_direction(z, y, space="z", attribute=attribute),
            "w": directions.fit_direction(np.concatenate(ws), y, space="w", attribute=attribute)}, y


def fit_directions(params, cfg, judges, attribute: str, *, num: int = FIT_SAMPLES, seed: int = FIT_SEED,
                   log=print) -> dict:
    """Sample `num` images, label `attribute` with the classifier (logit > 0), fit s / z / w directions."""
    dirs, y = fit_scored_directions(params, cfg, lambda img: judges.score(attribute, img), attribute, num=num,
                                    seed=seed)
    log(f"toyfaces: sampled {num} images, the classifier finds '{attribute}' in {y.mean():.0%} of them")
    return dirs


def parse_part_spec(spec: str) -> str:
    """'part:glasses' -> 'glasses' (a segmenter class)."""
    part = spec[len(PART_SPEC):]
    if part not in world.PARTS:
        raise ValueError(f"mask spec {spec!r}: unknown part (parts: {', '.join(world.PARTS)})")
    return part


def part_masks(judges, part: str, img0, img_edit, dilate: int = MASK_DILATE) -> np.ndarray:
    """[N, R, R] float32: 1 where the segmenter sees `part` in the input OR in the edit, dilated by `dilate` px
    (scaled with the resolution); the edit's part is included so that an added part (bangs) is inside."""
    m = np.maximum(judges.part_mask(part, img0), judges.part_mask(part, img_edit))
    return np.asarray(masks.dilate_masks(m, dilate * max(1, m.shape[-1] // 32)), np.float32)
