"""Files every stage writes or reads: validated .npz arrays, deterministic atomic writes (one file, or a staged set
of outputs committed together), versioned JSON headers, and the content fingerprint that ties a file to the
weights it came from.

Every file si_jax writes goes through `write_atomic` (temp file in the same folder, mode 0644, rename; the one
implementation, weights_convert.files, re-exported here): a reader never sees half a file, and the bytes depend
only on the content (npz members carry a fixed timestamp), so a resumed run rewrites identical files. `Outputs`
stages several files and writes them all at the end.

A leaf: imports nothing of si_jax (only weights_convert.files, the floor below).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import zipfile

import numpy as np

from weights_convert.files import temp_path as temp_path
from weights_convert.files import write_atomic as write_atomic
from weights_convert.files import write_stream_atomic as write_stream_atomic
from weights_convert.files import write_temp

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def load_npz_array(path, key: str, *, ndim: int, last_dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """One float32 array from an .npz, validated: present, real-valued, rank `ndim`, last dim, >= `min_rows` rows,
    finite. No pickles. Every problem is a ValueError / FileNotFoundError naming the file."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an .npz file")
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError(f"{path} is a .npy array, not an .npz archive; write it with "
                                 f"numpy.savez(path, {key}=array)")
            with data:
                if key not in data.files:
                    raise ValueError(f"{path}: no array '{key}' (has: {', '.join(data.files) or 'none'})")
                arr = np.asarray(data[key])
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    except ValueError as e:   # pickled / object data (never loaded), or a damaged member
        if str(e).startswith(f"{path}"):
            raise
        raise ValueError(f"{path}: not an .npz of plain numeric arrays (it holds pickled or object data, which "
                         f"si_jax never loads, or is damaged); write it with numpy.savez(path, {key}=array)") from None
    if arr.ndim != ndim or (last_dim is not None and arr.shape[-1] != last_dim):
        want = f"rank {ndim}" + (f" with last dimension {last_dim}" if last_dim is not None else "")
        raise ValueError(f"{path}: '{key}' has shape {arr.shape}, expected {want}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{path}: '{key}' must hold real numbers (dtype {arr.dtype})")
    if ndim and arr.shape[0] < min_rows:
        raise ValueError(f"{path}: '{key}' has {arr.shape[0]} rows, need at least {min_rows}")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argmax(bad.reshape(len(arr), -1).any(1))) if ndim else 0
        raise ValueError(f"{path}: '{key}' contains NaN or infinite values (first in row {row}), or values too "
                         "large for float32")
    return arr


def write_npz(file, **arrays) -> None:
    """Write the .npz of `arrays` (an uncompressed zip of .npy members, like numpy.savez) to a binary file
    object, byte-for-byte a function of the arrays: members in the given order, fixed timestamp, streamed."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def npz_bytes(**arrays) -> bytes:
    """`write_npz` into memory."""
    buf = io.BytesIO()
    write_npz(buf, **arrays)
    return buf.getvalue()


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, pathlib.PurePath):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_bytes(obj) -> bytes:
    """Indented, key-sorted, strictly valid JSON (NaN / inf are refused with a ValueError, not written)."""
    try:
        return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, default=_json_default) + "\n").encode()
    except ValueError as e:
        raise ValueError(f"refusing to write non-finite numbers into JSON ({e})") from None


def json_line(obj) -> str:
    """One key-sorted line of strictly valid JSON (no newline; NaN / inf: ValueError, as `json_bytes`)."""
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=False, default=_json_default)
    except ValueError as e:
        raise ValueError(f"refusing to write non-finite numbers into JSON ({e})") from None


def append_lines(path, lines) -> None:
    """Append text lines (each without its newline) to a log file such as metrics.jsonl, creating it: the one
    file write that is NOT atomic (a log grows; write_atomic would rewrite it whole). All lines go in one write()
    on an O_APPEND descriptor, then fsync: a crash can at worst cut the last line short, never reorder or
    interleave earlier ones; readers skip a last line that does not parse."""
    data = "".join(f"{line}\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def save_npz_atomic(path, **arrays) -> None:
    """`write_npz` of the arrays, atomically (streamed to the temp file): readers never see half a file."""
    write_stream_atomic(path, lambda f: write_npz(f, **arrays))


class Outputs:
    """The files one step writes, all or none: stage them (bytes, or a writer of a temp path), then `commit()`.

    commit() writes every temp file first (mode 0644) and renames them only when all were written; if any write
    fails, every temp file is removed and no output appears. Stage everything after the computation, so a
    failure anywhere before leaves nothing new behind.
    """

    def __init__(self):
        self._staged = {}

    def add(self, path, data) -> None:
        self._staged[pathlib.Path(path)] = data

    def add_json(self, path, obj) -> None:
        self.add(path, json_bytes(obj))

    def add_text(self, path, text: str) -> None:
        self.add(path, text.encode())

    def paths(self) -> list:
        return list(self._staged)

    def commit(self) -> list:
        """-> the written paths, in staging order."""
        temps = []
        try:
            for path, data in self._staged.items():
                temps.append((write_temp(path, data), path))
            for tmp, path in temps:
                os.replace(tmp, path)
        finally:
            for tmp, _ in temps:
                tmp.unlink(missing_ok=True)
        return self.paths()


def check_format_header(header, where, what: str, fmt: str, version: int) -> dict:
    """A parsed JSON header must be a dict with "format" == fmt and "version" == version.

    -> header; ValueError naming `where` (the file) and `what` (e.g. 'directions file') otherwise.
    """
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise ValueError(f"{where} is not an si_jax {what} (format is not {fmt!r})")
    if header.get("version") != version:
        raise ValueError(f"{where}: {what} version {header.get('version')!r} is not supported "
                         f"(this si_jax reads version {version})")
    return header


_FIELD_KINDS = {
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number >= 0"),
    "size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number >= 1"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v),
               "a finite number"),
    "text": (lambda v: isinstance(v, str), "a string"),
    "list": (lambda v: isinstance(v, list), "a list"),
}


def check_fields(header: dict, where, fix: str, **kinds) -> dict:
    """Each named entry of a parsed JSON header must exist and be of its kind ('count', 'size', 'number', 'text',
    'list'). -> header; ValueError '<where>: ... ; <fix>' naming the first missing or mistyped entry."""
    for name, kind in kinds.items():
        ok, what = _FIELD_KINDS[kind]
        if name not in header:
            raise ValueError(f"{where}: no '{name}' entry; {fix}")
        if not ok(header[name]):
            raise ValueError(f"{where}: '{name}' is {header[name]!r}, expected {what}; {fix}")
    return header


def flat_dict(tree: dict, sep: str = "/") -> dict:
    """Nested dicts (a params pytree) -> {'a/b/c': leaf}, depth first; `nested_dict` is the inverse. The one
    flatten behind the safetensors files of the judges and the lambda models.

    >>> flat_dict({"a": {"b": 1, "c": {"d": 2}}, "e": 3})
    {'a/b': 1, 'a/c/d': 2, 'e': 3}
    >>> nested_dict({"a/b": 1, "a/c/d": 2, "e": 3}) == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    True
    """
    out = {}
    for k, v in tree.items():
        out.update({f"{k}{sep}{kk}": vv for kk, vv in flat_dict(v, sep).items()} if isinstance(v, dict) else {k: v})
    return out


def nested_dict(flat: dict, sep: str = "/") -> dict:
    """{'a/b/c': leaf} -> nested dicts (the inverse of `flat_dict`)."""
    tree: dict = {}
    for key, v in flat.items():
        node = tree
        *parents, leaf = key.split(sep)
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def fingerprint(arrays: dict) -> str:
    """A short content hash of named arrays (names, shapes and float32 values), e.g. a generator's canonical
    weights or a judge's, to tie outputs and shipped files to the exact weights."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key], np.float32)
        h.update(key.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
