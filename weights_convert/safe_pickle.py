"""A restricted unpickler: only globals on an explicit allow-list, each mapped to an inert stand-in.

Nothing from a file is ever imported, called or executed. `find_class` answers from the allow-list given by the
caller (a dict `(module, name) -> stand-in`) and raises `UnsafePickleError` for anything else, before any code
could run. Persistent ids go to a caller-supplied function or are refused.

This module also holds the NumPy stand-ins (`numpy.dtype`, `numpy.core.multiarray.scalar`, `..._reconstruct`,
`numpy.ndarray`, under both the NumPy 1.x `numpy.core` and the NumPy 2.x `numpy._core` names). They rebuild
plain numeric arrays from bytes and refuse object dtypes.
"""
from __future__ import annotations

import io
import pickle
import re

import numpy as np

from weights_convert.errors import UnsafePickleError, WeightsFormatError, one_line


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals come only from `allowed`; records the globals it handed out in `used`."""

    def __init__(self, file, allowed: dict, source: str, what: str, persistent_load=None):
        super().__init__(file)
        self._allowed = allowed
        self._source = source
        self._what = what
        self._persistent = persistent_load
        self.used = set()

    def find_class(self, module, name):
        key = (module, name)
        if key not in self._allowed:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}' from {self._source}: "
                f"not in the allow-list for {self._what}")
        self.used.add(f"{module}.{name}")
        return self._allowed[key]

    def persistent_load(self, pid):
        if self._persistent is None:
            raise WeightsFormatError(f"{self._source}: unexpected persistent id in {self._what}")
        return self._persistent(pid)


def restricted_load(file, allowed: dict, source: str, what: str, persistent_load=None):
    """Unpickle ONE object from the binary file object `file` -> (object, set of 'module.name' globals used).

    Every failure becomes a one-line `WeightsFormatError` naming `source` (an `UnsafePickleError` for a
    refused global). The file position is left just after the pickle's STOP opcode.
    """
    unpickler = RestrictedUnpickler(file, allowed, source, what, persistent_load)
    try:
        obj = unpickler.load()
    except WeightsFormatError:
        raise
    except EOFError:
        raise WeightsFormatError(f"{source}: truncated {what} (ran out of data)") from None
    except Exception as e:  # hostile input: any failure inside the unpickler is a format error
        raise WeightsFormatError(one_line(f"{source}: corrupt {what} ({type(e).__name__}: {e})")) from None
    return obj, unpickler.used


def restricted_loads(data: bytes, allowed: dict, source: str, what: str, persistent_load=None):
    """`restricted_load` on a bytes object."""
    return restricted_load(io.BytesIO(data), allowed, source, what, persistent_load)


# --- NumPy stand-ins -----------------------------------------------------------------------------------------

_DTYPE_SPEC = re.compile(r"^(b1|\?|[iu][1248]|f[248]|c(8|16))$")


class SafeDType:
    """Stand-in for `numpy.dtype(spec, align, copy)` + BUILD: only bool/int/uint/float/complex, never objects."""

    def __init__(self, spec, align=False, copy=False):
        if isinstance(spec, bytes):
            spec = spec.decode("ascii", "replace")
        if not isinstance(spec, str) or not _DTYPE_SPEC.match(spec):
            raise ValueError(f"refusing numpy dtype {spec!r} (only plain numeric dtypes are allowed)")
        self.spec = spec
        self.order = "="

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise ValueError("bad numpy dtype state")
        self.order = state[1]

    def resolve(self) -> np.dtype:
        dt = np.dtype(self.spec)
        return dt.newbyteorder(self.order) if self.order in "<>" else dt


def _scalar(dtype, data=None):
    """Stand-in for `numpy.core.multiarray.scalar(dtype, bytes)` -> a NumPy scalar."""
    if not isinstance(dtype, SafeDType) or not isinstance(data, bytes):
        raise ValueError("bad numpy scalar")
    dt = dtype.resolve()
    if len(data) != dt.itemsize:
        raise ValueError(f"numpy scalar of dtype {dt} needs {dt.itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dt)[0]


class _Marker:
    """An inert, non-callable token standing for a class that may only appear as an argument."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


NDARRAY = _Marker("numpy.ndarray")


class SafeArray(np.ndarray):
    """What `_reconstruct` returns; BUILD (`__setstate__`) fills it from raw bytes after validating the state.

    It is an ndarray subclass so that it can stand in the unpickled tree; `np.asarray(x)` gives a plain array.
    """

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ValueError("bad numpy array state")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"bad numpy array shape {shape!r}")
        if not isinstance(dtype, SafeDType) or not isinstance(raw, bytes):
            raise ValueError("bad numpy array state (dtype or data)")
        dt = dtype.resolve()
        if len(raw) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise ValueError(f"numpy array of shape {shape} and dtype {dt} does not match its {len(raw)} bytes")
        np.ndarray.__setstate__(self, (shape, dt, bool(fortran), raw))


def _reconstruct(subtype, shape=(0,), dtype=b"b"):
    """Stand-in for `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`; BUILD fills it."""
    if subtype is not NDARRAY:
        raise ValueError("numpy _reconstruct of something other than numpy.ndarray")
    return np.ndarray.__new__(SafeArray, (0,), np.uint8)


NUMPY_GLOBALS = {("numpy", "dtype"): SafeDType, ("numpy", "ndarray"): NDARRAY}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    NUMPY_GLOBALS[(_mod, "scalar")] = _scalar
    NUMPY_GLOBALS[(_mod, "_reconstruct")] = _reconstruct
del _mod
