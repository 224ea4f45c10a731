"""The projector's schedules (NVlabs StyleGAN2 projector recipe, written for si_jax): learning rate and code noise.

With t = step / num_steps in [0, 1):
    lr(t)    = lr0 · min(1, t / rampup) · (1 − cos(π · min(1, (1 − t) / rampdown))) / 2
    noise(t) = scale · noise0 · max(0, 1 − t / noise_ramp)²
The learning rate ramps up over the first `rampup` of the steps and down to 0 (cosine) over the last `rampdown`;
the Gaussian noise added to the code (exploration) decays to 0 at `noise_ramp` of the steps. Every argument but
num_steps may be a traced scalar (a ramp of 0 switches its ramp off), so a new value needs no new program.
"""
from __future__ import annotations

import jax.numpy as jnp


def learning_rate_schedule(num_steps: int, lr0: float, rampup: float, rampdown: float):
    """-> optax schedule count -> learning rate (module docstring).

    >>> round(float(learning_rate_schedule(100, 0.1, 0.05, 0.25)(50)), 6)
    0.1
    """
    def schedule(count):
        t = jnp.asarray(count, jnp.float32) / num_steps
        return lr0 * _ramp(t, rampup) * 0.5 * (1.0 - jnp.cos(jnp.pi * _ramp(1.0 - t, rampdown)))

    return schedule


def code_noise_scale(step, num_steps: int, noise0: float, ramp: float):
    """-> the std of the code noise at `step`, in units of the code's spread (module docstring).

    >>> round(float(code_noise_scale(0, 100, 0.05, 0.75)), 6)
    0.05
    """
    t = jnp.asarray(step, jnp.float32) / num_steps
    return jnp.where(ramp > 0, noise0 * jnp.square(jnp.maximum(0.0, 1.0 - _ramp(t, ramp))), 0.0)


def _ramp(t, length):
    """min(1, t / length), or 1 where length <= 0 (no ramp)."""
    return jnp.where(length > 0, jnp.minimum(1.0, t / jnp.where(length > 0, length, 1.0)), 1.0)
