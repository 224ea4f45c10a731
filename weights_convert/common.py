"""Small helpers shared by the format readers."""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from weights_convert.errors import WeightsFormatError, one_line


def read_bytes(path) -> tuple:
    """-> (bytes, display name). FileNotFoundError if absent; WeightsFormatError if empty or unreadable."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsFormatError(one_line(f"{path}: cannot read ({e})")) from None
    if not data:
        raise WeightsFormatError(f"{path}: empty file")
    return data, str(path)


def describe(obj) -> str:
    """A short description of an unpickled top-level object for error messages."""
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        return f"a dict with keys [{keys}{', ...' if len(obj) > 6 else ''}]"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of length {len(obj)}"
    return f"a {type(obj).__name__}"


def as_array(x, name: str, source) -> np.ndarray:
    """A tensor/array/NumPy scalar from an unpickled file -> plain np.ndarray (float32 for floats)."""
    if isinstance(x, (np.ndarray, np.generic)) and (np.issubdtype(x.dtype, np.floating)
                                                    or np.issubdtype(x.dtype, np.integer)):
        arr = np.asarray(x)
        return np.array(arr, dtype=np.float32 if np.issubdtype(arr.dtype, np.floating) else arr.dtype, order="C")
    raise WeightsFormatError(one_line(f"{source}: {name!r} is {describe(x)}, expected a numeric tensor"))


def number(x, name: str, source, kind=float):
    """A Python/NumPy number from a kwargs dict -> `kind`; WeightsFormatError otherwise."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise WeightsFormatError(one_line(f"{source}: {name} = {x!r:.60} is not a number"))
    if kind is int and float(x) != int(x):
        raise WeightsFormatError(one_line(f"{source}: {name} = {x!r} is not an integer"))
    return kind(x)


def fir_kernel(taps, gain: float = 1.0, ndim: int = 2) -> np.ndarray:
    """The FIR buffer of a resample filter (float64): outer(taps, taps) / sum(taps)^2 * gain, or for ndim 1
    taps / sum(taps) * sqrt(gain).

    >>> fir_kernel([1, 3, 3, 1], gain=4)[1]
    array([0.1875, 0.5625, 0.5625, 0.1875])
    """
    f = np.asarray(taps, np.float64)
    return f / f.sum() * np.sqrt(gain) if ndim == 1 else np.outer(f, f) / f.sum() ** 2 * gain


def is_filter(kernel: np.ndarray, taps, gain: float = 1.0) -> bool:
    """Whether a stored FIR buffer is `fir_kernel(taps, gain)` (to float32 round-off)."""
    want = fir_kernel(taps, gain, kernel.ndim)
    return kernel.shape == want.shape and np.allclose(kernel, want, rtol=1e-5, atol=1e-7)


def check_filter(kernel: np.ndarray, taps, name: str, source, gain: float = 1.0) -> None:
    """Check a stored FIR buffer against `fir_kernel(taps, gain)`; WeightsFormatError naming `source` if not."""
    if not is_filter(kernel, taps, gain):
        raise WeightsFormatError(one_line(f"{source}: buffer {name!r} does not match the resample filter "
                                          f"{list(taps)} (unsupported FIR filter)"))


def format_guard(what: str):
    """Decorator for `convert(obj, source)` functions: a stray ValueError/IndexError/... raised while picking an
    unpickled structure apart (a wrong rank, a missing key) becomes a one-line WeightsFormatError naming `source`."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(obj, source):
            try:
                return fn(obj, source)
            except WeightsFormatError:
                raise
            except (ValueError, IndexError, KeyError, TypeError, AttributeError) as e:
                raise WeightsFormatError(one_line(f"{source}: malformed {what} ({type(e).__name__}: {e})")) from None

        return wrapper

    return deco
