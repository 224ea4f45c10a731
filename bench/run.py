"""Speed benchmark of synthesis and Style Intervention; prints Markdown tables and appends them to BENCHMARKS.md.

    python bench/run.py              # all configs: ~11 min on 2 CPU cores, mostly XLA compiles of layer programs
    python bench/run.py --configs=fixture --quick --no_append    # smoke test, ~3 min on 2 CPU cores

Configs: fixture (the 32 px NVlabs fixture pickle from ../shared/fixtures, or a random generator of the same
shape if it is missing), paper256 (256 px, channel_base 16384) and f1024 (config-f 1024); the large ones are
randomly initialised (same FLOPs as trained weights). All at float32, jax.default_matmul_precision('highest').
Per config and batch size: synthesis forward and forward+backward (gradient w.r.t. the styles) time and images/s,
compile time, FLOPs per call from XLA's cost analysis, achieved FLOP/s and its share of a float32 matmul ceiling
measured in the same run, and batch-1 speed-up over the NVlabs PyTorch reference timings
(../shared/fixtures/reference_timings.txt). Protocol as the reference: jit (compile timed
separately), 1 warm-up call, median of --repeats timed calls.
Per --intervention_configs: one full Style Intervention (all layers x steps) per image, cold (compile + run) and
warm; at full steps for the fixture, elsewhere timed at N steps and scaled linearly (an upper bound). Amortised Λ: one shared
fit on a batch (cold; fixture only), then `apply_lambda` on new images (warm, per image).
"""
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

flags.DEFINE_list("configs", ["fixture", "paper256", "f1024"], "Configs to time: fixture, paper256, f1024.")
flags.DEFINE_list("batches", None, "Batch sizes (default per config: fixture/paper256 1,2,4,8; f1024 1,2).")
flags.DEFINE_integer("repeats", 3, "Timed calls per measurement (median reported), after 1 warm-up call.")
flags.DEFINE_list("intervention_configs", ["fixture", "paper256"], "Of --configs, those that also get the "
                  "intervention timings ('' for none; f1024 only if asked: 26 layer programs, slow to compile).")
flags.DEFINE_integer("intervention_steps", 3, "N for configs timed at N steps/layer and scaled to the default.")
flags.DEFINE_integer("intervention_batch", 1, "Images per intervention run (per-image time = run time / batch).")
flags.DEFINE_integer("amortised_batch", 4, "Images in the shared (amortised) Λ fit and in each apply_lambda call.")
flags.DEFINE_bool("quick", False, "Smoke test: repeats 1, batches 1,2, intervention measured at 1 step/layer.")
flags.DEFINE_bool("no_append", False, "Only print; do not append to BENCHMARKS.md.")
FLAGS = flags.FLAGS

FIXTURE_PKL = os.path.join(ROOT, "..", "shared", "fixtures", "stylegan2_nvlabs_32.pkl")
REFERENCE = {"paper256": (0.305, 0.901), "f1024": (3.437, 10.009)}  # NVlabs PyTorch, 2-core CPU, batch 1 (s)
DEFAULT_BATCHES = {"fixture": [1, 2, 4, 8], "paper256": [1, 2, 4, 8], "f1024": [1, 2]}
BENCH_INTRO = ("# Benchmarks\n\nSpeed of si_jax synthesis (forward, forward+backward w.r.t. the styles) and Style "
               "Intervention on CPU/accelerator, written by `python bench/run.py` (see its docstring for what is "
               "measured and how). Each run appends one section with its machine, jax version, threads, date and "
               "git commit; batch-1 synthesis is compared with the NVlabs PyTorch reference timings "
               "(2-core CPU) of `../shared/fixtures/reference_timings.txt`.\n")


def log(msg):
    """Progress line, flushed at once (a full run takes many minutes)."""
    print(msg, flush=True)


def median_time(fn, *args, repeats):
    """(first-call seconds incl. compile, median seconds of `repeats` further calls); blocks on every result."""
    import jax
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def compile_timed(jitted, *args):
    """(compiled program, compile seconds, FLOPs per call from XLA's cost analysis or None)."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    seconds = time.perf_counter() - t0
    cost = compiled.cost_analysis()  # a dict, or a list of dicts in some jax versions
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return compiled, seconds, (cost or {}).get("flops")


def matmul_ceiling(n=2048, repeats=5):
    """Float32 FLOP/s of a jitted n x n @ n x n matmul (median of `repeats`): the machine's practical ceiling."""
    import jax
    import jax.numpy as jnp
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    _, t = median_time(jax.jit(jnp.matmul), a, b, repeats=repeats)
    return 2.0 * n ** 3 / t


def load_config(name):
    """name -> (params, G2Config, description)."""
    import si_jax
    from si_jax.stylegan2.config import G2Config
    if name == "fixture" and os.path.isfile(FIXTURE_PKL):
        params, cfg = si_jax.load_generator(FIXTURE_PKL)
        return params, cfg, "32 px NVlabs fixture pickle"
    cfg = {"fixture": G2Config.make(32, channel_base=1024, channel_max=64, z_dim=128, w_dim=128),
           "paper256": G2Config.make(256, channel_base=16384), "f1024": G2Config.make()}[name]
    return si_jax.to_jax_params(si_jax.random_canonical(cfg, 0), cfg), cfg, "random init"


def make_styles(params, cfg, batch, seed):
    """Styles of `batch` random z: list over layers of [batch, dim_l]."""
    import jax
    import si_jax
    z = jax.random.normal(jax.random.PRNGKey(seed), (batch, cfg.z_dim))
    return si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, z))


def bench_synthesis(name, params, cfg, batches, repeats, ceiling):
    """One table row per batch size: forward and forward+backward (w.r.t. styles) timings and FLOPs."""
    import jax
    import si_jax
    fwd = jax.jit(lambda p, s: si_jax.synthesize(p, cfg, s))
    bwd = jax.jit(jax.grad(lambda s, p: si_jax.synthesize(p, cfg, s).mean()))
    rows, best_f, best_b = [], (0, 0), (0, 0)
    for b in batches:
        styles = make_styles(params, cfg, b, seed=1)
        fwd_c, cf, ff = compile_timed(fwd, params, styles)
        bwd_c, cb, fb = compile_timed(bwd, styles, params)
        tf = median_time(fwd_c, params, styles, repeats=repeats)[1]
        tb = median_time(bwd_c, styles, params, repeats=repeats)[1]
        ref = REFERENCE.get(name) if b == 1 else None
        gf = lambda x: f"{x / 1e9:.3g}" if x else "n/a"  # noqa: E731
        rows.append([name, b, f"{tf:.4f}", f"{b / tf:.2f}", f"{tb:.4f}", f"{b / tb:.2f}", f"{cf:.1f} / {cb:.1f}",
                     f"{gf(ff)} / {gf(fb)}", f"{(ff or 0) / tf / 1e9:.1f} / {(fb or 0) / tb / 1e9:.1f}",
                     f"{100 * ff / tf / ceiling:.0f}% / {100 * fb / tb / ceiling:.0f}%" if ff and fb else "n/a",
                     f"{ref[0]:.3f} / {ref[1]:.3f}" if ref else "",
                     f"{ref[0] / tf:.2f}x / {ref[1] / tb:.2f}x" if ref else ""])
        best_f, best_b = max(best_f, (b / tf, b)), max(best_b, (b / tb, b))
        log(f"  {name} batch {b}: fwd {tf:.4f} s, fwd+bwd {tb:.4f} s (compile {cf:.1f} / {cb:.1f} s)")
    rows.append([f"{name} best", f"{best_f[1]} / {best_b[1]}", "", f"**{best_f[0]:.2f}**", "",
                 f"**{best_b[0]:.2f}**", "", "", "", "", "", ""])
    return rows


def intervention_inputs(params, cfg, batch, seed):
    """styles, Δs_z, Δs_n (0.1·normal) and a centred box mask [batch, R, R] for one intervention run."""
    import jax.numpy as jnp
    import numpy as np
    rng = np.random.default_rng(seed)
    styles = make_styles(params, cfg, batch, seed)
    ds_z, ds_n = ([jnp.asarray(0.1 * rng.standard_normal(s.shape), jnp.float32) for s in styles] for _ in "zn")
    r = cfg.img_resolution
    mask = np.zeros((batch, r, r), np.float32)
    mask[:, r // 4:3 * r // 4, r // 4:3 * r // 4] = 1.0
    return styles, ds_z, ds_n, mask


def timed_intervention(params, cfg, inputs, steps, shared=False):
    """(seconds, result) of one `intervene` run with `steps` Adam steps per layer (results are host arrays)."""
    from si_jax.editing import intervention
    t0 = time.perf_counter()
    res = intervention.intervene(params, cfg, *inputs, intervention.InterventionConfig(steps_per_layer=steps),
                                 shared=shared)
    return time.perf_counter() - t0, res


def bench_intervention(name, params, cfg, steps, extrapolate, batch, amortised_batch, repeats):
    """Table row: full intervention per image (cold and warm), amortised Λ fit and apply_lambda per image.

    extrapolate: scale the warm time at `steps` linearly to the default steps per layer. The layer programs' scan
    length is static, so every step count is a fresh set of compiles; scaling the whole run (incl. its per-layer
    fixed cost) over-estimates. The shared fit is then skipped (as many compiles again) and apply_lambda uses
    Λ = 0.5 (its cost does not depend on Λ).
    """
    import jax.numpy as jnp
    from si_jax.editing import intervention
    default = intervention.InterventionConfig().steps_per_layer
    inputs = intervention_inputs(params, cfg, batch, seed=2)
    cold, _ = timed_intervention(params, cfg, inputs, steps)
    warm, _ = timed_intervention(params, cfg, inputs, steps)
    compile_s, target, note = cold - warm, steps, "measured"
    if extrapolate:
        warm, target, note = warm * default / steps, default, f"scaled from {steps} steps (upper bound)"
    log(f"  {name} intervention: {warm / batch:.3f} s/image warm at steps/layer={target} ({note}); "
        f"cold run {cold:.1f} s at steps={steps}")
    styles2, dz2, dn2, _ = intervention_inputs(params, cfg, amortised_batch, seed=4)
    fit = "skipped"
    if extrapolate:
        lam = [jnp.full(s.shape[1:], 0.5, jnp.float32) for s in styles2]
    else:
        shared_inputs = intervention_inputs(params, cfg, amortised_batch, seed=3)
        fit_s, res = timed_intervention(params, cfg, shared_inputs, steps, shared=True)
        lam, fit = [l[0] for l in res.lam], f"{fit_s:.1f} (B={amortised_batch}, steps={steps})"
    _, apply = median_time(lambda: intervention.apply_lambda(params, cfg, styles2, dz2, dn2, lam), repeats=repeats)
    log(f"  {name} amortised: shared fit {fit} s, apply_lambda {apply / amortised_batch:.4f} s/image")
    return [name, len(cfg.layers), batch, f"{cold:.1f} (steps={steps}; compile ~{compile_s:.0f})", target,
            f"{warm / batch:.3f}", note, fit, f"{apply / amortised_batch:.4f}", f"{amortised_batch / apply:.1f}"]


def md_table(headers, rows):
    """Rows of cells -> Markdown table text."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]) + "\n"


def git_state():
    """Short commit hash, plus ' (dirty)' when the working tree has changes."""
    try:
        run = lambda *a: subprocess.run(("git", "-C", ROOT) + a, capture_output=True, text=True, check=True).stdout  # noqa
        return run("rev-parse", "--short", "HEAD").strip() + (" (dirty)" if run("status", "--porcelain").strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header(ceiling):
    """Section header: date, machine, jax, devices, thread settings, commit, command line."""
    import jax
    import jaxlib
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    except OSError:
        pass
    env = {k: v for k, v in os.environ.items() if k == "XLA_FLAGS" or "THREAD" in k}
    items = [("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
             ("machine", f"{model}; os.cpu_count() {os.cpu_count()}, usable CPUs {len(os.sched_getaffinity(0))}"),
             ("jax / jaxlib", f"{jax.__version__} / {jaxlib.__version__}, Python {platform.python_version()}"),
             ("backend / devices", f"{jax.default_backend()} / {', '.join(str(d) for d in jax.devices())}"),
             ("threads / XLA env", ", ".join(f"{k}={v}" for k, v in env.items()) or "none set (XLA default)"),
             ("git commit", git_state()), ("command", "`" + " ".join(["python"] + sys.argv) + "`"),
             ("matmul ceiling", f"{ceiling / 1e9:.1f} GFLOP/s (float32 2048x2048 @ 2048x2048, highest precision)")]
    return "\n".join(f"- {k}: {v}" for k, v in items) + "\n"


def append_benchmarks(section):
    """Append `section` to BENCHMARKS.md (creating it with an intro), via a temp file and os.replace."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else BENCH_INTRO
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + section)
    os.replace(tmp, path)
    log(f"appended to {path}")


def intervention_plan(name):
    """(steps per layer to run, extrapolate to the default?): full steps for the fixture, N steps elsewhere."""
    from si_jax.editing import intervention
    if FLAGS.quick:
        return 1, False
    if name == "fixture":
        return intervention.InterventionConfig().steps_per_layer, False
    return FLAGS.intervention_steps, True


def render(ceiling, synth_rows, iv_rows):
    """The Markdown section: title, header, synthesis table, intervention table."""
    section = (f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d} {'(quick) ' if FLAGS.quick else ''}"
               "synthesis and intervention timings\n\n" + header(ceiling) + "\n")
    section += ("Synthesis (float32, noise const; compile = lower + compile; achieved = XLA cost-analysis FLOPs / median "
                "time; reference = NVlabs PyTorch, 2-core CPU, batch 1; cells 'a / b' = fwd / fwd+bwd):\n\n")
    section += md_table(["config", "batch", "fwd s", "fwd img/s", "fwd+bwd s", "fwd+bwd img/s", "compile s",
                         "GFLOP/call", "achieved GFLOP/s", "% of ceiling", "reference s", "speed-up"], synth_rows)
    if iv_rows:
        section += ("\nStyle Intervention (all layers x steps/layer Adam, per image; cold = first run incl. "
                    "compiling one program per layer) and amortised Λ (one shared fit, then apply_lambda = one "
                    "synthesis per image, warm):\n\n")
        section += md_table(["config", "layers", "batch", "cold run s", "steps/layer", "warm s/image", "warm basis",
                             "shared fit s (cold)", "apply_lambda s/image", "apply img/s"], iv_rows)
    return section


def main(argv):
    del argv
    import jax
    repeats = 1 if FLAGS.quick else FLAGS.repeats
    unknown = set(FLAGS.configs + FLAGS.intervention_configs) - set(DEFAULT_BATCHES)
    if unknown:
        raise app.UsageError(f"unknown configs {sorted(unknown)}; choose from {sorted(DEFAULT_BATCHES)}")
    with jax.default_matmul_precision("highest"):
        ceiling = matmul_ceiling()
        log(f"matmul ceiling: {ceiling / 1e9:.1f} GFLOP/s")
        synth_rows, iv_rows = [], []
        for name in FLAGS.configs:
            params, cfg, desc = load_config(name)
            log(f"{name}: {cfg.img_resolution} px, {len(cfg.layers)} style layers, {desc}")
            batches = [1, 2] if FLAGS.quick else [int(b) for b in FLAGS.batches or DEFAULT_BATCHES[name]]
            synth_rows += bench_synthesis(name, params, cfg, sorted(set([1] + batches)), repeats, ceiling)
            if name in FLAGS.intervention_configs:
                iv_rows.append(bench_intervention(name, params, cfg, *intervention_plan(name),
                                                  FLAGS.intervention_batch,
                                                  2 if FLAGS.quick else FLAGS.amortised_batch, repeats))
    section = render(ceiling, synth_rows, iv_rows)
    print("\n" + section, flush=True)
    if not FLAGS.no_append:
        append_benchmarks(section)


if __name__ == "__main__":
    app.run(main)
