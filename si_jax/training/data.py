"""Training data as pure functions of the step, evaluated INSIDE the jitted train step (no host transfer).

A dataset is any frozen (hashable) object with `images(step, batch) -> [batch, R, R, 3]` float32 in [-1, 1],
deterministic in (its fields, step): iteration `step` sees images [step·batch, (step+1)·batch) of an infinite
stream, so a resumed run sees exactly the images an uninterrupted one would.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from si_jax import world


def _indices(step, batch: int) -> jax.Array:
    return jnp.asarray(step, jnp.uint32) * jnp.uint32(batch) + jnp.arange(batch, dtype=jnp.uint32)


@dataclasses.dataclass(frozen=True)
class ToyFaces:
    """The procedural world `si_jax.world` (seed `seed`) rendered at `resolution`."""

    seed: int = 0
    resolution: int = 32

    def images(self, step, batch: int) -> jax.Array:
        return world.render_batch(self.seed, _indices(step, batch), self.resolution)["images"]


@dataclasses.dataclass(frozen=True)
class Blobs:
    """A Gaussian blob of random colour, centre and width on a black background (a cheap test world)."""

    seed: int = 0
    resolution: int = 32

    def images(self, step, batch: int) -> jax.Array:
        base = jax.random.PRNGKey(self.seed)

        def one(i):
            u = jax.random.uniform(jax.random.fold_in(base, i), (6,))
            colour, (cx, cy), sigma = u[:3] * 2 - 1, u[3:5] * 0.6 + 0.2, 0.1 + 0.15 * u[5]
            t = (jnp.arange(self.resolution, dtype=jnp.float32) + 0.5) / self.resolution
            a = jnp.exp(-((t[None, :] - cx) ** 2 + (t[:, None] - cy) ** 2) / (2 * sigma**2))[..., None]
            return -1 + a * (colour + 1)

        return jax.vmap(one)(_indices(step, batch))


@dataclasses.dataclass(frozen=True)
class Constant:
    """Every image the same constant colour `value` (a trivially separable toy set for tests)."""

    value: float = 1.0
    resolution: int = 32

    def images(self, step, batch: int) -> jax.Array:
        del step
        return jnp.full((batch, self.resolution, self.resolution, 3), self.value, jnp.float32)


DATASETS = {"toyfaces": ToyFaces, "blobs": Blobs}


def make_dataset(name: str, seed: int, resolution: int):
    """A dataset by name ('toyfaces' | 'blobs')."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name](seed=seed, resolution=resolution)
