"""Style Intervention (paper Sec. 3.2, Eq. 8-11): per-image, per-channel Λ found layer by layer.

    Δs_m(Λ) = (1 − Λ)·Δs_z + Λ·Δs_n                                    (Eq. 8)
    L = ‖(1 − m)⊙(h(s + Δs_m) − h(s))‖₂ − λ_attr·cos(Δs_n, Δs_m) + λ_norm·‖Λ‖₂   (Eq. 9-11, objective 'paper')

The default objective 'keep_edit' measures the pixel terms as mean squared errors (the same meaning at every
resolution) and adds λ_inside · MSE_inside(h(s + Δs_m), h(s + Δs_z)): inside the mask the result should look like
the Z edit. Without it the optimum keeps the image by not editing (RESULTS.md: on the toyfaces world the paper's
objective loses 20-40 % of the Z edit's attribute flips on 5 of 6 attributes, as the independent judge
sees them).

Layers are optimised from coarse to fine. While layer i is optimised, layers < i hold their optimised λ and
layers > i hold λ = 0 (the Z-space edit), so the intermediate results start at the Z-space edit. Each layer is one
jitted program (cached per generator, layer, step count and shape): `lax.scan` over optax Adam steps, projected
onto [0, 1] after every step, `vmap`ped over the images of the batch; on CPU, where XLA runs a while loop's body
~3x slower, the same step is a program of its own that the host dispatches steps + 1 times, and a short run
compiles ONE program for all layers instead (the layer as data; `resolve_loop`, BENCHMARKS.md). The activations before layer i depend only
on fixed styles, so they are computed once per layer and the program synthesises from there. All layer programs
are compiled before the loop starts (`compile_programs`; in parallel threads off CPU), and the loop never waits for the
devices: the loss histories, errors and non-finite flags of every layer come back in one fetch at the end.

Best-iterate: a layer keeps the iterate with the lowest total loss among λ_i = 0 (no intervention at this layer,
i.e. the previous result) and every Adam iterate. The total loss is therefore non-increasing from layer to layer.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from si_jax import metrics
from si_jax.stylegan2 import network, programs
from si_jax.stylegan2.config import G2Config

PIXEL_LOSSES = ("l2", "mse")
HYPER = ("learning_rate", "lambda_attr", "lambda_norm", "lambda_init", "lambda_inside")


@dataclasses.dataclass(frozen=True)
class InterventionConfig:
    """Hyper-parameters. λ_attr, λ_norm: paper Sec. 4.1. Steps, learning rate, pixel_loss ('l2': the paper's norm,
    'mse': mean squared error) and λ_inside (weight of the inside-mask term against the Z edit; 0 = the paper):
    chosen by measurement (README, RESULTS.md). PAPER_CONFIG is Eq. 11 exactly."""

    steps_per_layer: int = 15
    learning_rate: float = 0.3
    lambda_attr: float = 1e-2
    lambda_norm: float = 1e-6
    lambda_init: float = 0.5
    pixel_loss: str = "mse"
    lambda_inside: float = 1.0

    def __post_init__(self):
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {', '.join(PIXEL_LOSSES)}, got {self.pixel_loss!r}")
        if not self.lambda_inside >= 0:
            raise ValueError(f"lambda_inside must be >= 0, got {self.lambda_inside}")
        if self.steps_per_layer < 1:
            raise ValueError(f"steps_per_layer must be >= 1, got {self.steps_per_layer}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.lambda_init <= 1.0:
            raise ValueError(f"lambda_init must be in [0, 1], got {self.lambda_init}")


# The paper's Eq. 11 exactly: the outside-mask L2 norm, no inside term (`--objective=paper`).
PAPER_CONFIG = InterventionConfig(pixel_loss="l2", lambda_inside=0.0)
OBJECTIVES = ("keep_edit", "paper")


def config_for(objective: str, **fields) -> InterventionConfig:
    """'keep_edit' (si_jax's default: MSE outside + λ_inside · MSE inside against the Z edit) or 'paper' (Eq. 11:
    the outside L2 norm only; `lambda_inside` / `pixel_loss` in fields are then overridden), other fields as
    given."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "paper":
        fields = {**fields, "pixel_loss": PAPER_CONFIG.pixel_loss, "lambda_inside": PAPER_CONFIG.lambda_inside}
    return InterventionConfig(**fields)


LOOPS = ("auto", "scan", "steps", "one")


ONE_PROGRAM_MAX_BATCHES = 4   # 'auto' on CPU: 'one' for runs of at most this many batches (measured: resolve_loop)


def resolve_loop(loop: str = "auto", backend: str | None = None, shared: bool = False,
                 batches: int | None = None) -> str:
    """How each layer's Adam steps run: 'scan' (one program per layer, a `lax.scan` over the steps), 'steps'
    (one program per layer for ONE step, dispatched steps + 1 times by the host; same math, no while loop) or
    'one' (ONE program for all layers and steps, `_one_program`: one compile instead of one per layer, each step a
    pass of the whole network; per-image Λ only, shared=True runs 'steps' instead).

    'auto': 'steps' on CPU, 'scan' elsewhere. Measured with bench/edit_floor.py (BENCHMARKS.md): XLA:CPU runs the
    body of a while loop ~3x slower than the same ops as a program of their own (toyfaces, batch 16, layer
    b16.conv0: 113 ms of CPU per Adam step inside the scan, 39 ms as a step program, 40 ms for the floor's
    value-and-gradient pass); unrolling the scan 2 or 4 times does not help (105, 103 ms), unrolling it fully
    does (39 ms) at 3x the compile time. Off CPU a scan saves steps + 1 dispatches per layer (not measured there)."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    if loop == "auto":
        if (backend or jax.default_backend()) != "cpu":
            return "scan"
        loop = "one" if batches is not None and batches <= ONE_PROGRAM_MAX_BATCHES else "steps"
    return "steps" if loop == "one" and shared else loop


@dataclasses.dataclass
class InterventionResult:
    """lam, styles: lists over layers of [B, dim_l] (Λ* and s + Δs_m(Λ*)).
    loss_history: [num_layers, steps + 1, B] total loss at each Adam iterate (the last one included).
    pix_error: [num_layers + 1, B] outside-mask MSE of the current result, index 0 = the Z-space edit (Λ = 0).
    image: [B, R, R, C] final edited image. layer_images: [num_layers, B, R, R, C] or None (Fig. 6).
    """

    lam: list
    styles: list
    loss_history: np.ndarray
    pix_error: np.ndarray
    image: np.ndarray
    layer_images: np.ndarray | None = None


def mix(ds_z, ds_n, lam):
    """Eq. 8 for one layer or elementwise over lists: (1 − λ)·Δs_z + λ·Δs_n."""
    if isinstance(lam, (list, tuple)):
        return [mix(a, b, l) for a, b, l in zip(ds_z, ds_n, lam)]
    return (1.0 - lam) * ds_z + lam * ds_n


def _safe_norm(x, axis=None):
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=axis) + 1e-12)


def pixel_loss(img, ref, mask, hp):
    """Per image [N]: the error of img against ref where mask is 0, w_l2·‖(1 − m)⊙(img − ref)‖₂ (the paper's Eq. 9;
    grows with the resolution) + w_mse·(mean squared error over those pixels; resolution-free). The weights
    hp['w_l2'], hp['w_mse'] are (1, 0) or (0, 1) (config.pixel_loss): arguments, so both objectives share one
    compiled program."""
    return hp["w_l2"] * metrics.masked_l2(img, ref, mask) + hp["w_mse"] * metrics.outside_mask_mse(img, ref, mask)


def objective(params, cfg: G2Config, layer: int, lam_i, state, styles, ds_z, ds_n, lam, img0, img_z, mask, hp):
    """Total loss of ONE image as a function of λ_i. All per-image arrays carry a leading batch of 1.

        L = L_pix(outside, vs h(s)) + λ_inside·L_pix(inside, vs h(s + Δs_z)) − λ_attr·cos + λ_norm·‖Λ‖₂

    λ_inside = 0 is the paper's Eq. 11. λ_inside > 0 keeps the Z edit's change inside the mask, so the optimum is
    "the Z edit inside, the input outside" rather than "no edit at all" (RESULTS.md measures both).
    lam_i: [dim_i]; state: SynthState before layer `layer`; styles, ds_z, ds_n, lam: lists of [1, dim_l];
    img0, img_z: [1, R, R, C] = h(s), h(s + Δs_z); mask: [1, R, R]; hp: dict of scalar hyper-parameters
    (`hyper_parameters`). Returns (total, (pix, cos, image)).
    """
    lam = list(lam)
    lam[layer] = lam_i[None]
    dsm = mix(ds_z, ds_n, lam)
    edited = [s + d for s, d in zip(styles, dsm)]
    img = network.synthesize_from(params, cfg, state, edited, layer)
    pix = pixel_loss(img, img0, mask, hp)[0]
    inside = pixel_loss(img, img_z, 1.0 - mask, hp)[0]
    flat_m, flat_n = jnp.concatenate(dsm, -1)[0], jnp.concatenate(ds_n, -1)[0]
    cos = jnp.dot(flat_m, flat_n) / (_safe_norm(flat_m) * _safe_norm(flat_n))
    norm = _safe_norm(jnp.concatenate(lam, -1))
    total = pix + hp["lambda_inside"] * inside - hp["lambda_attr"] * cos + hp["lambda_norm"] * norm
    return total, (pix, cos, img)


def _image_loss(params, cfg, layer, data, hp):
    """λ_layer -> (total loss, image [R, R, C]) of ONE image. data: (state, styles, ds_z, ds_n, lam, img0, img_z,
    mask) without batch axis (a batch of 1 is added for the generator)."""
    batched = jax.tree_util.tree_map(lambda a: a[None], tuple(data))

    def f(lam_i):
        total, (_, _, img) = objective(params, cfg, layer, lam_i, *batched, hp)
        return total, img[0]

    return f


def _adam_start(lam0, prev_loss, prev_img, hp, best0=None) -> tuple:
    """The carry before the first Adam step: (λ, Adam state, best λ, its loss, its image(s), non-finite flag).
    λ: an array or a list of arrays (loop 'one'). prev_loss, prev_img, best0: loss, image(s) and λ of the current
    result, the best iterate to beat (best0 default: λ = 0)."""
    best0 = jax.tree_util.tree_map(jnp.zeros_like, lam0) if best0 is None else best0
    return lam0, optax.adam(hp["learning_rate"]).init(lam0), best0, prev_loss, prev_img, jnp.array(False)


def _adam_step(loss_img, carry, hp) -> tuple:
    """One projected Adam step on λ that keeps the best iterate. loss_img: λ -> (scalar loss, image(s)).
    -> (carry, loss at the λ this step started from)."""
    lam_i, opt_state, best, best_loss, best_img, bad = carry
    (value, img), grad = jax.value_and_grad(loss_img, has_aux=True)(lam_i)
    better = value < best_loss
    best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), lam_i, best)
    best_loss, best_img = jnp.where(better, value, best_loss), jnp.where(better, img, best_img)
    bad = bad | ~jnp.isfinite(value) | ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(g))
                                                          for g in jax.tree_util.tree_leaves(grad)]))
    updates, opt_state = optax.adam(hp["learning_rate"]).update(grad, opt_state, lam_i)
    lam_i = jax.tree_util.tree_map(lambda a: jnp.clip(a, 0.0, 1.0), optax.apply_updates(lam_i, updates))
    return (lam_i, opt_state, best, best_loss, best_img, bad), value


def _adam_best(loss_img, lam0, prev_loss, prev_img, steps: int, hp):
    """Projected Adam on λ from lam0, keeping the best iterate, as one `lax.scan` (loop 'scan').

    The scan runs steps + 1 evaluations (the last update is discarded), so the program holds one copy of the
    forward + backward pass and every iterate, the last included, is a candidate.
    Returns (λ*, loss history [steps + 1], loss at λ*, image(s) at λ*, non-finite flag).
    """
    carry = _adam_start(lam0, prev_loss, prev_img, hp)
    carry, history = jax.lax.scan(lambda c, _: _adam_step(loss_img, c, hp), carry, None, length=steps + 1)
    _, _, best, best_loss, best_img, bad = carry
    return best, history, best_loss, best_img, bad


def _vmapped(cfg: G2Config, layer: int, shared: bool, run):
    """The body of one layer's program: run(loss_img, extra, hp) per image (vmapped over the batch, with `extra`'s
    leading axis) or, shared, once on the batch-mean loss. loss_img: λ_layer -> (loss, image(s))."""

    def layer_program(params, state, styles, ds_z, ds_n, lam, img0, img_z, mask, extra, hp):
        data = (state, styles, ds_z, ds_n, lam, img0, img_z, mask)
        if shared:
            def batch_loss(lam_i):
                totals, imgs = jax.vmap(lambda *d: _image_loss(params, cfg, layer, d, hp)(lam_i))(*data)
                return jnp.mean(totals), imgs

            return run(batch_loss, extra, hp)
        return jax.vmap(lambda d, e: run(_image_loss(params, cfg, layer, d, hp), e, hp))(data, extra)

    return layer_program


@functools.lru_cache(maxsize=None)
def _layer_program(cfg: G2Config, layer: int, steps: int, shared: bool = False):
    """Loop 'scan': one compiled program per (generator config, layer, steps, mode) that runs all steps + 1 Adam
    evaluations of the layer; jit caches per input shape beyond that. Params and hyper-parameters are arguments,
    so new weights or a new learning rate do not recompile. extra = (prev_loss, prev_img): the result to beat.

    shared=False: one λ_layer per image (vmapped). shared=True (amortised): one λ_layer for the whole batch,
    minimising the batch-mean loss; prev_loss is then a scalar.
    """
    dim = cfg.layers[layer].dim

    def run(loss_img, extra, hp):
        return _adam_best(loss_img, jnp.full((dim,), hp["lambda_init"], jnp.float32), *extra, steps, hp)

    body = _vmapped(cfg, layer, shared, run)

    def layer_program(params, state, styles, ds_z, ds_n, lam, img0, img_z, mask, prev_loss, prev_img, hp):
        return body(params, state, styles, ds_z, ds_n, lam, img0, img_z, mask, (prev_loss, prev_img), hp)

    return jax.jit(layer_program)


@functools.lru_cache(maxsize=None)
def _step_program(cfg: G2Config, layer: int, shared: bool = False):
    """Loop 'steps': ONE Adam step of layer `layer` (arguments as `_layer_program`, with the carry of
    `_start_carry` in place of prev_loss, prev_img) -> (carry, loss [B] or scalar); the host loop dispatches it
    steps + 1 times. Same math as the scan, no while loop in the program."""
    return jax.jit(_vmapped(cfg, layer, shared, _adam_step))


@functools.partial(jax.jit, static_argnames=("dim", "shared"))
def _start_carry(prev_loss, prev_img, hp, *, dim: int, shared: bool):
    """The Adam carry of every image (vmapped) or of the batch (shared), λ starting at λ_init everywhere."""
    start = lambda pl, pi: _adam_start(jnp.full((dim,), hp["lambda_init"], jnp.float32), pl, pi, hp)  # noqa: E731
    return start(prev_loss, prev_img) if shared else jax.vmap(start)(prev_loss, prev_img)


def _whole_loss(params, cfg: G2Config, data, select, hp):
    """Loop 'one': Λ (list over all layers of [dim_l]) -> (total loss, image) of ONE image through the whole
    network, with the gradient reaching only the layers where select [num_layers] is 1 (the values are exactly Λ's:
    s·λ + (1 − s)·stop_gradient(λ) with s ∈ {0, 1}). data: (styles, ds_z, ds_n, img0, img_z, mask) of the image,
    without batch axis."""
    styles, ds_z, ds_n, img0, img_z, mask = jax.tree_util.tree_map(lambda a: a[None], tuple(data))
    state = network.initial_state(params, 1)

    def f(lam):
        lam = [(select[j] * l + (1.0 - select[j]) * jax.lax.stop_gradient(l))[None] for j, l in enumerate(lam)]
        total, (_, _, img) = objective(params, cfg, 0, lam[0][0], state, styles, ds_z, ds_n, lam, img0, img_z, mask,
                                       hp)
        return total, img[0]

    return f


@functools.lru_cache(maxsize=None)
def _one_program(cfg: G2Config):
    """Loop 'one': ONE program for every layer, one Adam step per call, per image (vmapped). The layer is data
    (select: [num_layers], 1 at the layer being optimised), so a generator compiles one program instead of one per
    layer, at the cost of the whole network's forward and backward pass at every step (the prefix before the layer
    is recomputed, not reused). (params, styles, ds_z, ds_n, img0, img_z, mask, select, carry, hp) -> (carry,
    loss [B]); carry: `_start_one`'s, λ being the list over all layers."""

    def layer_program(params, styles, ds_z, ds_n, img0, img_z, mask, select, carry, hp):
        one = lambda d, c: _adam_step(_whole_loss(params, cfg, d, select, hp), c, hp)  # noqa: E731
        return jax.vmap(one)((styles, ds_z, ds_n, img0, img_z, mask), carry)

    return jax.jit(layer_program)


@jax.jit
def _start_one(lam, select, prev_loss, prev_img, hp):
    """Loop 'one': the carry of every image for the layer where select is 1: λ_init there, the other layers as
    they are (optimised before, or 0); the best iterate to beat is the current result (λ as it is)."""
    lam0 = [jnp.where(select[j] > 0, hp["lambda_init"], l) for j, l in enumerate(lam)]
    return jax.vmap(lambda l0, b0, pl, pi: _adam_start(l0, pl, pi, hp, b0))(lam0, list(lam), prev_loss, prev_img)


@functools.lru_cache(maxsize=None)
def _advance_program(cfg: G2Config, layer: int):
    """state before layer -> state after it, with the layer's edited style."""
    return jax.jit(lambda params, state, s: network.layer_forward(params["layers"][layer], cfg.layers[layer],
                                                                    cfg, state, s))


@functools.lru_cache(maxsize=None)
def _start_program(cfg: G2Config):
    """Loss and image of the Z-space edit (Λ = 0) per image: the first best iterate to beat.
    -> (loss [B], image [B, R, R, C])."""

    def run(params, styles, ds_z, ds_n, img0, img_z, mask, hp):
        def one(styles, ds_z, ds_n, img0, img_z, mask):
            lam = [jnp.zeros_like(s) for s in styles]
            data = (network.SynthState(params["const"], None), styles, ds_z, ds_n, lam, img0, img_z, mask)
            return _image_loss(params, cfg, 0, data, hp)(lam[0])

        return jax.vmap(one)(styles, ds_z, ds_n, img0, img_z, mask)

    return jax.jit(run)


def hyper_parameters(config: InterventionConfig) -> dict:
    """The traced scalars of the objective and of Adam (new values never recompile), as host numpy scalars:
    `intervene` places them once per call where the batch lives (jnp scalars would sit on device 0 and be copied
    from there on every program call of a sharded batch)."""
    hp = {k: np.float32(getattr(config, k)) for k in HYPER}
    hp["w_l2"], hp["w_mse"] = (np.float32(config.pixel_loss == k) for k in PIXEL_LOSSES)
    return hp


@jax.jit
def _all_finite(*lists):
    """One program (one sync; on a sharded batch one set of reductions, not one collective per array):
    [len(lists)] bool, whether every array of each list is finite."""
    return jnp.stack([jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in lst])) for lst in lists])


def _check_inputs(cfg, styles, ds_z, ds_n, mask):
    dims = tuple(l.dim for l in cfg.layers)
    for name, lst in (("styles", styles), ("ds_z", ds_z), ("ds_n", ds_n)):
        if len(lst) != len(dims) or any(a.shape[-1] != d for a, d in zip(lst, dims)):
            raise ValueError(f"{name} must be a list of {len(dims)} arrays with dims {dims}, got "
                             f"{[tuple(a.shape) for a in lst]}")
    batch, res = styles[0].shape[0], cfg.img_resolution
    if tuple(mask.shape) != (batch, res, res):
        raise ValueError(f"mask must have shape {(batch, res, res)} (batch, resolution, resolution), got "
                         f"{tuple(mask.shape)}")
    for name, ok in zip(("styles", "ds_z", "ds_n"), jax.device_get(_all_finite(styles, ds_z, ds_n))):
        if not ok:
            raise ValueError(f"{name} contains NaN or infinite values")


def _placement(ref):
    """Where intervene's per-image arrays live: (per-image sharding, scalar sharding) of a committed jax.Array
    `ref` (a sharded batch), (None, None) otherwise (uncommitted: jit places them)."""
    if not (isinstance(ref, jax.Array) and ref.committed):
        return None, None
    sh = ref.sharding
    return sh, (NamedSharding(sh.mesh, PartitionSpec()) if isinstance(sh, NamedSharding) else sh)


def _place(tree, sharding):
    return tree if sharding is None else jax.device_put(tree, sharding)


def _abstract(tree, sharding):
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def _zero_lam(styles, per_image) -> list:
    """Λ = 0 for every layer (the Z-space edit), placed like the styles: [B, dim_l] each."""
    return [_place(jnp.zeros(s.shape, jnp.float32), per_image) for s in styles]


def _states_before_layers(params, cfg, styles) -> list:
    """SynthState before each layer [num_layers] (for shapes: `jax.eval_shape`)."""
    states, state = [], network.initial_state(params, styles[0].shape[0])
    for i in range(len(cfg.layers)):
        states.append(state)
        state = network.layer_forward(params["layers"][i], cfg.layers[i], cfg, state, styles[i])
    return states


def _carry_shardings(carry, shared: bool, per_image, scalar):
    """Where the Adam carry lives: with the images (per image; shared: its image(s)), else replicated."""
    return jax.tree_util.tree_map(lambda a: per_image if not shared or a.ndim == 4 else scalar, carry)


def _run_steps(cfg: G2Config, layer: int, steps: int, shared: bool, args, prev_loss, prev_img, hp, placement):
    """Loop 'steps': dispatch layer `layer`'s step program steps + 1 times (never waits). args: the layer program's
    arguments up to the mask. -> (λ*, [steps + 1] losses (each [B] or scalar), best loss, best image(s), flag)."""
    per_image, scalar = placement
    carry = _start_carry(prev_loss, prev_img, hp, dim=cfg.layers[layer].dim, shared=shared)
    if per_image is not None:
        carry = jax.device_put(carry, _carry_shardings(carry, shared, per_image, scalar))
    program, values = _step_program(cfg, layer, shared), []
    for _ in range(steps + 1):
        carry, value = program(*args, carry, hp)
        values.append(value)
    _, _, best, best_loss, best_img, bad = carry
    return best, values, best_loss, best_img, bad


def _run_one(cfg: G2Config, layer: int, steps: int, data, lam, prev_loss, prev_img, hp, placement):
    """Loop 'one': layer `layer`'s steps + 1 calls of `_one_program` (never waits). data: (params, styles, ds_z, ds_n,
    img0, img_z, mask). -> as `_run_steps` (the other layers' λ cannot change: their gradient is masked, so their
    Adam moments and updates stay exactly 0)."""
    per_image, scalar = placement
    select = _place(np.eye(len(cfg.layers), dtype=np.float32)[layer], scalar)
    carry = _start_one(lam, select, prev_loss, prev_img, hp)
    if per_image is not None:
        carry = jax.device_put(carry, _carry_shardings(carry, False, per_image, scalar))
    program, values = _one_program(cfg), []
    for _ in range(steps + 1):
        carry, value = program(*data, select, carry, hp)
        values.append(value)
    _, _, best, best_loss, best_img, bad = carry
    return best[layer], values, best_loss, best_img, bad


def compile_programs(params, cfg: G2Config, styles, ds_z, ds_n, mask, config: InterventionConfig =
                     InterventionConfig(), *, shared: bool = False, workers: int | None = None,
                     on_compiled=None, loop: str = "auto") -> list:
    """Compile `intervene`'s layer programs for these inputs ahead of time, on `workers` threads (XLA compiles
    outside the GIL). Default: one thread on CPU, where XLA's compiler already keeps the cores busy (measured on 2
    cores: 1.6 cores used by one compile; 2 threads gave 0.85-1.00x, BENCHMARKS.md), one per CPU core on GPU / TPU
    hosts (not measured there yet). Arguments as `intervene`. -> [num_layers] jax `Compiled` (e.g. for
    `cost_analysis()`; with loop 'steps' the program of one step; with loop 'one' a list of one program).

    jit reuses these executables when the loop calls the programs, as long as the shapes and shardings predicted
    here (per-image arrays placed like styles[0]) are the ones the loop produces; tests/test_devices.py checks that
    on 8 devices. A wrong prediction costs one more compile, never a wrong result. The persistent compilation
    cache (`engines.cli.setup_jax`) serves these compiles like any other. on_compiled(done, num_layers): progress,
    called with done = 0 before the first compile and then as each program finishes (`engines.cli.compile_counter`)."""
    per_image, scalar = _placement(styles[0])
    batch, hp, mask = styles[0].shape[0], _place(hyper_parameters(config), scalar), jnp.asarray(mask, jnp.float32)
    states = _abstract(jax.eval_shape(lambda p, s: _states_before_layers(p, cfg, s), params, styles), per_image)
    img = _abstract(jax.eval_shape(programs.synth_program(cfg), params, styles), per_image)
    loss = jax.ShapeDtypeStruct((), jnp.float32, sharding=scalar) if shared else \
        jax.ShapeDtypeStruct((batch,), jnp.float32, sharding=per_image)
    done, zeros = _abstract(_zero_lam(styles, None), per_image), _zero_lam(styles, per_image)

    n_layers, finished, lock = len(cfg.layers), [0], threading.Lock()
    report = on_compiled or (lambda done, total: None)
    if resolve_loop(loop, shared=shared) == "one":
        report(0, 1)
        select = jax.ShapeDtypeStruct((n_layers,), jnp.float32, sharding=scalar)
        carry = jax.eval_shape(_start_one, zeros, select, loss, img, hp)
        carry = _abstract(carry, per_image)
        compiled = _one_program(cfg).lower(params, styles, ds_z, ds_n, img, img, mask, select, carry, hp).compile()
        report(1, 1)
        return [compiled]

    def compile_layer(i):
        lam = done[:i] + zeros[i:]
        args = (params, states[i], styles, ds_z, ds_n, lam, img, img, mask)
        if resolve_loop(loop, shared=shared) == "scan":
            compiled = _layer_program(cfg, i, config.steps_per_layer, shared).lower(*args, loss, img, hp).compile()
        else:
            carry = jax.eval_shape(functools.partial(_start_carry, dim=cfg.layers[i].dim, shared=shared), loss, img,
                                   hp)
            carry = jax.tree_util.tree_map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), carry,
                                           _carry_shardings(carry, shared, per_image, scalar))
            compiled = _step_program(cfg, i, shared).lower(*args, carry, hp).compile()
        with lock:
            finished[0] += 1
            report(finished[0], n_layers)
        return compiled

    if workers is None:
        workers = 1 if jax.default_backend() == "cpu" else os.cpu_count() or 1
    report(0, n_layers)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(compile_layer, range(n_layers)))


_PRECOMPILED = set()   # (cfg, steps, shared, style shapes/dtypes, placement) that compile_programs has done


def intervene(params, cfg: G2Config, styles, ds_z, ds_n, mask, config: InterventionConfig = InterventionConfig(),
              *, shared: bool = False, return_layer_images: bool = False, on_layer=None,
              precompile: bool = True, on_compiled=None, loop: str = "auto") -> InterventionResult:
    """Find Λ* for a batch of images.

    styles, ds_z, ds_n: lists over layers of [B, dim_l] (s = f(z), Δs_z, Δs_n); mask: [B, R, R], 1 inside the
    edited component. shared=True fits ONE Λ for the whole batch (amortised mode; apply it to other images with
    `apply_lambda`). precompile: compile every layer program first (`compile_programs`), once per generator, step
    count, batch shape and placement (re-lowering them for every batch cost 0.2-0.5 s at 256 px). loop: 'scan',
    'steps', 'one' or 'auto' (`resolve_loop`: how the Adam steps run; the same Λ* within float tolerance).

    The loop only dispatches: nothing waits for the devices until the one fetch at the end. on_layer(i,
    num_layers, pending) is called once layer i is dispatched; `pending` (a device array) is ready when the layer
    has run, so a progress report may wait for it (edit_run's does, on large models only). on_compiled: the
    progress callback of `compile_programs` (called only when this call compiles). Raises
    FloatingPointError if a non-finite loss or gradient appeared (naming the first such layer and its images);
    such a result is never returned.
    """
    _check_inputs(cfg, styles, ds_z, ds_n, mask)
    loop = resolve_loop(loop, shared=shared)
    key = (cfg, config.steps_per_layer, shared, tuple((s.shape, s.dtype) for s in styles), _placement(styles[0]),
           loop)
    if precompile and key not in _PRECOMPILED:   # later batches of a run: the programs are compiled already
        compile_programs(params, cfg, styles, ds_z, ds_n, mask, config, shared=shared, on_compiled=on_compiled,
                         loop=loop)
        _PRECOMPILED.add(key)
    per_image, scalar = _placement(styles[0])
    hp = _place(hyper_parameters(config), scalar)   # once per call, on every device of a sharded batch
    mask = jnp.asarray(mask, jnp.float32)
    batch, n_layers = styles[0].shape[0], len(cfg.layers)
    img0 = programs.synth_program(cfg)(params, styles)
    img_z = programs.synth_program(cfg)(params, [s + d for s, d in zip(styles, ds_z)])
    lam = _zero_lam(styles, per_image)
    loss, img = _start_program(cfg)(params, styles, ds_z, ds_n, img0, img_z, mask, hp)
    loss = jnp.mean(loss) if shared else loss
    pix = [metrics.outside_mask_mse(img, img0, mask)]
    state = _place(network.initial_state(params, batch), per_image)
    history, bads, layer_images = [], [], []
    for i in range(n_layers):
        args = (params, state, styles, ds_z, ds_n, lam, img0, img_z, mask)
        if loop == "scan":
            lam_i, hist, loss, img, bad = _layer_program(cfg, i, config.steps_per_layer, shared)(*args, loss, img, hp)
        elif loop == "one":
            lam_i, hist, loss, img, bad = _run_one(cfg, i, config.steps_per_layer, (params, styles, ds_z, ds_n, img0,
                                                   img_z, mask), lam, loss, img, hp, (per_image, scalar))
        else:
            lam_i, hist, loss, img, bad = _run_steps(cfg, i, config.steps_per_layer, shared, args, loss, img, hp,
                                                     (per_image, scalar))
        lam[i] = _place(jnp.broadcast_to(lam_i, styles[i].shape), per_image) if shared else lam_i
        if loop != "one":   # 'one' runs the whole network at every step: no state to carry
            state = _advance_program(cfg, i)(params, state, styles[i] + mix(ds_z[i], ds_n[i], lam[i]))
        history.append(hist)
        bads.append(bad)
        pix.append(metrics.outside_mask_mse(img, img0, mask))
        if return_layer_images:
            layer_images.append(img)
        if on_layer is not None:
            on_layer(i, n_layers, loss)
    bads, history, pix, image, layer_images = jax.device_get((bads, history, pix, img, layer_images))  # one fetch
    for i, bad in enumerate(bads):
        if np.any(bad):
            where = "the batch" if shared else f"images {np.flatnonzero(bad).tolist()}"
            raise FloatingPointError(f"non-finite loss or gradient while optimising layer {i} "
                                     f"({cfg.layers[i].name}) for {where}")
    history = [np.stack(h, -1) if isinstance(h, list) else h for h in history]   # 'steps': one loss per step
    history = [np.broadcast_to(h[:, None], (len(h), batch)) if shared else h.T for h in history]
    edited = [s + d for s, d in zip(styles, mix(ds_z, ds_n, lam))]
    return InterventionResult(lam=lam, styles=edited, loss_history=np.stack(history), pix_error=np.stack(pix),
                              image=np.asarray(image), layer_images=np.stack(layer_images) if layer_images else None)


def apply_lambda(params, cfg: G2Config, styles, ds_z, ds_n, lam) -> tuple:
    """Amortised mode, no optimisation: edit with a given Λ (e.g. `intervene(..., shared=True).lam[l][0]`).

    lam: list of [dim_l] (shared) or [B, dim_l]. -> (edited styles list of [B, dim_l], image [B, R, R, C]).
    """
    lam = [jnp.broadcast_to(jnp.asarray(l), s.shape) for l, s in zip(lam, styles)]
    edited = [s + d for s, d in zip(styles, mix(ds_z, ds_n, lam))]
    return edited, np.asarray(programs.synth_program(cfg)(params, edited))
