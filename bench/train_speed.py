"""Training throughput of the fused train step (steps/s, images/s, kimg/s) per regularisation variant, on this host.

    python bench/train_speed.py [--seconds=45] [--batch=32] [--resolution=32] [--channel_base=2048] [--channel_max=64]
        [--data=toyfaces|blobs] [--variants=none,pl,r1,both]

Defaults are the shipping config (32 px, 64 channels at every resolution, z_dim = w_dim = 64, 4 mapping layers,
batch 32). Per variant: compile time (first call), then as many steps as fit in --seconds (after one warm step);
prints one line per variant and the NVlabs-schedule average (PL every 4, R1 every 16 iterations).
"""
import argparse
import math
import time

import jax

from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.discriminator import DConfig
from si_jax.training import data as data_lib
from si_jax.training import state as state_lib
from si_jax.training import steps

VARIANTS = {"none": (False, False), "pl": (True, False), "r1": (False, True), "both": (True, True)}


def train_config(resolution=32, channel_base=2048, channel_max=64, batch=32) -> state_lib.TrainConfig:
    """The shipping training config (bin/train.py's default at these sizes): z = w = 64, 4 mapping layers, NVlabs
    'auto' R1 γ and G_ema half-life."""
    cfg = G2Config.make(resolution, channel_base, channel_max, 64, 64, mapping_layers=4, source_format="nvlabs")
    return state_lib.TrainConfig(g=cfg, d=DConfig.make(resolution, channel_base, channel_max), batch=batch,
                                 r1_gamma=state_lib.auto_gamma(resolution, batch),
                                 ema_kimg=state_lib.auto_ema_kimg(batch))


def schedule_seconds(seconds: dict, tc) -> float:
    """Mean seconds per iteration over one period of the regularisation schedule (`tc.reg_flags`: NVlabs PL every
    4, R1 every 16 -> 12 plain, 3 PL, 1 both), from `seconds` {variant name: seconds per step}."""
    period = tc.g_reg_interval * tc.d_reg_interval // math.gcd(tc.g_reg_interval, tc.d_reg_interval)
    names = {flags: name for name, flags in VARIANTS.items()}
    return sum(seconds[names[tc.reg_flags(i)]] for i in range(period)) / period


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=45)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--channel_base", type=int, default=2048)
    p.add_argument("--channel_max", type=int, default=64)
    p.add_argument("--data", default="toyfaces")
    p.add_argument("--variants", default="none,pl,r1,both")
    a = p.parse_args()
    tc = train_config(a.resolution, a.channel_base, a.channel_max, a.batch)
    cfg = tc.g
    data = data_lib.make_dataset(a.data, 0, a.resolution)
    state = state_lib.init_state(tc)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform} x{jax.device_count()}, {a.resolution} px, "
          f"channels {dict(cfg.channels)}, batch {a.batch}, data {a.data}")
    rates = {}
    for name in a.variants.split(","):
        do_pl, do_r1 = VARIANTS[name]
        t0 = time.perf_counter()
        state, m = steps.train_step(state, tc, data, None, do_pl=do_pl, do_r1=do_r1)
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t0
        state, m = steps.train_step(state, tc, data, None, do_pl=do_pl, do_r1=do_r1)
        jax.block_until_ready(m)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            state, m = steps.train_step(state, tc, data, None, do_pl=do_pl, do_r1=do_r1)
            jax.device_get(m)  # as the training loop does: losses checked every step
            n += 1
        dt = (time.perf_counter() - t0) / n
        rates[name] = dt
        print(f"{name:5s} compile+first {compile_s:6.1f} s   {1 / dt:6.3f} steps/s   {a.batch / dt:7.1f} img/s   "
              f"{a.batch / dt / 1000:.4f} kimg/s   ({n} steps)", flush=True)
    if set(rates) == set(VARIANTS):
        t = 16 * schedule_seconds(rates, tc)
        print(f"schedule (PL every 4, R1 every 16): {16 / t:.3f} steps/s, {16 * a.batch / t:.1f} img/s, "
              f"{16 * a.batch / t / 1000:.4f} kimg/s, {1e6 / (16 * a.batch / t) / 3600:.1f} h per 1000 kimg")


if __name__ == "__main__":
    main()
