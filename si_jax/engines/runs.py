"""Resumable, sharded runs: a run folder holds `run.json` (the settings) and one file per finished shard.

- Every output file is written atomically (temp file + rename): a killed run leaves finished shards or nothing.
- Re-running the same command resumes: shards already on disk are skipped; the result is identical to an
  uninterrupted run because every shard depends only on the settings and its own indices.
- Re-running with different settings into the same folder is refused, naming the settings that differ.
- Devices: a batch is sharded over the local devices on a 'data' axis, params replicated. Hosts: with
  `jax.distributed`, process p takes shards p, p + P, p + 2P, ... and writes its own shard files.
"""
from __future__ import annotations

import json
import os
import pathlib

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from si_jax import storage

RUN_FILE = "run.json"


def write_json_atomic(path, obj) -> None:
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class RunDir:
    """A run folder. settings: JSON-able dict that fully determines the outputs."""

    def __init__(self, path, settings: dict, *, primary: bool = True):
        self.path = pathlib.Path(path)
        self.settings = json.loads(json.dumps(settings, sort_keys=True, default=_json_default))
        run_file = self.path / RUN_FILE
        if run_file.exists():
            old = json.loads(run_file.read_text())
            diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
            if diff:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {self.settings.get(k)!r}" for k in diff[:4])
                raise ValueError(f"{self.path} holds a run with different settings ({shown}); use a new "
                                 "--output_dir or delete the old one")
        elif self.path.exists() and any(p.name != RUN_FILE for p in self.path.iterdir()):
            raise ValueError(f"{self.path} is not empty and is not an si_jax run folder; choose another --output_dir")
        elif primary:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json_atomic(run_file, self.settings)
        (self.path / "shards").mkdir(parents=True, exist_ok=True)

    def shard_path(self, k: int) -> pathlib.Path:
        return self.path / "shards" / f"shard_{k:05d}.npz"

    def is_done(self, k: int) -> bool:
        return self.shard_path(k).is_file()

    def write_shard(self, k: int, **arrays) -> None:
        storage.save_npz_atomic(self.shard_path(k), **arrays)

    def read_shard(self, k: int) -> dict:
        with np.load(self.shard_path(k), allow_pickle=False) as d:
            return {key: d[key] for key in d.files}

    def read_all(self, num_shards: int) -> dict:
        """Concatenate every shard (all must be finished)."""
        parts = [self.read_shard(k) for k in range(num_shards)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def my_shards(num_shards: int) -> list:
    """Shards this process owns: k with k % process_count == process_index."""
    return [k for k in range(num_shards) if k % jax.process_count() == jax.process_index()]


def local_mesh() -> Mesh:
    """1-D mesh over this process's devices, axis 'data'."""
    return Mesh(np.asarray(jax.local_devices()), ("data",))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"--batch_size={batch_size} must be a multiple of the {n} local devices")


def shard_batch(tree, mesh: Mesh):
    """Put every array of `tree` on the mesh, split along its first (batch) axis."""
    return jax.device_put(tree, NamedSharding(mesh, P("data")))


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, P()))
