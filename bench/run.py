"""Speed benchmark of synthesis and Style Intervention; prints Markdown tables and appends them to BENCHMARKS.md.

    python bench/run.py              # all configs: ~11 min on 2 CPU cores, mostly XLA compiles of layer programs
    python bench/run.py --configs=fixture --quick --no_append    # smoke test, ~3 min on 2 CPU cores
    bash bench/device_check.sh       # on a machine with an accelerator: everything worth knowing, < 8 min

Configs: fixture (the 32 px NVlabs fixture pickle from ../shared/fixtures, or a random generator of the same
shape if it is missing), paper256 (256 px, channel_base 16384) and f1024 (config-f 1024); the large ones are
randomly initialised (same FLOPs as trained weights). The generator computes at --precision
(si_jax.stylegan2.numerics: fp32 = float32 at HIGHEST, tf32 = float32 at DEFAULT, bf16 = bfloat16 synthesis
layers from NVlabs' fp16 resolution up), by default per backend ('auto': fp32 on CPU, where TF32 does not exist;
tf32 on GPU / TPU, i.e. TF32 tensor cores on NVIDIA Ampere and later, bf16 passes on TPU: fp32 there means FP32
cores, ~7x slower on an H200); the conv algorithms are 'auto' (per backend). Both are stated in the output.
Ceilings, measured in the same run at that precision: matmul FLOP/s (2048^3 matmul, 4096^3 on an accelerator;
float32 at HIGHEST / DEFAULT, or bfloat16) and memory bandwidth (a jitted elementwise x * a + b over a large float32 array: bytes read +
written / time).
Per config and batch size: synthesis forward and forward+backward (gradient w.r.t. the styles) time and images/s,
compile time, FLOPs and bytes per call from XLA's cost analysis of the compiled program, achieved FLOP/s and GB/s
and their share of the two ceilings, and batch-1 speed-up over the NVlabs PyTorch reference timings
(../shared/fixtures/reference_timings.txt). Protocol as the reference: jit (compile timed separately), 1 warm-up
call, median of --repeats timed calls.
Per --intervention_configs and each of --intervention_batches: one full Style Intervention (all layers x steps)
per batch, cold (compile + run) and warm; at full steps for the fixture, elsewhere timed at N steps and scaled
linearly (an upper bound). Its FLOPs and bytes are XLA's counts of the layer programs (which dominate; XLA counts
a scan body once, so they are multiplied by the steps per layer), hence its share of both ceilings. Amortised Λ:
one shared fit on a batch (cold; fixture only), then `apply_lambda` on new images (warm, per image).
--max_batch_configs: the largest power-of-two batch whose synthesis forward+backward (the edit loop's memory
pattern) compiles and runs, doubling until the backend reports out of memory (or --max_batch_limit).
"""
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_list("configs", ["fixture", "paper256", "f1024"], "Configs to time: fixture, paper256, f1024.")
flags.DEFINE_list("batches", None, "Batch sizes (default per config: fixture/paper256 1,2,4,8; f1024 1,2).")
flags.DEFINE_integer("repeats", 3, "Timed calls per measurement (median reported), after 1 warm-up call.")
flags.DEFINE_list("intervention_configs", ["fixture", "paper256"], "Of --configs, those that also get the "
                  "intervention timings ('' for none; f1024 only if asked: 26 layer programs, slow to compile).")
flags.DEFINE_integer("intervention_steps", 3, "N for configs timed at N steps/layer and scaled to the default.")
flags.DEFINE_list("intervention_batches", ["1"], "Images per intervention run, one row each (per-image time = run "
                  "time / batch); each batch size compiles its own layer programs.")
flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "tf32", "bf16"],
                  "The generator's --precision (si_jax.stylegan2.numerics); auto: fp32 on CPU, tf32 on GPU / TPU.")
flags.DEFINE_list("max_batch_configs", [], "Of --configs, those whose largest synthesis fwd+bwd batch is searched.")
flags.DEFINE_integer("max_batch_limit", 256, "Stop the largest-batch search at this batch size.")
flags.DEFINE_string("benchmarks_file", None, "Markdown file the section is appended to (default: BENCHMARKS.md).")
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
    """(compiled program, compile seconds, (FLOPs, bytes accessed) per call from XLA's cost analysis or None)."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0, xla_cost(compiled)


def xla_cost(compiled) -> tuple:
    """(flops, bytes accessed) of a compiled program (None where XLA does not say)."""
    cost = compiled.cost_analysis()  # a dict, or a list of dicts in some jax versions
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return (cost or {}).get("flops"), (cost or {}).get("bytes accessed")


def precision_for(backend: str, choice: str) -> str:
    """--precision -> fp32 | tf32 | bf16: 'auto' is fp32 on CPU (TF32 does not exist there) and tf32 on
    accelerators (TF32 / bf16 passes: the fast units for float32 arrays)."""
    return ("fp32" if backend == "cpu" else "tf32") if choice == "auto" else choice


def jax_precision(precision: str) -> str:
    """The jax.default_matmul_precision for what the generator does not compute itself (losses, metrics):
    'highest' for fp32, 'default' for tf32 and bf16 (their float32 matmuls outside the network)."""
    return "highest" if precision == "fp32" else "default"


def matmul_ceiling(n=2048, repeats=5, precision="fp32"):
    """FLOP/s of a jitted n x n @ n x n matmul as `precision` computes it: float32 at HIGHEST (fp32) or DEFAULT
    (tf32), bfloat16 (bf16); median of `repeats`."""
    import jax
    import jax.numpy as jnp
    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    prec = "highest" if precision == "fp32" else "default"
    _, t = median_time(jax.jit(lambda a, b: jnp.matmul(a, b, precision=prec)), a, b, repeats=repeats)
    return 2.0 * n ** 3 / t


def bandwidth_ceiling(mib=256, repeats=5):
    """Bytes/s of a jitted elementwise x * a + b over a float32 array of `mib` MiB: 2 x its size (read + write)
    per call / median time. The edit loop streams activations and params through memory, so this is its ceiling
    whenever its FLOPs per byte fall below the matmul ceiling / this."""
    import jax
    import jax.numpy as jnp
    x = jnp.ones((mib * 2 ** 18,), jnp.float32)
    _, t = median_time(jax.jit(lambda v: v * 1.0001 + 0.5), x, repeats=repeats)
    return 2.0 * x.nbytes / t


class Ceilings:
    """The run's two ceilings: flops (FLOP/s), bandwidth (bytes/s), with the precision they were measured at."""

    def __init__(self, backend: str, precision: str):
        big = backend != "cpu"
        self.backend, self.precision = backend, precision
        self.matmul_n, self.mib = (4096, 1024) if big else (2048, 64)
        self.flops = matmul_ceiling(self.matmul_n, precision=precision)
        self.bandwidth = bandwidth_ceiling(self.mib)

    def shares(self, flops, nbytes, seconds) -> str:
        """'a% / b%': achieved FLOP/s and bytes/s as shares of the ceilings ('n/a' without XLA's counts)."""
        if not flops or not nbytes:
            return "n/a"
        return f"{100 * flops / seconds / self.flops:.0f}% / {100 * nbytes / seconds / self.bandwidth:.0f}%"


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


def synthesis_programs(cfg):
    """(fwd, fwd+bwd) jitted: (params, styles) -> images; (styles, params) -> d mean(image) / d styles. The benches
    pass prepared params (programs.prepared: kernel forms computed once per weights, as the editing programs do)."""
    import jax

    import si_jax
    from si_jax.stylegan2 import programs
    fwd = programs.jit(cfg, lambda p, s: si_jax.synthesize(p, cfg, s))   # cfg's compiler options (conv library)
    bwd = programs.jit(cfg, jax.grad(lambda s, p: si_jax.synthesize(p, cfg, s).mean()))
    return fwd, bwd


def bench_synthesis(name, params, cfg, batches, repeats, ceilings):
    """One table row per batch size: forward and forward+backward (w.r.t. styles) timings, FLOPs and bytes."""
    from si_jax.stylegan2 import programs
    fwd, bwd = synthesis_programs(cfg)
    params = programs.prepared(params, cfg)
    rows, best_f, best_b = [], (0, 0), (0, 0)
    g = lambda x, unit=1e9: f"{x / unit:.3g}" if x else "n/a"  # noqa: E731
    for b in batches:
        styles = make_styles(params, cfg, b, seed=1)
        fwd_c, cf, (ff, bf) = compile_timed(fwd, params, styles)
        bwd_c, cb, (fb, bb) = compile_timed(bwd, styles, params)
        tf = median_time(fwd_c, params, styles, repeats=repeats)[1]
        tb = median_time(bwd_c, styles, params, repeats=repeats)[1]
        ref = REFERENCE.get(name) if b == 1 else None
        rows.append([name, b, f"{tf:.4f}", f"{b / tf:.2f}", f"{tb:.4f}", f"{b / tb:.2f}", f"{cf:.1f} / {cb:.1f}",
                     f"{g(ff)} / {g(fb)}", f"{g(bf)} / {g(bb)}",
                     f"{(ff or 0) / tf / 1e9:.1f} / {(fb or 0) / tb / 1e9:.1f}",
                     f"{ceilings.shares(ff, bf, tf)} ; {ceilings.shares(fb, bb, tb)}",
                     f"{ref[0]:.3f} / {ref[1]:.3f}" if ref else "",
                     f"{ref[0] / tf:.2f}x / {ref[1] / tb:.2f}x" if ref else ""])
        best_f, best_b = max(best_f, (b / tf, b)), max(best_b, (b / tb, b))
        log(f"  {name} batch {b}: fwd {tf:.4f} s, fwd+bwd {tb:.4f} s (compile {cf:.1f} / {cb:.1f} s)")
    rows.append([f"{name} best", f"{best_f[1]} / {best_b[1]}", "", f"**{best_f[0]:.2f}**", "",
                 f"**{best_b[0]:.2f}**", "", "", "", "", "", "", ""])
    return rows


def is_out_of_memory(e: BaseException) -> bool:
    text = f"{type(e).__name__} {e}"
    return any(w in text for w in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "MemoryError"))


def largest_batch(name, params, cfg, limit):
    """Table row: the largest power-of-two batch whose synthesis fwd+bwd compiles and runs (doubling from 1
    until out of memory or `limit`), its time and images/s, and the first batch that failed."""
    import jax

    from si_jax.stylegan2 import programs
    _, bwd = synthesis_programs(cfg)
    params = programs.prepared(params, cfg)
    ok, failed, b = None, f"none up to {limit}", 1
    while b <= limit:
        try:
            styles = make_styles(params, cfg, b, seed=1)
            t0 = time.perf_counter()
            jax.block_until_ready(bwd(styles, params))
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            jax.block_until_ready(bwd(styles, params))
            ok = (b, first, time.perf_counter() - t0)
            log(f"  {name} fwd+bwd batch {b}: ran ({ok[2]:.3f} s)")
        except Exception as e:  # noqa: BLE001 - only out-of-memory ends the search; anything else is re-raised
            if not is_out_of_memory(e):
                raise
            failed = f"{b} (out of memory)"
            log(f"  {name} fwd+bwd batch {b}: out of memory")
            break
        b *= 2
    if ok is None:
        return [name, "none", "", "", failed]
    return [name, ok[0], f"{ok[2]:.3f}", f"{ok[0] / ok[2]:.2f}", failed]


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


def counted_intervention(params, cfg, inputs, steps):
    """(seconds, (flops, bytes)) of one cold `intervene` run (compile included); the counts are XLA's for the
    layer programs, which `intervention.compile_programs` returns compiled (the run then reuses them), times
    `steps` (XLA counts a scan body once)."""
    from si_jax.editing import intervention
    t0 = time.perf_counter()
    compiled = intervention.compile_programs(params, cfg, *inputs,
                                             intervention.InterventionConfig(steps_per_layer=steps))
    timed_intervention(params, cfg, inputs, steps)
    seconds, costs = time.perf_counter() - t0, [xla_cost(c) for c in compiled]
    return seconds, tuple(sum(c[i] or 0 for c in costs) * steps or None for i in (0, 1))


def bench_intervention(name, params, cfg, steps, extrapolate, batch, amortised_batch, repeats, ceilings):
    """Table row: full intervention per image (cold and warm) and its share of both ceilings, amortised Λ fit and
    apply_lambda per image.

    extrapolate: scale the warm time at `steps` linearly to the default steps per layer. The layer programs' scan
    length is static, so every step count is a fresh set of compiles; scaling the whole run (incl. its per-layer
    fixed cost) over-estimates. The shared fit is then skipped (as many compiles again) and apply_lambda uses
    Λ = 0.5 (its cost does not depend on Λ). The share of the ceilings is that of the run at `steps`.
    """
    import jax.numpy as jnp

    from si_jax.editing import intervention
    default = intervention.InterventionConfig().steps_per_layer
    inputs = intervention_inputs(params, cfg, batch, seed=2)
    cold, _ = timed_intervention(params, cfg, inputs, steps)
    warm_run, (flops, nbytes) = counted_intervention(params, cfg, inputs, steps)
    compile_s, target, note, warm = cold - warm_run, steps, "measured", warm_run
    if extrapolate:
        warm, target, note = warm_run * default / steps, default, f"scaled from {steps} steps (upper bound)"
    log(f"  {name} intervention batch {batch}: {warm / batch:.3f} s/image warm at steps/layer={target} ({note}); "
        f"cold run {cold:.1f} s at steps={steps}")
    styles2, dz2, dn2, _ = intervention_inputs(params, cfg, amortised_batch, seed=4)
    fit = "skipped"
    if extrapolate or batch != int(FLAGS.intervention_batches[0]):
        lam = [jnp.full(s.shape[1:], 0.5, jnp.float32) for s in styles2]
    else:
        shared_inputs = intervention_inputs(params, cfg, amortised_batch, seed=3)
        fit_s, res = timed_intervention(params, cfg, shared_inputs, steps, shared=True)
        lam, fit = [layer[0] for layer in res.lam], f"{fit_s:.1f} (B={amortised_batch}, steps={steps})"
    _, apply = median_time(lambda: intervention.apply_lambda(params, cfg, styles2, dz2, dn2, lam), repeats=repeats)
    log(f"  {name} amortised: shared fit {fit} s, apply_lambda {apply / amortised_batch:.4f} s/image")
    return [name, len(cfg.layers), batch, f"{cold:.1f} (steps={steps}; compile ~{compile_s:.0f})", target,
            f"{warm / batch:.3f}", f"{batch / warm:.2f}", note, ceilings.shares(flops, nbytes, warm_run), fit,
            f"{apply / amortised_batch:.4f}", f"{amortised_batch / apply:.1f}"]


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


def interleaved_rounds(fns: dict, rounds: int) -> dict:
    """{name: (median s, min s)} of the zero-argument calls after one warm-up each, timed in interleaved rounds whose
    order alternates (as given, then reversed: in a fixed order the first program ran slower, BENCHMARKS.md
    2026-12-06)."""
    import jax
    for f in fns.values():
        jax.block_until_ready(f())
    times = {name: [] for name in fns}
    for r in range(rounds):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            jax.block_until_ready(fns[name]())
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def cpu_and_load() -> str:
    """'<CPU model>, <n> CPUs, load <1-min load average>' for a timing's line."""
    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"


def header(ceilings):
    """Section header: date, machine, jax, devices, thread settings, commit, command line."""
    import jax
    import jaxlib
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    env = {k: v for k, v in os.environ.items() if k == "XLA_FLAGS" or "THREAD" in k}
    items = [("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
             ("machine", f"{model}; os.cpu_count() {os.cpu_count()}, usable CPUs {len(os.sched_getaffinity(0))}"),
             ("jax / jaxlib", f"{jax.__version__} / {jaxlib.__version__}, Python {platform.python_version()}"),
             ("backend / devices", f"{jax.default_backend()} / {', '.join(str(d) for d in jax.devices())}"),
             ("threads / XLA env", ", ".join(f"{k}={v}" for k, v in env.items()) or "none set (XLA default)"),
             ("git commit", git_state()), ("command", "`" + " ".join(["python"] + sys.argv) + "`"),
             ("precision", f"{ceilings.precision} (--precision={FLAGS.precision}, backend {ceilings.backend}; "
                           "conv algorithms auto)"),
             ("matmul ceiling", f"{ceilings.flops / 1e9:.1f} GFLOP/s ({ceilings.matmul_n}^3 matmul at "
                                f"{ceilings.precision})"),
             ("bandwidth ceiling", f"{ceilings.bandwidth / 1e9:.1f} GB/s (x * a + b over {ceilings.mib} MiB float32, "
                                   "read + write)")]
    return "\n".join(f"- {k}: {v}" for k, v in items) + "\n"


def append_benchmarks(section):
    """Append `section` to --benchmarks_file (BENCHMARKS.md; created with an intro), atomically
    (storage.write_atomic)."""
    from si_jax import storage

    path = FLAGS.benchmarks_file or os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else BENCH_INTRO
    storage.write_atomic(path, (old.rstrip("\n") + "\n\n" + section).encode())
    log(f"appended to {path}")


def intervention_plan(name):
    """(steps per layer to run, extrapolate to the default?): full steps for the fixture, N steps elsewhere."""
    from si_jax.editing import intervention
    if FLAGS.quick:
        return 1, False
    if name == "fixture":
        return intervention.InterventionConfig().steps_per_layer, False
    return FLAGS.intervention_steps, True


def render(ceilings, synth_rows, iv_rows, max_rows):
    """The Markdown section: title, header, synthesis, intervention and largest-batch tables."""
    section = (f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d} {'(quick) ' if FLAGS.quick else ''}"
               f"synthesis and intervention timings ({ceilings.backend}, {ceilings.precision} precision)\n\n"
               + header(ceilings) + "\n")
    if synth_rows:
        section += (f"Synthesis (precision {ceilings.precision}, noise const; compile = lower +"
                    " compile; FLOPs and bytes = XLA cost analysis of the compiled program; achieved = FLOPs / median"
                    " time; % of ceilings = 'matmul% / bandwidth%' for fwd ; fwd+bwd; reference = NVlabs PyTorch, "
                    "2-core CPU, batch 1; cells 'a / b' = fwd / fwd+bwd):\n\n")
        section += md_table(["config", "batch", "fwd s", "fwd img/s", "fwd+bwd s", "fwd+bwd img/s", "compile s",
                             "GFLOP/call", "GB/call", "achieved GFLOP/s", "% of ceilings", "reference s", "speed-up"],
                            synth_rows)
    if iv_rows:
        section += ("\nStyle Intervention (all layers x steps/layer Adam; cold = first run incl. compiling one "
                    "program per layer; % of ceilings = 'matmul% / bandwidth%' of the warm run, from XLA's counts of "
                    "the layer programs x steps) and amortised Λ (one shared fit, then apply_lambda = one synthesis "
                    "per image, warm):\n\n")
        section += md_table(["config", "layers", "batch", "cold run s", "steps/layer", "warm s/image", "img/s",
                             "warm basis", "% of ceilings", "shared fit s (cold)", "apply_lambda s/image",
                             "apply img/s"], iv_rows)
    if max_rows:
        section += ("\nLargest batch of synthesis fwd+bwd (w.r.t. the styles; the edit loop's memory pattern), "
                    "doubling from 1 (second call timed):\n\n")
        section += md_table(["config", "largest batch", "fwd+bwd s", "img/s", "first failure"], max_rows)
    return section


def main(argv):
    del argv
    import jax
    repeats = 1 if FLAGS.quick else FLAGS.repeats
    unknown = set(FLAGS.configs + FLAGS.intervention_configs + FLAGS.max_batch_configs) - set(DEFAULT_BATCHES)
    if unknown:
        raise app.UsageError(f"unknown configs {sorted(unknown)}; choose from {sorted(DEFAULT_BATCHES)}")
    iv_batches = [int(b) for b in FLAGS.intervention_batches]
    if not iv_batches or min(iv_batches) < 1:
        raise app.UsageError(f"--intervention_batches must be integers >= 1, got {FLAGS.intervention_batches}")
    precision = precision_for(jax.default_backend(), FLAGS.precision)
    with jax.default_matmul_precision(jax_precision(precision)):
        ceilings = Ceilings(jax.default_backend(), precision)
        log(f"{precision} precision: matmul ceiling {ceilings.flops / 1e9:.1f} GFLOP/s, bandwidth ceiling "
            f"{ceilings.bandwidth / 1e9:.1f} GB/s")
        synth_rows, iv_rows, max_rows = [], [], []
        for name in FLAGS.configs:
            params, cfg, desc = load_config(name)
            cfg = cfg.with_numerics(precision=precision)
            log(f"{name}: {cfg.img_resolution} px, {len(cfg.layers)} style layers, {desc}")
            batches = [1, 2] if FLAGS.quick else [int(b) for b in FLAGS.batches or DEFAULT_BATCHES[name]]
            if batches != [0]:   # --batches=0: no synthesis table
                synth_rows += bench_synthesis(name, params, cfg, sorted(set([1] + batches)), repeats, ceilings)
            if name in FLAGS.intervention_configs:
                for b in iv_batches:
                    iv_rows.append(bench_intervention(name, params, cfg, *intervention_plan(name), b,
                                                      2 if FLAGS.quick else FLAGS.amortised_batch, repeats, ceilings))
            if name in FLAGS.max_batch_configs:
                max_rows.append(largest_batch(name, params, cfg, FLAGS.max_batch_limit))
    section = render(ceilings, synth_rows, iv_rows, max_rows)
    print("\n" + section, flush=True)
    if not FLAGS.no_append:
        append_benchmarks(section)


if __name__ == "__main__":
    app.run(main)
