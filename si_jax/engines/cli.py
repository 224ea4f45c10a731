"""Shared plumbing of the absl binaries: the one rule every binary follows, and progress lines.

The rule (every bin/*.py):
  1. validate every flag and input before anything is created (`require`, `check_finite_flags`,
     `check_output_free` / `check_output_dir`, `load_weights`, the loaders' own checks);
  2. compute;
  3. check that every array that will be written is finite (`finite_or_error`: a non-finite result is an error
     naming the samples and the likely cause, e.g. `likely_cause(truncation_psi=...)`);
  4. write the outputs atomically, last (si_jax.storage.Outputs / write_atomic; resumable runs write finished
     shards as they go, see engines.runs).
Any failure is ONE line `error: ...` on stderr and exit status 1 (`run_guarded`): bad flags and inputs, OS errors
(naming the file and what to do), damaged files, and running out of memory (naming the batch size tried and a
smaller one).
"""
from __future__ import annotations

import errno
import logging
import math
import os
import pathlib
import sys
import threading
import time

import numpy as np


class UsageError(ValueError):
    """Bad flags or inputs detected by a binary itself."""


class NonFiniteError(ValueError):
    """A computed array that would be written holds NaN or inf."""


EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, KeyError)

_OS_ADVICE = {
    errno.EACCES: "no permission; check the permissions or choose another location",
    errno.EPERM: "not permitted; check the permissions or choose another location",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.EISDIR: "this is a folder, a file was expected; give a file path",
    errno.ENOSPC: "the disk is full; free some space or choose another location",
    errno.EDQUOT: "the disk quota is exceeded; free some space or choose another location",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "it exists already",
}


def demo_mode(flags) -> bool:
    """True for the embedded demo (neither --weights nor --direction); UsageError for half of the pair, or for
    --attribute (the demo's toyfaces attribute) beside a --direction. Shared by edit, evaluate and fit_lambda."""
    demo = flags.weights is None and flags.direction is None
    if not demo and (flags.weights is None or flags.direction is None):
        raise UsageError("give both --weights and --direction (or neither, for the demo)")
    if flags.attribute is not None and not demo:
        raise UsageError("--attribute picks the demo's toyfaces attribute; with --direction the attribute is the "
                         "direction's")
    return demo


def run_guarded(fn) -> None:
    """Run fn(); an expected error, an OS error or running out of memory becomes ONE line `error: ...` on stderr
    and exit status 1. Anything else (a bug) keeps its traceback.

    jax's INFO chatter (e.g. 'Unable to initialize backend tpu') and numpy's floating-point warnings are silenced
    so that stderr stays readable (non-finite results are errors of their own, see `finite_or_error`)."""
    logging.getLogger("jax").setLevel(logging.WARNING)
    try:
        with np.errstate(all="ignore"):   # overflow is reported once, by finite_or_error, not as numpy warnings
            fn()
    except EXPECTED_ERRORS as e:
        msg = _first_line(e)
        if isinstance(e, KeyError):
            msg = msg.strip("'\"")
        if isinstance(e, OSError) and e.filename is not None:
            msg = os_error_message(e)
        _fail(msg)
    except OSError as e:
        _fail(os_error_message(e))
    except MemoryError:
        _fail(oom_message("host memory"))
    except Exception as e:  # noqa: BLE001 - XLA's RESOURCE_EXHAUSTED is a JaxRuntimeError; other errors re-raise
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        _fail(oom_message(_first_line(e)))


HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


def run_app(main, argv=None) -> None:
    """absl's app.run(main), except that asking for help exits 0 (absl exits 1 after printing it)."""
    from absl import app

    try:
        app.run(main, argv)
    except SystemExit as e:
        if e.code == 1 and any(a in HELP_FLAGS for a in (argv or sys.argv)[1:]):
            raise SystemExit(0) from None
        raise


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def os_error_message(e: OSError) -> str:
    """'PATH: what happened; what to do' for an OSError (PermissionError, IsADirectoryError, ...)."""
    what = _OS_ADVICE.get(e.errno, e.strerror or type(e).__name__)
    where = e.filename if e.filename is not None else ""
    return f"{where}: {what}" if where else what


def _flag_value(names, flag_values=None):
    """(name, value) of the first of `names` that is a defined, parsed absl flag (default: absl's global
    FLAGS), else (None, None)."""
    try:
        if flag_values is None:
            from absl import flags

            flag_values = flags.FLAGS
        for name in names:
            if name in flag_values and flag_values.is_parsed():
                return name, flag_values[name].value
    except Exception:  # noqa: BLE001 - no absl, or not parsed
        pass
    return None, None


_BATCH_IN_USE = {}


def note_batch_size(value: int, flag: str = "batch_size") -> int:
    """Record the batch size a binary actually runs with (after capping it), for `oom_message`. -> value."""
    _BATCH_IN_USE.update(name=flag, value=int(value))
    return value


def oom_message(detail: str, flag_values=None) -> str:
    """Out of memory: the batch size that was tried (`note_batch_size`, else the flag's value) and a smaller one
    (a multiple of the local devices)."""
    name, bs = _flag_value(("batch_size", "batch"), flag_values)
    if _BATCH_IN_USE and flag_values is None:
        name, bs = _BATCH_IN_USE["name"], _BATCH_IN_USE["value"]
    if not isinstance(bs, int) or bs < 1:
        return f"out of memory ({detail}); use smaller inputs or a machine with more memory"
    try:
        import jax

        d = jax.local_device_count()
    except Exception:  # noqa: BLE001
        d = 1
    smaller = max(d, (bs // 2) // d * d)
    if smaller >= bs:
        return f"out of memory ({detail}) at --{name}={bs}, the smallest for {d} device(s); use a machine with more " \
               "memory or smaller inputs"
    return f"out of memory ({detail}) at --{name}={bs}; try --{name}={smaller}"


# ---------------------------------------------------------------------------------------------- flags and inputs

def require(ok: bool, flag: str, value, why: str) -> None:
    """UsageError `--flag=value why` unless ok."""
    if not ok:
        raise UsageError(f"--{flag}={value!r} {why}")


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_finite(v) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(float(v))


def check_finite_flags(**values) -> None:
    """Every given (not None) numeric flag value must be finite: UsageError naming the first that is not."""
    for flag, v in values.items():
        if v is not None:
            require(is_finite(v), flag, v, "must be a finite number")


def check_not_inputs(outputs, inputs) -> None:
    """No output may be an input, a folder holding one, or lie inside an input folder (--overwrite never replaces
    an input)."""
    real = [(p, pathlib.Path(os.path.realpath(p))) for p in inputs if p and not str(p).startswith("builtin:")]
    for out in outputs:
        o = pathlib.Path(os.path.realpath(out))
        for raw, i in real:
            if i in o.parents:
                raise UsageError(f"output {out} lies inside the input folder {raw}; choose another output path")
            if i == o or o in i.parents:
                raise UsageError(f"output {out} would replace the input {raw}; choose another output path")


def _check_writable_folder(folder: pathlib.Path, what: str) -> None:
    """The nearest existing folder at or above `folder` must be a folder we can write into."""
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise UsageError(f"{what}: {p} is a file, not a folder; choose another path")
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"{what}: cannot write into {p} (no permission or read-only); choose another location")


def check_output_free(path, overwrite: bool, inputs=()) -> None:
    """An output FILE: not a folder, not an input, absent unless `overwrite`, in an existing writable folder."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, _OS_ADVICE[errno.EISDIR], str(path))
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    parent = pathlib.Path(os.path.abspath(path)).parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"output {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder {parent} does not exist")
    _check_writable_folder(parent, f"output {path}")
    check_not_inputs([path], inputs)


def check_output_dir(path, inputs=()) -> pathlib.Path:
    """An output FOLDER (created later, maybe with parents): a folder or absent, writable, holding no input."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {path} exists and is not a folder")
    _check_writable_folder(pathlib.Path(os.path.abspath(path)), f"--output_dir {path}")
    check_not_inputs([path], inputs)
    return path


def check_input_files(**paths) -> None:
    """Input file flags (None = not given; lists allowed): each must be an existing file, not a folder."""
    for flag, value in paths.items():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path is None:
                continue
            if os.path.isdir(path):
                raise UsageError(f"--{flag} {path} is a folder; give a file")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"--{flag} {path}: file not found")


def load_weights(path, numerics=None) -> tuple:
    """--weights -> (canonical weights, G2Config computing with `numerics` (a Numerics, e.g. `numerics_of(flags)`;
    None = the default fp32)), with a clear error for a folder given as weights."""
    from si_jax.stylegan2 import loading

    if path is not None and not str(path).startswith("builtin:") and os.path.isdir(path):
        raise UsageError(f"--weights {path} is a folder; give a weights file (.safetensors, .pkl or .pt) or "
                         "builtin:demo / builtin:toyfaces")
    canonical, cfg = loading.load_canonical(path)
    return canonical, with_numerics(cfg, numerics)


# ---------------------------------------------------------------------------------------------- numerics

NUMERICS_FLAGS = ("precision", "bf16_from_res", "conv3x3", "upconv")


def define_numerics_flags(flags) -> None:
    """Define --precision, --bf16_from_res, --conv3x3, --upconv (si_jax.stylegan2.numerics) on absl `flags`."""
    from si_jax.stylegan2 import numerics

    flags.DEFINE_enum("precision", "fp32", list(numerics.PRECISIONS), "fp32: float32 at precision HIGHEST; tf32: "
                      "float32 at the backend's default precision (TF32 tensor cores on Ampere / Hopper GPUs; the "
                      "same as fp32 on CPU); bf16: synthesis activations and convs in bfloat16 from --bf16_from_res "
                      "up, styles / demodulation / image / loss / Λ in float32 (emulated, slow, on CPU).")
    flags.DEFINE_integer("bf16_from_res", None, "With --precision=bf16: lowest resolution computed in bfloat16 (a "
                         "power of two). Default: NVlabs' rule, the model's num_fp16_res highest resolutions (4 when "
                         "it has 0), at least 8 px.")
    flags.DEFINE_enum("conv3x3", "auto", list(numerics.CONV3X3_ALGORITHMS), "Same-size 3x3 conv algorithm. auto: "
                      "Winograd where it measured faster on CPU, direct on GPU / TPU and in bfloat16 (on CPU with "
                      "$SI_JAX_CONV_TUNING=on: the form measured fastest on this host, si_jax.stylegan2.autotune).")
    flags.DEFINE_enum("upconv", "auto", list(numerics.UPCONV_ALGORITHMS), "Up-sampling conv form. auto: polyphase "
                      "on CPU, one transposed conv on GPU / TPU (on CPU with $SI_JAX_CONV_TUNING=on: measured).")


def numerics_of(flags):
    """The Numerics of --precision / --bf16_from_res / --conv3x3 / --upconv (defaults where `flags` lacks them);
    UsageError naming the flag for a bad value."""
    from si_jax.stylegan2 import numerics

    defaults = numerics.DEFAULT
    values = {name: getattr(flags, name, getattr(defaults, name)) for name in NUMERICS_FLAGS}
    for name, allowed in (("precision", numerics.PRECISIONS), ("conv3x3", numerics.CONV3X3_ALGORITHMS),
                          ("upconv", numerics.UPCONV_ALGORITHMS)):
        require(values[name] in allowed, name, values[name], f"must be one of {', '.join(allowed)}")
    low = values["bf16_from_res"]
    if low is not None:
        require(values["precision"] == "bf16", "bf16_from_res", low,
                f"applies only with --precision=bf16 (got --precision={values['precision']})")
        require(is_int(low) and low >= 4 and low & (low - 1) == 0, "bf16_from_res", low,
                "must be a power of two >= 4 (a resolution)")
    return numerics.Numerics(**values)


def with_numerics(cfg, numerics):
    """cfg computing with `numerics` (None: cfg unchanged); UsageError when --bf16_from_res is above the model's
    resolution (no layer would run in bfloat16)."""
    if numerics is None:
        return cfg
    low = numerics.bf16_from_res
    require(low is None or low <= cfg.img_resolution, "bf16_from_res", low,
            f"is above the generator's {cfg.img_resolution} px: no layer would run in bfloat16")
    return cfg.with_numerics(numerics)


def numerics_settings(numerics) -> dict:
    """{'numerics': {...}} for a run's settings, or {} for the default (so that runs made before these flags
    existed, all at the default, keep their settings and resume)."""
    from si_jax.stylegan2 import numerics as numerics_lib

    if numerics is None or numerics == numerics_lib.DEFAULT:
        return {}
    return {"numerics": {name: getattr(numerics, name) for name in NUMERICS_FLAGS}}


# ---------------------------------------------------------------------------------------------- results

# Magnitudes beyond which a setting is the likely cause of an overflow (NaN/inf) in the generator.
TYPICAL = {"truncation_psi": 2.0, "distance": 30.0, "s_scale": 100.0, "learning_rate": 10.0, "coeffs": 10.0}


def likely_cause(**values) -> str:
    """'--s_scale=1e+38 (unusually large)' for the settings beyond TYPICAL, else all the given ones."""
    given = {k: v for k, v in values.items() if v is not None}
    big = {k: v for k, v in given.items() if abs(float(v)) > TYPICAL.get(k, 1e3)}
    shown = ", ".join(f"--{k}={float(v):g}" for k, v in (big or given).items())
    return f"{shown} (unusually large)" if big else f"the settings {shown} or the inputs"


def finite_or_error(name: str, array, hint: str, index=None) -> np.ndarray:
    """array [N, ...] (row r = sample index[r], default r) must be finite; else NonFiniteError naming the samples
    and the likely cause `hint`. -> the array. Non-float arrays pass."""
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.inexact):
        return a
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1) if a.ndim else ~np.isfinite(a.reshape(1))
    if bad.any():
        rows = np.flatnonzero(bad)
        ids = rows if index is None else np.asarray(index)[rows]
        shown = ", ".join(str(int(i)) for i in ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        raise NonFiniteError(f"non-finite {name} (NaN or inf) for sample{'s' if len(ids) > 1 else ''} {shown}, "
                             f"not written; likely cause: {hint}")
    return a


def check_finite(arrays: dict, hint: str, index=None) -> dict:
    """`finite_or_error` for every array of a dict of per-sample arrays [N, ...]. -> arrays."""
    for key, value in arrays.items():
        if value is not None:
            finite_or_error(key, value, hint, index)
    return arrays


def finite_numbers_or_error(obj, what: str, hint: str):
    """Every number in a JSON-like tree (dicts, lists, tuples) must be finite; else NonFiniteError naming the
    keys ('fd', 'attribute_freq.smile[0]', ...) and `hint`. -> obj."""
    def walk(o, path):
        if isinstance(o, dict):
            for k, v in o.items():
                yield from walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                yield from walk(v, f"{path}[{i}]")
        elif isinstance(o, (float, np.floating)) and not math.isfinite(float(o)):
            yield path

    bad = list(walk(obj, ""))
    if bad:
        raise NonFiniteError(f"{what}: {', '.join(bad[:6])}{' ...' if len(bad) > 6 else ''} NaN or infinite, not "
                             f"written; likely cause: {hint}")
    return obj


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
                             "compute every shard into the same folder; add --multihost (bin/edit.py, bin/sample.py), or start one "
                             "process")
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
