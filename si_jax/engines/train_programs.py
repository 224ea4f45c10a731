"""The training step's programs, compiled ahead so that bin/train.py's rate and ETA are training alone: the first
step's now, the rest on a background thread while the first steps run (a resume waits only for its first)."""
from __future__ import annotations

import atexit
import concurrent.futures
import math
import threading
import time

import jax

from si_jax.engines import hosts
from si_jax.training import state as state_lib
from si_jax.training import steps


def abstract(tree):
    """Shapes, dtypes and (committed) placements of `tree`'s arrays: what `lower` needs, kept apart from buffers
    that the steps donate."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(
        a.shape, a.dtype, sharding=a.sharding if getattr(a, "committed", False) else None), tree)


def compile_steps(state, tc: state_lib.TrainConfig, dataset, mesh, step_range, z_grid, stream, grid_first=False):
    """Compile the train_step programs that the steps in `step_range` need (one per (do_pl, do_r1) that occurs)
    and the grids' program, saying so and counting them (`hosts.compile_counter`): the first step's program (and
    the grid's with grid_first) now, the others on a background thread while the first steps run -> `Background`,
    whose wait(do_pl, do_r1) the loop calls before each step, keeping the seconds waited out of the training rate
    and ETA. jit reuses these executables when the loop calls `steps.step_program(tc)` / `steps.ema_program(tc.g)`
    with the same arguments (and the persistent cache keeps them). On a resume from a warm cache the first step
    waits only for its own program (tracing + cache load; TRAINING.md has the times)."""
    period = math.lcm(tc.g_reg_interval, tc.d_reg_interval)
    order = list(dict.fromkeys(tc.reg_flags(s) for s in step_range[:period]))   # in the order the steps need them
    if not order:
        return Background(None, [])
    report = hosts.compile_counter("training programs (the step per regulariser combination, the grid; after the "
                                   "first, in the background)", lambda msg: print(msg, file=stream, flush=True))
    total, done, lock = len(order) + 1, [0], threading.Lock()
    state, z_grid = abstract(state), abstract(z_grid)

    def build(variant):
        if variant is None:
            steps.ema_program(tc.g).lower(state.g_ema, state.w_avg, tc.g, z_grid).compile()
        else:
            steps.step_program(tc).lower(state, tc, dataset, mesh, do_pl=variant[0], do_r1=variant[1]).compile()
        with lock:
            done[0] += 1
            report(done[0], total)

    now = order[:1] + [None] * grid_first
    report(0, total)
    for variant in now:
        build(variant)
    return Background(build, [v for v in order + [None] if v not in now])


class Background:
    """Programs compiling on a daemon thread. wait(*variant): block until that train-step variant (no argument: the
    grid's program) is compiled, re-raising its error -> seconds waited; finish(): wait for all; cancel(): compile
    no further variant (a run that stopped early: its error, ^C), the one under way ends on its own.
    At interpreter exit a compile still under way is waited for (`_at_exit`): a daemon thread killed inside XLA's
    compiler aborts the process ("FATAL: exception not rethrown", SIGABRT) after the run's own error or ^C."""

    def __init__(self, build, variants):
        self._futures = {v: concurrent.futures.Future() for v in variants}
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(build,), daemon=True, name="compile_steps")
        self._thread.start()
        atexit.register(self._at_exit)

    def _run(self, build):
        for variant, future in self._futures.items():
            if self._cancelled.is_set():
                future.cancel()
                continue
            try:
                build(variant)
                future.set_result(None)
            except BaseException as e:   # re-raised by wait() in the loop's thread
                future.set_exception(e)

    def wait(self, *variant) -> float:
        future, t = self._futures.get(variant or None), time.perf_counter()
        if future is not None:
            future.result()
        return time.perf_counter() - t if future is not None else 0.0

    def finish(self) -> None:
        self._thread.join()
        atexit.unregister(self._at_exit)

    def cancel(self) -> None:
        self._cancelled.set()

    def _at_exit(self) -> None:
        self.cancel()
        self._thread.join()
