"""How Λ's Adam steps run: the compiled programs behind `intervention.intervene` (three loop forms, one math).

Each layer's λ_l is found by projected Adam (clipped to [0, 1] after every step) that keeps the best iterate: the
lowest total loss among the layer's current λ (the previous result) and every Adam iterate. Adam starts from λ_init
(hp.warm_start = 0) or from the λ the layer holds (hp.warm_start = 1: refining a given Λ).

- 'scan': one program per layer, a `lax.scan` over its steps + 1 evaluations (`layer_program`); the default off CPU.
- 'steps': one program per layer for ONE step (`step_program`), dispatched steps + 1 times by the host. XLA:CPU runs
  a while loop's body ~3x slower than the same ops as a program of their own (BENCHMARKS.md), so this is CPU's.
- 'one': ONE program for every layer and step (`one_program`), the layer being data (a 0/1 selector that masks the
  gradient): one compile instead of one per layer, at the cost of whole-network passes; for short runs on CPU.

`resolve_loop` picks one. Every program's traced function is named `layer_program` (tests/test_devices.py counts
their compiles by that name). Per-image programs `vmap` over the batch; shared=True fits one λ_l to the batch-mean loss.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from si_jax.editing.objective import Hyper, image_loss, total_loss
from si_jax.stylegan2 import programs
from si_jax.stylegan2.config import G2Config

LOOPS = ("auto", "scan", "steps", "one")
ONE_PROGRAM_MAX_BATCHES = 4   # 'auto' on CPU: 'one' for runs of at most this many batches (measured: resolve_loop)
ONE_PROGRAM_MAX_RES = 64      # ... of images of at most this many pixels a side ('steps' won at 256 px from batch 1)


def resolve_loop(loop: str = "auto", backend: str | None = None, shared: bool = False,
                 batches: int | None = None, resolution: int | None = None) -> str:
    """'scan', 'steps' or 'one' (module docstring; the same Λ* within float tolerance, per image or shared).

    'auto': 'steps' on CPU ('one' for runs of at most ONE_PROGRAM_MAX_BATCHES batches of images of at most
    ONE_PROGRAM_MAX_RES px), 'scan' elsewhere. Measured
    with bench/edit_floor.py (BENCHMARKS.md): XLA:CPU runs the body of a while loop ~3x slower than the same ops as
    a program of their own (toyfaces, batch 16, layer b16.conv0: 113 ms of CPU per Adam step inside the scan, 39 ms
    as a step program, 40 ms for the floor's value-and-gradient pass); unrolling the scan 2 or 4 times does not help
    (105, 103 ms), unrolling it fully does (39 ms) at 3x the compile time. Off CPU a scan saves steps + 1 dispatches
    per layer (not measured there). 'one' against 'steps' (bench/loop_modes.py, BENCHMARKS.md; AMD EPYC, 2 cores,
    2026-12-05; compile from an empty cache + warm batches at 15 steps): at 32 px 'one' compiles 5x faster and runs
    a batch 4.6x slower, so it wins for runs shorter than ~60 batches of 1 (~6-9 of 16); at 256 px its whole-network
    passes make a batch 4.8x slower and 'steps' wins from the first batch; at 1024 px (sampled) 'one' is ~2x slower
    per batch, and 'steps' wins too."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    if loop == "auto":
        if (backend or jax.default_backend()) != "cpu":
            return "scan"
        short = batches is not None and batches <= ONE_PROGRAM_MAX_BATCHES
        loop = "one" if short and resolution is not None and resolution <= ONE_PROGRAM_MAX_RES else "steps"
    return loop


# ------------------------------------------------------------------------------------------------ placement

def placement(ref):
    """Where intervene's per-image arrays live: (per-image sharding, scalar sharding) of a committed jax.Array
    `ref` (a sharded batch), (None, None) otherwise (uncommitted: jit places them)."""
    if not (isinstance(ref, jax.Array) and ref.committed):
        return None, None
    sh = ref.sharding
    return sh, (NamedSharding(sh.mesh, PartitionSpec()) if isinstance(sh, NamedSharding) else sh)


def place(tree, sharding):
    return tree if sharding is None else jax.device_put(tree, sharding)


def carry_shardings(carry, shared: bool, per_image, scalar):
    """Where the Adam carry lives: with the images (per image; shared: its image(s)), else replicated."""
    return jax.tree_util.tree_map(lambda a: per_image if not shared or a.ndim == 4 else scalar, carry)


# ------------------------------------------------------------------------------------------------ Adam

def _initial(held, hp: Hyper):
    """Where a layer's Adam starts: λ_init everywhere, or (warm start) the λ the layer holds."""
    return hp.warm_start * held + (1.0 - hp.warm_start) * jnp.full_like(held, hp.lambda_init)


def adam_start(held, prev_loss, prev_img, hp: Hyper, lam0=None) -> tuple:
    """The carry before the first Adam step: (λ, Adam state, best λ, its loss, its image(s), non-finite flag).
    held: the λ the layer holds now (an array, or a list over layers for loop 'one'), whose loss and image(s)
    prev_loss, prev_img are: the best iterate to beat. lam0: where Adam starts (default `_initial(held)`)."""
    lam0 = jax.tree_util.tree_map(lambda h: _initial(h, hp), held) if lam0 is None else lam0
    return lam0, optax.adam(hp.learning_rate).init(lam0), held, prev_loss, prev_img, jnp.array(False)


def adam_step(loss_img, carry, hp: Hyper) -> tuple:
    """One projected Adam step on λ that keeps the best iterate. loss_img: λ -> (scalar loss, image(s)).
    -> (carry, loss at the λ this step started from)."""
    lam_i, opt_state, best, best_loss, best_img, bad = carry
    (value, img), grad = jax.value_and_grad(loss_img, has_aux=True)(lam_i)
    better = value < best_loss
    best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), lam_i, best)
    best_loss, best_img = jnp.where(better, value, best_loss), jnp.where(better, img, best_img)
    bad = bad | ~jnp.isfinite(value) | ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(g))
                                                          for g in jax.tree_util.tree_leaves(grad)]))
    updates, opt_state = optax.adam(hp.learning_rate).update(grad, opt_state, lam_i)
    lam_i = jax.tree_util.tree_map(lambda a: jnp.clip(a, 0.0, 1.0), optax.apply_updates(lam_i, updates))
    return (lam_i, opt_state, best, best_loss, best_img, bad), value


def _adam_scan(loss_img, held, prev_loss, prev_img, steps: int, hp: Hyper):
    """Loop 'scan': the steps + 1 evaluations as one `lax.scan` (the last update is discarded, so every iterate,
    the last included, is a candidate). -> (λ*, loss history [steps + 1], loss at λ*, image(s) at λ*, flag)."""
    carry = adam_start(held, prev_loss, prev_img, hp)
    carry, history = jax.lax.scan(lambda c, _: adam_step(loss_img, c, hp), carry, None, length=steps + 1)
    _, _, best, best_loss, best_img, bad = carry
    return best, history, best_loss, best_img, bad


# ------------------------------------------------------------------------------------------------ per-layer programs

def _vmapped(cfg: G2Config, layer: int, shared: bool, run):
    """The body of one layer's program: run(loss_img, extra, hp) per image (vmapped over the batch, with `extra`'s
    leading axis) or, shared, once on the batch-mean loss. loss_img: λ_layer -> (loss, image(s))."""

    def layer_program(params, state, styles, ds_z, ds_n, lam, img0, img_z, mask, extra, hp):
        data = (state, styles, ds_z, ds_n, lam, img0, img_z, mask)
        if shared:
            def batch_loss(lam_i):
                totals, imgs = jax.vmap(lambda *d: image_loss(params, cfg, layer, d, hp)(lam_i))(*data)
                return jnp.mean(totals), imgs

            return run(batch_loss, extra, hp)
        return jax.vmap(lambda d, e: run(image_loss(params, cfg, layer, d, hp), e, hp))(data, extra)

    return layer_program


@functools.lru_cache(maxsize=None)
def layer_program(cfg: G2Config, layer: int, steps: int, shared: bool = False):
    """Loop 'scan': one compiled program per (generator config, layer, steps, mode) that runs all steps + 1 Adam
    evaluations of the layer; jit caches per input shape beyond that. Params and hyper-parameters are arguments,
    so new weights or a new learning rate do not recompile. (params, state, styles, ds_z, ds_n, lam, img0, img_z,
    mask, prev_loss, prev_img, hp) -> `_adam_scan`'s tuple; prev_loss, prev_img: the current result, to beat.

    shared=False: one λ_layer per image (vmapped). shared=True (amortised): one λ_layer for the whole batch,
    minimising the batch-mean loss; prev_loss is then a scalar.
    """
    body = _vmapped(cfg, layer, shared, lambda loss_img, extra, hp: _adam_scan(loss_img, *extra, steps, hp))

    def layer_program(params, state, styles, ds_z, ds_n, lam, img0, img_z, mask, prev_loss, prev_img, hp):
        held = lam[layer][0] if shared else lam[layer]
        return body(params, state, styles, ds_z, ds_n, lam, img0, img_z, mask, (held, prev_loss, prev_img), hp)

    return programs.jit(cfg, layer_program)


@functools.lru_cache(maxsize=None)
def step_program(cfg: G2Config, layer: int, shared: bool = False):
    """Loop 'steps': ONE Adam step of layer `layer` (arguments as `layer_program`, with the carry of `start_carry`
    in place of prev_loss, prev_img) -> (carry, loss [B] or scalar); the host dispatches it steps + 1 times
    (`run_steps`). Same math as the scan, no while loop in the program."""
    return programs.jit(cfg, _vmapped(cfg, layer, shared, adam_step))


@functools.partial(jax.jit, static_argnames="shared")
def start_carry(held, prev_loss, prev_img, hp: Hyper, *, shared: bool):
    """The Adam carry of every image (vmapped) or of the batch (shared). held: the layer's λ now, [B, dim] or
    (shared) [dim]."""
    start = lambda h, pl, pi: adam_start(h, pl, pi, hp)  # noqa: E731
    return start(held, prev_loss, prev_img) if shared else jax.vmap(start)(held, prev_loss, prev_img)


def run_steps(cfg: G2Config, layer: int, steps: int, shared: bool, args, prev_loss, prev_img, hp, where):
    """Loop 'steps': dispatch layer `layer`'s step program steps + 1 times (never waits). args: the layer program's
    arguments up to the mask; where: `placement`'s pair. -> (λ*, [steps + 1] losses (each [B] or scalar), best
    loss, best image(s), flag)."""
    per_image, scalar = where
    lam = args[5]
    carry = start_carry(lam[layer][0] if shared else lam[layer], prev_loss, prev_img, hp, shared=shared)
    if per_image is not None:
        carry = jax.device_put(carry, carry_shardings(carry, shared, per_image, scalar))
    program, values = step_program(cfg, layer, shared), []
    for _ in range(steps + 1):
        carry, value = program(*args, carry, hp)
        values.append(value)
    _, _, best, best_loss, best_img, bad = carry
    return best, values, best_loss, best_img, bad


# ------------------------------------------------------------------------------------------------ loop 'one'

def _select_loss(params, cfg: G2Config, data, select, hp: Hyper):
    """Λ (list over all layers of [dim_l]) -> (total loss, image) of ONE image through the whole network, with the
    gradient reaching only the layers where select [num_layers] is 1 (the values are exactly Λ's:
    s·λ + (1 − s)·stop_gradient(λ) with s ∈ {0, 1}). data: (styles, ds_z, ds_n, img0, img_z, mask) of the image,
    without batch axis."""
    def f(lam):
        lam = [select[j] * l + (1.0 - select[j]) * jax.lax.stop_gradient(l) for j, l in enumerate(lam)]
        styles, ds_z, ds_n, img0, img_z, mask = data
        return total_loss(params, cfg, lam, styles, ds_z, ds_n, img0, img_z, mask, hp)

    return f


@functools.lru_cache(maxsize=None)
def one_program(cfg: G2Config, shared: bool = False):
    """Loop 'one': ONE program for every layer, one Adam step per call, per image (vmapped) or, shared, one Λ for
    the batch-mean loss. The layer is data (select: [num_layers], 1 at the layer being optimised), so a generator
    compiles one program instead of one per layer, at the cost of the whole network's forward and backward pass at
    every step (the prefix before the layer is recomputed, not reused). (params, styles, ds_z, ds_n, img0, img_z,
    mask, select, carry, hp) -> (carry, loss [B] or scalar); carry: `start_one`'s, λ being the list over all
    layers (of [dim_l] per image or shared)."""

    def layer_program(params, styles, ds_z, ds_n, img0, img_z, mask, select, carry, hp):
        data = (styles, ds_z, ds_n, img0, img_z, mask)
        if shared:
            def batch_loss(lam):
                totals, imgs = jax.vmap(lambda d: _select_loss(params, cfg, d, select, hp)(lam))(data)
                return jnp.mean(totals), imgs

            return adam_step(batch_loss, carry, hp)
        one = lambda d, c: adam_step(_select_loss(params, cfg, d, select, hp), c, hp)  # noqa: E731
        return jax.vmap(one)(data, carry)

    return programs.jit(cfg, layer_program)


@functools.partial(jax.jit, static_argnames="shared")
def start_one(lam, select, prev_loss, prev_img, hp: Hyper, *, shared: bool = False):
    """Loop 'one': the carry of every image (or, shared, of the batch: lam a list of [dim_l]) for the layer where
    select is 1 (Adam starts there as `adam_start` says, the other layers stay as they are; the best iterate to
    beat is the current result, λ as it is)."""
    def start(lam, pl, pi):
        return adam_start(lam, pl, pi, hp, [jnp.where(select[j] > 0, _initial(l, hp), l) for j, l in enumerate(lam)])

    return start(list(lam), prev_loss, prev_img) if shared else jax.vmap(start)(list(lam), prev_loss, prev_img)


def run_one(cfg: G2Config, layer: int, steps: int, data, lam, prev_loss, prev_img, hp, where, shared: bool = False):
    """Loop 'one': layer `layer`'s steps + 1 calls of `one_program` (never waits). data: (params, styles, ds_z, ds_n,
    img0, img_z, mask); lam: list of [B, dim_l] (shared: every row the same). -> as `run_steps` (the other layers'
    λ cannot change: their gradient is masked, so their Adam moments and updates stay exactly 0)."""
    per_image, scalar = where
    select = place(np.eye(len(cfg.layers), dtype=np.float32)[layer], scalar)
    carry = start_one([l[0] for l in lam] if shared else lam, select, prev_loss, prev_img, hp, shared=shared)
    if per_image is not None:
        carry = jax.device_put(carry, carry_shardings(carry, shared, per_image, scalar))
    program, values = one_program(cfg, shared), []
    for _ in range(steps + 1):
        carry, value = program(*data, select, carry, hp)
        values.append(value)
    _, _, best, best_loss, best_img, bad = carry
    return best[layer], values, best_loss, best_img, bad


# ------------------------------------------------------------------------------------------------ around the loop

@functools.lru_cache(maxsize=None)
def loss_program(cfg: G2Config):
    """(params, styles, ds_z, ds_n, lam, img0, img_z, mask, hp) -> (loss [B], image [B, R, R, C]): the objective
    per image at a whole Λ (lam: list of [B, dim_l]). `intervene`'s first best iterate to beat (at Λ = 0, the Z
    edit, or the Λ to refine); the learned Λ's training loss (`lambda_model`)."""

    def run(params, styles, ds_z, ds_n, lam, img0, img_z, mask, hp):
        def one(styles, ds_z, ds_n, lam, img0, img_z, mask):
            return total_loss(params, cfg, lam, styles, ds_z, ds_n, img0, img_z, mask, hp)

        return jax.vmap(one)(styles, ds_z, ds_n, lam, img0, img_z, mask)

    return programs.jit(cfg, run)

