"""Conv algorithms per layer shape: the fixed rule's evidence (`Numerics.conv3x3_for`), and the measured choices.

    python bench/conv_algorithms.py [--batch=1] [--repeats=5]
    python bench/conv_algorithms.py --models=toyfaces,paper256 [--repeats=5] [--ab_repeats=7] [--nolayers]

--models (toyfaces = builtin:toyfaces, paper256 = G2Config.make(256, channel_base=16384), f1024 = config-f 1024;
batch --batch, float32; measuring switched on for this run, into a fresh choices file unless $SI_JAX_CONV_CHOICES
names one):
1. Whole network on prepared params (kernel forms once per weights, as the edit loop runs; with measuring on,
   every candidate's forms), 'auto' measured vs the fixed rule: jit compile + first call of synthesis fwd and
   fwd+bwd w.r.t. the styles with the fixed rule ($SI_JAX_CONV_TUNING=off), then with measuring on (from an empty file: the
   difference is what measuring costs a cold start; from a filled one: what a warm cache costs, ~0), then both
   timed in --ab_repeats interleaved rounds (median / min, and rule median / measured median).
2. Per layer shape and mode (fwd, and grad_xs: the edit loop's fwd + VJP w.r.t. x and styles): each candidate
   form timed in its layer's context on its kernel forms given (ops.tuning with prepared forms: modulated conv +
   bias + lrelu, the network's code with the form forced), --repeats interleaved
   rounds, minimum, no early exit; the measured choice (from the file the network run filled, else measured now,
   and measured again here where the network's measurement was busy: autotune.settled_record; convs under
   autotune.MIN_FLOPS keep the rule unmeasured); whether the choice is within autotune.MARGIN (5 %) of the
   re-timing's fastest, and where it is not, a second re-timing twice as long (noise, or a wrong choice); the
   share of the CPUs other processes used while the choice was measured / re-timed (conv_timing.Others). On a
   loaded machine candidates within ~10 % of each other can swap between timings.

Without --models:
For each (resolution, in, out) of config-f 1024's same-size convs, times the forward conv with every algorithm
('direct', 'winograd2d' = F(2x2, 3x3), 'winograd4x4' = F(4x4, 3x3), 'rows' = F(4, 3) along rows) and its max
abs error against a float64 reference (relative to the output's max). Prints a Markdown table; paste it into
BENCHMARKS.md. ~2 min on 2 cores.
"""
import contextlib
import os
import statistics
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer("batch", 1, "Images per call.")
flags.DEFINE_integer("repeats", 5, "Timed calls (median), after one warm-up call.")
flags.DEFINE_list("models", [], "toyfaces, paper256, f1024: table of the measured choice per layer shape.")
flags.DEFINE_integer("ab_repeats", 7, "--models: interleaved rounds of the whole-network A/B.")
flags.DEFINE_bool("layers", True, "--models: the per-layer table after the A/B (--nolayers: the A/B only).")
FLAGS = flags.FLAGS

SHAPES = [(8, 512, 512), (16, 512, 512), (32, 512, 512), (64, 512, 512), (128, 256, 256), (256, 128, 128),
          (512, 64, 64), (1024, 32, 32)]  # config-f 1024 conv1 layers: (resolution, in, out)


def _median_seconds(fn, *args, repeats):
    import jax
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _float64_conv(x, k):
    """Same-size 3x3 correlation in float64 numpy. x: [N, H, W, I], k: [3, 3, I, O] -> [N, H, W, O]."""
    import numpy as np
    n, h, w, _ = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(xp[:, a:a + h, b:b + w] @ k[a, b].astype(np.float64) for a in range(3) for b in range(3))


def layer_shapes(cfg, batch):
    """[(up, x shape, kernel shape, layer names)] of cfg's modulated 3x3 convs, in forward order, unique shapes."""
    shapes = {}
    for layer in cfg.conv_layers:
        res = layer.res // 2 if layer.up else layer.res
        key = (layer.up, (batch, res, res, layer.in_ch), (3, 3, layer.in_ch, layer.out_ch))
        shapes.setdefault(key, []).append(layer.name)
    return [(*k, names) for k, names in shapes.items()]


@contextlib.contextmanager
def _env(**values):
    """Environment variables set for the block (autotune reads them at trace time), restored afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load(name):
    """(params, cfg) of a model: toyfaces = the builtin generator, the others random weights."""
    import si_jax
    from si_jax.stylegan2 import builtin
    from si_jax.stylegan2.config import G2Config
    if name == "toyfaces":
        return si_jax.load_generator(builtin.BUILTIN_TOYFACES)[:2]
    cfg = {"paper256": G2Config.make(256, channel_base=16384), "f1024": G2Config.make()}[name]
    return si_jax.to_jax_params(si_jax.random_canonical(cfg, 0), cfg), cfg


def network_ab(name, batch, repeats):
    """Whole synthesis network, 'auto' measured (cold: the current choices cache must be empty) vs the fixed rule:
    compile + first call of each (the difference is what measuring costs a cold start), then fwd and fwd+bwd
    w.r.t. the styles timed in `repeats` interleaved rounds. Prints rows; returns the cold-start cost in seconds."""
    import jax

    import si_jax
    from si_jax.stylegan2 import autotune, kernels
    raw, cfg = _load(name)
    z = jax.random.normal(jax.random.PRNGKey(1), (batch, cfg.z_dim))
    styles = si_jax.styles_from_w(raw, cfg, si_jax.mapping(raw, cfg, z))
    progs, compile_s = {}, {}
    for label, tuning in (("fixed rule", "off"), ("measured", "on")):   # new functions: traced anew, tuning as set
        fwd = jax.jit(lambda p, s: si_jax.synthesize(p, cfg, s))
        bwd = jax.jit(jax.grad(lambda s, p: si_jax.synthesize(p, cfg, s).mean()))
        with _env(**{autotune.TUNING_ENV: tuning}):
            # kernel forms once per weights, as the edit loop runs (measured: every candidate's forms)
            params = jax.block_until_ready(jax.jit(lambda p: kernels.prepare(p, cfg))(raw))
            t0 = time.perf_counter()
            jax.block_until_ready(fwd(params, styles))
            jax.block_until_ready(bwd(styles, params))
        compile_s[label] = time.perf_counter() - t0
        progs[label] = (lambda f=fwd, p=params: f(p, styles), lambda b=bwd, p=params: b(styles, p))
    t = {(p, d): [] for p in progs for d in (0, 1)}
    for _ in range(repeats):
        for d in (0, 1):
            for p, fns in progs.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fns[d]())
                t[p, d].append(time.perf_counter() - t0)
    for d, what in ((0, "fwd"), (1, "fwd+bwd w.r.t. styles")):
        rule, meas = (t["fixed rule", d], t["measured", d])
        print(f"| {name} | {what} | {1e3 * statistics.median(rule):.1f} / {1e3 * min(rule):.1f} | "
              f"{1e3 * statistics.median(meas):.1f} / {1e3 * min(meas):.1f} | "
              f"{statistics.median(rule) / statistics.median(meas):.3f}x | {compile_s['fixed rule']:.1f} | "
              f"{compile_s['measured']:.1f} |", flush=True)
    return compile_s["measured"] - compile_s["fixed rule"]


def model_table(names, batch, repeats, ab_repeats, layers=True):
    """Per model: the whole-network A/B (cold measuring), then per layer shape and mode the candidates timed in
    the layer's context, the measured choice (from the cache the network run filled, else measured now), the
    fastest of a re-timing, and whether they agree within autotune.MARGIN."""
    import jax

    from si_jax.stylegan2 import autotune, conv_timing, ops
    from si_jax.stylegan2.numerics import Numerics
    os.environ[autotune.TUNING_ENV] = "on"
    os.environ.setdefault(autotune.BUDGET_ENV, "inf")   # measure every entry: the A/B compares complete choices
    if not os.environ.get(autotune.CACHE_ENV):   # cold by default: a choices file of this run's own
        os.environ[autotune.CACHE_ENV] = os.path.join(tempfile.mkdtemp(prefix="si_jax_conv_"), "choices.json")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}; "
          f"host: {autotune.host_key()}; choices cache: {autotune.cache_path()} "
          f"({'exists: warm' if autotune.cache_path().exists() else 'empty: cold'}); batch {batch}, float32\n"
          f"MIN_FLOPS {autotune.MIN_FLOPS:.0e} (smaller convs keep the rule, unmeasured), MARGIN "
          f"{100 * autotune.MARGIN:.0f} % (near-ties keep the rule), rounds {conv_timing.REPEATS}-"
          f"{conv_timing.MAX_REPEATS} (more while the two fastest are within {100 * conv_timing.CLOSE:.0f} %; early "
          f"exit at {conv_timing.EARLY_EXIT}x after 2), budget {autotune.budget()} s per process (default "
          f"{autotune.BUDGET_S} s: a cold start measures about that much and the rest in later starts)\n", flush=True)
    print(f"Whole network, 'auto' measured vs the fixed rule, batch {batch}: median / min of {ab_repeats} "
          "interleaved rounds; speedup = rule median / measured median; compile+first = jit compile and first call "
          "of fwd and fwd+bwd (measured: including measuring the layers the cache lacks)\n\n"
          "| model | pass | fixed rule (ms) | measured (ms) | speedup | compile+first rule (s) | "
          "compile+first measured (s) |\n|---|---|---|---|---|---|---|", flush=True)
    cold = {name: network_ab(name, batch, ab_repeats) for name in names}
    print("\n" + "; ".join(f"{n}: measuring added {c:.1f} s to the start" for n, c in cold.items()) + "\n")
    if not layers:
        return
    print(f"Per layer shape: the layer (modulated conv + bias + lrelu, ops.tuning) with each form, on its kernel "
          f"forms given (prepared params); mode fwd, or fwd + VJP w.r.t. x and styles (grad_xs: the edit loop's). "
          f"Candidates re-timed here: minimum of {repeats} interleaved rounds; "
          "others' CPU share (%): while the choice was measured / while re-timed (conv_timing.Others).\n\n"
          "| model | layers | kind | mode | x | candidates (ms) | fixed rule | measured choice | fastest now | "
          "others % | within 5 % |\n|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    agree = rule_ok = total = 0
    for name in names:
        for up, xs, ks, layers in layer_shapes(_load(name)[1], batch):
            spec = lambda shape: jax.ShapeDtypeStruct(shape, "float32")  # noqa: E731
            t = ops.tuning(spec(xs), spec(ks), spec((batch, xs[-1])), up=up, numerics=Numerics(), prepared=True)
            small = autotune.conv_flops(xs, ks) / xs[0] < autotune.MIN_FLOPS   # per image, as autotune.choose
            for mode in ("fwd", "grad_xs"):
                choice = autotune.choose(t.kind, t.forms, t.args, "highest", t.rule, names=t.names, mode=mode)
                times, busy = _retime(t, mode, repeats)
                cells, again = ", ".join(f"{n} {1e3 * v:.2f}" for n, v in times.items()), ""
                ok = _within(times, choice)
                if not ok:   # a second re-timing, twice as long: noise (the choice is within it) or a wrong choice
                    times, busy2 = _retime(t, mode, 2 * repeats)
                    ok = _within(times, choice)
                    again = (f" (again, others {100 * busy2:.0f} %: "
                             f"{', '.join(f'{n} {1e3 * v:.2f}' for n, v in times.items())})")
                record = autotune._hosts(autotune.cache_path()).get(autotune.host_key(), {}).get(
                    autotune.entry_key(t.kind, t.args, "highest", mode), {})
                others = f"{100 * record['others']:.0f} / " if "others" in record else "- / "
                fastest = min(times, key=times.get)
                agree, rule_ok = agree + ok, rule_ok + (times[t.rule] <= (1 + autotune.MARGIN) * times[fastest])
                total += 1
                label = f"{choice} (rule, unmeasured)" if small else choice
                print(f"| {name} | {' '.join(layers)} | {'upconv' if up else 'conv3x3'} | {mode} | "
                      f"{'x'.join(map(str, xs[1:]))} | {cells} | {t.rule} | {label} | {fastest} | "
                      f"{others}{100 * busy:.0f} | {'yes' if ok else 'NO'}{again} |", flush=True)
    print(f"\nwithin {100 * autotune.MARGIN:.0f} % of the fastest of the re-timing: the measured choice {agree} / "
          f"{total}, the fixed rule {rule_ok} / {total}; load average at the end {os.getloadavg()[0]:.1f}")


def _retime(t, mode, repeats):
    """{form: seconds} of a tuning's candidates re-timed (`repeats` interleaved rounds, minimum, no early exit), and
    the share of the CPUs other processes used meanwhile (conv_timing.Others)."""
    from si_jax.stylegan2 import conv_timing
    with conv_timing.Others() as others:
        times = conv_timing.time_candidates(t.forms, t.args, mode, t.names, repeats=repeats, max_repeats=repeats,
                                            early_exit=None)
    return times, others.share


def _within(times, choice):
    """Whether `choice` is within autotune.MARGIN of the fastest of `times`."""
    from si_jax.stylegan2 import autotune
    return times[choice] <= (1 + autotune.MARGIN) * min(times.values())


def main(argv):
    del argv
    if FLAGS.models:
        return model_table(FLAGS.models, FLAGS.batch, FLAGS.repeats, FLAGS.ab_repeats, FLAGS.layers)
    import jax
    import numpy as np

    from si_jax.stylegan2 import ops
    from si_jax.stylegan2.numerics import Numerics

    rng = np.random.default_rng(0)
    rows = []
    for res, cin, cout in SHAPES:
        x = rng.standard_normal((FLAGS.batch, res, res, cin)).astype(np.float32)
        k = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
        want = _float64_conv(x, k) if res <= 256 else None
        cells = []
        for algo in ("direct", "winograd2d", "winograd4x4", "rows"):
            fn = jax.jit(lambda x, k, n=Numerics(conv3x3=algo): ops.conv_2d(x, k, n))  # fp32: precision HIGHEST
            sec = _median_seconds(fn, x, k, repeats=FLAGS.repeats)
            err = "" if want is None else f", err {np.abs(np.asarray(fn(x, k)) - want).max() / np.abs(want).max():.1e}"
            cells.append(f"{1e3 * sec:.2f} ms{err}")
        auto = Numerics().conv3x3_for(res, res, min(cin, cout), "float32", jax.default_backend())
        rows.append([f"{res}", f"{cin}->{cout}", *cells, auto])
        print(" | ".join(rows[-1]), flush=True)
    print(f"\nbatch {FLAGS.batch}, jax {jax.__version__}, {jax.default_backend()}, {len(os.sched_getaffinity(0))} CPUs\n")
    print("| resolution | channels | direct | winograd2d F(2x2,3x3) | winograd4x4 F(4x4,3x3) | rows F(4,3) "
          "| auto picks |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    app.run(main)
