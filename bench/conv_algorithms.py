"""The evidence behind `Numerics.conv3x3_for` ('auto' on CPU): same-size 3x3 conv time per algorithm at StyleGAN2 layer shapes.

    python bench/conv_algorithms.py [--batch=1] [--repeats=5]

For each (resolution, in, out) of config-f 1024's same-size convs, times the forward conv with every algorithm
('direct', 'winograd2d' = F(2x2, 3x3), 'rows' = F(4, 3) along rows) and its max abs error against a float64
reference (relative to the output's max). Prints a Markdown table; paste it into BENCHMARKS.md. ~2 min on 2 cores.
"""
import os
import statistics
import time

from absl import app, flags

flags.DEFINE_integer("batch", 1, "Images per call.")
flags.DEFINE_integer("repeats", 5, "Timed calls (median), after one warm-up call.")
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


def main(argv):
    del argv
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
        for algo in ("direct", "winograd2d", "rows"):
            fn = jax.jit(lambda x, k, n=Numerics(conv3x3=algo): ops.conv_2d(x, k, n))  # fp32: precision HIGHEST
            sec = _median_seconds(fn, x, k, repeats=FLAGS.repeats)
            err = "" if want is None else f", err {np.abs(np.asarray(fn(x, k)) - want).max() / np.abs(want).max():.1e}"
            cells.append(f"{1e3 * sec:.2f} ms{err}")
        auto = Numerics().conv3x3_for(res, res, min(cin, cout), "float32", jax.default_backend())
        rows.append([f"{res}", f"{cin}->{cout}", *cells, auto])
        print(" | ".join(rows[-1]), flush=True)
    print(f"\nbatch {FLAGS.batch}, jax {jax.__version__}, {jax.default_backend()}, {len(os.sched_getaffinity(0))} CPUs\n")
    print("| resolution | channels | direct | winograd2d F(2x2,3x3) | rows F(4,3) | auto picks |\n|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    app.run(main)
