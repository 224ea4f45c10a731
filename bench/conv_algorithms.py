"""Conv algorithms per layer shape: the fixed rule's evidence (`Numerics.conv3x3_for`), and the measured choices.

    python bench/conv_algorithms.py [--batch=1] [--repeats=5]
    python bench/conv_algorithms.py --models=toyfaces,paper256 [--repeats=5]   # measured 'auto' vs the fastest
    (whole network, 'auto' measured vs the fixed rule: python bench/vs_reference.py --rule_too)

--models: for every conv layer shape of the models (toyfaces = builtin:toyfaces, paper256 = G2Config.make(256,
channel_base=16384), f1024 = config-f 1024), batch --batch, float32: the choice 'auto' makes on this host
(si_jax.stylegan2.autotune; from the cache file, $SI_JAX_CONV_CHOICES or ~/.cache/si_jax/conv_choices.json, or
measured now when absent: its timing is what a cold start pays), then each candidate timed again here, --repeats
interleaved rounds, minimum (as autotune times), and whether the choice is the fastest of these new timings, up to
autotune.MARGIN (5 %: within it the fixed rule's choice is kept, and the order is noise). Same-size 3x3 convs:
forward (their gradient is the direct conv's whatever the forward, so the forward decides); up-convs: forward, and
forward + backward w.r.t. the input (the edit loop's gradient w.r.t. the styles). On a loaded machine candidates
within a few % of each other can swap between the two timings.

Without --models:
For each (resolution, in, out) of config-f 1024's same-size convs, times the forward conv with every algorithm
('direct', 'winograd2d' = F(2x2, 3x3), 'winograd4x4' = F(4x4, 3x3), 'rows' = F(4, 3) along rows) and its max
abs error against a float64 reference (relative to the output's max). Prints a Markdown table; paste it into
BENCHMARKS.md. ~2 min on 2 cores.
"""
import os
import statistics
import time

from absl import app, flags

flags.DEFINE_integer("batch", 1, "Images per call.")
flags.DEFINE_integer("repeats", 5, "Timed calls (median), after one warm-up call.")
flags.DEFINE_list("models", [], "toyfaces, paper256, f1024: table of the measured choice per layer shape.")
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


def _model_config(name):
    from si_jax.stylegan2 import builtin
    from si_jax.stylegan2.config import G2Config
    if name == "toyfaces":
        import si_jax
        return si_jax.load_generator(builtin.BUILTIN_TOYFACES)[1]
    return {"paper256": G2Config.make(256, channel_base=16384), "f1024": G2Config.make()}[name]


def layer_shapes(cfg, batch):
    """[(kind, x shape, kernel shape, layer names)] of cfg's modulated 3x3 convs, shapes in forward order, unique."""
    shapes = {}
    for layer in cfg.conv_layers:
        res = layer.res // 2 if layer.up else layer.res
        key = ("upconv" if layer.up else "conv3x3", (batch, res, res, layer.in_ch), (3, 3, layer.in_ch, layer.out_ch))
        shapes.setdefault(key, []).append(layer.name)
    return [(*k, names) for k, names in shapes.items()]


def model_table(names, batch, repeats):
    """Print, per layer shape and mode, each candidate's time, the measured choice and whether it is the fastest."""
    import time as time_lib

    import numpy as np

    from si_jax.stylegan2 import autotune, ops
    from si_jax.stylegan2.numerics import Numerics
    print(f"measuring {'on' if autotune.enabled() else 'OFF: the choice is the fixed rule'}; host: "
          f"{autotune.host_key()}; cache: {autotune.cache_path()}; batch {batch}, float32, minimum of "
          f"{repeats}\n", flush=True)
    print("| model | layers | kind | mode | x | candidates (ms) | measured choice | fastest now | within 5 % |\n"
          "|---|---|---|---|---|---|---|---|---|", flush=True)
    agree = total = 0
    t_choose = 0.0
    for name in names:
        for kind, xs, ks, layers in layer_shapes(_model_config(name), batch):
            x, k = np.zeros(xs, np.float32), np.zeros(ks, np.float32)
            forms = ops.conv3x3_forms("highest") if kind == "conv3x3" else ops.upconv_forms((1, 3, 3, 1), "highest")
            rule = (Numerics().conv3x3_for(xs[1], xs[2], min(ks[2:]), "float32", "cpu") if kind == "conv3x3"
                    else Numerics().upconv_for("cpu"))   # what 'auto' is with $SI_JAX_CONV_TUNING=off
            for mode in (("fwd",) if kind == "conv3x3" else ("fwd", "grad_x")):
                t0 = time_lib.perf_counter()
                choice = autotune.choose(kind, forms, x, k, "highest", rule, mode=mode)
                t_choose += time_lib.perf_counter() - t0
                times = autotune.time_candidates(forms, xs, ks, np.float32, mode, repeats=repeats)
                fastest = min(times, key=times.get)
                ok = times[choice] <= (1 + autotune.MARGIN) * times[fastest]
                agree, total = agree + ok, total + 1
                cells = ", ".join(f"{n} {1e3 * t:.2f}" for n, t in times.items())
                print(f"| {name} | {' '.join(layers)} | {kind} | {mode} | {'x'.join(map(str, xs[1:]))} | {cells} | "
                      f"{choice} | {fastest} | {'yes' if ok else 'NO'} |", flush=True)
    print(f"\nmeasured choice within {100 * autotune.MARGIN:.0f} % of the fastest now: {agree} / {total}; time in "
          f"autotune.choose (measuring what the "
          f"cache lacked): {t_choose:.1f} s")


def main(argv):
    del argv
    if FLAGS.models:
        return model_table(FLAGS.models, FLAGS.batch, FLAGS.repeats)
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
