"""Flag and path checks of the binaries, made before anything is created: a bad value is a UsageError naming the
flag the user typed (`require`), an output that would replace an input or land where nothing can be written is
refused before the run starts."""
from __future__ import annotations

import errno
import math
import os
import pathlib

import numpy as np

from si_jax.engines.errors import OS_ADVICE, UsageError


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
        raise IsADirectoryError(errno.EISDIR, OS_ADVICE[errno.EISDIR], str(path))
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

