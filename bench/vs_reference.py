"""si_jax synthesis and training against the NVlabs PyTorch reference, timed in ONE run, interleaved; prints ratios.

    python bench/vs_reference.py [--configs=paper256,f1024] [--repeats=3] [--threads=0] [--train_steps=2]

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
fwd+bwd, in reverse order every other round (in a fixed order, si_jax first and the fixed rule last, config-f
1024's fwd with the measured choices took 0.929 s against the rule's 0.763 s, 2026-12-06, and the same two
programs alike, 0.817 / 0.808 s, interleaved in alternating order in one process); medians. Ratio = NVlabs
time / si_jax time (> 1: si_jax is faster); si_jax's 'auto' conv choices are as $SI_JAX_CONV_TUNING sets them
(on by default: measured on this host, si_jax.stylegan2.autotune; off: the fixed rule; --rule_too adds si_jax with
the fixed rule as a column).

Training (first; --train_steps=0 skips it): the shipping config (bin/train.py's: 32 px, 64 channels, batch 32) on
the NVlabs schedule, si_jax's fused `train_step` against the NVlabs loop around its networks and training/loss.py
(`nvlabs_train_step`), per regularisation variant, interleaved (`train_rows`); --configs= (empty) times only that.

Every row also says how much work it is (bench/flops.py): the FLOPs torch counts on the reference (the same work for
both sides), each side's GFLOP/s and what 2x the reference's speed would need, as shares of the float32 matmul
ceiling measured in this run (the faster of XLA's and torch's): a 2x target past 100 % cannot be met by running the
same multiplications faster, only by doing fewer (Winograd forms).

Both sides get the same malloc: synthesis runs both in this one process, and the training reference's worker
process inherits its environment, so glibc's huge-page tunable (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, set by
you; README's Speed) is on for both or for neither; the first line prints GLIBC_TUNABLES. It changes the ratios:
idle, it sped the NVlabs side at config-f 1024 far more than si_jax (2-core AMD EPYC (avx512f), BENCHMARKS.md
2026-12-05 night).
"""
import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time

import flops  # bench/flops.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the checkout (si_jax itself is installed)
NVLABS_REF = os.environ.get("NVLABS_REF", os.path.join(ROOT, "..", "shared", "nvlabs_ref"))
NVLABS_KWARGS = {"paper256": dict(img_resolution=256, channel_base=16384),
                 "f1024": dict(img_resolution=1024, channel_base=32768)}


def _nvlabs_modules() -> dict:
    """{'Generator', 'Discriminator', 'StyleGAN2Loss', 'misc'}: the NVlabs reference code, imported from NVLABS_REF
    (put on sys.path here, at run time; never copied into the project)."""
    import types
    if NVLABS_REF not in sys.path:
        sys.path.insert(0, NVLABS_REF)
    try:
        import requests  # noqa: F401  (dnnlib.util imports it for downloads, which this bench never does)
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    from torch_utils import misc  # noqa: E402  (NVlabs reference, read from ../shared at run time)
    from training.loss import StyleGAN2Loss  # noqa: E402
    from training.networks import Discriminator, Generator  # noqa: E402
    return {"Generator": Generator, "Discriminator": Discriminator, "StyleGAN2Loss": StyleGAN2Loss, "misc": misc}


def nvlabs_programs(name, fused: bool, seed=0):
    """(fwd, fwd+bwd) of a random-weight NVlabs Generator's synthesis: ws [1, num_ws, 512] -> image / d mean / d ws.
    fused: NVlabs' fused_modconv (per-sample weights, one grouped conv; its eval default) or not (scale the input,
    one shared-weight conv, scale the output: si_jax's form)."""
    import torch
    Generator = _nvlabs_modules()["Generator"]
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


def si_jax_programs(name, tuning=None, library="auto"):
    """(fwd, fwd+bwd) thunks of si_jax synthesis at batch 1 (bench/run.py's programs, on prepared params),
    compiled; compile seconds.
    tuning: $SI_JAX_CONV_TUNING while they are traced ('off': the fixed-rule conv choices; None: as set, by default
    'auto' measured on this host), restored afterwards. library: Numerics.conv_library of both programs ('auto':
    XLA's default here, batch-1 synthesis; 'eigen': XLA's Eigen convs, the forms measured in it)."""
    import jax
    import run as bench_run  # bench/run.py

    from si_jax.stylegan2 import autotune, programs
    params, cfg, _ = bench_run.load_config(name)
    cfg = cfg.with_numerics(conv_library=library)
    params = programs.prepared(params, cfg)   # kernel forms once per weights, as the editing programs use them
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


def nvlabs_train_step(tc, channel_base: int, channel_max: int, reals, seed=0):
    """One NVlabs training iteration of si_jax's TrainConfig `tc` as stylegan2-ada-pytorch runs it -> step(do_pl,
    do_r1). Its networks and training/loss.py (StyleGAN2Loss) from NVLABS_REF; the loop around them follows its
    training_loop.py (not in NVLABS_REF; written here after the public code): phases Gmain, [Greg], Dmain, [Dreg],
    each zero_grad -> accumulate_gradients(gain = interval) -> nan_to_num -> Adam step (lr and betas with the lazy
    regularisation ratio), then G_ema = lerp and buffers copied. fp32, no conv clamp, no augmentation.
    reals: [N, 3, R, R] float32 in [-1, 1] (given: the reference's data loading is not timed)."""
    import copy

    import torch
    nv = _nvlabs_modules()
    torch.manual_seed(seed)
    g_cfg, res = tc.g, tc.g.img_resolution
    common = dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0, conv_clamp=None)
    G = nv["Generator"](z_dim=g_cfg.z_dim, c_dim=0, w_dim=g_cfg.w_dim, img_resolution=res, img_channels=3,
                        mapping_kwargs={"num_layers": g_cfg.mapping_layers}, synthesis_kwargs=common)
    G = G.train().requires_grad_(False)
    D = nv["Discriminator"](c_dim=0, img_resolution=res, img_channels=3, **common,
                            epilogue_kwargs={"mbstd_group_size": tc.d.mbstd_group}).train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    loss = nv["StyleGAN2Loss"](torch.device("cpu"), G.mapping, G.synthesis, D, r1_gamma=tc.r1_gamma,
                               style_mixing_prob=tc.style_mixing_prob, pl_batch_shrink=tc.pl_batch_shrink,
                               pl_decay=tc.pl_decay, pl_weight=tc.pl_weight)
    phases = []
    for name, module, interval in (("G", G, tc.g_reg_interval), ("D", D, tc.d_reg_interval)):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=tc.lr * ratio, betas=[b**ratio for b in tc.betas], eps=tc.eps)
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    reals = torch.as_tensor(reals)
    c = torch.zeros([tc.batch, 0])
    nimg = [0]

    def step(do_pl: bool, do_r1: bool):
        all_z = torch.randn([len(phases), tc.batch, g_cfg.z_dim]).unbind(0)
        for (name, module, opt, interval), z in zip(phases, all_z):
            if name.endswith("reg") and not (do_pl if name == "Greg" else do_r1):
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            loss.accumulate_gradients(phase=name, real_img=reals, real_c=c, gen_z=z, gen_c=c, sync=True,
                                      gain=interval)
            module.requires_grad_(False)
            for param in module.parameters():
                if param.grad is not None:
                    nv["misc"].nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            opt.step()
        with torch.no_grad():
            ema_nimg = min(tc.ema_kimg * 1000, nimg[0] * tc.ema_rampup)
            beta = 0.5 ** (tc.batch / max(ema_nimg, 1e-8))
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        nimg[0] += tc.batch

    return step


# Untimed iterations of the reference per variant before timing: alone on the quiet machine its plain step took
# 4.7, 2.7, 2.1 s for the first three, then 0.4-0.6 s (oneDNN building its primitives, the allocator warming up).
REFERENCE_WARMUP = 5
TRAIN_ARGS = ("train_resolution", "train_channel_base", "train_channel_max", "train_batch", "threads")


def _train_setup(args) -> tuple:
    """(TrainConfig, toyfaces dataset, reals [N, 3, R, R] float32 of step 0) of the --train_* flags."""
    import numpy as np
    import train_speed  # bench/train_speed.py

    from si_jax.training import data as data_lib
    tc = train_speed.train_config(args.train_resolution, args.train_channel_base, args.train_channel_max,
                                  args.train_batch)
    data = data_lib.make_dataset("toyfaces", 0, tc.g.img_resolution)
    return tc, data, np.transpose(np.asarray(data.images(0, tc.batch)), (0, 3, 1, 2)).copy()


def reference_worker(args) -> None:
    """The NVlabs training loop in a process of its own (--reference_worker): builds it, prints 'ready', then per
    stdin line 'do_pl do_r1 steps' runs them and prints 'timed <wall s> <process CPU s>'. A process of its own, so
    that neither side's idle worker threads (XLA's pool, torch's OpenMP team) can run or spin while the other side
    is timed (the first version ran both in one process; under load it gave the reference 3-10x its warmed speed
    alone, load and too few warm-up iterations being the other suspects: BENCHMARKS.md, 2026-12-02 evening)."""
    import torch
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    tc, _, reals = _train_setup(args)
    ref = nvlabs_train_step(tc, args.train_channel_base, args.train_channel_max, reals)
    print("ready", flush=True)
    for line in sys.stdin:
        do_pl, do_r1, n = (int(v) for v in line.split())
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            ref(bool(do_pl), bool(do_r1))
        print(f"timed {time.perf_counter() - wall} {time.process_time() - cpu}", flush=True)


def _start_reference(args):
    """-> run(do_pl, do_r1, steps) -> (wall s, CPU s) of the reference worker process (`reference_worker`)."""
    import subprocess
    cmd = [sys.executable, os.path.abspath(__file__), "--reference_worker",
           *(f"--{k}={getattr(args, k)}" for k in TRAIN_ARGS)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def reply(prefix: str) -> str:
        for line in proc.stdout:
            if line.startswith(prefix):
                return line
        raise RuntimeError(f"the NVlabs reference worker exited ({proc.wait()}); see its messages above")

    reply("ready")

    def run(do_pl: bool, do_r1: bool, steps: int) -> tuple:
        proc.stdin.write(f"{int(do_pl)} {int(do_r1)} {steps}\n")
        proc.stdin.flush()
        return tuple(float(v) for v in reply("timed").split()[1:])

    return run, proc


def train_rows(args, ceiling: float) -> list:
    """Training on the NVlabs schedule, si_jax's fused step vs the NVlabs loop, interleaved -> table rows.

    Per round, per variant (none, pl, r1, both): --train_steps iterations of si_jax (losses fetched every step, as
    bin/train.py does), then of NVlabs (in its own process, `reference_worker`; one side runs at a time; the two in
    reverse order every other round); medians
    over rounds of the per-iteration time; the schedule row weights them as tc.reg_flags does (12 plain, 3 PL,
    1 both per 16 iterations). si_jax's compile time per variant is printed (no persistent compilation cache
    here). Besides wall time, each side's process CPU seconds per step (less sensitive to other jobs on a shared
    machine, though threads that spin while they wait count in it). FLOPs per variant: torch's count of one
    reference iteration in this process (bench/flops.py), against `ceiling` (FLOP/s)."""
    import jax
    import numpy as np
    import train_speed  # bench/train_speed.py
    from jax.sharding import Mesh

    from si_jax.training import state as state_lib
    from si_jax.training import steps
    tc, data, reals = _train_setup(args)
    counted = nvlabs_train_step(tc, args.train_channel_base, args.train_channel_max, reals)
    count = {name: flops.reference_flops(lambda: counted(*flags)) for name, flags in train_speed.VARIANTS.items()}
    count["schedule"] = train_speed.schedule_seconds(count, tc)   # FLOPs per iteration, weighted as the seconds
    ref, proc = _start_reference(args)
    mesh = Mesh(np.array(jax.devices()), ("data",)) if jax.device_count() > 1 else None
    box = {"state": steps.replicate(state_lib.init_state(tc), mesh)}
    ours_tc = dataclasses.replace(tc, g=tc.g.with_numerics(conv_library=args.conv_library))   # bin/train.py's flag
    step = steps.step_program(ours_tc)

    def ours(do_pl, do_r1, n):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            box["state"], m = step(box["state"], ours_tc, data, mesh, do_pl=do_pl, do_r1=do_r1)
            jax.device_get(m)
        return time.perf_counter() - wall, time.process_time() - cpu

    print(f"training: {tc.g.img_resolution} px, channels {dict(tc.g.channels)}, batch {tc.batch}, "
          f"R1 γ {tc.r1_gamma:g}, PL every {tc.g_reg_interval}, R1 every {tc.d_reg_interval}; si_jax on "
          f"{jax.device_count()} {jax.default_backend()} device(s)" + (", batch split over them" if mesh else "") +
          f", conv library {args.conv_library}",
          flush=True)
    compile_s = {}
    for name, flags in train_speed.VARIANTS.items():
        compile_s[name] = ours(*flags, 1)[0]
        ref(*flags, REFERENCE_WARMUP)
        print(f"  si_jax {name}: compile + first step {compile_s[name]:.1f} s", flush=True)
    t = {(side, v, clock): [] for side in ("si_jax", "NVlabs") for v in train_speed.VARIANTS for clock in (0, 1)}
    for r in range(args.repeats):   # the sides in reverse order every other round, as the synthesis rows
        for name, flags in train_speed.VARIANTS.items():
            for side, fn in (("si_jax", ours), ("NVlabs", ref))[::1 if r % 2 == 0 else -1]:
                for clock, sec in enumerate(fn(*flags, args.train_steps)):
                    t[side, name, clock].append(sec / args.train_steps)
    proc.stdin.close()
    proc.wait()
    m = {k: statistics.median(v) for k, v in t.items()}
    rows = []
    for name in (*train_speed.VARIANTS, "schedule"):
        sec = {(side, clock): train_speed.schedule_seconds({v: m[side, v, clock] for v in train_speed.VARIANTS}, tc)
               if name == "schedule" else m[side, name, clock] for side in ("si_jax", "NVlabs") for clock in (0, 1)}
        label = "train, NVlabs schedule" if name == "schedule" else f"train {name}"
        comp = f"{sum(compile_s.values()):.0f} (all 4)" if name == "schedule" else f"{compile_s[name]:.0f}"
        rows.append(f"| {label} | {tc.batch / sec['si_jax', 0]:.1f} | {tc.batch / sec['NVlabs', 0]:.1f} | "
                    f"**{sec['NVlabs', 0] / sec['si_jax', 0]:.2f}x** | {sec['si_jax', 1]:.2f} / {sec['NVlabs', 1]:.2f} "
                    f"= {sec['NVlabs', 1] / sec['si_jax', 1]:.2f}x | {comp} | "
                    f"{flops.cells(count[name], sec['si_jax', 0], sec['NVlabs', 0], ceiling)} |")
        print(rows[-1], flush=True)
    return rows


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
    p.add_argument("--conv_library", default="auto", choices=("auto", "ynn", "eigen"), help="si_jax's XLA:CPU "
                   "conv library (Numerics.conv_library) in synthesis and in the training step ('auto' is XLA's "
                   "default in both; bin/train.py --conv_library)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the CPUs this process may use)")
    p.add_argument("--train_steps", type=int, default=2, help="training iterations per variant per round, each "
                   "side (0: no training section)")
    p.add_argument("--train_resolution", type=int, default=32)
    p.add_argument("--train_channel_base", type=int, default=2048)
    p.add_argument("--train_channel_max", type=int, default=64)
    p.add_argument("--train_batch", type=int, default=32)
    p.add_argument("--host_devices", type=int, default=1, help="si_jax's training step data-parallel over this many "
                   "XLA host devices (--xla_force_host_platform_device_count; the batch is split over them)")
    p.add_argument("--reference_worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.reference_worker:
        return reference_worker(a)
    if a.host_devices > 1:   # before jax is imported: XLA reads it when the CPU backend starts
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={a.host_devices}").strip()
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
    threads = a.threads = a.threads or len(os.sched_getaffinity(0))   # the reference worker gets the same
    torch.set_num_threads(threads)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    print(f"{cpu_model()}, {len(os.sched_getaffinity(0))} CPUs, torch {torch.__version__} ({threads} threads), "
          f"jax {jax.__version__} ({jax.default_backend()}), {now} UTC; batch 1, float32, random weights (same "
          f"config, not the same values); si_jax conv library {a.conv_library}; both sides: "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}",
          flush=True)
    ceil = flops.ceiling(threads)
    print(f"float32 matmul ceiling (2048^3, bench/flops.py): XLA {ceil['XLA'] / 1e9:.0f}, torch "
          f"{ceil['torch'] / 1e9:.0f} GFLOP/s", flush=True)
    train = train_rows(a, ceil["best"]) if a.train_steps > 0 else []
    rows = []
    for name in filter(None, a.configs.split(",")):
        progs = {"si_jax": None}
        for form in forms:
            progs[f"NVlabs {form}"] = nvlabs_programs(name, fused=form == "fused")
            for fn in progs[f"NVlabs {form}"]:
                fn()  # warm-up
        counted = progs["NVlabs nonfused" if "nonfused" in forms else f"NVlabs {forms[0]}"]
        count = [flops.reference_flops(fn) for fn in counted]   # the same work for both sides (bench/flops.py)
        progs["si_jax"], compile_s = si_jax_programs(name, library=a.conv_library)
        if a.rule_too:
            progs["si_jax fixed rule"] = si_jax_programs(name, tuning="off")[0]
        t = {(p, d): [] for p in progs for d in (0, 1)}
        for r in range(a.repeats):
            for d in (0, 1):   # fwd, then fwd+bwd; si_jax and each NVlabs form in turn, in reverse every other
                for p, fns in (list(progs.items()) if r % 2 == 0 else list(progs.items())[::-1]):   # round (below)
                    t[p, d].append(timed(fns[d]))
        m = {k: statistics.median(v) for k, v in t.items()}
        for d, what in ((0, "fwd"), (1, "fwd+bwd")):
            ref = {p: m[p, d] for p in progs if p.startswith("NVlabs")}
            rule = f" | {m['si_jax fixed rule', d]:.3f}" if a.rule_too else ""
            best = min(ref, key=ref.get)
            cells = " | ".join(f"{ref[p]:.3f}" for p in ref)
            rows.append(f"| {name} | {what} | {m['si_jax', d]:.3f}{rule} | {cells} | "
                        f"**{ref[best] / m['si_jax', d]:.2f}x** (vs {best}) | {compile_s:.0f} | "
                        f"{flops.cells(count[d], m['si_jax', d], ref[best], ceil['best'])} |")
            print(rows[-1], flush=True)
    rule_head = " si_jax fixed rule (s) |" if a.rule_too else ""
    print(f"\n| config | pass | si_jax (s) |{rule_head} {' | '.join(f'NVlabs {f} (s)' for f in forms)} | ratio, "
          f"fastest NVlabs / si_jax | si_jax compile+first (s) | {flops.HEAD} |\n"
          f"|{'---|' * (9 + len(forms) + a.rule_too)}")
    print("\n".join(rows))
    if train:
        print("\n| training (shipping config unless set) | si_jax img/s | NVlabs img/s | ratio, NVlabs time / si_jax "
              f"| CPU s per step, si_jax / NVlabs (process time) | si_jax compile+first (s) | {flops.HEAD} |\n"
              f"|{'---|' * 10}")
        print("\n".join(train))
    print(f"\n(medians of {a.repeats} interleaved rounds; ratio > 1: si_jax faster; NVlabs fused = fused_modconv "
          f"(its eval default), nonfused = si_jax's modconv form)")


if __name__ == "__main__":
    main()
