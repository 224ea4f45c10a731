"""Winograd phase convs in the polyphase up-conv (issue 19 item 3): per up-conv shape and on the whole network.

    python bench/upconv_winograd.py [--rounds=9] [--layers=true] [--network=paper256] [--algos=...]

--layers: per up-conv shape of paper256 (and --f1024_layers: config-f 1024's 64-256 px inputs), batch 1, float32,
each --algos up-conv form with its kernel forms computed beforehand (as si_jax.stylegan2.kernels.prepare does):
forward, and forward + input gradient (the edit loop's pass w.r.t. the styles); interleaved rounds, medians, ms.
--network: the named config's synthesis on programs.prepared params, fwd and d mean(image) / d styles (bench/run.py's
programs) with each --algos up-conv form ('w2<N': polyphase_w2 below N px, `_numerics`), in ONE process,
interleaved rounds alternating order; medians and minima.
Prints the CPU and the load.
"""
import os
import time

from absl import app, flags

from run import cpu_and_load, interleaved_rounds   # bench/run.py: this script's folder is on sys.path

flags.DEFINE_integer("rounds", 9, "Interleaved rounds.")
flags.DEFINE_list("algos", ["polyphase", "polyphase_w2", "polyphase_w4", "polyphase_r4"],
                  "Up-conv forms: polyphase*; with --nolayers also transposed and w2<N.")
flags.DEFINE_boolean("layers", True, "Per-shape table.")
flags.DEFINE_boolean("f1024_layers", False, "Per-shape table for config-f 1024's 64-256 px up-conv inputs too.")
flags.DEFINE_string("network", "paper256", "Whole-network A/B config ('' = none).")
FLAGS = flags.FLAGS

PAPER256 = [(8, 512, 512), (16, 512, 512), (32, 512, 256), (64, 256, 128), (128, 128, 64)]  # input px, I, O
F1024 = [(64, 512, 256), (128, 256, 128), (256, 128, 64)]


def _layer_calls(res, cin, cout, algo):
    """(fwd, fwd + input gradient) zero-argument calls of one up-conv with prepared forms."""
    import jax
    import numpy as np

    from si_jax.stylegan2 import kernels, ops
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal((1, res, res, cin)), "float32")
    k = jax.numpy.asarray(rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin), "float32")
    forms = kernels.layer_forms(k, "float32", up=True, demodulate=False, algos=(algo,), poly=True)
    taps = ops._taps((1, 3, 3, 1), 2.0)
    f = lambda x, k, forms: ops._conv_up_polyphase(x, k, taps, "highest", forms["poly"], algo,  # noqa: E731
                                                   forms.get(algo))
    fwd = jax.jit(f)

    def both(x, dy, k, forms):  # the forward's value is returned too, or XLA drops it (dx does not need it)
        y, vjp = jax.vjp(lambda x: f(x, k, forms), x)
        return y, vjp(dy)[0]
    both = jax.jit(both)
    dy = jax.numpy.ones((1, 2 * res, 2 * res, cout), "float32")
    return lambda: fwd(x, k, forms), lambda: both(x, dy, k, forms)


def layers_table(shapes, algos, rounds):
    print(f"up-conv per shape, prepared forms, batch 1, float32, {rounds} rounds; {cpu_and_load()}")
    print("| input px x I -> O | pass | " + " | ".join(algos) + " |\n|---|---|" + "---|" * len(algos))
    for res, cin, cout in shapes:
        calls = {a: _layer_calls(res, cin, cout, a) for a in algos}
        for i, name in enumerate(("fwd", "fwd+dx")):
            t = interleaved_rounds({a: c[i] for a, c in calls.items()}, rounds)
            print(f"| {res} x {cin} -> {cout} | {name} | " + " | ".join(f"{1e3 * t[a][0]:.1f}" for a in algos)
                  + f" | (load {os.getloadavg()[0]:.1f})", flush=True)


def _numerics(algo):
    """Numerics for an --algos entry: an up-conv form, or 'w2<N': the 'auto' rule with polyphase_w2 at every float32
    input of 4 <= size < N px on CPU, whatever its channels (a distinct class per N: a distinct jit key)."""
    import dataclasses

    from si_jax.stylegan2.numerics import Numerics
    if not algo.startswith("w2<"):
        return Numerics(upconv=algo)
    below = int(algo[3:])

    @dataclasses.dataclass(frozen=True)
    class Below(Numerics):
        def upconv_for(self, backend, size=None, channels=None, dtype="float32", prepared=True):
            rule = super().upconv_for(backend, size, channels, dtype, prepared)
            return "polyphase_w2" if rule != "transposed" and size and 4 <= size < below else rule
    Below.__name__ = Below.__qualname__ = f"Below{below}"
    return Below()


def network_ab(config, algos, rounds):
    import numpy as np
    from run import load_config, make_styles, synthesis_programs

    from si_jax.stylegan2 import programs
    params, cfg, _ = load_config(config)
    calls, t0 = {}, time.perf_counter()
    for algo in algos:
        c = cfg.with_numerics(_numerics(algo))
        p = programs.prepared(params, c)
        styles = make_styles(params, c, 1, 0)
        fwd, bwd = synthesis_programs(c)
        calls[algo] = (lambda f=fwd, p=p, s=styles: f(p, s), lambda b=bwd, p=p, s=styles: b(s, p))
    imgs = {a: np.asarray(c[0]()) for a, c in calls.items()}
    grads = {a: [np.asarray(g) for g in c[1]()] for a, c in calls.items()}
    print(f"{config} whole network, batch 1, float32, {rounds} rounds; compile {time.perf_counter() - t0:.0f} s; "
          f"{cpu_and_load()}")
    ref = algos[0]
    for a in algos[1:]:
        gerr = max(np.abs(g - r).max() / np.abs(r).max() for g, r in zip(grads[a], grads[ref]))
        print(f"{a} vs {ref}: image {np.abs(imgs[a] - imgs[ref]).max() / np.abs(imgs[ref]).max():.1e} of max, "
              f"style gradients {gerr:.1e} of a layer's max")
    for i, name in enumerate(("fwd", "fwd+bwd")):
        t = interleaved_rounds({a: c[i] for a, c in calls.items()}, rounds)
        print(f"{name}: " + ", ".join(f"{a} {1e3 * t[a][0]:.1f} ({1e3 * t[a][1]:.1f}) ms" for a in algos)
              + f"; {ref} / each (medians): " + ", ".join(f"{t[ref][0] / t[a][0]:.3f}x" for a in algos[1:])
              + f"; load {os.getloadavg()[0]:.1f}", flush=True)


def main(argv):
    del argv
    import jax

    from si_jax.stylegan2.numerics import UPCONV_ALGORITHMS
    polyphase = [a for a in UPCONV_ALGORITHMS if a.startswith("polyphase")]   # what --layers times
    network_only = lambda a: a == "transposed" or a[:3] == "w2<" and a[3:].isdigit()  # noqa: E731
    wrong = [a for a in FLAGS.algos if a not in polyphase and (FLAGS.layers or not network_only(a))]
    if wrong:
        raise app.UsageError(f"--algos {wrong}: one of {polyphase}; with --nolayers also 'transposed' or w2<N "
                             "(N an integer)")
    jax.config.update("jax_default_matmul_precision", "highest")
    if FLAGS.layers:
        layers_table(PAPER256 + (F1024 if FLAGS.f1024_layers else []), FLAGS.algos, FLAGS.rounds)
    if FLAGS.network:
        network_ab(FLAGS.network, FLAGS.algos, FLAGS.rounds)


if __name__ == "__main__":
    app.run(main)
