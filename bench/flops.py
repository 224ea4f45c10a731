"""How close a timing is to what the CPU can do: FLOPs counted on the NVlabs reference, and float32 matmul ceilings.

    count = flops.reference_flops(lambda: nvlabs_step(False, False))   # FLOPs of one call, as torch counts them
    ceil = flops.ceiling(threads)                                     # {'XLA': FLOP/s, 'torch': FLOP/s, 'best': ...}
    flops.cells(count, si_jax_s, nvlabs_s, ceil["best"])   # e.g. '50.3 | 148 (78 %) | 104 (55 %) | 208 (110 %)'

The count is the reference's: torch.utils.flop_counter counts its convolutions and matmuls (forward and every
gradient, the R1 double backward included) as direct convs, so it is the same work for both sides of bench/
vs_reference.py; si_jax does fewer multiplications where it runs Winograd forms, so its "GFLOP/s" is the direct-conv
equivalent and may pass the ceiling. The ceiling is the faster of XLA's and torch's float32 matmul (2048^3, median
of 5) in this process: what the 2 x target asks of si_jax is printed as a share of it.
"""


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


def ceiling(threads: int, n: int = 2048) -> dict:
    """{'XLA', 'torch', 'best'}: FLOP/s of an n x n @ n x n float32 matmul, XLA's at precision HIGHEST
    (bench/run.py's `matmul_ceiling`) and torch.mm's with `threads` threads (median of 5); 'best' the faster."""
    import torch

    import run as bench_run  # bench/run.py
    torch.set_num_threads(threads)
    t = torch.randn(n, n)
    out = {"XLA": bench_run.matmul_ceiling(n),
           "torch": 2.0 * n ** 3 / bench_run.median_time(torch.mm, t, t, repeats=5)[1]}
    out["best"] = max(out.values())
    return out


def cells(count: float, si_jax_s: float, nvlabs_s: float, best: float) -> str:
    """Table cells: GFLOP per call | si_jax GFLOP/s (share of the ceiling) | NVlabs' | what 2x NVlabs' speed needs."""
    def rate(seconds):
        return f"{count / seconds / 1e9:.0f} ({100 * count / seconds / best:.0f} %)"
    return f"{count / 1e9:.1f} | {rate(si_jax_s)} | {rate(nvlabs_s)} | {rate(nvlabs_s / 2)}"


HEAD = "GFLOP (torch count) | si_jax GFLOP/s (of ceiling) | NVlabs GFLOP/s (of ceiling) | 2x needs (of ceiling)"
