"""What a run does around its computation: the JAX set-up (persistent compilation cache, quiet XLA logs), several
hosts (--multihost, jax.distributed), the CPU devices a batch is split over (--host_devices), and the lines that keep
a long step from being silent (progress, compile counts, heartbeat)."""
from __future__ import annotations

import os
import sys
import threading
import time

from si_jax.engines.checks import is_int, require
from si_jax.engines.errors import UsageError


# ------------------------------------------------------------------------------------------------ several hosts

# Environment variables that a multi-process launcher sets, with the process count they hold (srun, mpirun /
# Open MPI, MPICH / Intel MPI, a TPU pod slice's worker list).
LAUNCHER_ENV = {"SLURM_STEP_NUM_TASKS": int, "OMPI_COMM_WORLD_SIZE": int, "PMI_SIZE": int,
                "TPU_WORKER_HOSTNAMES": lambda v: len(v.split(","))}


def define_host_flags(flags) -> None:
    """Define --multihost, --coordinator_address, --num_processes, --process_id on the absl `flags` module."""
    flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize(); process p computes shards p, p+P, ... "
                      "into the same (shared) folder and process 0 writes the final files after a barrier.")
    flags.DEFINE_string("coordinator_address", None, "With --multihost: host:port of process 0 (default: detected "
                        "from the cluster, e.g. SLURM or a TPU pod).")
    flags.DEFINE_integer("num_processes", None, "With --multihost: number of processes (default: detected).")
    flags.DEFINE_integer("process_id", None, "With --multihost: this process's id in [0, num_processes).")


def multihost_launch(environ=None) -> str | None:
    """'NAME=value' of the first launcher variable (LAUNCHER_ENV) that says more than one process was started,
    or None."""
    environ = os.environ if environ is None else environ
    for name, count in LAUNCHER_ENV.items():
        value = environ.get(name, "")
        try:
            if value and count(value) > 1:
                return f"{name}={value}"
        except ValueError:
            continue
    return None


def start_hosts(multihost: bool, coordinator_address=None, num_processes=None, process_id=None,
                environ=None) -> None:
    """--multihost: jax.distributed.initialize with the coordinator flags that are given (the rest detected by
    jax). Without it: UsageError when coordinator flags are given, or when the environment shows a multi-process
    launch (every process would then compute every shard). Call before anything touches a device."""
    given = {k: v for k, v in (("coordinator_address", coordinator_address), ("num_processes", num_processes),
                               ("process_id", process_id)) if v is not None}
    if not multihost:
        if given:
            raise UsageError(f"--{next(iter(given))} needs --multihost")
        launch = multihost_launch(environ)
        if launch:
            raise UsageError(f"this is a multi-process launch ({launch}) without --multihost: every process would "
                             "compute every shard into the same folder; add --multihost (bin/edit.py, bin/sample.py), "
                             "or start one process")
        return
    require(num_processes is None or (is_int(num_processes) and num_processes >= 1), "num_processes", num_processes,
            "must be an integer >= 1")
    require(process_id is None or (is_int(process_id) and 0 <= process_id < (num_processes or process_id + 1)),
            "process_id", process_id, f"must be in [0, {num_processes}) (--num_processes)")
    import jax

    jax.distributed.initialize(**given)


# ------------------------------------------------------------------------------------------------ JAX setup, progress

DEFAULT_COMPILATION_CACHE = os.path.join("~", ".cache", "si_jax", "jax")
QUIET_XLA_LOG_LEVEL = "3"   # TF_CPP_MIN_LOG_LEVEL: only FATAL; XLA's "Very slow compile?" alarm is an ERROR line
JAX_DEFAULT_LOG_LEVEL = "1"   # what `import jax` puts in TF_CPP_MIN_LOG_LEVEL when it is unset
_JAX_SETUP = {"cache_dir": None}


def define_cache_flag(flags) -> None:
    """Define --compilation_cache (default: $JAX_COMPILATION_CACHE_DIR, else ~/.cache/si_jax/jax)."""
    default = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.expanduser(DEFAULT_COMPILATION_CACHE)
    flags.DEFINE_string("compilation_cache", default, "Persistent XLA compilation cache folder ('' to disable): "
                        "every program a run compiles is stored there and read back by the next run.")


def setup_jax(cache_dir, environ=None) -> None:
    """The JAX set-up of every binary (call it before anything compiles):

    - the persistent compilation cache in `cache_dir` ('' / None: off) for EVERY program, however fast it compiled
      or small it is (jax's defaults skip programs under 1 s, which add up over a run's dozens of programs);
    - XLA's C++ log lines below FATAL hidden (the 'Very slow compile?' alarm blocks that compiles over 2 min print
      on a loaded machine), unless the user set TF_CPP_MIN_LOG_LEVEL: TF_CPP_MIN_LOG_LEVEL=0 (or 2) shows them
      again. `import jax` sets it to 1 when it is unset, so 1 counts as unset."""
    import jax

    environ = os.environ if environ is None else environ
    if environ.get("TF_CPP_MIN_LOG_LEVEL", JAX_DEFAULT_LOG_LEVEL) == JAX_DEFAULT_LOG_LEVEL:
        environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_XLA_LOG_LEVEL   # read by XLA only when it loads: set it live too
        try:
            from jax._src.lib import utils as jaxlib_utils

            jaxlib_utils.absl_set_min_log_level(int(QUIET_XLA_LOG_LEVEL))
        except (ImportError, AttributeError):   # another jaxlib: its alarms stay visible, nothing else changes
            pass
    _JAX_SETUP["cache_dir"] = None
    if cache_dir:
        cache_dir = os.path.expanduser(str(cache_dir))
        os.makedirs(cache_dir, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        _JAX_SETUP["cache_dir"] = cache_dir


def compile_note() -> str:
    """'first run only; cached in DIR' (the cache `setup_jax` enabled) or 'no compilation cache'."""
    cache = _JAX_SETUP["cache_dir"]
    if not cache:
        return "no compilation cache: every run compiles again"
    home = os.path.expanduser("~")
    shown = "~" + cache[len(home):] if cache.startswith(home + os.sep) else cache
    return f"first run only; cached in {shown}"


def compile_counter(what: str, log=None):
    """A compile-progress callback on_compiled(done, total) (the protocol of `intervention.compile_programs`):
    done = 0 announces 'compiling {total} {what} (first run only; cached in ...)', then one line per finished
    program with the time since the announcement."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    start = [time.perf_counter()]

    def on_compiled(done: int, total: int) -> None:
        if done == 0:
            start[0] = time.perf_counter()
            log(f"compiling {total} {what} ({compile_note()})")
        else:
            log(f"  compiled {done}/{total} ({time.perf_counter() - start[0]:.1f}s)")

    return on_compiled


class heartbeat:
    """`with heartbeat('labelling 2000 samples'):` prints '  ... labelling 2000 samples: 10s' every `every_s`
    seconds while the block runs (from a daemon thread), so that no long step is silent."""

    def __init__(self, what: str, every_s: float = 10.0, log=None):
        self.what, self.every_s = what, every_s
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        start = time.perf_counter()
        while not self._stop.wait(self.every_s):
            self.log(f"  ... {self.what}: {time.perf_counter() - start:.0f}s")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def progress(iterable, total_items: int, per_step: int, unit: str = "images", stream=None, every_s: float = 2.0):
    """Yield from iterable, printing `done/total unit, rate unit/s, ETA` lines at most every `every_s` seconds."""
    stream = stream or sys.stderr
    start = last = time.perf_counter()
    done = 0
    for item in iterable:
        yield item
        done = min(done + per_step, total_items)
        now = time.perf_counter()
        if now - last >= every_s or done == total_items:
            rate = done / max(now - start, 1e-9)
            eta = (total_items - done) / rate if rate > 0 else float("inf")
            print(f"  {done}/{total_items} {unit}  {rate:.2f} {unit}/s  ETA {eta:.0f}s", file=stream, flush=True)
            last = now


# ------------------------------------------------------------------------------------------------ CPU devices

def host_devices(flag: str, batch: int, cores: int | None = None) -> int:
    """How many XLA CPU devices to split each batch over: 'auto' -> the largest divisor of `batch` that is at most
    this process's CPU cores (measured on a 2-core AMD EPYC, TRAINING.md: one device kept ~1.3 cores busy, two
    trained the shipping config 1.6x faster, the same step up to summation order), or the number given (UsageError
    if it is not a positive integer dividing the batch). Off CPU the CPU device count does not matter."""
    if flag == "auto":
        cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        return max(d for d in range(1, min(cores, batch) + 1) if batch % d == 0)
    if not flag.isdigit() or int(flag) < 1 or batch % int(flag):
        raise UsageError(f"--host_devices={flag!r} must be 'auto' or a positive integer dividing --batch={batch}")
    return int(flag)


def use_host_devices(n: int) -> None:
    """Give JAX's CPU backend `n` devices (before it starts; an XLA_FLAGS device count set by the user wins)."""
    import jax
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        jax.config.update("jax_num_cpu_devices", n)
