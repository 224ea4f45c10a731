"""Bad input never becomes a result (the rule in si_jax.engines.errors): every binary validates before it creates
anything, refuses NaN / inf results naming the samples and the likely setting, writes its outputs atomically at
the end, and reports OS errors, damaged files, out-of-memory and misuse as ONE `error:` line.

Each case is a binary's flags as a dict, run with cheap settings (builtin:demo, a few samples): in-process for the
binaries with an engine (conftest.run_engine: settings from the flags, then engine.run(settings, out), through
errors.run_guarded as the binary does), as a true subprocess (conftest.run_binary) for the others, for one exit-status
case per binary and for what needs its own process (forced devices). "Nothing written" means: no file in the
case's folder or the shared inputs changed.
"""
import errno
import os
import pathlib
import shutil

import numpy as np
import pytest

import si_jax
from conftest import REPO, engine_error, run_binary, run_engine, run_python
from si_jax import storage
from si_jax.editing import directions
from si_jax.engines import checks, errors, runs
from si_jax.stylegan2.builtin import BUILTIN_DEMO

CHEAP_EDIT = {"weights": "builtin:demo", "num_samples": 2, "batch_size": 2, "steps_per_layer": 1,
              "mask": "box:4,4,16,16"}
IN_PROCESS = ("edit.py", "evaluate.py", "fit_direction.py", "generate.py", "project.py", "sample.py")   # run_engine


def as_args(flags: dict) -> list:
    """{flag: value} -> the command line ('--flag=value'; True: '--flag'; a list: the flag repeated)."""
    args = []
    for name, value in flags.items():
        for v in value if isinstance(value, list) else [value]:
            args.append(f"--{name}" if v is True else f"--{name}={v}")
    return args


def run_bin(name, *args, devices=1):
    return run_binary(name, *args, devices=devices, env={"JAX_PLATFORMS": "cpu"}, timeout=300)


def snapshot(*folders) -> dict:
    """{path: (size, mtime_ns, mode)} of every file and folder under `folders`."""
    out = {}
    for folder in folders:
        for p in [pathlib.Path(folder), *pathlib.Path(folder).rglob("*")]:
            st = p.stat()
            out[str(p)] = (st.st_size if p.is_file() else 0, st.st_mtime_ns, st.st_mode)
    return out


def one_error(proc, *needles) -> str:
    """Exit status 1, exactly one `error:` line on stderr and it is the last line; it contains every needle."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    found = [line for line in lines if line.startswith("error:")]
    assert len(found) == 1 and lines[-1] == found[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in found[0], found[0]
    return found[0]


def fails(capsys, name, flags: dict, *needles, devices=1, subprocess=False) -> str:
    """bin/<name> with `flags` fails with one error line holding every needle: in-process where the binary has an
    engine (and neither `subprocess` nor forced `devices` ask for a process of its own), else as a process."""
    if name in IN_PROCESS and not subprocess and devices == 1:
        line = engine_error(capsys, name, flags)
    else:
        line = one_error(run_bin(name, *as_args(flags), devices=devices))
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Shared inputs: latents, a direction file for builtin:demo, a finished sample folder (psi 0.7), labels."""
    base = tmp_path_factory.mktemp("inputs")
    canonical, cfg = si_jax.load_canonical(BUILTIN_DEMO)
    rng = np.random.default_rng(0)
    np.savez(base / "z.npz", z=rng.standard_normal((3, cfg.z_dim)).astype(np.float32))
    np.save(base / "z.npy", rng.standard_normal((3, cfg.z_dim)))
    np.savez(base / "z0.npz", z=np.zeros((0, cfg.z_dim), np.float32))
    np.savez(base / "zc.npz", z=rng.standard_normal((3, cfg.z_dim)) + 1j)
    np.save(base / "labels.npy", np.arange(8) % 2 == 0)
    dims = {"s": cfg.style_dim, "z": cfg.z_dim, "w": cfg.w_dim}   # any valid directions do for bad input
    fitted = {}
    for space, dim in dims.items():
        codes = rng.standard_normal((64, dim)).astype(np.float32)
        fitted[space] = directions.fit_direction(codes, codes[:, 0] > 0, space=space, attribute="x")
    directions.save_directions(base / "dir.npz", fitted, generator_id=si_jax.fingerprint(canonical))
    run_engine("sample.py", {"weights": "builtin:demo", "num_samples": 8, "batch_size": 4, "truncation_psi": 0.7,
                             "save_images": True, "output_dir": str(base / "samples")})
    (base / "afile").write_text("not a folder")
    (base / "adir").mkdir()
    return base


def _fill(flags, inputs, out) -> dict:
    return {k: v.format(I=inputs, O=out) if isinstance(v, str) else v for k, v in flags.items()}


GEN = {"weights": "builtin:demo", "latents": "{I}/z.npz", "output": "{O}/res.npz"}
SAMPLE = {"weights": "builtin:demo", "num_samples": 8, "output_dir": "{O}/run"}
FIT = {"samples": "{I}/samples", "labels": "{I}/labels.npy", "output": "{O}/d.npz"}
EDIT = {"direction": "{I}/dir.npz", "output_dir": "{O}/run", **CHEAP_EDIT}
EVAL = {"weights": "builtin:demo", "direction": "{I}/dir.npz", "output_dir": "{O}/ev", "num_samples": 2,
        "methods": "s", "mask": "box:4,4,16,16"}

# Every binary with a setting that makes the computation overflow: exit 1, one line naming the cause, nothing new.
NAN_CASES = {
    "generate": ("generate.py", {**GEN, "truncation_psi": 1e38}, "--truncation_psi=1e+38"),
    "sample": ("sample.py", {**SAMPLE, "truncation_psi": 1e38, "save_images": True}, "--truncation_psi=1e+38"),
    "fit_direction": ("fit_direction.py", {**FIT, "C_s": float("nan")}, "--C_s=nan"),
    "edit": ("edit.py", {**EDIT, "method": "s", "s_scale": 1e38}, "--s_scale=1e+38"),
    "evaluate": ("evaluate.py", {**EVAL, "truncation_psi": 1e38}, "--truncation_psi=1e+38"),
    "generator_quality": ("generator_quality.py", {"num": 2, "truncation_psi": 1e38, "output": "{O}/q.json"},
                          "--truncation_psi=1e+38"),
}


@pytest.mark.parametrize("case", sorted(NAN_CASES))
def test_nan_producing_setting_fails_and_writes_nothing(case, inputs, tmp_path, capsys):
    name, flags, needle = NAN_CASES[case]
    before = snapshot(inputs, tmp_path)
    fails(capsys, name, _fill(flags, inputs, tmp_path), needle)
    assert snapshot(inputs, tmp_path) == before


NAN, INF = float("nan"), float("inf")
# (binary, flags, words of the one error line[, devices]). Flags and inputs that are refused before anything is
# loaded or created. The cases marked PROCESS run as a subprocess: one exit-status run per binary.
PROCESS = "process"
BAD = {
    # non-finite or out-of-range numbers
    "generate_psi_nan": ("generate.py", {**GEN, "truncation_psi": NAN}, "--truncation_psi=nan must be a finite number"),
    "generate_psi_inf": ("generate.py", {**GEN, "truncation_psi": INF}, "--truncation_psi=inf"),
    "evaluate_psi_nan": ("evaluate.py", {**EVAL, "truncation_psi": NAN}, "--truncation_psi=nan"),
    "evaluate_distance_nan": ("evaluate.py", {**EVAL, "distance": NAN}, "--distance=nan"),
    "edit_psi_nan": ("edit.py", {**EDIT, "truncation_psi": NAN}, "--truncation_psi=nan"),
    "edit_distance_nan": ("edit.py", {**EDIT, "distance": NAN}, "--distance=nan"),
    "edit_s_scale_inf": ("edit.py", {**EDIT, "s_scale": INF}, "--s_scale=inf"),
    "edit_learning_rate_nan": ("edit.py", {**EDIT, "learning_rate": NAN}, "--learning_rate=nan"),
    "edit_steps_0": ("edit.py", {**EDIT, "steps_per_layer": 0}, "--steps_per_layer=0"),
    "edit_lambda_init_5": ("edit.py", {**EDIT, "lambda_init": 5.0}, "--lambda_init=5.0 must be in [0, 1]"),
    "evaluate_lambda_init_5": ("evaluate.py", {**EVAL, "lambda_init": 5.0}, "--lambda_init=5.0 must be in [0, 1]"),
    "evaluate_lambda_norm_negative": ("evaluate.py", {**EVAL, "lambda_norm": -1.0}, "--lambda_norm=-1.0 must be >= 0"),
    "evaluate_precision": ("evaluate.py", {**EVAL, "precision": "fp16"}, "--precision='fp16' must be one of"),
    # batch sizes
    "generate_batch_0": ("generate.py", {**GEN, "batch_size": 0}, "--batch_size=0"),
    "sample_batch_negative": ("sample.py", {**SAMPLE, "batch_size": -4}, "--batch_size=-4"),
    "edit_batch_0": ("edit.py", {**EDIT, "batch_size": 0}, "--batch_size=0"),
    "evaluate_batch_negative": ("evaluate.py", {**EVAL, "batch_size": -1}, "--batch_size=-1", PROCESS),
    "edit_batch_vs_devices": ("edit.py", {**EDIT, "num_samples": 8, "batch_size": 3},
                              "multiple of the 2 local devices", 2),
    # misuse
    "edit_interfacegan_alone": ("edit.py", {**EDIT, "method": "interfacegan"}, "needs --condition_on"),
    "edit_mask_typo": ("edit.py", {**EDIT, "mask": "auot"}, "--mask='auot' is not a mask spec"),
    "edit_mask_kind": ("edit.py", {**EDIT, "mask": "circle:4,4,8"}, "is not a mask spec"),
    "edit_mask_empty": ("edit.py", {**EDIT, "mask": ""}, "--mask='' is not a mask spec"),
    "evaluate_mask_typo": ("evaluate.py", {**EVAL, "mask": "auot"}, "is not a mask spec"),
    "fit_ratio_of_booleans": ("fit_direction.py", {**FIT, "ratio": 0.25}, "boolean labels, not scores"),
    "generate_weights_folder": ("generate.py", {**GEN, "weights": "{I}/adir"}, "is a folder; give a weights file",
                                PROCESS),
    "project_spaces_typo": ("project.py", {"images": "{I}/adir", "output_dir": "{O}/p", "spaces": "w,q"},
                            "--spaces='w,q'", PROCESS),
    "sample_weights_folder": ("sample.py", {**SAMPLE, "weights": "{I}/adir"}, "is a folder"),
    "edit_samples_psi_contradicts": ("edit.py", {**EDIT, "samples": "{I}/samples", "truncation_psi": 0.5},
                                     "contradicts the samples' truncation_psi 0.7"),
    # input files: folders given as files, unreadable or unusable arrays
    "generate_latents_folder": ("generate.py", {**GEN, "latents": "{I}/adir"}, "--latents | is a folder"),
    "edit_direction_folder": ("edit.py", {**EDIT, "direction": "{I}/adir"}, "--direction | is a folder"),
    "fit_labels_folder": ("fit_direction.py", {"samples": FIT["samples"], "labels": "{I}/adir",
                                               "output": "{O}/d.npz"}, "is a folder", PROCESS),
    "convert_input_folder": ("convert_weights.py", {"input": "{I}/adir", "output": "{O}/g.safetensors"},
                             "--input | is a folder"),
    "generate_npy_latents": ("generate.py", {**GEN, "latents": "{I}/z.npy"}, "is a .npy array, not an .npz"),
    "generate_zero_rows": ("generate.py", {**GEN, "latents": "{I}/z0.npz"}, "0 rows"),
    "generate_complex": ("generate.py", {**GEN, "latents": "{I}/zc.npz"}, "real numbers"),
    # outputs: a folder where a file goes, a file where a folder goes, an input as output
    "generate_output_is_folder": ("generate.py", {**GEN, "output": "{I}/adir"}, "adir: this is a folder"),
    "generate_output_under_file": ("generate.py", {**GEN, "output": "{I}/afile/res.npz"}, "is a file, not a folder"),
    "generate_output_is_input": ("generate.py", {**GEN, "output": "{I}/z.npz", "overwrite": True},
                                 "would replace the input"),
    "sample_output_is_file": ("sample.py", {**SAMPLE, "output_dir": "{I}/afile"}, "is not a folder", PROCESS),
    "edit_output_under_file": ("edit.py", {**EDIT, "output_dir": "{I}/afile/run"}, "is a file, not a folder"),
    "fit_table_is_folder": ("fit_direction.py", {"samples": FIT["samples"], "labels": FIT["labels"],
                                                 "output": "{I}/adir.npz"}, "this is a folder"),
    "fit_output_in_input": ("fit_direction.py", {"samples": FIT["samples"], "labels": FIT["labels"],
                                                 "output": "{I}/samples/shards/x.npz"}, "inside the input folder"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_flags_and_inputs_one_line_nothing_written(case, inputs, tmp_path, capsys):
    name, flags, needle, *how = BAD[case]
    if case == "fit_table_is_folder":
        (inputs / "adir.table1.md").mkdir(exist_ok=True)
    before = snapshot(inputs, tmp_path)
    fails(capsys, name, _fill(flags, inputs, tmp_path), *needle.split(" | "),
          devices=how[0] if how and how[0] != PROCESS else 1, subprocess=how == [PROCESS])
    assert snapshot(inputs, tmp_path) == before


@pytest.mark.parametrize("var, value", [("SI_JAX_CONV_TUNING", "sometimes"), ("SI_JAX_CONV_TUNING_BUDGET", "soon")])
def test_malformed_conv_tuning_variable_is_one_line_before_anything_is_written(var, value, inputs, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.setenv(var, value)
    before = snapshot(inputs, tmp_path)
    fails(capsys, "generate.py", _fill(GEN, inputs, tmp_path), f"${var}={value!r}")
    assert snapshot(inputs, tmp_path) == before


def test_batch_size_is_capped_at_the_data(inputs, tmp_path):
    """100 000 for 3 latents runs at 3 (no padding to 100 000), with the same bytes as --batch_size=3."""
    big, small = tmp_path / "big.npz", tmp_path / "small.npz"
    for out, bs in ((big, 100_000), (small, 3)):
        run_engine("generate.py", {**_fill(GEN, inputs, tmp_path), "output": str(out), "batch_size": bs})
    assert big.read_bytes() == small.read_bytes()
    assert oct(big.stat().st_mode & 0o777) == "0o644"
    mesh = runs.local_mesh()
    assert runs.fit_batch_size(100_000, 3, mesh) == 3 and runs.fit_batch_size(2, 3, mesh) == 2
    with pytest.raises(ValueError, match="--batch_size must be an integer >= 1"):
        runs.fit_batch_size(0, 3, mesh)


def test_damaged_shard_on_resume_is_named(inputs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(inputs / "samples", run)
    (run / "manifest.json").unlink()
    shard = run / "shards" / "shard_00001.npz"
    shard.write_bytes(shard.read_bytes()[:100])   # truncated
    before = snapshot(run)
    fails(capsys, "sample.py", {"weights": "builtin:demo", "num_samples": 8, "batch_size": 4, "truncation_psi": 0.7,
                                "save_images": True, "output_dir": str(run)},
          "shard_00001.npz is damaged", "delete it and re-run")
    assert snapshot(run) == before


def test_samples_of_another_generator_refused_and_truncation_reused(inputs, tmp_path, capsys):
    toy = tmp_path / "toy_samples"
    run_engine("sample.py", {"weights": "builtin:toyfaces", "num_samples": 2, "output_dir": str(toy)})
    demo_id = si_jax.fingerprint(si_jax.load_canonical(BUILTIN_DEMO)[0])
    toy_id = si_jax.fingerprint(si_jax.load_canonical("builtin:toyfaces")[0])
    edit = _fill(EDIT, inputs, tmp_path)
    fails(capsys, "edit.py", {**edit, "samples": str(toy)}, toy_id, demo_id)
    assert not (tmp_path / "run").exists()
    # the demo samples (psi 0.7) are edited as they were drawn: their styles are the edit's input styles
    run_engine("edit.py", {**edit, "samples": str(inputs / "samples"), "method": "s"})
    from si_jax.engines import samples

    data = samples.load_samples(inputs / "samples")
    styles_in = np.concatenate([np.load(p)["styles_in"] for p in sorted((tmp_path / "run" / "shards").glob("shard_*"))])
    np.testing.assert_allclose(styles_in, data["styles"], rtol=1e-5, atol=1e-5)
    assert '"truncation_psi": 0.7' in (tmp_path / "run" / "run.json").read_text()


# ------------------------------------------------------------------------------- in-process: the helpers


def test_outputs_are_all_or_nothing(tmp_path):
    outputs = storage.Outputs()
    outputs.add(tmp_path / "a.bin", b"first")
    outputs.add(tmp_path / "missing_folder" / "b.bin", b"second")   # fails after a.bin's temp file exists
    with pytest.raises(FileNotFoundError):
        outputs.commit()
    assert list(tmp_path.iterdir()) == []
    ok = storage.Outputs()
    ok.add_json(tmp_path / "t.json", {"x": 1.5})
    ok.add(tmp_path / "w.npz", lambda tmp: np.savez(open(tmp, "wb"), x=np.ones(2)))
    ok.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "w.npz"]
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {"0o644"}
    with pytest.raises(ValueError, match="non-finite"):
        storage.json_bytes({"mse": float("nan")})


def test_npz_bytes_are_deterministic():
    arrays = {"index": np.arange(3), "w": np.ones((3, 4), np.float32)}
    first = storage.npz_bytes(**arrays)
    import time

    time.sleep(1.1)   # zip members normally carry the wall-clock time
    assert storage.npz_bytes(**arrays) == first
    with np.load(__import__("io").BytesIO(first)) as d:
        np.testing.assert_array_equal(d["w"], arrays["w"])


def test_finite_or_error_names_samples_and_cause():
    a = np.zeros((12, 3), np.float32)
    a[[2, 5]] = np.nan
    with pytest.raises(errors.NonFiniteError, match=r"images \(NaN or inf\) for samples 12, 15, not written; likely "
                                                 r"cause: --s_scale=1e\+38 \(unusually large\)"):
        errors.finite_or_error("images", a, errors.likely_cause(s_scale=1e38, truncation_psi=1.0),
                               index=np.arange(10, 22))
    errors.finite_or_error("images", np.ones(3), "unused")
    with pytest.raises(errors.NonFiniteError, match="fd"):
        errors.finite_numbers_or_error({"fd": float("nan"), "n": 2}, "report", "x")


def _guarded_line(capsys, exc) -> str:
    def fail():
        raise exc

    with pytest.raises(SystemExit) as info:
        errors.run_guarded(fail)
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("exc, words", [
    (PermissionError(errno.EACCES, "Permission denied", "/out/grid.png"), "/out/grid.png: no permission"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/out/res.npz"), "/out/res.npz: this is a folder"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x.npz"), "/f/x.npz: a part of this path is a file"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/s.npz"), "/out/s.npz: the disk is full"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "/ro/x: the file system is read-only"),
    (MemoryError(), "out of memory"),
])
def test_os_errors_and_oom_are_one_line(capsys, exc, words):
    assert words in _guarded_line(capsys, exc)


def test_oom_names_the_batch_size_and_a_smaller_one(capsys):
    import jax
    from absl import flags

    fv = flags.FlagValues()
    flags.DEFINE_integer("batch_size", 64, "", flag_values=fv)
    fv(["prog", "--batch_size=64"])
    msg = errors.oom_message("RESOURCE_EXHAUSTED: Out of memory", fv)
    assert "--batch_size=64" in msg and "try --batch_size=32" in msg
    errors.note_batch_size(8)
    line = _guarded_line(capsys, jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 42 GB\n.."))
    assert "out of memory" in line and "--batch_size=8" in line and "try --batch_size=4" in line
    with pytest.raises(RuntimeError, match="a bug"):   # other errors keep their traceback
        errors.run_guarded(lambda: (_ for _ in ()).throw(RuntimeError("a bug")))


def test_unwritable_output_folder_is_refused_before_computing(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(errors.UsageError, match="cannot write into"):
        checks.check_output_free(tmp_path / "res.npz", overwrite=False)
    with pytest.raises(errors.UsageError, match="cannot write into"):
        checks.check_output_dir(tmp_path / "new" / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_output_folder_binary(inputs, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    one_error(run_bin("generate.py", *as_args(_fill({**GEN, "output": f"{ro}/res.npz"}, inputs, tmp_path))),
              "cannot write into")
    assert list(ro.iterdir()) == []


# ------------------------------------------------------------- in-process: loaders and validators (issue 21)


def _tamper(folder, name, edit):
    """folder/name (JSON) -> edit(dict) written back."""
    import json

    path = pathlib.Path(folder) / name
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


@pytest.mark.parametrize("edit, words", [
    (lambda m: {**m, "shards": 5}, "'shards' is 5, expected a list"),
    (lambda m: {k: v for k, v in m.items() if k != "z_dim"}, "no 'z_dim' entry"),
    (lambda m: {**m, "truncation_psi": "abc"}, "'truncation_psi' is 'abc', expected a finite number"),
    (lambda m: {**m, "shards": [{"file": "x"}]}, "shards[0]: no 'start' entry"),
])
def test_damaged_samples_manifest_is_named(inputs, tmp_path, edit, words):
    from si_jax.engines import samples

    run = tmp_path / "s"
    shutil.copytree(inputs / "samples", run)
    _tamper(run, "manifest.json", edit)
    with pytest.raises(ValueError) as info:
        samples.load_samples(run)
    assert str(run / "manifest.json") in str(info.value) and words in str(info.value)
    assert "re-run bin/sample.py" in str(info.value)


def test_nan_in_a_samples_shard_names_the_shard(inputs, tmp_path):
    from si_jax.engines import samples

    run = tmp_path / "s"
    shutil.copytree(inputs / "samples", run)
    shard = run / "shards" / "shard_00001.npz"
    with np.load(shard) as d:
        arrays = dict(d)
    arrays["styles"][1, 3] = np.nan
    storage.save_npz_atomic(shard, **arrays)
    with pytest.raises(ValueError, match=r"shard_00001\.npz: 'styles' holds NaN.*delete this shard"):
        samples.load_samples(run)


def test_pickled_or_random_npz_is_named_without_numpy_advice(tmp_path):
    (tmp_path / "rnd.npz").write_bytes(np.random.default_rng(0).bytes(500))
    np.savez(tmp_path / "obj.npz", z=np.array([{"a": 1}], dtype=object))
    for name in ("rnd.npz", "obj.npz"):
        with pytest.raises(ValueError) as info:
            storage.load_npz_array(tmp_path / name, "z", ndim=2)
        msg = str(info.value)
        assert msg.startswith(str(tmp_path / name)) and "numpy.savez" in msg and "allow_pickle" not in msg, msg


def test_too_many_shards_is_a_usage_error_not_out_of_memory():
    with pytest.raises(ValueError, match=r"make 1000000000000 shards.*raise --batch_size to at least 10000000"):
        runs.fit_batch_size(1, 10**12, runs.local_mesh())


def test_label_csv_with_byte_order_mark_and_attribute_header(tmp_path):
    from si_jax.engines import labels

    path = tmp_path / "labels.csv"
    path.write_bytes("index,smile\r\n0,1\r\n1,0\r\n2,1\r\n".encode("utf-8-sig"))   # as spreadsheets write it
    y, idx = labels.load_labels(path, 3)
    np.testing.assert_array_equal(y, [True, False, True])
    assert labels.column_name(path) == "smile"
    path.write_bytes("index,label\n0,1\n1,0\n".encode("utf-8-sig"))
    assert labels.load_labels(path, 2)[0].tolist() == [True, False] and labels.column_name(path) is None


def test_mask_files_empty_stretched_or_unreadable_are_refused(tmp_path):
    from si_jax.editing import masks

    np.save(tmp_path / "zero.npy", np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"zero\.npy: mask 0 is empty \(all zeros\)"):
        masks.load_masks(tmp_path / "zero.npy", 2, 8, 8)
    odd = np.zeros((17, 23), np.float32)
    odd[4:9, 5:12] = 1
    np.save(tmp_path / "odd.npy", odd)
    with pytest.raises(ValueError, match=r"odd\.npy: mask of 23x17 \(WxH\) px has another aspect ratio"):
        masks.load_masks(tmp_path / "odd.npy", 1, 8, 8)
    folder = tmp_path / "pngs"
    folder.mkdir()
    from PIL import Image

    Image.fromarray((odd[:8, :8] * 255).astype(np.uint8)).save(folder / "a.png")
    os.symlink(folder / "loop.png", folder / "loop.png")
    with pytest.raises(ValueError, match=r"loop\.png is not a readable file"):
        masks.load_masks(folder, 2, 8, 8)


def test_image_folder_names_an_unreadable_png(tmp_path):
    from PIL import Image

    from si_jax import projection

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    os.symlink(tmp_path / "b.png", tmp_path / "b.png")   # a link to itself
    with pytest.raises(ValueError, match=r"1 of 2 image files .* cannot be read: b\.png"):
        projection.load_image_folder(tmp_path, 8)


def test_convert_weights_empty_input_and_train_judges_outputs(tmp_path):
    from si_jax.engines import convert_run, tool_settings
    from si_jax.world import judge_training, judges

    with pytest.raises(ValueError, match="--input is empty"):
        tool_settings.convert_job({"input": ""})
    with pytest.raises(ValueError, match="--output is empty"):
        convert_run.run(tool_settings.convert_job({"input": "g.pkl"}), "")
    kw = dict(classifier_steps=1, segmenter_steps=1, batch=2, eval_num=2, log=lambda m: None)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=r"afile is a file, not a folder"):
        judge_training.train_judges(tmp_path / "afile", **kw)
    (tmp_path / judges.CLASSIFIER_FILE).write_bytes(b"old")
    with pytest.raises(FileExistsError, match=r"toyfaces_classifier.safetensors exists; pass --overwrite"):
        judge_training.train_judges(tmp_path, **kw)
    assert (tmp_path / judges.CLASSIFIER_FILE).read_bytes() == b"old"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(PermissionError):
            judge_training.train_judges(ro, **kw)


def test_help_exits_0_for_every_binary():
    """absl exits 1 after --help; errors.run_app makes it 0 (one subprocess for all binaries: they only parse flags)."""
    code = ("import runpy, sys\n"
            "for b in sys.argv[1:]:\n"
            "    sys.argv = [b, '--help']\n"
            "    try:\n"
            "        runpy.run_path(b, run_name='__main__')\n"
            "    except SystemExit as e:\n"
            "        print('EXIT', b, e.code)\n"
            "    from absl import flags\n"
            "    for name in list(flags.FLAGS):\n"
            "        delattr(flags.FLAGS, name) if name not in ('help', 'helpshort', 'helpfull', 'helpxml') else None\n")
    bins = sorted(str(p) for p in (REPO / "bin").glob("*.py"))
    proc = run_python("-c", code, *bins, timeout=300, env={"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)})
    codes = dict(line.split(" ")[1:] for line in proc.stdout.splitlines() if line.startswith("EXIT "))
    assert codes == {b: "0" for b in bins}, proc.stdout[-2000:] + proc.stderr[-2000:]
