"""How close a timing is to what the CPU can do: FLOPs counted on the NVlabs reference, and float32 matmul ceilings.

    count = flops.reference_flops(lambda: nvlabs_step(False, False))   # FLOPs of one call, as torch counts them
    ceil = flops.ceiling(threads)                                     # {'XLA': FLOP/s, 'torch': FLOP/s, 'best': ...}
    flops.cells(count, si_jax_s, nvlabs_s, ceil["best"])              # '| 47.9 | 120 (66 %) | 87 (48 %) | 175 (96 %) |'

The count is the reference's: torch.utils.flop_counter counts its convolutions and matmuls (forward and every
gradient, the R1 double backward included) as direct convs, so it is the same work for both sides of bench/
vs_reference.py; si_jax does fewer multiplications where it runs Winograd forms, so its "GFLOP/s" is the direct-conv
equivalent and may pass the ceiling. The ceiling is the faster of XLA's and torch's float32 matmul (2048^3, median
of 5) in this process: what the 2 x target asks of si_jax is printed as a share of it.
"""
import statistics
import time


def reference_flops(fn) -> float:
    """FLOPs torch counts while fn() runs (its convs, matmuls and their gradients; elementwise work not counted):
    torch.utils.flop_counter's formulas, applied by a dispatch mode of our own (FlopCounterMode's module hooks
    refuse the torch.autograd.grad of NVlabs' R1 and PL terms)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Count.total += formula(*args, **(kwargs or {}), out_val=out)
            return out

    with Count():
        fn()
    return float(Count.total)


def _median_seconds(fn, repeats=5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ceiling(threads: int, n: int = 2048) -> dict:
    """{'XLA', 'torch', 'best'}: FLOP/s of an n x n @ n x n float32 matmul, jitted at precision HIGHEST (XLA) and
    torch.mm with `threads` threads; 'best' the faster."""
    import jax
    import jax.numpy as jnp
    import torch
    torch.set_num_threads(threads)
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    mm = jax.jit(lambda x: jnp.matmul(x, x, precision="highest"))
    t = torch.randn(n, n)
    out = {"XLA": 2.0 * n ** 3 / _median_seconds(lambda: jax.block_until_ready(mm(a))),
           "torch": 2.0 * n ** 3 / _median_seconds(lambda: torch.mm(t, t))}
    out["best"] = max(out.values())
    return out


def cells(count: float, si_jax_s: float, nvlabs_s: float, best: float) -> str:
    """Table cells: GFLOP per call | si_jax GFLOP/s (share of the ceiling) | NVlabs' | what 2x NVlabs' speed needs."""
    def rate(seconds):
        return f"{count / seconds / 1e9:.0f} ({100 * count / seconds / best:.0f} %)"
    return f"{count / 1e9:.1f} | {rate(si_jax_s)} | {rate(nvlabs_s)} | {rate(nvlabs_s / 2)}"


HEAD = "GFLOP (torch count) | si_jax GFLOP/s (of ceiling) | NVlabs GFLOP/s (of ceiling) | 2x needs (of ceiling)"
