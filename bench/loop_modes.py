"""ONE program for all layers ('one') against one program per layer ('steps'): compile and warm time by size.

    python bench/loop_modes.py                                    # toyfaces, paper256, f1024 (sampled), batch 1
    python bench/loop_modes.py --models=paper256 --batch=4

Per model, in a fresh process with no persistent compilation cache (what a first run pays):
- compile: `intervention.compile_programs(loop=...)`, timed; for models with more than --max_layers layers the
  'steps' programs of an evenly spaced sample of layers are compiled and the total interpolated over the layer
  index (marked '~');
- warm: `intervene` with 1 and 1 + --second_steps Adam steps per layer (a loop costs a + steps·b per batch), from
  which the cost of a batch at the default 15 steps follows; models over --max_layers time 'one' at 1 step only and
  'steps' from the floors of the sampled layers' suffix passes (bench/edit_floor.py: 'steps' runs at ~1.0x them).
Printed: both, and the break-even run length B* = (C_steps - C_one) / (W_one - W_steps) in batches: 'one' wins for
runs of fewer batches on an empty cache (with a warm persistent cache compile costs little, and 'steps' wins).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

flags.DEFINE_list("models", ["toyfaces", "paper256", "f1024"], "Bench configs (bench/edit_floor.py's `load`).")
flags.DEFINE_integer("batch", 1, "Images per batch.")
flags.DEFINE_integer("second_steps", 2, "Extra Adam steps per layer of the second warm run (the first runs 1).")
flags.DEFINE_integer("default_steps", 15, "Steps per layer that the per-batch cost is given for.")
flags.DEFINE_integer("max_layers", 20, "Models with more layers are sampled (see the docstring).")
flags.DEFINE_integer("samples", 4, "Layers sampled for the 'steps' compile of large models.")
flags.DEFINE_string("child", None, "Internal: measure one model in this process and print JSON.")
FLAGS = flags.FLAGS


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def child(name: str) -> dict:
    import jax

    import edit_floor   # this script's folder is the first on sys.path
    from si_jax.editing import intervention
    params, cfg = edit_floor.load(name)
    data = edit_floor.inputs(params, cfg, FLAGS.batch)
    jax.block_until_ready(data[:3])
    n, per_step = len(cfg.layers), FLAGS.default_steps + 1   # evaluations per layer
    run = lambda loop, steps: _timed(lambda: intervention.intervene(   # noqa: E731
        params, cfg, *data, intervention.InterventionConfig(steps_per_layer=steps), loop=loop, precompile=False))[0]
    compile_ = lambda loop, steps=1, layers=None: _timed(lambda: intervention.compile_programs(   # noqa: E731
        params, cfg, *data, intervention.InterventionConfig(steps_per_layer=steps), loop=loop, layers=layers))[0]
    out = {"model": name, "layers": n, "batch": FLAGS.batch, "cpu": edit_floor.cpu_model()}
    sampled = n > FLAGS.max_layers
    for loop in ("one", "steps"):
        if not sampled:
            out[f"compile_{loop}"] = compile_(loop)
            run(loop, 1)   # the small programs around the loop (synthesis, losses, state advance) compile here
            w1, w2 = run(loop, 1), run(loop, 1 + FLAGS.second_steps)
            out[f"warm_{loop}"] = w1 + (FLAGS.default_steps - 1) * (w2 - w1) / FLAGS.second_steps
        elif loop == "one":
            out["compile_one"] = compile_(loop)
            run(loop, 1)
            out["warm_one"] = per_step / 2 * run(loop, 1)   # the fixed part a scaled too: an upper bound
        else:
            idx = np.unique(np.linspace(0, n - 1, FLAGS.samples).round().astype(int)).tolist()
            each = [compile_(loop, layers=[i]) for i in idx]
            out["compile_steps"] = float(np.sum(np.interp(np.arange(n), idx, each)))
            progs = edit_floor.floor_programs(params, cfg, data[0])
            floors = []
            for i in idx:
                edit_floor.floor_pass([progs[i]])   # compile
                floors.append(_timed(lambda i=i: edit_floor.floor_pass([progs[i]]))[0])
            out["warm_steps"] = per_step * float(np.sum(np.interp(np.arange(n), idx, floors)))
            out["sampled_layers"] = idx
    return out


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(child(FLAGS.child)))
        return
    env = dict(os.environ, JAX_ENABLE_COMPILATION_CACHE="false")
    print(f"| model | layers | batch | compile one / steps (s) | warm batch one / steps (s, {FLAGS.default_steps} "
          "steps) | B* (batches) | load |")
    print("|---|---|---|---|---|---|---|")
    for name in FLAGS.models:
        args = [sys.executable, os.path.abspath(__file__), f"--child={name}", f"--batch={FLAGS.batch}",
                f"--second_steps={FLAGS.second_steps}", f"--default_steps={FLAGS.default_steps}",
                f"--max_layers={FLAGS.max_layers}", f"--samples={FLAGS.samples}"]
        out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.splitlines()[-1])
        mark = "~" if "sampled_layers" in r else ""
        gain = r["warm_one"] - r["warm_steps"]
        b_star = (r["compile_steps"] - r["compile_one"]) / gain if gain > 0 else float("inf")
        print(f"| {name} | {r['layers']} | {r['batch']} | {r['compile_one']:.1f} / {mark}{r['compile_steps']:.1f} | "
              f"{r['warm_one']:.2f} / {mark}{r['warm_steps']:.2f} | {b_star:.1f} | {os.getloadavg()[0]:.1f} |",
              flush=True)
        print(f"  # {r['cpu']}; sampled layers {r.get('sampled_layers', 'none')}", flush=True)


if __name__ == "__main__":
    app.run(main)
