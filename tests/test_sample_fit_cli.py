"""bin/sample.py and bin/fit_direction.py (builtin:demo generator) and engines.samples. Both run in-process
(conftest.run_engine) except where a process of its own is the point: kill-and-resume, 8 forced devices, two
processes (conftest.run_binary)."""
import pathlib
import shutil
import subprocess
import time

import jax
import numpy as np
import pytest
from PIL import Image

import si_jax
from conftest import REPO, engine_error, run_binary, run_engine, run_python
from si_jax.editing import directions
from si_jax.attributes import synthetic
from si_jax.engines import samples
from si_jax.evaluation import pictures
from si_jax.stylegan2.builtin import BUILTIN_DEMO

N, BS, SEED = 480, 16, 7            # 30 shards: enough to kill a run half-way
NUM_SHARDS = -(-N // BS)


def run_bin(name, *args, devices=None, wait=True):
    """bin/<name> as a process with 1 CPU device (or `devices` forced host devices); CompletedProcess or Popen."""
    kw = dict(devices=devices or 1, env={"JAX_PLATFORMS": "cpu"})
    if not wait:
        return run_binary(name, *args, popen=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return run_binary(name, *args, timeout=300, **kw)


def sample_flags(out, *, seed=SEED, batch_size=BS, images=True) -> dict:
    return {"weights": BUILTIN_DEMO, "num_samples": N, "seed": seed, "output_dir": str(out), "batch_size": batch_size,
            "save_images": images}


def sample_args(out, **kw):
    """sample_flags as a command line."""
    return [f"--{k}={v}" if not isinstance(v, bool) else f"--{'' if v else 'no'}{k}"
            for k, v in sample_flags(out, **kw).items()]


def ok(proc):
    assert proc.returncode == 0, proc.stderr
    return proc


def one_error(proc, *needles):
    """Exit status != 0 and exactly one `error:` line on stderr, containing every needle."""
    assert proc.returncode != 0, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def temp_files(folder):
    return [p for p in pathlib.Path(folder).rglob("*") if ".tmp" in p.name]


def assert_same_files(ref, out):
    """The same relative file names under both folders, with the same bytes."""
    tree = lambda f: {str(p.relative_to(f)): p for p in sorted(pathlib.Path(f).rglob("*")) if p.is_file()}  # noqa
    a, b = tree(ref), tree(out)
    assert sorted(a) == sorted(b)
    differ = [name for name in a if a[name].read_bytes() != b[name].read_bytes()]
    assert not differ, f"{len(differ)} files differ, e.g. {differ[:5]}"


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """An uninterrupted 1-device run with images -> (folder, load_samples dict)."""
    out = tmp_path_factory.mktemp("samples") / "ref"
    run_engine("sample.py", sample_flags(out))
    return out, samples.load_samples(out)


@pytest.fixture(scope="module")
def demo():
    """(params, cfg, space, synth): synth(flat styles [n, S]) -> images [n, R, R, 3] (jitted, const noise)."""
    params, cfg = si_jax.load_generator(BUILTIN_DEMO)
    space = si_jax.StyleSpace.of(cfg)
    synth = jax.jit(lambda s: si_jax.synthesize(params, cfg, space.split(s)))
    return params, cfg, space, lambda s: np.asarray(synth(s))


@pytest.fixture(scope="module")
def scores(ref, demo):
    """The synthetic attribute's score [N] of every sample, from images synthesized in-process from the styles."""
    return synthetic.RegionAttribute().score(demo[3](ref[1]["styles"]))


# ------------------------------------------------------------------------------------------------- sample.py


def test_sample_outputs(ref, demo):
    out, data = ref
    params, cfg, space, synth = demo
    m = data["manifest"]
    assert (m["num_samples"], m["num_shards"], m["shard_size"]) == (N, NUM_SHARDS, BS)
    assert (m["z_dim"], m["w_dim"], m["style_dim"]) == (cfg.z_dim, cfg.w_dim, space.total)
    assert [l["name"] for l in m["style_layers"]] == list(space.names)
    assert [l["dim"] for l in m["style_layers"]] == list(space.dims)
    canonical, _ = si_jax.load_canonical(BUILTIN_DEMO)
    assert m["generator_id"] == si_jax.fingerprint(canonical)
    assert data["z"].shape == (N, cfg.z_dim) and data["w"].shape == (N, cfg.w_dim)
    assert data["styles"].shape == (N, space.total) and data["z"].dtype == np.float32
    np.testing.assert_array_equal(data["index"], np.arange(N))
    # z depends on (seed, i) only, by the documented rule
    for i in (0, 17, N - 1):
        np.testing.assert_array_equal(data["z"][i],
                                      np.random.default_rng([SEED, i]).standard_normal(cfg.z_dim).astype(np.float32))
    # w and styles are the generator's
    w = si_jax.mapping(params, cfg, data["z"][:32])
    np.testing.assert_allclose(data["w"][:32], w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data["styles"][:32], space.concat(si_jax.styles_from_w(params, cfg, w)),
                               rtol=1e-5, atol=1e-5)
    # images: one PNG per sample, the generator's images in the manifest's display range
    assert len(list((out / "images").glob("*.png"))) == N
    lo, hi = m["images"]["display_range"]
    img = synth(data["styles"][:4])
    for i in range(4):
        png = np.asarray(Image.open(out / samples.image_file(i)))
        assert png.shape == (cfg.img_resolution, cfg.img_resolution, 3)
        assert np.abs(png.astype(int) - pictures.to_uint8(img[i], lo, hi)).max() <= 1
    with Image.open(out / "contact_sheet.png") as sheet:
        sheet.verify()
    with Image.open(out / "contact_sheet.png") as sheet:
        side = (8 * (cfg.img_resolution + 2) + 2) * pictures.upscale_for_viewing(cfg.img_resolution)
        assert sheet.format == "PNG" and sheet.size == (side, side)
    assert not temp_files(out)
    assert {oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()} == {"0o644"}


def test_kill_and_resume_gives_identical_outputs(ref, tmp_path, capsys):
    """The binary killed after its first shard; the run resumed (in-process) writes the files of ref."""
    out = tmp_path / "resumed"
    proc = run_bin("sample.py", *sample_args(out), wait=False)
    deadline = time.monotonic() + 120
    try:
        while True:
            done = len(list((out / "shards").glob("shard_*.npz"))) if (out / "shards").is_dir() else 0
            if done >= 1:
                proc.kill()
                break
            assert proc.poll() is None, "sample.py ended before it could be killed"
            assert time.monotonic() < deadline, "no shard appeared"
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait()
    killed_at = len(list((out / "shards").glob("shard_*.npz")))
    assert 1 <= killed_at < NUM_SHARDS, killed_at
    assert not (out / samples.MANIFEST).exists()
    with pytest.raises(ValueError, match="unfinished"):
        samples.load_samples(out)
    # what a kill during a write leaves behind (the last shard is never done yet): must be cleaned up on resume
    (out / "shards" / f".shard_{NUM_SHARDS - 1:05d}.npz.tmp99999").write_bytes(b"half a file")
    (out / "images").mkdir(exist_ok=True)
    (out / "images" / f".{N - 1:06d}.png.tmp99999").write_bytes(b"half a file")

    capsys.readouterr()
    run_engine("sample.py", sample_flags(out))
    assert "resuming" in capsys.readouterr().err
    assert_same_files(ref[0], out)   # every file byte for byte: shards, PNGs, contact sheet, manifest, run.json
    run_engine("sample.py", sample_flags(out))   # a rerun of the finished run changes no byte
    assert_same_files(ref[0], out)


def test_different_settings_refused(ref, capsys):
    out = ref[0]
    before = (out / "run.json").read_text()
    line = engine_error(capsys, "sample.py", sample_flags(out, seed=SEED + 1))
    assert "different settings" in line and "seed" in line
    assert (out / "run.json").read_text() == before


def test_eight_devices_match_one_device(ref, tmp_path):
    proc = ok(run_bin("sample.py", *sample_args(tmp_path / "d8", images=False), devices=8))
    assert "8 local device(s)" in proc.stderr
    got, want = samples.load_samples(tmp_path / "d8"), ref[1]
    np.testing.assert_array_equal(got["z"], want["z"])
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["styles"], want["styles"], rtol=1e-5, atol=1e-5)
    one_error(run_bin("sample.py", *sample_args(tmp_path / "d8b", batch_size=12), devices=8), "multiple of the 8")
    assert not (tmp_path / "d8b").exists()


MULTIHOST_DRIVER = """
import functools, runpy, sys
import jax
pid, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize = functools.partial(jax.distributed.initialize, coordinator_address=f"localhost:{port}",
                                               num_processes=2, process_id=pid)
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_two_processes_share_one_folder(ref, tmp_path):
    """--multihost with 2 local CPU processes (jax.distributed, explicit coordinator): same arrays as 1 process."""
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    driver = tmp_path / "driver.py"
    driver.write_text(MULTIHOST_DRIVER)
    out = tmp_path / "mh"
    cmd = [REPO / "bin" / "sample.py", *sample_args(out, images=False), "--multihost"]
    procs = [run_python(driver, pid, port, *cmd, popen=True, env={"JAX_PLATFORMS": "cpu"}, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    assert "2 process(es)" in results[0][1] and "wrote" in results[0][0]
    got = samples.load_samples(out)
    for key in samples.ARRAYS:
        np.testing.assert_array_equal(got[key], ref[1][key])


def test_load_samples_errors(ref, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        samples.load_samples(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest"):
        samples.load_samples(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(ref[0], broken, ignore=shutil.ignore_patterns("images"))
    (broken / samples.shard_file(3)).unlink()
    with pytest.raises(FileNotFoundError, match="shard_00003.npz .* missing"):
        samples.load_samples(broken)


# ------------------------------------------------------------------------------------------ fit_direction.py


def check_directions(path, data, n_used):
    table = pathlib.Path(str(path)[:-4] + ".table1.md")
    assert table.is_file() and "| s | S |" in table.read_text()
    dirs = directions.load_directions(path, expect_generator_id=data["manifest"]["generator_id"])
    assert sorted(dirs) == ["s", "w", "z"]
    dims = {"s": data["styles"].shape[1], "z": data["z"].shape[1], "w": data["w"].shape[1]}
    for key, d in dirs.items():
        assert d.space == key and d.dim == dims[key]
        assert d.n_train + d.n_val == n_used
        assert d.train_acc > 0.6 and d.val_acc > 0.6, (key, d.train_acc, d.val_acc)
    assert dirs["s"].penalty == "l1" and dirs["s"].sparsity > 0.5
    return dirs


def test_fit_direction_npy_labels(ref, scores, tmp_path, capsys):
    labels = tmp_path / "red.npy"
    np.save(labels, scores > np.median(scores))
    capsys.readouterr()
    run_engine("fit_direction.py", {"samples": str(ref[0]), "labels": str(labels), "output": str(tmp_path / "red.npz")})
    assert "| s | S | red |" in capsys.readouterr().out
    check_directions(tmp_path / "red.npz", ref[1], N)
    for name in ("red.npz", "red.table1.md"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o644", name


def test_fit_direction_csv_scores_with_ratio(ref, scores, tmp_path):
    labels = tmp_path / "scores.csv"
    labels.write_text("index,score\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(scores)))
    run_engine("fit_direction.py", {"samples": str(ref[0]), "labels": str(labels), "ratio": 0.3,
                                    "attribute": "red_top_left", "output": str(tmp_path / "dirs.npz")})
    dirs = check_directions(tmp_path / "dirs.npz", ref[1], 2 * int(0.3 * N))
    assert dirs["z"].attribute == "red_top_left"


def _bad_labels(kind, tmp_path, scores):
    if kind == "count":
        path = tmp_path / "short.npy"
        np.save(path, scores[:-1] > np.median(scores))
        return path, {}, "479 entries"
    if kind == "nan":
        path, bad = tmp_path / "nan.npy", scores.copy()
        bad[5] = np.nan
        np.save(path, bad)
        return path, {"threshold": 0.0}, "NaN"
    if kind == "single_class":
        path = tmp_path / "one.npy"
        np.save(path, np.zeros(N, bool))
        return path, {}, "both classes"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing_samples", "unfinished", "count", "nan", "single_class"])
def test_fit_direction_bad_inputs(kind, ref, scores, tmp_path, capsys):
    samples_dir, extra = ref[0], {}
    labels = tmp_path / "ok.npy"
    np.save(labels, scores > np.median(scores))
    if kind == "missing_samples":
        samples_dir, needle = tmp_path / "no_such_dir", "not found"
    elif kind == "unfinished":
        samples_dir, needle = tmp_path / "unfinished", "unfinished"
        shutil.copytree(ref[0], samples_dir, ignore=shutil.ignore_patterns("images", samples.MANIFEST))
    else:
        labels, extra, needle = _bad_labels(kind, tmp_path, scores)
    output = tmp_path / "out.npz"
    line = engine_error(capsys, "fit_direction.py", {"samples": str(samples_dir), "labels": str(labels), **extra,
                                                     "output": str(output)})
    assert needle in line, line
    assert not output.exists() and not (tmp_path / "out.table1.md").exists()
    assert not temp_files(tmp_path)
