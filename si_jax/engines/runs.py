"""Resumable, sharded runs: a run folder holds `run.json` (the settings) and one file per finished shard.

- Nothing is created until the first shard is finished: `RunDir(...)` only checks the folder; `write_shard`
  creates the folder and run.json right before the first shard file. A run that fails on its inputs or its first
  shard leaves nothing behind, and the corrected command is not refused.
- Every output file is written atomically and deterministically (si_jax.storage): a killed run leaves finished
  shards or nothing, and a resumed run rewrites files with the same bytes.
- Re-running the same command resumes: shards already on disk are skipped (a damaged one is reported, naming the
  file); the result is identical to an uninterrupted run because every shard depends only on the settings and
  its own indices.
- Re-running with different settings into the same folder is refused, naming the settings that differ.
- Devices: params are replicated over the local devices once per run (`replicate`), and each batch is sharded
  over them on a 'data' axis (`shard_batch`) before anything is computed from it. Hosts: with `jax.distributed`,
  process p takes shards p, p + P, p + 2P, ... and writes its own shard files; after a final `barrier` process 0
  writes the run's final files; values that must agree everywhere come from process 0 (`from_process_0`).
- Host work overlaps device work: a finished shard's PNGs and npz files are written on a background thread
  (`ShardWriter`) while the next shard computes.
`run_shards` is that loop, the one every sharded engine runs (edit, edit --codes, project, sample).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import pathlib
import re
import zipfile

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from si_jax import storage
from si_jax.engines import errors, hosts

RUN_FILE = "run.json"
# temp files of shard-owned outputs: shards/.shard_K.npz.tmpPID, shards/.preview_K.npz.tmpPID, images/.I.png.tmpPID
_TEMP = re.compile(r"^\..+\.tmp\d+$")   # storage.temp_path names (a run killed while writing run.json)
_SHARD_TEMP = re.compile(r"^\.(?:(?:shard|preview)_(\d+)\.npz|(\d+)\.png)\.tmp\d+$")


def write_json_atomic(path, obj) -> None:
    """storage.json_bytes(obj) (strict JSON: NaN / inf refused), written atomically with mode 0644."""
    storage.write_atomic(path, storage.json_bytes(obj))


class RunDir:
    """A run folder. settings: JSON-able dict that fully determines the outputs. Checks only; creates nothing."""

    def __init__(self, path, settings: dict):
        self.path = pathlib.Path(path)
        self.settings = json.loads(storage.json_bytes(settings))
        run_file = self.path / RUN_FILE
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"--output_dir {self.path} exists and is not a folder")
        if run_file.exists():
            try:
                old = json.loads(run_file.read_text())
            except ValueError as e:
                raise ValueError(f"{run_file} is damaged ({e}); delete the folder or choose another "
                                 "--output_dir") from None
            diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
            if diff:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {self.settings.get(k)!r}" for k in diff[:4])
                raise ValueError(f"{self.path} holds a run with different settings ({shown}); use a new "
                                 "--output_dir or delete the old one")
        elif self.path.is_dir() and any(not _TEMP.match(p.name) for p in self.path.iterdir()):
            raise ValueError(f"{self.path} is not empty and is not an si_jax run folder; choose another --output_dir")

    def shard_path(self, k: int) -> pathlib.Path:
        return self.path / "shards" / f"shard_{k:05d}.npz"

    def is_done(self, k: int) -> bool:
        return self.shard_path(k).is_file()

    def pending(self, num_shards: int) -> list:
        """This process's shards (`my_shards`) not finished yet. A finished shard that is not a readable .npz
        (truncated, overwritten) is a ValueError naming it and saying to delete it."""
        todo = []
        for k in my_shards(num_shards):
            if not self.is_done(k):
                todo.append(k)
                continue
            try:
                with zipfile.ZipFile(self.shard_path(k)) as zf:
                    zf.namelist()
            except (OSError, zipfile.BadZipFile) as e:
                raise ValueError(f"{self.shard_path(k)} is damaged ({e}); delete it and re-run the same command "
                                 "to recompute that shard") from None
        return todo

    def create(self) -> None:
        """Create the folder, run.json, then shards/ (idempotent; every process may call it: same bytes)."""
        if not (self.path / RUN_FILE).exists():
            self.path.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path / RUN_FILE, self.settings)
        (self.path / "shards").mkdir(exist_ok=True)

    def remove_stale_temps(self, todo, batch_size: int) -> None:
        """Delete temp files a killed run left for the shards in `todo` (shard K's files, and images/I.png of
        sample I in shard I // batch_size); other shards' temps may belong to live processes."""
        todo = set(todo)
        for sub in ("shards", "images"):
            folder = self.path / sub
            for f in folder.glob(".*.tmp*") if folder.is_dir() else ():
                m = _SHARD_TEMP.match(f.name)
                if m and (int(m[1]) if m[1] else int(m[2]) // batch_size) in todo:
                    f.unlink(missing_ok=True)

    def remove_top_level_temps(self) -> None:
        """Delete temp files of the run's final outputs (call on the one process that writes them)."""
        for f in self.path.glob(".*.tmp*"):
            f.unlink(missing_ok=True)

    def write_shard(self, k: int, **arrays) -> None:
        self.create()
        storage.save_npz_atomic(self.shard_path(k), **arrays)

    def read_shard(self, k: int) -> dict:
        path = self.shard_path(k)
        try:
            with np.load(path, allow_pickle=False) as d:
                return {key: d[key] for key in d.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is damaged ({e}); delete it and re-run the same command to recompute "
                             "that shard") from None

    def read_all(self, num_shards: int) -> dict:
        """Concatenate every shard (all must be finished)."""
        parts = [self.read_shard(k) for k in range(num_shards)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


class ShardWriter:
    """Writes finished shards on one background thread while the next shard computes. At most one write is in
    flight: `submit` first waits for the previous one (re-raising its error, so a failed write stops the run at
    the next shard) and files appear in shard order. As a context manager, leaving waits for the last write, also
    when the loop raised (the pending shard is finished, never left half-written; the loop's error wins)."""

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="si_jax-writer")
        self._pending = None

    def submit(self, fn, *args, **kwargs) -> None:
        """Run fn(*args, **kwargs) on the writer thread, after the previous write has finished."""
        self.wait()
        self._pending = self._pool.submit(fn, *args, **kwargs)

    def wait(self) -> None:
        """Block until the pending write is done; re-raise its exception."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.wait()
        except Exception:
            if exc_type is None:
                raise
        finally:
            self._pool.shutdown()


def run_shards(run: RunDir, num_items: int, batch_size: int, compute, write, *, hint: str, barrier_name: str,
               log=print, heartbeat=None) -> bool:
    """The resumable shard loop of every sharded engine. Shard k holds the items `positions` = [k·B, min((k+1)·B,
    num_items)) of B = batch_size (already `fit_batch_size`d). This process's pending shards (`RunDir.pending`, a
    'resuming' note when some are done), the temps a killed run left for them removed, then per shard:
    compute(k, positions) -> {name: [>= len(positions), ...] array or None} (padded batches allowed: trimmed here;
    inside `hosts.heartbeat(heartbeat(positions))` when given), checked finite (`errors.check_finite` naming the items
    and `hint`: nothing of the shard is written), then write(k, positions, arrays) on the background writer while
    the next shard computes; progress lines on process 0. Then the final barrier `barrier_name`.
    -> True on process 0 once every shard exists (ValueError naming the first missing one), False on the other
    processes (they write nothing more)."""
    num_shards = -(-num_items // batch_size)
    mine, todo = my_shards(num_shards), run.pending(num_shards)
    if len(todo) < len(mine):
        whose = "this process's " if jax.process_count() > 1 else ""
        log(f"resuming: {len(mine) - len(todo)} of {whose}{len(mine)} shards already done")
    run.remove_stale_temps(todo, batch_size)
    lead = jax.process_index() == 0
    work = sum(min(batch_size, num_items - k * batch_size) for k in todo)
    with ShardWriter() as writer:
        for k in hosts.progress(todo, work, batch_size, "images") if lead else todo:
            positions = np.arange(k * batch_size, min((k + 1) * batch_size, num_items))
            with hosts.heartbeat(heartbeat(positions), log=log) if heartbeat else contextlib.nullcontext():
                arrays = compute(k, positions)
            arrays = errors.check_finite({key: v[:len(positions)] for key, v in arrays.items() if v is not None}, hint,
                                         positions)
            writer.submit(write, k, positions, arrays)
    barrier(barrier_name)
    if not lead:
        return False
    missing = [k for k in range(num_shards) if not run.is_done(k)]
    if missing:
        raise ValueError(f"{len(missing)} of {num_shards} shards are missing after the run (first: "
                         f"{run.shard_path(missing[0])}); do all processes write to the same --output_dir?")
    return True


def my_shards(num_shards: int) -> list:
    """Shards this process owns: k with k % process_count == process_index."""
    return [k for k in range(num_shards) if k % jax.process_count() == jax.process_index()]


def local_mesh() -> Mesh:
    """1-D mesh over this process's devices, axis 'data'."""
    return Mesh(np.asarray(jax.local_devices()), ("data",))


MAX_SHARDS = 100_000   # shard_XXXXX.npz: five digits


def fit_batch_size(batch_size: int, num_items: int, mesh: Mesh) -> int:
    """--batch_size checked against the devices and capped at the data: -> min(batch_size, num_items rounded up to
    a multiple of the local device count). ValueError naming the flag when it is < 1 or (after the cap) not a
    multiple of the device count."""
    n = mesh.devices.size
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"--batch_size must be an integer >= 1, got {batch_size}")
    batch_size = min(int(batch_size), -(-int(num_items) // n) * n)
    if batch_size % n:
        raise ValueError(f"--batch_size={batch_size} must be a multiple of the {n} local devices")
    shards = -(-int(num_items) // batch_size)
    if shards > MAX_SHARDS:
        raise ValueError(f"{num_items} items at --batch_size={batch_size} make {shards} shards, more than a run folder "
                         f"holds ({MAX_SHARDS}); raise --batch_size to at least {-(-int(num_items) // MAX_SHARDS)} "
                         "or use fewer items")
    return errors.note_batch_size(batch_size)


def shard_batch(tree, mesh: Mesh):
    """Put every array of `tree` on the mesh, split along its first (batch) axis."""
    return jax.device_put(tree, NamedSharding(mesh, P("data")))


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, P()))


def barrier(name: str) -> None:
    """Wait for every process (a no-op in a one-process run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def from_process_0(values) -> tuple:
    """Process 0's `values` (a few floats) on every process, bit for bit (sent as the float64's uint32 words: jax
    may run without 64-bit types): one value for the whole run, e.g. the PNG display range, even where hosts'
    floating point differs in the last bit. -> tuple of floats."""
    values = np.asarray(values, np.float64).ravel()
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        words = np.asarray(multihost_utils.broadcast_one_to_all(values.view(np.uint32)), np.uint32)
        values = words.view(np.float64)
    return tuple(float(v) for v in values)
