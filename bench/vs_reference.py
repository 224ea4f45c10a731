"""si_jax synthesis against the NVlabs PyTorch reference networks, timed in ONE run, interleaved; prints ratios.

    python bench/vs_reference.py [--configs=paper256,f1024] [--repeats=3] [--threads=0]

Needs CPU torch, an optional bench-only extra (never a dependency of si_jax): `pip install torch` into the same
environment. Without it the bench says so and exits 0 having timed nothing. The reference code is read from
../shared/nvlabs_ref (NVlabs stylegan2-ada-pytorch networks, put on sys.path here at run time, never copied into
the project; $NVLABS_REF moves it).

Per config (paper256 = G2Config.make(256, channel_base=16384); f1024 = config-f 1024), batch 1, float32: the
synthesis forward, and forward + backward w.r.t. the styles (si_jax: d mean(image) / d styles, `bench/run.py`'s
programs; NVlabs: d mean(image) / d ws of `G.synthesis`, whose per-layer affine maps ws to styles: a [512] x [512, C]
matmul per layer, negligible next to the convs). Both sides use random weights of the same config (not the same
values: the timings do not depend on them), no noise on either side (noise_mode='const' in NVlabs), fp32 everywhere
(NVlabs num_fp16_res=0). NVlabs runs in each of --nvlabs_forms: 'fused' (fused_modconv=True, its default in eval
mode: per-sample weights, one grouped conv) and 'nonfused' (scale input, shared-weight conv, scale output: si_jax's
form); the ratio is against the faster of them. Protocol: compile / warm-up call first (jit compile timed
separately), then `--repeats` rounds, each timing the forward of si_jax and of each NVlabs form in turn, then their
fwd+bwd; medians. Ratio = NVlabs time / si_jax time (> 1: si_jax is faster); si_jax's 'auto' conv choices are
measured on this host (si_jax.stylegan2.autotune; --rule_too adds si_jax with the fixed rule as a column). Training
steps are not timed here.
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the checkout (si_jax itself is installed)
NVLABS_REF = os.environ.get("NVLABS_REF", os.path.join(ROOT, "..", "shared", "nvlabs_ref"))
NVLABS_KWARGS = {"paper256": dict(img_resolution=256, channel_base=16384),
                 "f1024": dict(img_resolution=1024, channel_base=32768)}


def nvlabs_programs(name, fused: bool, seed=0):
    """(fwd, fwd+bwd) of a random-weight NVlabs Generator's synthesis: ws [1, num_ws, 512] -> image / d mean / d ws.
    fused: NVlabs' fused_modconv (per-sample weights, one grouped conv; its eval default) or not (scale the input,
    one shared-weight conv, scale the output: si_jax's form)."""
    import types

    import torch
    sys.path.insert(0, NVLABS_REF)
    try:
        import requests  # noqa: F401  (dnnlib.util imports it for downloads, which this bench never does)
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    from training.networks import Generator  # noqa: E402  (NVlabs reference, read from ../shared at run time)
    torch.manual_seed(seed)
    kw = NVLABS_KWARGS[name]
    g = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=kw["img_resolution"], img_channels=3,
                  mapping_kwargs={"num_layers": 8},
                  synthesis_kwargs={"channel_base": kw["channel_base"], "channel_max": 512, "num_fp16_res": 0,
                                    "conv_clamp": None}).eval().requires_grad_(False)
    ws = g.mapping(torch.randn(1, 512), None)

    def fwd():
        with torch.no_grad():
            return g.synthesis(ws, noise_mode="const", fused_modconv=fused)

    def bwd():
        w = ws.detach().clone().requires_grad_(True)
        g.synthesis(w, noise_mode="const", fused_modconv=fused).mean().backward()
        return w.grad

    return fwd, bwd


def si_jax_programs(name, tuning=None):
    """(fwd, fwd+bwd) thunks of si_jax synthesis at batch 1 (bench/run.py's programs), compiled; compile seconds.
    tuning: $SI_JAX_CONV_TUNING while they are traced ('off': the fixed-rule conv choices; None: as set, by default
    'auto' measured on this host), restored afterwards."""
    import jax
    import run as bench_run  # bench/run.py

    from si_jax.stylegan2 import autotune
    params, cfg, _ = bench_run.load_config(name)
    styles = bench_run.make_styles(params, cfg, 1, seed=1)
    fwd, bwd = bench_run.synthesis_programs(cfg)
    before = os.environ.get(autotune.TUNING_ENV)
    if tuning is not None:
        os.environ[autotune.TUNING_ENV] = tuning   # read at trace time: the first calls below
    try:
        t0 = time.perf_counter()
        jax.block_until_ready(fwd(params, styles))
        jax.block_until_ready(bwd(styles, params))
    finally:
        if before is None:
            os.environ.pop(autotune.TUNING_ENV, None)
        else:
            os.environ[autotune.TUNING_ENV] = before
    return (lambda: jax.block_until_ready(fwd(params, styles)),
            lambda: jax.block_until_ready(bwd(styles, params))), time.perf_counter() - t0


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="paper256,f1024")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--nvlabs_forms", default="fused,nonfused", help="NVlabs modconv forms to time: fused, nonfused")
    p.add_argument("--rule_too", action="store_true", help="also time si_jax with the fixed-rule conv choices "
                   "($SI_JAX_CONV_TUNING=off) in the same rounds: does measuring the choices pay on this host?")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the CPUs this process may use)")
    a = p.parse_args()
    forms = [f.strip() for f in a.nvlabs_forms.split(",")]
    if not forms or set(forms) - {"fused", "nonfused"}:
        sys.exit(f"error: --nvlabs_forms={a.nvlabs_forms!r}: give fused, nonfused or both (comma-separated)")
    try:
        import torch
    except ImportError:
        print("skipped: CPU torch is not installed (an optional bench-only extra: pip install torch); "
              "nothing timed")
        return
    if not os.path.isdir(os.path.join(NVLABS_REF, "training")):
        print(f"skipped: the NVlabs reference code is not at {NVLABS_REF} (set NVLABS_REF); nothing timed")
        return
    import jax
    threads = a.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"{cpu_model()}, {len(os.sched_getaffinity(0))} CPUs, torch {torch.__version__} ({threads} threads), "
          f"jax {jax.__version__} ({jax.default_backend()}), {now} UTC; batch 1, float32, random weights (same "
          f"config, not the same values)", flush=True)
    rows = []
    for name in a.configs.split(","):
        progs = {"si_jax": None}
        for form in forms:
            progs[f"NVlabs {form}"] = nvlabs_programs(name, fused=form == "fused")
            for fn in progs[f"NVlabs {form}"]:
                fn()  # warm-up
        progs["si_jax"], compile_s = si_jax_programs(name)
        if a.rule_too:
            progs["si_jax fixed rule"] = si_jax_programs(name, tuning="off")[0]
        t = {(p, d): [] for p in progs for d in (0, 1)}
        for _ in range(a.repeats):
            for d in (0, 1):   # fwd, then fwd+bwd; si_jax and each NVlabs form in turn
                for p, fns in progs.items():
                    t[p, d].append(timed(fns[d]))
        m = {k: statistics.median(v) for k, v in t.items()}
        for d, what in ((0, "fwd"), (1, "fwd+bwd")):
            ref = {p: m[p, d] for p in progs if p.startswith("NVlabs")}
            rule = f" | {m['si_jax fixed rule', d]:.3f}" if a.rule_too else ""
            best = min(ref, key=ref.get)
            cells = " | ".join(f"{ref[p]:.3f}" for p in ref)
            rows.append(f"| {name} | {what} | {m['si_jax', d]:.3f}{rule} | {cells} | "
                        f"**{ref[best] / m['si_jax', d]:.2f}x** (vs {best}) | {compile_s:.0f} |")
            print(rows[-1], flush=True)
    rule_head = " si_jax fixed rule (s) |" if a.rule_too else ""
    print(f"\n| config | pass | si_jax (s) |{rule_head} {' | '.join(f'NVlabs {f} (s)' for f in forms)} | ratio, "
          f"fastest NVlabs / si_jax | si_jax compile+first (s) |\n|{'---|' * (5 + len(forms) + a.rule_too)}")
    print("\n".join(rows))
    print(f"\n(medians of {a.repeats} interleaved rounds; ratio > 1: si_jax faster; NVlabs fused = fused_modconv "
          f"(its eval default), nonfused = si_jax's modconv form)")


if __name__ == "__main__":
    main()
