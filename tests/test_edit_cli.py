"""bin/edit.py on the built-in generator: outputs, demo mode, kill-and-resume, 8 devices, bad input.

The engine runs in-process (conftest.run_engine: settings from the flags, then edit_cli.run(settings, out)); the
demo, kill-and-resume, two processes and 8 forced devices run the binary as a process (conftest.run_binary). The
processes share one persistent compilation cache, so only the first pays for compiling the layer programs.
"""
import json
import pathlib
import subprocess
import time

import numpy as np
import pytest
from conftest import REPO, engine_error, random_directions, run_binary, run_engine, run_python, xla_env

import si_jax
from si_jax.editing import directions
from si_jax.engines import samples
from si_jax.stylegan2 import builtin, loading

FAST = {"steps_per_layer": 3, "batch_size": 2}


@pytest.fixture(scope="module")
def cache(jax_cache):
    return jax_cache


@pytest.fixture(scope="module")
def direction_file(tmp_path_factory):
    """Directions for builtin:demo fit on random codes (conftest.random_directions): every test here compares
    runs with each other, or SI with the Z edit on the same direction; none needs the direction to mean anything
    (synthetic.fit_demo_directions' 2000 labelled samples cost ~11 CPU-s)."""
    canonical, cfg = builtin.demo_generator()
    path = tmp_path_factory.mktemp("dirs") / "random.npz"
    directions.save_directions(path, random_directions(cfg), generator_id=si_jax.fingerprint(canonical))
    return str(path)


def _args(flags: dict) -> list:
    return [f"--{k}={v}" for k, v in flags.items()]


def edit_process(cache, flags: dict, *args, devices=1, full_opt=False, env=None, **popen_kw):
    """bin/edit.py with `flags` (and `args`) as a process; checked to succeed, or with popen_kw (conftest.run_python)
    started: -> the Popen."""
    argv = [f"--compilation_cache={cache}", *_args(flags), *args]
    if popen_kw:
        return run_binary("edit.py", *argv, devices=devices, popen=True, **popen_kw)
    proc = run_binary("edit.py", *argv, devices=devices, full_opt=full_opt, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _real(direction_file, out, **extra):
    return {"weights": "builtin:demo", "direction": direction_file, "output_dir": str(out), "num_samples": 4,
            "seed": 3, "mask": "box:4,4,16,16", **FAST, **extra}


def _shards(out):
    files = sorted(pathlib.Path(out, "shards").glob("shard_*.npz"))
    return {f.name: dict(np.load(f)) for f in files}


def _tree(folder):
    """{relative path: bytes} of every file under folder."""
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_same_files(ref, out):
    a, b = _tree(ref), _tree(out)
    assert sorted(a) == sorted(b)
    differ = [name for name in a if a[name] != b[name]]
    assert not differ, f"files differ from the uninterrupted run: {differ}"


def test_edit_outputs_and_content(tmp_path, cache, direction_file):
    out = tmp_path / "run"
    assert run_engine("edit.py", _real(direction_file, out)) == json.loads((out / "summary.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 4 and summary["method"] == "intervention"
    shards = _shards(out)
    assert len(shards) == 2
    s0 = shards["shard_00000.npz"]
    assert s0["styles_out"].shape == (2, builtin.DEMO_CONFIG.style_dim)
    assert 0.0 <= s0["lam"].min() and s0["lam"].max() <= 1.0 and s0["lam"].max() > 0
    z = samples.latents(3, [0, 1], builtin.DEMO_CONFIG.z_dim)
    np.testing.assert_array_equal(s0["z"], z)
    assert np.all(np.sign(s0["score_after"] - s0["score_before"]) != 0)
    from PIL import Image

    assert Image.open(out / "grid.png").size[0] > 200
    assert len(list((out / "images").glob("*.png"))) == 4
    modes = {oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()}
    assert modes == {"0o644"}, modes
    assert "finished" not in summary  # summary.json is deterministic (wall-clock time goes to the log)
    # the Z-space baseline on the same images is much less local
    zout = tmp_path / "z"
    run_engine("edit.py", _real(direction_file, zout, method="z"))
    z_mse = json.loads((zout / "summary.json").read_text())["mse_outside_mean"]
    assert summary["mse_outside_mean"] < 0.5 * z_mse


def _index_of(lines, text, after=-1):
    """Index of the first line after `after` that contains `text` (fails naming it when there is none)."""
    found = [i for i, line in enumerate(lines) if text in line and i > after]
    assert found, f"no line with {text!r} after line {after}:\n" + "\n".join(lines[-40:])
    return found[0]


def test_demo_default_runs_says_what_it_compiles_and_reuses_its_directions(tmp_path, cache):
    """Nobody waits in silence: before compiling, the demo says what it fits and compiles, then counts the layer
    programs as they finish. The second run reuses the fitted directions (the same file bytes, no fitting)."""
    out, dirs_cache = tmp_path / "demo", {"SI_JAX_DEMO_DIRECTIONS": str(tmp_path / "dirs")}
    proc = edit_process(cache, {"output_dir": out, "num_samples": 2, **FAST}, full_opt=True, env=dirs_cache)
    assert "DEMO" in proc.stdout and "bin/convert_weights.py" in proc.stdout
    assert (out / "grid.png").is_file() and (out / "direction.npz").is_file() and (out / "table1.md").is_file()
    lines = proc.stdout.splitlines()
    fit = _index_of(lines, "toyfaces: labelling 2000 samples with the classifier")
    announce = _index_of(lines, "compiling 1 program of 'intervention', one for all layers as the run is short, "
                         f"(first run only; cached in {cache})", fit)   # 1 batch: loop 'one' (resolve_loop)
    _index_of(lines, "finished in", _index_of(lines, "  compiled 1/1 (", announce))
    assert "Very slow compile" not in proc.stderr and "slow_operation_alarm" not in proc.stderr

    again = edit_process(cache, {"output_dir": tmp_path / "demo2", "num_samples": 2, **FAST}, full_opt=True,
                         env=dirs_cache)
    assert "toyfaces: reused the 'eyeglasses' directions" in again.stdout and "labelling" not in again.stdout
    assert (tmp_path / "demo2" / "direction.npz").read_bytes() == (out / "direction.npz").read_bytes()


@pytest.fixture(scope="module")
def ref8(tmp_path_factory, direction_file):
    """An uninterrupted 1-device run of 8 samples (4 shards of 2), shared by the resume and 8-device tests."""
    ref = tmp_path_factory.mktemp("ref8")
    run_engine("edit.py", _real(direction_file, ref, num_samples=8))
    return ref


def test_kill_and_resume_gives_identical_results(tmp_path, cache, direction_file, ref8, capsys):
    """The binary killed after its first shard; the run resumed (in-process) writes the files of ref8."""
    ref, out = ref8, tmp_path / "resumed"
    flags = _real(direction_file, out, num_samples=8)
    proc = edit_process(cache, flags, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((out / "shards").glob("shard_*.npz")):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = len(list((out / "shards").glob("shard_*.npz")))
    assert 1 <= done < 4, f"kill came too late or too early ({done} shards)"
    # what a kill during a write leaves behind (shard 3 is never done yet): removed on resume
    (out / "shards" / ".shard_00003.npz.tmp99999").write_bytes(b"half a file")
    (out / "images").mkdir(exist_ok=True)
    (out / "images" / ".000007.png.tmp99999").write_bytes(b"half a file")
    capsys.readouterr()
    run_engine("edit.py", flags)
    assert "resuming" in capsys.readouterr().out
    _assert_same_files(ref, out)   # every file, byte for byte: shards, previews, PNGs, grid, summary, run.json
    # a rerun of the finished run rewrites grid.png and summary.json with the same bytes
    run_engine("edit.py", flags)
    _assert_same_files(ref, out)


def test_two_processes_write_the_same_files(tmp_path, cache, direction_file):
    """--multihost with 2 local CPU processes (process p edits shards p, p + 2, ...; process 0 writes grid.png and
    summary.json after a barrier): every file is byte-identical to a one-process run."""
    import socket

    from test_sample_fit_cli import MULTIHOST_DRIVER

    one, two = tmp_path / "one", tmp_path / "two"
    run_engine("edit.py", _real(direction_file, one, method="s", num_samples=4))   # 2 shards of 2
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    driver = tmp_path / "driver.py"
    driver.write_text(MULTIHOST_DRIVER)
    cmd = [REPO / "bin" / "edit.py", f"--compilation_cache={cache}", "--multihost",
           *_args(_real(direction_file, two, method="s", num_samples=4))]
    procs = [run_python(driver, pid, port, *cmd, popen=True, env={"JAX_PLATFORMS": "cpu"}, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    _assert_same_files(one, two)


def test_different_settings_refused(tmp_path, direction_file, capsys):
    out = tmp_path / "run"
    run_engine("edit.py", _real(direction_file, out, method="z"))
    assert "different settings" in engine_error(capsys, "edit.py", _real(direction_file, out, method="s"))


def test_eight_devices_match_one(tmp_path, cache, direction_file, ref8):
    """8 forced CPU devices, one batch of 8 split 1 per device == the 1-device run at batch 2 (ref8)."""
    eight = tmp_path / "eight"
    proc = edit_process(cache, _real(direction_file, eight, num_samples=8, batch_size=8), devices=8)
    assert "8 local device(s)" in proc.stdout
    one = _shards(ref8)
    a = {k: np.concatenate([one[name][k] for name in sorted(one)]) for k in ("z", "styles_out", "mse_outside")}
    b = _shards(eight)["shard_00000.npz"]
    np.testing.assert_array_equal(a["z"], b["z"])
    # Other batch shapes may round differently in XLA; Adam divides by sqrt(v), so a channel whose gradient is ~0
    # can take a different step. Nearly all style values must agree closely, all approximately.
    diff = np.abs(a["styles_out"] - b["styles_out"])
    assert np.mean(diff <= 1e-3) >= 0.99, f"{np.mean(diff > 1e-3):.2%} of style values differ by > 1e-3"
    assert diff.max() < 5e-2, diff.max()
    np.testing.assert_allclose(a["mse_outside"], b["mse_outside"], rtol=2e-2, atol=1e-4)


@pytest.mark.parametrize("case", ["missing_weights", "bad_mask_spec", "mask_count", "foreign_direction",
                                  "nan_masks", "only_direction"])
def test_bad_input_one_error_line_nothing_written(tmp_path, direction_file, case, capsys):
    out = tmp_path / "out"
    args = _real(direction_file, out)
    if case == "missing_weights":
        args["weights"] = str(tmp_path / "nope.safetensors")
    elif case == "bad_mask_spec":
        args["mask"] = "box:4,4,2"
    elif case == "mask_count":
        np.save(tmp_path / "m.npy", np.zeros((3, 32, 32), np.float32))
        args = {**args, "mask": None, "masks": str(tmp_path / "m.npy")}
    elif case == "nan_masks":
        np.save(tmp_path / "m.npy", np.full((4, 32, 32), np.nan, np.float32))
        args = {**args, "mask": None, "masks": str(tmp_path / "m.npy")}
    elif case == "foreign_direction":
        rng = np.random.default_rng(0)
        codes = rng.standard_normal((64, 10))
        y = codes[:, 0] > 0
        other = {k: directions.fit_direction(codes, y, space=k) for k in ("s", "z", "w")}
        directions.save_directions(tmp_path / "other.npz", other)
        args["direction"] = str(tmp_path / "other.npz")
    elif case == "only_direction":
        del args["weights"]
    engine_error(capsys, "edit.py", args)
    assert not out.exists()


def test_demo_directions_cache_reuses_and_refits_a_damaged_file(tmp_path):
    """demo.cached_directions: fitted once, then read back (same normals); a damaged file is fitted again."""
    from si_jax.engines import demo
    from si_jax.world import judges as judges_lib

    canonical, cfg = loading.load_canonical(builtin.BUILTIN_TOYFACES)
    params, judges, logs = si_jax.to_jax_params(canonical, cfg), judges_lib.load_judges(), []
    fit = lambda: demo.cached_directions(params, cfg, judges, "eyeglasses", si_jax.fingerprint(canonical),  # noqa
                                         num=64, log=logs.append, cache_dir=tmp_path)
    first = fit()
    (path,) = tmp_path.glob("eyeglasses_*.npz")
    assert any("labelling 64 samples" in m for m in logs)
    logs.clear()
    second = fit()
    assert any("reused" in m for m in logs) and not any("labelling" in m for m in logs)
    for space in ("s", "z", "w"):
        np.testing.assert_array_equal(first[space].normal, second[space].normal)
    path.write_bytes(b"not an npz")
    logs.clear()
    third = fit()
    assert any("damaged" in m for m in logs) and any("labelling 64 samples" in m for m in logs)
    np.testing.assert_array_equal(first["s"].normal, third["s"].normal)
    assert directions.load_directions(path)["s"].dim == cfg.style_dim


QUIET_PROBE = "from si_jax.engines import hosts; hosts.setup_jax(''); import jax; print(jax.jit(lambda x: x + 1)(1.0))"


@pytest.mark.parametrize("level, shown", [(None, False), ("0", True)])
def test_xla_log_lines_are_hidden_unless_the_user_sets_the_level(tmp_path, level, shown):
    """XLA's C++ log lines (such as the 'Very slow compile?' alarm; here the ERROR lines of a dump folder that cannot
    be created) do not reach the terminal after hosts.setup_jax, unless TF_CPP_MIN_LOG_LEVEL is set explicitly."""
    env = {"XLA_FLAGS": xla_env()["XLA_FLAGS"] + f" --xla_dump_to={tmp_path / 'file' / 'dump'}"}
    (tmp_path / "file").write_text("a file, not a folder")
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    unset = ("JAX_COMPILATION_CACHE_DIR",) + (() if level is not None else ("TF_CPP_MIN_LOG_LEVEL",))
    proc = run_python("-c", QUIET_PROBE, env=env, unset=unset, timeout=120)   # no cache: XLA must compile here
    assert proc.returncode == 0 and proc.stdout.strip() == "2.0", proc.stderr[-2000:]
    assert ("dump" in proc.stderr) == shown, proc.stderr[-2000:]


def test_demo_folder_is_per_attribute():
    """`bin/edit.py` then `bin/edit.py --attribute=smile` must not collide in one folder (the second run was
    refused for 'other settings' after fitting its directions)."""
    from si_jax.engines import edit_cli

    assert edit_cli.demo_dir(None) == edit_cli.demo_dir("eyeglasses") == "si_jax_demo"
    assert edit_cli.demo_dir("smile") == "si_jax_demo_smile" != edit_cli.demo_dir("bangs")
