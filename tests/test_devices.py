"""Params replicated once, every batch sharded before any synthesis (issue 13, item 1), on 8 forced CPU devices.

One subprocess (`xla_env(8)`) builds a tiny 8 px generator, edits one batch of 8 (one image per device) with
engines.edit_run.edit_shard (latents) and engines.project_edit.edit_code_shard (projected codes), and repeats
each edit under `jax.transfer_guard`:

- device-to-device transfers are disallowed for the baselines: params are not re-broadcast per call and no array
  made on device 0 is spread over the mesh afterwards (a hotspot would be exactly such a transfer);
- host-to-device transfers are logged and must all land on the 8-device mesh (none on one device) and be small
  (direction vectors, step lengths, scalars: no params, no images);
- the intervention is run with device-to-device transfers logged: there is none (the hyper-parameters and the
  zero Λ are placed on the mesh once per call), and host-to-device transfers are small;
- the batch's styles, Δs's and the three input images are sharded P('data') over all 8 devices;
- the layer programs that `intervention.compile_programs` compiles ahead, in parallel, are the ones the loop
  runs: each is compiled exactly once (item 4);
- one Λ shared by the sharded batch, by loop 'one' and by loop 'steps', agree.

Before the fix, 2 calls of edit_shard (intervention, 8 devices) logged 7264 device-to-device copies; now 0.

Several hosts (item 5): the launcher check, a refused multi-process launch without --multihost, and bin/sample.py
over 2 local processes with the coordinator flags, file for file equal to one process.
"""
import pathlib
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, xla_env

SCRIPT = r"""
import sys
import jax
import numpy as np
from si_jax.editing import masks, pipeline
from si_jax.editing.directions import Direction
from si_jax.editing.intervention import InterventionConfig
from si_jax.engines import edit_run, project_edit, runs
from si_jax.stylegan2 import params as params_lib
from si_jax.stylegan2.config import G2Config

def direction(dim, space, seed):
    n = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    n /= np.linalg.norm(n)
    return Direction(n, space, "x", np.zeros(dim), np.ones(dim), n.astype(np.float64), 0.0, 1.0, 1.0, 0.0, "l2",
                     1.0, 1, 1)

cfg = G2Config.make(img_resolution=8, channel_base=128, channel_max=16, z_dim=16, w_dim=16, mapping_layers=2)
params = params_lib.to_jax_params(params_lib.random_canonical(cfg), cfg)
dirs = {"s": direction(cfg.style_dim, "s", 0), "z": direction(cfg.z_dim, "z", 1), "w": direction(cfg.w_dim, "w", 2)}
mesh = runs.local_mesh()
B = mesh.devices.size
params = runs.replicate(params, mesh)
z = np.random.default_rng(0).standard_normal((B, cfg.z_dim)).astype(np.float32)
pos = np.arange(B)
source = masks.resolve("box:2,2,6,6", B, cfg.img_resolution)
codes_mask = project_edit.mask_function("auto", B, cfg.img_resolution)

def latents(method, steps=1, loop="auto"):
    st = edit_run.EditSettings(method=method, mask=source.spec, batch_size=B,
                               intervention=InterventionConfig(steps))
    return edit_run.edit_shard(params, cfg, dirs, z, pos, source, st, mesh, loop=loop)

batch = pipeline.prepare(params, cfg, runs.shard_batch(z, mesh), dirs)
flat = np.concatenate([np.asarray(s) for s in batch.styles], 1)
w_ref = np.asarray(batch.w)

def codes(method):
    st = edit_run.EditSettings(method=method, mask="auto", batch_size=B, intervention=InterventionConfig(1))
    return project_edit.edit_code_shard(params, cfg, dirs, flat, w_ref, np.zeros((B, 8, 8, 3), np.float32), pos,
                                        codes_mask, st, mesh)

for name, arr in [("styles", batch.styles[0]), ("ds_z", batch.ds_z[-1]), ("ds_n", batch.ds_n[0]),
                  *zip(("img0", "img_z", "img_s"), edit_run.edit_inputs(params, cfg, batch))]:
    assert len(arr.sharding.device_set) == B and arr.sharding.spec[0] == "data", (name, arr.sharding)
runs_ = [(lambda: latents("s")), (lambda: latents("w")), (lambda: codes("s")), (lambda: codes("w"))]
for fn in runs_:
    fn()
import io, logging
compile_log = io.StringIO()
logging.getLogger("jax").addHandler(logging.StreamHandler(compile_log))
jax.config.update("jax_log_compiles", True)
latents("intervention")   # first call: intervention.compile_programs compiles every layer program ahead, once
print("LAYER_COMPILES", compile_log.getvalue().count("compilation of jit(layer_program)"))
latents("intervention", loop="one")   # one program for all layers, compiled ahead once
jax.config.update("jax_log_compiles", False)
print("ONE_COMPILES", compile_log.getvalue().count("compilation of jit(layer_program)"))
print("=== baselines", file=sys.stderr, flush=True)
with jax.transfer_guard_device_to_device("disallow"), jax.transfer_guard_host_to_device("log"):
    for fn in runs_ * 2:
        fn()
print("=== intervention", file=sys.stderr, flush=True)
with jax.transfer_guard_device_to_device("log"), jax.transfer_guard_host_to_device("log"):
    for loop in ("auto", "one"):
        latents("intervention", loop=loop)
print("=== done", file=sys.stderr, flush=True)
print("LAYER_DIMS", *[l.dim for l in cfg.layers])
# shared Λ (one for the whole sharded batch) by loop 'one' against loop 'steps' on the same mesh
from si_jax.editing import intervention
box = np.zeros((B, 8, 8), np.float32)
box[:, 2:6, 2:6] = 1.0
box = runs.shard_batch(box, mesh)
shared = {loop: intervention.intervene(params, cfg, batch.styles, batch.ds_z, batch.ds_n, box, InterventionConfig(2),
                                       shared=True, loop=loop) for loop in ("steps", "one")}
print("SHARED_LAM_MAX_DIFF", max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                                 for a, b in zip(shared["one"].lam, shared["steps"].lam)))
print("SHARED_LAM_MAX", max(float(np.abs(np.asarray(l)).max()) for l in shared["steps"].lam))
print("SHARED_LAM_ROW_SPREAD", max(float(np.ptp(np.asarray(l), axis=0).max()) for l in shared["one"].lam))
print("SHARED_IMAGE_MAX_DIFF", float(np.abs(np.asarray(shared["one"].image) - np.asarray(shared["steps"].image)).max()))
"""

TRANSFER = re.compile(r"(host-to-device|device-to-device) transfer: aval=ShapedArray\((\w+)\[([\d,]*)\]"
                      r"(?:, weak_type=True)?\), dst_sharding=(\w+)")


def _transfers(stderr: str, start: str, end: str) -> list:
    """[(kind, shape tuple, sharding class)] logged between the markers `start` and `end`."""
    part = stderr.split(start, 1)[1].split(end, 1)[0]
    return [(k, tuple(int(d) for d in shape.split(",") if d), sharding)
            for k, _, shape, sharding in TRANSFER.findall(part)]


def test_params_replicated_and_batches_sharded_on_8_devices(tmp_path):
    script = tmp_path / "devices.py"
    script.write_text(SCRIPT)
    env = dict(xla_env(8, cache=False), JAX_PLATFORMS="cpu")   # no persistent cache: the script counts compiles
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    dims = [int(d) for d in proc.stdout.split("LAYER_DIMS", 1)[1].splitlines()[0].split()]
    compiles = int(proc.stdout.split("LAYER_COMPILES", 1)[1].split()[0])
    assert compiles == len(dims), f"{compiles} layer-program compiles for {len(dims)} layers: the loop did not " \
                                  "reuse compile_programs' executables (shardings predicted wrong?)"
    one = int(proc.stdout.split("ONE_COMPILES", 1)[1].split()[0]) - compiles
    assert one == 1, f"loop 'one' compiled {one} programs, not 1 (shardings predicted wrong?)"
    base = _transfers(proc.stderr, "=== baselines", "=== intervention")
    assert base, "the transfer guard logged nothing: the log format changed?"
    assert {k for k, _, _ in base} == {"host-to-device"}
    assert {s for _, _, s in base} == {"NamedSharding"}, "a host array was put on a single device"
    assert all(int(np.prod(shape)) <= 64 for _, shape, _ in base), base   # vectors, not images
    inter = _transfers(proc.stderr, "=== intervention", "=== done")
    assert not [shape for k, shape, _ in inter if k == "device-to-device"]
    assert all(int(np.prod(shape)) <= 64 for _, shape, _ in inter), inter
    assert {s for k, _, s in inter if k == "host-to-device"} <= {"NamedSharding"}
    # shared Λ on the sharded batch: loop 'one' (its loss summed over the 8 devices) finds the Λ of loop 'steps'
    # (test_intervention's bounds for 'one'), one Λ per layer (broadcast to the batch: every row the same)
    assert float(proc.stdout.split("SHARED_LAM_ROW_SPREAD", 1)[1].split()[0]) == 0.0
    assert float(proc.stdout.split("SHARED_LAM_MAX_DIFF", 1)[1].split()[0]) < 1e-2 < \
        float(proc.stdout.split("SHARED_LAM_MAX ", 1)[1].split()[0])   # and Λ moved from its start
    assert float(proc.stdout.split("SHARED_IMAGE_MAX_DIFF", 1)[1].split()[0]) < 1e-3


# ------------------------------------------------------------------------------------------------ several hosts

def _sample(out, *extra, env=None):
    """bin/sample.py on the demo generator, 8 samples in shards of 2, with images; -> Popen."""
    cmd = [sys.executable, str(REPO / "bin" / "sample.py"), "--weights=builtin:demo", "--num_samples=8",
           "--batch_size=2", "--save_images", f"--output_dir={out}", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env={**xla_env(1), "JAX_PLATFORMS": "cpu", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(pathlib.Path(folder).rglob("*")) if p.is_file()}


def test_launcher_environment_detected():
    from si_jax.engines import errors, hosts

    assert hosts.multihost_launch({}) is None
    assert hosts.multihost_launch({"SLURM_STEP_NUM_TASKS": "1", "OMPI_COMM_WORLD_SIZE": "x"}) is None
    assert hosts.multihost_launch({"OMPI_COMM_WORLD_SIZE": "4"}) == "OMPI_COMM_WORLD_SIZE=4"
    assert hosts.multihost_launch({"TPU_WORKER_HOSTNAMES": "a,b"}) == "TPU_WORKER_HOSTNAMES=a,b"
    with pytest.raises(errors.UsageError, match="needs --multihost"):
        hosts.start_hosts(False, process_id=1, environ={})
    with pytest.raises(errors.UsageError, match="process_id=2.*must be in"):
        hosts.start_hosts(True, "localhost:1", 2, 2, environ={})


def test_multi_process_launch_without_multihost_refused(tmp_path):
    proc = _sample(tmp_path / "out", env={"SLURM_STEP_NUM_TASKS": "2"})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert "SLURM_STEP_NUM_TASKS=2" in err and "--multihost" in err
    assert not (tmp_path / "out").exists()


def test_two_processes_with_coordinator_flags_write_the_files_of_one(tmp_path):
    """2 CPU processes over localhost (--coordinator_address / --num_processes / --process_id, no patching of
    jax.distributed): process p samples shards p, p + 2; process 0 writes manifest.json and the contact sheet
    after the barrier; every file, the PNGs (one display range) included, has the bytes of a one-process run."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    one = _sample(tmp_path / "one")
    two = [_sample(tmp_path / "two", "--multihost", f"--coordinator_address=localhost:{port}", "--num_processes=2",
                   f"--process_id={p}") for p in (0, 1)]
    for proc in (one, *two):
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    want, got = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert sorted(got) == sorted(want) and "manifest.json" in got and "contact_sheet.png" in got
    assert [name for name in want if got[name] != want[name]] == []
