"""Shared plumbing of the absl binaries: one-line errors, output checks, progress lines."""
from __future__ import annotations

import logging
import os
import sys
import time


class UsageError(ValueError):
    """Bad flags or inputs detected by a binary itself."""


EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, KeyError)


def run_guarded(fn) -> None:
    """Run fn(); an expected error becomes ONE line `error: ...` on stderr and exit status 1.

    jax's INFO chatter (e.g. 'Unable to initialize backend tpu') is silenced so that stderr stays readable."""
    logging.getLogger("jax").setLevel(logging.WARNING)
    try:
        fn()
    except EXPECTED_ERRORS as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, KeyError):
            msg = msg.strip("'\"")
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(1)


def check_output_free(path, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output folder {parent} does not exist")


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
