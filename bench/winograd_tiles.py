"""F(4x4, 3x3) Winograd ('winograd4x4') against the 'auto' rule's choice, on prepared kernel forms (paper256).

    python bench/winograd_tiles.py [--rounds=7] [--w4_sizes=16,32] [--layers=true] [--network=true]

--layers: per same-size conv shape of paper256 (8-128 px x 512-128 channels, batch 1, float32), each algorithm
with its kernel forms computed beforehand (as si_jax.stylegan2.kernels.prepare does): forward, and forward + input
gradient (the edit loop's pass w.r.t. the styles); --rounds interleaved rounds (alternating order), medians, ms.
--network: whole paper256 synthesis on programs.prepared params, fwd and d mean(image) / d styles (bench/run.py's
programs), the 'auto' rule against the same rule with 'winograd4x4' at the --w4_sizes resolutions (a Numerics
whose rule says so; the same model otherwise), in ONE process, interleaved, medians. Prints the CPU and the load.
"""
import dataclasses
import os

from absl import app, flags

from run import cpu_and_load, interleaved_rounds   # bench/run.py: this script's folder is on sys.path

flags.DEFINE_integer("rounds", 7, "Interleaved rounds (medians).")
flags.DEFINE_list("w4_sizes", ["16", "32"], "Resolutions where the variant network uses 'winograd4x4'.")
flags.DEFINE_boolean("layers", True, "Per-layer table.")
flags.DEFINE_boolean("network", True, "Whole-network A/B.")
FLAGS = flags.FLAGS

LAYERS = [(8, 512), (16, 512), (32, 512), (64, 256), (128, 128)]  # paper256 conv1 layers: (resolution, channels)
ALGOS = ("direct", "winograd2d", "rows", "winograd4x4")


def _layer_calls(res, ch, algo):
    """(fwd, fwd + input gradient) zero-argument calls of one conv with prepared forms."""
    import jax
    import numpy as np

    from si_jax.stylegan2 import conv3x3
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.standard_normal((1, res, res, ch)), "float32")
    k = jax.numpy.asarray(rng.standard_normal((3, 3, ch, ch)) / np.sqrt(9 * ch), "float32")
    kt = conv3x3.transposed(k)
    same = ((1, 1), (1, 1))
    if algo == "direct":
        f = lambda x, k, kt, u, ut: conv3x3.direct_t(x, k, kt, same, "highest")  # noqa: E731
        u = ut = None
    else:
        u, ut = conv3x3.kernel_transform(k, algo), conv3x3.kernel_transform(kt, algo)
        f = lambda x, k, kt, u, ut: conv3x3.conv3x3(x, k, kt, u, ut, algo, "highest")  # noqa: E731
    fwd = jax.jit(f)
    def both(x, dy, *forms):  # the forward's value is returned too, or XLA drops it (dx does not need it)
        y, vjp = jax.vjp(lambda x: f(x, *forms), x)
        return y, vjp(dy)[0]
    both = jax.jit(both)
    dy = jax.numpy.ones_like(x)
    return lambda: fwd(x, k, kt, u, ut), lambda: both(x, dy, k, kt, u, ut)


def layers_table(rounds):
    from si_jax.stylegan2.numerics import Numerics
    print(f"per layer, prepared forms, batch 1, float32; {cpu_and_load()}")
    print("| px x ch | rule | pass | " + " | ".join(ALGOS) + " |\n|---|---|---|" + "---|" * len(ALGOS))
    for res, ch in LAYERS:
        calls = {a: _layer_calls(res, ch, a) for a in ALGOS}
        for i, name in enumerate(("fwd", "fwd+dx")):
            ms = {a: t[0] for a, t in interleaved_rounds({a: c[i] for a, c in calls.items()}, rounds).items()}
            rule = Numerics().conv3x3_for(res, res, ch, "float32", "cpu")
            print(f"| {res} x {ch} | {rule} | {name} | " + " | ".join(f"{1e3 * ms[a]:.1f}" for a in ALGOS) + " |")
    print(f"(load after: {os.getloadavg()[0]:.1f})")


def _w4_numerics(sizes):
    from si_jax.stylegan2.numerics import Numerics

    @dataclasses.dataclass(frozen=True)
    class W4(Numerics):
        """The 'auto' rule with 'winograd4x4' at `sizes` (float32, CPU): a distinct class, so a distinct jit key."""
        def conv3x3_for(self, h, w, channels, dtype, backend):
            algo = super().conv3x3_for(h, w, channels, dtype, backend)
            return "winograd4x4" if algo != "direct" and min(h, w) in sizes else algo
    return W4()


def network_ab(rounds, sizes):
    from run import load_config, make_styles, synthesis_programs

    from si_jax.stylegan2 import programs
    params, cfg, _ = load_config("paper256")
    variants = {"rule": cfg, "w4": cfg.with_numerics(_w4_numerics(sizes))}
    calls = {}
    for name, c in variants.items():
        p = programs.prepared(params, c)
        styles = make_styles(params, c, 1, 0)
        fwd, bwd = synthesis_programs(c)
        calls[name] = (lambda f=fwd, p=p, s=styles: f(p, s), lambda b=bwd, p=p, s=styles: b(s, p))
    print(f"paper256 whole network, batch 1, float32, 'w4' = winograd4x4 at {sorted(sizes)} px; {cpu_and_load()}")
    import numpy as np
    a, b = (np.asarray(calls[n][0]()) for n in variants)
    print(f"max |image rule - image w4| = {np.abs(a - b).max():.2e} (image max {np.abs(a).max():.2f})")
    for i, name in enumerate(("fwd", "fwd+bwd")):
        ms = {n: t[0] for n, t in interleaved_rounds({n: c[i] for n, c in calls.items()}, rounds).items()}
        print(f"{name}: rule {1e3 * ms['rule']:.0f} ms, w4 {1e3 * ms['w4']:.0f} ms, "
              f"rule / w4 = {ms['rule'] / ms['w4']:.3f}x; load {os.getloadavg()[0]:.1f}")


def main(argv):
    del argv
    if FLAGS.layers:
        layers_table(FLAGS.rounds)
    if FLAGS.network:
        network_ab(FLAGS.rounds, {int(s) for s in FLAGS.w4_sizes})


if __name__ == "__main__":
    app.run(main)
