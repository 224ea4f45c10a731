"""The one atomic file writer of the repository (si_jax.storage re-exports it: weights_convert is the floor below
si_jax, so both packages can use it and weights_convert still imports nothing of si_jax).

A write goes to `.NAME.tmpPID` in the target's folder (mode 0644), optionally fsynced, then is renamed over the
target: a reader never sees half a file, and a killed writer leaves at most that temp file behind.
"""
from __future__ import annotations

import os
import pathlib

FILE_MODE = 0o644


def temp_path(path) -> pathlib.Path:
    """The temp name a write of `path` uses: `.NAME.tmpPID` in the same folder.

    >>> temp_path("out/g.safetensors") == pathlib.Path(f"out/.g.safetensors.tmp{os.getpid()}")
    True
    """
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_temp(path, data, *, fsync: bool = False) -> pathlib.Path:
    """Write `data` (bytes, or a function tmp_path -> None that creates the file) to path's temp name, mode
    0644 (fsynced with `fsync`). -> the temp path (removed again on failure)."""
    tmp = temp_path(path)
    try:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
        os.chmod(tmp, FILE_MODE)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path, data, *, fsync: bool = False) -> None:
    """Write bytes (or what a writer function puts at the temp path) to `path`: temp file, mode 0644, rename."""
    tmp = write_temp(path, data, fsync=fsync)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_stream_atomic(path, write_fn, *, fsync: bool = False) -> None:
    """`write_atomic` for a writer of an open binary file: write_fn(f) -> None."""
    def write(tmp):
        with open(tmp, "wb") as f:
            write_fn(f)

    write_atomic(path, write, fsync=fsync)
