"""PyTorch tensors and storages without PyTorch: stand-ins for the torch globals of the allow-lists.

* Storage classes (`torch.FloatStorage`, ...) become `StorageType` markers carrying a NumPy dtype.
* `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` -> a C-contiguous np.ndarray copy of the
  (bounds-checked) strided view; `_rebuild_parameter(data, ...)` -> data.
* `torch.storage._load_from_bytes(b)` (NVlabs pickles) -> parse the legacy (non-zip) `torch.save` stream `b`:
  pickle(magic) pickle(protocol 1001) pickle(sys_info) pickle(object, persistent ids) pickle(storage keys),
  then per key an int64 element count and the raw little-endian data.
* `read_torch_zip(path)`: the zip format of `torch.save` (>= 1.6): `<prefix>/data.pkl` with persistent ids
  `('storage', storage_type, key, location, numel)` whose data is the raw entry `<prefix>/data/<key>`.
"""
from __future__ import annotations

import collections
import io
import re
import struct
import zipfile
import zlib

import numpy as np

from weights_convert import safe_pickle
from weights_convert.errors import WeightsFormatError, one_line

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class StorageType:
    """Stand-in for a torch storage class: name + little-endian NumPy dtype (bfloat16 read as uint16)."""

    def __init__(self, name: str, dtype: str):
        self.name, self.dtype = name, np.dtype(dtype)

    def __call__(self, *args, **kwargs):
        raise ValueError(f"torch.{self.name} may only appear in a persistent id")

    def __repr__(self):
        return f"<torch.{self.name}>"


STORAGE_TYPES = {("torch", name): StorageType(name, dt) for name, dt in [
    ("FloatStorage", "<f4"), ("DoubleStorage", "<f8"), ("HalfStorage", "<f2"), ("BFloat16Storage", "<u2"),
    ("LongStorage", "<i8"), ("IntStorage", "<i4"), ("ShortStorage", "<i2"), ("CharStorage", "i1"),
    ("ByteStorage", "u1"), ("BoolStorage", "?")]}


class Storage:
    """A flat storage: `array` is a 1-D NumPy array of `numel` elements (None until its data has been read)."""

    def __init__(self, stype: StorageType, numel: int):
        self.stype, self.numel, self.array = stype, numel, None

    def fill(self, raw: bytes):
        if len(raw) != self.numel * self.stype.dtype.itemsize:
            raise ValueError(f"storage of {self.numel} x {self.stype.name} has {len(raw)} bytes")
        arr = np.frombuffer(raw, self.stype.dtype)
        if self.stype.name == "BFloat16Storage":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        self.array = arr


class PendingTensor:
    """A tensor whose storage data comes later in a legacy stream; resolved by `_resolve_pending`."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)


def _as_int_tuple(x, what):
    if isinstance(x, int):
        x = (x,)
    if not isinstance(x, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in x):
        raise ValueError(f"bad tensor {what} {x!r}")
    return tuple(x)


def _strided_copy(storage: Storage, offset, size, stride) -> np.ndarray:
    """The tensor `storage[offset + sum(i_k * stride_k)]`, shape `size`, as a C-contiguous copy."""
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"bad tensor storage offset {offset!r}")
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ValueError(f"bad tensor size/stride {size}/{stride}")
    arr = storage.array
    if 0 in size:
        return np.zeros(size, arr.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= arr.size:
        raise ValueError(f"tensor of size {size} (stride {stride}, offset {offset}) runs past its storage "
                         f"of {arr.size} elements")
    item = arr.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=size, strides=[s * item for s in stride],
                                           writeable=False)
    return np.array(view, order="C", copy=True)  # (np.ascontiguousarray would make 0-d arrays 1-d)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                      metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2` -> np.ndarray of shape `size`."""
    if not isinstance(storage, Storage):
        raise ValueError("tensor rebuilt from something that is not a storage")
    size, stride = _as_int_tuple(size, "size"), _as_int_tuple(stride, "stride")
    if storage.array is None:
        return PendingTensor(storage, storage_offset, size, stride)
    return _strided_copy(storage, storage_offset, size, stride)


def rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """Stand-in for `torch._utils._rebuild_parameter` -> the tensor itself."""
    if not isinstance(data, (np.ndarray, PendingTensor)):
        raise ValueError("parameter rebuilt from something that is not a tensor")
    return data


def _storage_pid(pid, lookup):
    """Parse a storage persistent id (5 fields in zip files, 6 with view_metadata in legacy streams)."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
        raise ValueError(f"unsupported persistent id {pid!r:.80}")
    stype, key, numel = pid[1], pid[2], pid[4]
    if len(pid) == 6 and pid[5] is not None:
        raise ValueError("storage views are not supported")
    if not isinstance(stype, StorageType) or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise ValueError(f"bad storage persistent id {pid!r:.80}")
    return lookup(stype, key, numel)


def _resolve_pending(obj, seen=None):
    """Replace every PendingTensor inside dicts/lists/tuples by its array (after the storages were filled)."""
    seen = set() if seen is None else seen
    if isinstance(obj, PendingTensor):
        return _strided_copy(*obj.args)
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _resolve_pending(obj[k], seen)
    elif isinstance(obj, list):
        obj[:] = [_resolve_pending(v, seen) for v in obj]
    elif isinstance(obj, tuple):
        return tuple(_resolve_pending(v, seen) for v in obj)
    return obj


LEGACY_GLOBALS = dict(STORAGE_TYPES)
LEGACY_GLOBALS[("collections", "OrderedDict")] = collections.OrderedDict
LEGACY_GLOBALS[("torch._utils", "_rebuild_tensor_v2")] = rebuild_tensor_v2
LEGACY_GLOBALS[("torch._utils", "_rebuild_parameter")] = rebuild_parameter


def parse_legacy_stream(data: bytes, source: str, what: str = "legacy torch.save stream"):
    """Parse a legacy (non-zip) `torch.save` stream -> the saved object with tensors as np.ndarrays."""
    f = io.BytesIO(data)

    def header(expect_type, check, label):
        obj, _ = safe_pickle.restricted_load(f, {}, source, what)
        if not isinstance(obj, expect_type) or not check(obj):
            raise WeightsFormatError(f"{source}: {what}: bad {label}")
        return obj

    header(int, lambda v: v == LEGACY_MAGIC, "magic number")
    header(int, lambda v: v == LEGACY_PROTOCOL, "protocol version")
    info = header(dict, lambda v: True, "sys_info")
    if info.get("little_endian", True) is not True:
        raise WeightsFormatError(f"{source}: {what}: big-endian torch files are not supported")

    storages = {}

    def lookup(stype, key, numel):
        st = storages.setdefault(key, Storage(stype, numel))
        if st.stype is not stype or st.numel != numel:
            raise ValueError(f"storage {key!r} is declared twice with different types or sizes")
        return st

    obj, _ = safe_pickle.restricted_load(f, LEGACY_GLOBALS, source, what, lambda pid: _storage_pid(pid, lookup))
    keys, _ = safe_pickle.restricted_load(f, {}, source, what)
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise WeightsFormatError(f"{source}: {what}: storage key list does not match the storages used")
    for key in keys:
        st = storages[key]
        head = f.read(8)
        if len(head) != 8:
            raise WeightsFormatError(f"{source}: truncated {what} (storage {key} missing)")
        (numel,) = struct.unpack("<q", head)
        if numel != st.numel:
            raise WeightsFormatError(f"{source}: {what}: storage {key} has {numel} elements, expected {st.numel}")
        raw = f.read(numel * st.stype.dtype.itemsize)
        try:
            st.fill(raw)
        except ValueError as e:
            raise WeightsFormatError(f"{source}: truncated {what} ({e})") from None
    try:
        return _resolve_pending(obj)
    except ValueError as e:
        raise WeightsFormatError(one_line(f"{source}: {what}: {e}")) from None


def load_from_bytes_for(source: str):
    """The stand-in for `torch.storage._load_from_bytes` (errors name `source`) -> Storage with data."""

    def load_from_bytes(b):
        if not isinstance(b, bytes):
            raise ValueError("torch.storage._load_from_bytes expects bytes")
        st = parse_legacy_stream(b, source, "embedded torch storage stream")
        if not isinstance(st, Storage):
            raise ValueError("embedded torch stream does not hold a storage")
        return st

    return load_from_bytes


ZIP_GLOBALS = {
    **STORAGE_TYPES,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
}

_KEY = re.compile(r"^[A-Za-z0-9_.]+$")


def read_torch_zip(path, source: str):
    """Read a zip-format `torch.save` file -> the saved object (tensors as np.ndarrays)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_zip(zf, source)
    except WeightsFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError, NotImplementedError,
            RuntimeError) as e:  # a damaged archive can fail in any of these ways
        raise WeightsFormatError(one_line(f"{source}: not a readable torch zip file ({type(e).__name__}: {e})")
                                 ) from None


def _read_zip(zf: zipfile.ZipFile, source: str):
    names = set(zf.namelist())
    pkls = [n for n in names if re.fullmatch(r"[^/]+/data\.pkl", n)]
    if len(pkls) != 1:
        raise WeightsFormatError(f"{source}: torch zip file without exactly one '<name>/data.pkl' entry")
    prefix = pkls[0][: -len("/data.pkl")]
    if f"{prefix}/byteorder" in names:
        order = zf.read(f"{prefix}/byteorder").decode("ascii", "replace").strip()
        if order != "little":
            raise WeightsFormatError(f"{source}: torch zip file with byteorder {order!r} is not supported")
    storages = {}

    def lookup(stype, key, numel):
        if key in storages:
            return storages[key]
        entry = f"{prefix}/data/{key}"
        if not _KEY.match(key) or entry not in names:
            raise ValueError(f"storage {key!r} is missing from the zip")
        size = zf.getinfo(entry).file_size
        if size != numel * stype.dtype.itemsize:
            raise ValueError(f"storage {key!r} has {size} bytes, expected {numel} x {stype.name}")
        st = Storage(stype, numel)
        st.fill(zf.read(entry))
        storages[key] = st
        return st

    obj, _ = safe_pickle.restricted_loads(zf.read(pkls[0]), ZIP_GLOBALS, source, "torch zip data.pkl",
                                          lambda pid: _storage_pid(pid, lookup))
    return obj
