"""Style Intervention (paper Sec. 3.2, Eq. 8-11): per-image, per-channel Λ found layer by layer.

The objective and its hyper-parameters are `editing.objective` (re-exported here: `InterventionConfig`,
`config_for`, `mix`, ...); how each layer's Adam steps run is `editing.loops` ('scan', 'steps', 'one',
`resolve_loop`). This module runs them over a batch: `intervene` (and `compile_programs`, `apply_lambda`).

Layers are optimised from coarse to fine. While layer i is optimised, layers < i hold their optimised λ and
layers > i hold λ = 0 (the Z-space edit), so the intermediate results start at the Z-space edit (or, given
`lam_start`, the Λ to refine). The activations before layer i depend only on fixed styles, so they are computed
once per layer and the layer's program synthesises from there. All layer programs are compiled before the loop
starts (`compile_programs`; in parallel threads off CPU), and the loop never waits for the devices: the loss
histories, errors and non-finite flags of every layer come back in one fetch at the end.

Best-iterate: a layer keeps the iterate with the lowest total loss among its current λ (0: no intervention at this
layer, i.e. the previous result) and every Adam iterate. The total loss is therefore non-increasing from layer to
layer.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np

from si_jax import metrics
from si_jax.editing import loops
from si_jax.editing.loops import LOOPS, ONE_PROGRAM_MAX_BATCHES, resolve_loop  # noqa: F401  (public names)
from si_jax.editing.objective import (OBJECTIVES, PAPER_CONFIG, PIXEL_LOSSES, Hyper,  # noqa: F401  (public names)
                                      InterventionConfig, config_for, hyper_parameters, mix, objective, pixel_loss)
from si_jax.stylegan2 import conv_library, network, programs
from si_jax.stylegan2.config import G2Config


@dataclasses.dataclass
class InterventionResult:
    """lam, styles: lists over layers of [B, dim_l] (Λ* and s + Δs_m(Λ*)).
    loss_history: [num_layers, steps + 1, B] total loss at each Adam iterate (the last one included).
    pix_error: [num_layers + 1, B] outside-mask MSE of the current result, index 0 = the start (the Z-space edit,
    Λ = 0, unless `intervene` was given lam_start).
    image: [B, R, R, C] final edited image. layer_images: [num_layers, B, R, R, C] or None (Fig. 6).
    """

    lam: list
    styles: list
    loss_history: np.ndarray
    pix_error: np.ndarray
    image: np.ndarray
    layer_images: np.ndarray | None = None


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


def _abstract(tree, sharding):
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def _zero_lam(styles, per_image) -> list:
    """Λ = 0 for every layer (the Z-space edit), placed like the styles: [B, dim_l] each."""
    return [loops.place(jnp.zeros(s.shape, jnp.float32), per_image) for s in styles]


def compile_programs(params, cfg: G2Config, styles, ds_z, ds_n, mask, config: InterventionConfig =
                     InterventionConfig(), *, shared: bool = False, workers: int | None = None,
                     on_compiled=None, loop: str = "auto", layers=None) -> list:
    """Compile `intervene`'s layer programs for these inputs ahead of time, on `workers` threads (XLA compiles
    outside the GIL). Default: one thread on CPU, where XLA's compiler already keeps the cores busy (measured on 2
    cores: 1.6 cores used by one compile; 2 threads gave 0.85-1.00x, BENCHMARKS.md), one per CPU core on GPU / TPU
    hosts (not measured there yet). Arguments as `intervene`. -> [num_layers] jax `Compiled` (e.g. for
    `cost_analysis()`; with loop 'steps' the program of one step; with loop 'one' a list of one program). layers:
    the indices of the layer programs to compile (default all; bench/loop_modes.py times a sample at 1024 px).

    jit reuses these executables when the loop calls the programs, as long as the shapes and shardings predicted
    here (per-image arrays placed like styles[0]) are the ones the loop produces; tests/test_devices.py checks that
    on 8 devices. A wrong prediction costs one more compile, never a wrong result. The persistent compilation
    cache (`engines.hosts.setup_jax`) serves these compiles like any other. on_compiled(done, num_layers): progress,
    called with done = 0 before the first compile and then as each program finishes
    (`engines.hosts.compile_counter`)."""
    params = programs.prepared(params, cfg)   # the programs run on the kernel forms computed once per weights
    cfg = conv_library.resolve(params, cfg, styles[0].shape[0], dtype=styles[0].dtype)   # XLA:CPU conv library
    per_image, scalar = loops.placement(styles[0])
    batch, hp = styles[0].shape[0], loops.place(hyper_parameters(config), scalar)
    mask = jnp.asarray(mask, jnp.float32)
    states = _abstract(jax.eval_shape(lambda p, s: network.states_before_layers(p, cfg, s), params, styles), per_image)
    img = _abstract(jax.eval_shape(programs.synth_program(cfg), params, styles), per_image)
    loss = jax.ShapeDtypeStruct((), jnp.float32, sharding=scalar) if shared else \
        jax.ShapeDtypeStruct((batch,), jnp.float32, sharding=per_image)
    done, zeros = _abstract(_zero_lam(styles, None), per_image), _zero_lam(styles, per_image)

    n_layers, finished, lock = len(cfg.layers), [0], threading.Lock()
    report = on_compiled or (lambda done, total: None)
    if resolve_loop(loop, shared=shared) == "one":
        report(0, 1)
        select = jax.ShapeDtypeStruct((n_layers,), jnp.float32, sharding=scalar)
        held = [jax.ShapeDtypeStruct(s.shape[1:], jnp.float32) for s in styles] if shared else zeros
        carry = jax.eval_shape(lambda *a: loops.start_one(*a, shared=shared), held, select, loss, img, hp)
        carry = jax.tree_util.tree_map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), carry,
                                       loops.carry_shardings(carry, shared, per_image, scalar))
        compiled = loops.one_program(cfg, shared).lower(params, styles, ds_z, ds_n, img, img, mask, select, carry,
                                                        hp).compile()
        report(1, 1)
        return [compiled]

    def compile_layer(i):
        lam = done[:i] + zeros[i:]
        args = (params, states[i], styles, ds_z, ds_n, lam, img, img, mask)
        if resolve_loop(loop, shared=shared) == "scan":
            compiled = loops.layer_program(cfg, i, config.steps_per_layer, shared).lower(*args, loss, img,
                                                                                          hp).compile()
        else:
            held = jax.ShapeDtypeStruct(styles[i].shape[1:], jnp.float32) if shared else zeros[i]
            carry = jax.eval_shape(lambda *a: loops.start_carry(*a, shared=shared), held, loss, img, hp)
            carry = jax.tree_util.tree_map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), carry,
                                           loops.carry_shardings(carry, shared, per_image, scalar))
            compiled = loops.step_program(cfg, i, shared).lower(*args, carry, hp).compile()
        with lock:
            finished[0] += 1
            report(finished[0], len(layers))
        return compiled

    if workers is None:
        workers = 1 if jax.default_backend() == "cpu" else os.cpu_count() or 1
    layers = range(n_layers) if layers is None else layers
    report(0, len(layers))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(compile_layer, layers))


_PRECOMPILED = set()   # (cfg, steps, shared, style shapes/dtypes, placement) that compile_programs has done


def intervene(params, cfg: G2Config, styles, ds_z, ds_n, mask, config: InterventionConfig = InterventionConfig(),
              *, shared: bool = False, return_layer_images: bool = False, on_layer=None,
              precompile: bool = True, on_compiled=None, loop: str = "auto", lam_start=None) -> InterventionResult:
    """Find Λ* for a batch of images.

    styles, ds_z, ds_n: lists over layers of [B, dim_l] (s = f(z), Δs_z, Δs_n); mask: [B, R, R], 1 inside the
    edited component. shared=True fits ONE Λ for the whole batch (amortised mode; apply it to other images with
    `apply_lambda`). precompile: compile every layer program first (`compile_programs`), once per generator, step
    count, batch shape and placement (re-lowering them for every batch cost 0.2-0.5 s at 256 px). loop: 'scan',
    'steps', 'one' or 'auto' (`resolve_loop`: how the Adam steps run; the same Λ* within float tolerance).
    lam_start: None (start at the Z edit, Λ = 0; each layer's Adam from λ_init) or a Λ to refine (list of [B, dim_l]
    or [dim_l]): the layers hold it until optimised, each layer's Adam starts from it, and the result is never
    worse than it (the best iterate). With cfg.numerics.conv_library 'auto' on CPU, the library XLA runs the loop's
    convs in is the one measured faster for this batch on this host (stylegan2.conv_library.resolve).

    The loop only dispatches: nothing waits for the devices until the one fetch at the end. on_layer(i,
    num_layers, pending) is called once layer i is dispatched; `pending` (a device array) is ready when the layer
    has run, so a progress report may wait for it (edit_run's does, on large models only). on_compiled: the
    progress callback of `compile_programs` (called only when this call compiles). Raises
    FloatingPointError if a non-finite loss or gradient appeared (naming the first such layer and its images);
    such a result is never returned.
    """
    _check_inputs(cfg, styles, ds_z, ds_n, mask)
    # The loop's programs run on the kernel forms computed once per weights (stylegan2.kernels: the same values);
    # the two input images on the caller's params, reusing the synthesis program the caller compiled (not a second)
    synth, caller_params, params = programs.synth_program(cfg), params, programs.prepared(params, cfg)
    cfg = conv_library.resolve(params, cfg, styles[0].shape[0], dtype=styles[0].dtype)   # XLA:CPU conv library
    loop = resolve_loop(loop, shared=shared)
    key = (cfg, config.steps_per_layer, shared, tuple((s.shape, s.dtype) for s in styles),
           loops.placement(styles[0]), loop)
    if precompile and key not in _PRECOMPILED:   # later batches of a run: the programs are compiled already
        compile_programs(params, cfg, styles, ds_z, ds_n, mask, config, shared=shared, on_compiled=on_compiled,
                         loop=loop)
        _PRECOMPILED.add(key)
    per_image, scalar = loops.placement(styles[0])
    hp = loops.place(hyper_parameters(config, warm_start=lam_start is not None), scalar)   # once, where the batch is
    mask = jnp.asarray(mask, jnp.float32)
    batch, n_layers = styles[0].shape[0], len(cfg.layers)
    img0, img_z = synth(caller_params, styles), synth(caller_params, [s + d for s, d in zip(styles, ds_z)])
    lam = _zero_lam(styles, per_image) if lam_start is None else \
        [loops.place(jnp.broadcast_to(jnp.asarray(l, jnp.float32), s.shape), per_image) for l, s in zip(lam_start,
                                                                                                        styles)]
    loss, img = loops.loss_program(cfg)(params, styles, ds_z, ds_n, lam, img0, img_z, mask, hp)
    loss = jnp.mean(loss) if shared else loss
    pix = [metrics.outside_mask_mse(img, img0, mask)]
    state = loops.place(network.initial_state(params, batch), per_image)
    history, bads, layer_images = [], [], []
    for i in range(n_layers):
        args, steps = (params, state, styles, ds_z, ds_n, lam, img0, img_z, mask), config.steps_per_layer
        if loop == "scan":
            lam_i, hist, loss, img, bad = loops.layer_program(cfg, i, steps, shared)(*args, loss, img, hp)
        elif loop == "one":
            data = (params, styles, ds_z, ds_n, img0, img_z, mask)
            lam_i, hist, loss, img, bad = loops.run_one(cfg, i, steps, data, lam, loss, img, hp, (per_image, scalar),
                                                        shared)
        else:
            lam_i, hist, loss, img, bad = loops.run_steps(cfg, i, steps, shared, args, loss, img, hp,
                                                          (per_image, scalar))
        lam[i] = loops.place(jnp.broadcast_to(lam_i, styles[i].shape), per_image) if shared else lam_i
        if loop != "one":   # 'one' runs the whole network at every step: no state to carry
            state = programs.layer_program(cfg, i)(params, state, styles[i] + mix(ds_z[i], ds_n[i], lam[i]))
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
