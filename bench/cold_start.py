"""Cold start of Style Intervention: time to the first edited batch in a fresh process (issue 13, item 4).

    python bench/cold_start.py                              # toyfaces + paper256, ~12 min on 2 CPU cores
    python bench/cold_start.py --models=toyfaces --append_to=

Each measurement runs in its own subprocess, with no persistent compilation cache except in mode 'cached', so
every program is compiled from scratch. Modes (--modes):
- sequential: `intervene(..., precompile=False)`: each layer program compiles when the loop reaches it (before);
- ahead, 1 thread: `intervention.compile_programs(workers=1)` first, then the loop (ahead of time, one at a time);
- ahead, N threads: `compile_programs` on one thread per CPU core (the default off CPU);
- cached: the default `intervene` in a second process whose persistent compilation cache (`--compilation_cache`
  of the binaries) the first process filled.
Printed per mode: seconds to the first result (compile + run of one batch) and, for the ahead modes, the compile
share. Results are appended to BENCHMARKS.md (--append_to).
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_list("models", ["toyfaces", "paper256"], "toyfaces (the shipped 32 px generator) and/or paper256.")
flags.DEFINE_list("modes", ["sequential", "ahead_1", "ahead_all", "cached"], "Which modes to measure (docstring).")
flags.DEFINE_integer("batch", 2, "Images per batch.")
flags.DEFINE_integer("steps", 15, "Adam steps per layer (the default).")
flags.DEFINE_string("append_to", "BENCHMARKS.md", "Markdown file the section is appended to ('': only print).")
flags.DEFINE_string("child", None, "Internal: run one measurement as 'config:mode' and print JSON.")
FLAGS = flags.FLAGS

def _model(name):
    import si_jax
    from si_jax.stylegan2 import builtin, loading
    from si_jax.stylegan2.config import G2Config
    if name == "toyfaces":
        canonical, cfg = loading.load_canonical(builtin.BUILTIN_TOYFACES)
        return si_jax.to_jax_params(canonical, cfg), cfg
    cfg = G2Config.make(256, channel_base=16384)
    return si_jax.to_jax_params(si_jax.random_canonical(cfg, 0), cfg), cfg


def child(spec: str) -> dict:
    """One cold measurement in this (fresh) process: {'total_s', 'compile_s', 'layers', 'workers'}."""
    import jax

    from si_jax.editing import intervention
    name, mode = spec.split(":")
    import run as bench_run   # bench/run.py: this script's folder is the first on sys.path
    params, cfg = _model(name)
    inputs = bench_run.intervention_inputs(params, cfg, FLAGS.batch, seed=0)
    jax.block_until_ready(inputs[:3])
    config = intervention.InterventionConfig(steps_per_layer=FLAGS.steps)
    workers = {"ahead_1": 1, "ahead_all": os.cpu_count()}.get(mode)
    t0 = time.perf_counter()
    compile_s = None
    if workers:
        intervention.compile_programs(params, cfg, *inputs, config, workers=workers)
        compile_s = time.perf_counter() - t0
    intervention.intervene(params, cfg, *inputs, config, precompile=mode == "cached")
    return {"total_s": time.perf_counter() - t0, "compile_s": compile_s, "layers": len(cfg.layers),
            "workers": workers}


def _child(name: str, mode: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), f"--child={name}:{mode}",
                          f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}"], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, mode: str) -> dict:
    if mode != "cached":
        return _child(name, mode, dict(os.environ, JAX_ENABLE_COMPILATION_CACHE="false"))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
        _child(name, mode, env)   # fills the cache
        return _child(name, mode, env)


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(child(FLAGS.child)))
        return
    import jax
    rows = []
    for name in FLAGS.models:
        results = {mode: measure(name, mode) for mode in FLAGS.modes}
        base = results["sequential"]["total_s"] if "sequential" in results else float("nan")
        for mode, r in results.items():
            comp = "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
            rows.append(f"| {name} ({r['layers']} layers) | {mode} | {r['workers'] or '-'} | {r['total_s']:.1f} | "
                        f"{comp} | {base / r['total_s']:.2f}x |")
            print(rows[-1], flush=True)
    section = "\n".join([
        f"\n## Cold start of the intervention ({datetime.date.today()}, {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__}, batch {FLAGS.batch}, {FLAGS.steps} steps/layer)\n",
        "`python bench/cold_start.py`: seconds from nothing compiled to the first edited batch, fresh process each.\n",
        "| config | mode | compile threads | first batch s | of which compile ahead s | speed-up |",
        "|---|---|---|---|---|---|", *rows, ""])
    print(section)
    if FLAGS.append_to:
        with open(os.path.join(ROOT, FLAGS.append_to), "a") as f:
            f.write(section)


if __name__ == "__main__":
    app.run(main)
