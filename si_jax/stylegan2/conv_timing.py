"""Timing conv candidates on this host: each compiled for the shapes at hand, timed in interleaved rounds until the
order of the two fastest is settled (si_jax.stylegan2.autotune keeps the fastest).

    times = conv_timing.time_candidates({"direct": f, "rows": g}, (x_spec, k_spec, ...), "grad_xs", "xws--")

Why more than a few rounds: on the shared 2-core AMD EPYC (2026-12-05) one candidate's time varied up to 1.5x
between calls - bursts of load from other processes, and a big layer's XLA temp buffer (~89 MB for the 128 -> 256 px
up-conv's fwd+bwd) mapped afresh at every call, 21-44 thousand page faults, a count that varies with the
allocator's state - enough to swap candidates 25 % apart in 3 rounds with no warm-up.
"""
from __future__ import annotations

import concurrent.futures
import os
import resource
import time

import jax
import numpy as np

REPEATS = 3   # interleaved timing rounds at least (`settled`)
MAX_REPEATS = 15   # ... and at most, while the two fastest candidates are within CLOSE of each other
CLOSE = 0.15
EARLY_EXIT = 1.5   # stop timing (after 2 rounds) once one candidate is this many times faster than every other
SAMPLE_S, MAX_CALLS = 2e-3, 64   # a timed sample: back-to-back calls lasting about this long (`calls_per_sample`)


def _program(fn, argnums: tuple, specs: list, options: dict | None = None):
    """fn(*args), or its forward + VJP w.r.t. args[argnums] (cotangent: the output itself), compiled for `specs`
    with XLA compiler `options` (None: the defaults)."""
    if argnums:
        def run(*args):
            y, vjp = jax.vjp(fn, *args)
            return [g for i, g in enumerate(vjp(y)) if i in argnums]
    else:
        run = fn
    return jax.jit(run).lower(*specs).compile(options)


def settled(best: list, rounds: int, repeats: int = REPEATS, max_repeats: int = MAX_REPEATS,
            early_exit: float | None = EARLY_EXIT, close: float = CLOSE) -> bool:
    """Whether timing can stop after `rounds` interleaved rounds, given each candidate's minimum so far (`best`):
    at `max_repeats`; after 2 rounds once the fastest is `early_exit` times faster than every other; after
    `repeats` once it is over `close` faster than the runner-up. Candidates closer than `close` are timed on (the
    order of near candidates is what one burst of load or a few thousand page faults turns over)."""
    if rounds >= max_repeats or len(best) < 2:
        return rounds >= min(repeats, max_repeats)
    first, second = sorted(best)[:2]
    return (bool(early_exit) and rounds >= 2 and second > early_exit * first) or \
        (rounds >= repeats and second > (1 + close) * first)


def calls_per_sample(seconds: float) -> int:
    """Back-to-back calls per timed sample for a call of `seconds`, so that a sample lasts about SAMPLE_S (at most
    MAX_CALLS): a call of tens of microseconds is timed over many, as the network runs layers back to back, not
    one call against the timer and the dispatch."""
    return int(min(MAX_CALLS, max(1, np.ceil(SAMPLE_S / max(seconds, 1e-7)))))


def time_candidates(candidates: dict, specs, mode: str, names: str = "xw", repeats: int = REPEATS,
                    max_repeats: int = MAX_REPEATS, early_exit: float | None = EARLY_EXIT, options=None,
                    in_thread: bool = False) -> dict:
    """{name: seconds per call} of each candidate f(*args) on zero arrays of `specs` (pytrees of
    jax.ShapeDtypeStruct or arrays: shape and dtype; None for an absent argument), run eagerly (also inside a
    trace); mode 'fwd', or 'grad_<letters>': forward + VJP w.r.t. the arguments whose letter in `names` is listed.
    The candidates are compiled in parallel threads (XLA compiles without the GIL; arguments a candidate does not
    use are pruned; in_thread: in this one) and all compiles end before any timing starts. Each is called
    twice (the allocator settles: the first calls of a program fault in more fresh pages), then timed in interleaved
    rounds, the order reversed every other round (a burst of load from other processes hits all candidates alike),
    each sample `calls_per_sample` back-to-back calls, until `settled`: at least `repeats` rounds, more while the two
    fastest are within CLOSE, at most `max_repeats`. The time is the minimum over rounds: load only ever adds time.
    options: {name: XLA compiler options} for candidates compiled other than by default (the conv library).
    in_thread: for whole programs (conv_library), whose traces may choose conv forms under autotune's lock, which
    this thread holds."""
    argnums = tuple(i for i, n in enumerate(names) if mode.startswith("grad_") and n in mode[5:])
    specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), list(specs))
    options = options or {}
    if in_thread:
        calls = {name: _program(fn, argnums, specs, options.get(name)) for name, fn in candidates.items()}
    else:
        with concurrent.futures.ThreadPoolExecutor(min(len(candidates), os.cpu_count() or 1)) as pool:
            futures = {name: pool.submit(_program, fn, argnums, specs, options.get(name))
                       for name, fn in candidates.items()}
            calls = {name: f.result() for name, f in futures.items()}
    with jax.ensure_compile_time_eval():
        args = jax.tree.map(lambda a: jax.device_put(np.zeros(a.shape, a.dtype)), specs)   # on device once
        first = {name: _sample(call, args, 1) for name, call in calls.items()}
        first = {name: min(first[name], _sample(call, args, 1)) for name, call in calls.items()}
        n = calls_per_sample(min(first.values()))
        times, order, rounds = {name: [] for name in calls}, list(calls), 0
        while not (rounds and settled([min(t) for t in times.values()], rounds, repeats, max_repeats, early_exit)):
            for name in order if rounds % 2 == 0 else reversed(order):
                times[name].append(_sample(calls[name], args, n))
            rounds += 1
    return {name: min(t) for name, t in times.items()}


def _sample(call, args, n: int) -> float:
    """Seconds per call of n back-to-back calls of call(*args) (the last one waited for)."""
    t0 = time.perf_counter()
    for _ in range(n):
        out = call(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / n


class Others:
    """The share of the host's CPUs that other processes used while the block ran (`share`: 0 quiet, 1 all of
    them busy with others' work): all CPUs' busy time from /proc/stat less this process's own CPU time (its
    threads, compiles included), over the wall time x the CPUs. 0 where /proc/stat cannot be read.

        with conv_timing.Others() as others:
            ...
        others.share
    """

    def __enter__(self):
        self.share, self._start = 0.0, _cpu_now()
        return self

    def __exit__(self, *exc):
        end = _cpu_now()
        if self._start and end and end[2] > self._start[2]:
            others = (end[0] - self._start[0]) - (end[1] - self._start[1])
            self.share = min(1.0, max(0.0, others / ((end[2] - self._start[2]) * (os.cpu_count() or 1))))
        return False


def _cpu_now() -> tuple | None:
    """(CPU-seconds all CPUs were busy since boot, CPU-seconds this process has run, perf_counter), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [float(v) for v in f.readline().split()[1:9]]   # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    own = resource.getrusage(resource.RUSAGE_SELF)
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return busy, own.ru_utime + own.ru_stime, time.perf_counter()
