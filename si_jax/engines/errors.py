"""One-line errors of the absl binaries, and the checks that turn a non-finite result into one.

The rule (every bin/*.py):
  1. validate every flag and input before anything is created (engines.checks: `require`, `check_finite_flags`,
     `check_output_free` / `check_output_dir`; engines.weights.load_weights, the loaders' own checks);
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
import sys

import numpy as np


class UsageError(ValueError):
    """Bad flags or inputs detected by a binary itself."""


class NonFiniteError(ValueError):
    """A computed array that would be written holds NaN or inf."""


EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, KeyError)

OS_ADVICE = {
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



def run_guarded(fn) -> None:
    """Run fn(); an expected error, an OS error or running out of memory becomes ONE line `error: ...` on stderr
    and exit status 1. Anything else (a bug) keeps its traceback.

    jax's INFO chatter (e.g. 'Unable to initialize backend tpu') and numpy's floating-point warnings are silenced
    so that stderr stays readable (non-finite results are errors of their own, see `finite_or_error`)."""
    from si_jax.stylegan2 import autotune

    logging.getLogger("jax").setLevel(logging.WARNING)
    try:
        with np.errstate(all="ignore"):   # overflow is reported once, by finite_or_error, not as numpy warnings
            autotune.check_environment()   # the variables read at trace time, before anything is created
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
    what = OS_ADVICE.get(e.errno, e.strerror or type(e).__name__)
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

