"""The edit loop against its floor: warm `intervene` time / (steps + 1) × Σ_l [fwd+bwd of layer l's suffix].

    python bench/edit_floor.py                                   # builtin:toyfaces and paper256, batch 16 and 1
    python bench/edit_floor.py --configs=toyfaces --batches=16 --repeats=5

The floor of one intervention is what its generator passes cost: every Adam step of layer l needs one forward and
one backward pass of `synthesize_from(l)` (the network from layer l on) w.r.t. layer l's style, and the scan runs
steps + 1 of them. Both are timed in this process, interleaved (floor, loop, floor, loop, ...), warm (compiled
before timing), the median of --repeats; the ratio is what the rest of the loop costs (Adam, losses, best-iterate
bookkeeping, vmap, the per-layer state advance). Prints the CPU model, then one row per (config, batch, loop).
"""
from __future__ import annotations

import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

import si_jax
from si_jax.editing import intervention
from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config

flags.DEFINE_list("configs", ["toyfaces", "paper256"], "toyfaces (builtin:toyfaces, 32 px) | paper256 (random "
                  "weights, 256 px, channel_base 16384) | f1024 (config-f 1024, random weights).")
flags.DEFINE_list("batches", ["16", "1"], "Batch sizes.")
flags.DEFINE_integer("steps", 15, "Adam steps per layer (the default objective's).")
flags.DEFINE_integer("repeats", 3, "Timed repeats (median).")
flags.DEFINE_list("loops", ["scan", "steps"], "intervene(loop=...) modes to time beside the floor (scan: one "
                  "program per layer; steps: one program per Adam step; see intervention.resolve_loop).")
FLAGS = flags.FLAGS


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in info if line.startswith("flags"))
        name += f" ({', '.join(f for f in ('avx512f', 'avx2') if f in flags) or 'no AVX2'})"
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {jax.local_device_count()} {jax.default_backend()} device(s), {_cores()} cores"


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def load(name: str):
    """-> (params, cfg) of a bench config."""
    if name == "toyfaces":
        return si_jax.load_generator("builtin:toyfaces")
    cfg = {"paper256": G2Config.make(256, channel_base=16384), "f1024": G2Config.make()}[name]
    return si_jax.to_jax_params(si_jax.random_canonical(cfg, 0), cfg), cfg


def inputs(params, cfg, batch: int, seed: int = 2) -> tuple:
    """styles of `batch` random z, Δs_z, Δs_n (0.1·normal) and a centred box mask [batch, R, R]."""
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.standard_normal((batch, cfg.z_dim)), jnp.float32)
    styles = si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, z))
    ds_z, ds_n = ([jnp.asarray(0.1 * rng.standard_normal(s.shape), jnp.float32) for s in styles] for _ in "zn")
    r = cfg.img_resolution
    mask = np.zeros((batch, r, r), np.float32)
    mask[:, r // 4:3 * r // 4, r // 4:3 * r // 4] = 1.0
    return styles, ds_z, ds_n, mask


def floor_programs(params, cfg, styles) -> list:
    """Per layer l: (jitted value and gradient of mean(synthesize_from(l)) w.r.t. style l, its arguments). The
    value keeps the whole suffix's forward pass in the program (a gradient alone lets XLA drop what does not depend
    on style l, e.g. everything but the toRGB path for a toRGB layer; the loop needs the loss value)."""
    states = network.states_before_layers(params, cfg, styles)
    progs = []
    for layer, state in enumerate(states):
        def loss(s_l, params, state, styles, layer=layer):
            styles = list(styles)
            styles[layer] = s_l
            return jnp.mean(network.synthesize_from(params, cfg, state, styles, layer))
        progs.append((jax.jit(jax.value_and_grad(loss)), (styles[layer], params, state, styles)))
    return progs


def timed(fn) -> tuple:
    """(wall seconds, CPU seconds of this process, all threads) of fn(). CPU time is what to compare on a shared
    machine: other processes' load stretches the wall time, not (much) the CPU time."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def floor_pass(progs) -> None:
    """One value-and-gradient pass of every layer's suffix (the floor of one Adam step of every layer)."""
    jax.block_until_ready([p(*args) for p, args in progs])


def bench(name: str, batch: int, steps: int, repeats: int, loops) -> list:
    """One row per loop mode: the floor and every mode timed interleaved in this process."""
    params, cfg = load(name)
    data = inputs(params, cfg, batch)
    config = intervention.InterventionConfig(steps_per_layer=steps)
    progs = floor_programs(params, cfg, data[0])
    runs = {mode: (lambda mode=mode: intervention.intervene(params, cfg, *data, config, loop=mode)) for mode in loops}
    timed(lambda: floor_pass(progs))
    cold = {mode: timed(run)[0] for mode, run in runs.items()}
    floors, warm = [], {mode: [] for mode in loops}
    for _ in range(repeats):   # interleaved, so that machine noise hits all alike
        floors.append(np.array(timed(lambda: floor_pass(progs))) * (steps + 1))
        for mode, run in runs.items():
            warm[mode].append(np.array(timed(run)))
    floor = np.median(floors, axis=0)
    return [{"config": name, "loop": mode, "batch": batch, "layers": len(cfg.layers), "floor_s": floor,
             "loop_s": np.median(warm[mode], axis=0), "ratio": np.median(warm[mode], axis=0) / floor,
             "loop_cold_s": cold[mode]} for mode in loops]


def row(r: dict) -> str:
    (fw, fc), (lw, lc), (w, c) = r["floor_s"], r["loop_s"], r["ratio"]
    return (f"| {r['config']} | {r['loop']} | {r['batch']} | {r['layers']} | {fw:.3f} / {fc:.3f} | {lw:.3f} / {lc:.3f} "
            f"| {w:.2f}x / {c:.2f}x | {r['loop_cold_s']:.1f} |")


def main(argv):
    del argv
    print(f"# {cpu_model()}; jax {jax.__version__}; {FLAGS.steps} steps per layer; median of {FLAGS.repeats}")
    print("| config | loop | batch | layers | floor wall / CPU (s) | warm intervene wall / CPU (s) | ratio wall / CPU | "
          "cold intervene (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in FLAGS.configs:
        for batch in map(int, FLAGS.batches):
            for r in bench(name, batch, FLAGS.steps, FLAGS.repeats, FLAGS.loops):
                print(row(r), flush=True)


if __name__ == "__main__":
    app.run(main)
