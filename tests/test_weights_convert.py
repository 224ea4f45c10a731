"""weights_convert: the three real formats, round trips through the writers and safetensors, hostile input, CLI."""
import io
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import weights_convert as wc
from weights_convert import canonical, writers
from conftest import FORMAT_FILES, REPO, engine_error, fixture_path, run_engine

G_PARAMS = 428_723  # fixtures README: "G parameters"
READERS = {"nvlabs": wc.read_nvlabs_pkl, "tf": wc.read_tf_pkl, "rosinality": wc.read_rosinality_pt}
WRITERS = {"nvlabs": writers.write_nvlabs_pkl, "tf": writers.write_tf_pkl, "rosinality": writers.write_rosinality_pt}
SUFFIX = {"nvlabs": ".pkl", "tf": ".pkl", "rosinality": ".pt"}
_CACHE = {}


def read_fixture(fmt):
    if fmt not in _CACHE:
        _CACHE[fmt] = wc.read_weights(fixture_path(FORMAT_FILES[fmt][0]))
    return _CACHE[fmt]


def assert_same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype == np.float32, k
        assert a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --- the real fixture files ---------------------------------------------------------------------------------

def test_fixture_reads_with_expected_config(fmt):
    params, config = read_fixture(fmt)
    assert config["source_format"] == fmt
    assert set(config) == set(canonical.CONFIG_KEYS)
    assert config["img_resolution"] == 32 and config["z_dim"] == config["w_dim"] == 128
    assert config["channels"] == {"4": 64, "8": 64, "16": 64, "32": 32}
    assert (config["mapping_layers"], config["num_ws"], config["c_dim"], config["img_channels"]) == (8, 8, 0, 3)
    assert config["architecture"] == "skip" and config["resample_filter"] == [1, 3, 3, 1]
    assert config["mapping_lr_multiplier"] == 0.01 and config["use_noise"] is True
    assert config["conv_clamp"] is None and config["num_fp16_res"] == 0
    json.dumps(config)  # JSON-able
    assert canonical.count_parameters(params) == G_PARAMS
    assert wc.style_dim(config) == 640
    assert not any("resample_filter" in k or k.startswith("D") for k in params)
    for k, a in params.items():
        assert a.dtype == np.float32 and a.flags["C_CONTIGUOUS"], k
    assert params["synthesis.b8.conv0.noise_strength"].shape == ()
    assert params["synthesis.b32.conv0.weight"].shape == (32, 64, 3, 3)
    assert params["synthesis.b32.torgb.weight"].shape == (3, 32, 1, 1)


def test_explicit_reader_matches_autodetect(fmt):
    params, config = READERS[fmt](fixture_path(FORMAT_FILES[fmt][0]))
    ref, ref_config = read_fixture(fmt)
    assert_same(params, ref)
    assert config == ref_config


def test_nvlabs_and_tf_are_bit_identical():
    nv, nv_cfg = read_fixture("nvlabs")
    tf, tf_cfg = read_fixture("tf")
    assert_same(nv, tf)  # includes the flipped Conv0_up weights and mod_bias + 1
    assert {**nv_cfg, "source_format": "tf"} == tf_cfg


def test_rosinality_same_architecture_different_weights():
    nv, nv_cfg = read_fixture("nvlabs")
    ro, ro_cfg = read_fixture("rosinality")
    assert {k: v.shape for k, v in nv.items()} == {k: v.shape for k, v in ro.items()}
    assert {**nv_cfg, "source_format": "rosinality"} == ro_cfg
    assert canonical.count_parameters(ro) == G_PARAMS
    assert not np.array_equal(nv["synthesis.b4.const"], ro["synthesis.b4.const"])


def test_goldens_match_buffers(fmt):
    params, config = read_fixture(fmt)
    golden = np.load(fixture_path(FORMAT_FILES[fmt][1]))
    np.testing.assert_array_equal(golden["w_avg"], params["mapping.w_avg"])
    convs = [s for s in (f"synthesis.b{r}.{c}" for r in (4, 8, 16, 32) for c in ("conv0", "conv1"))
             if f"{s}.weight" in params]
    assert len(convs) == 7
    for i, name in enumerate(convs):
        np.testing.assert_array_equal(golden[f"noise{i:02d}"], params[f"{name}.noise_const"], err_msg=name)
    strengths = np.array([params[f"{name}.noise_strength"] for name in convs])
    np.testing.assert_array_equal(golden["noise_strength"], strengths)
    assert int(golden["num_ws"]) == config["num_ws"]
    forward = [f"synthesis.b{r}.{n}" for r in (4, 8, 16, 32) for n in ("conv0", "conv1", "torgb")
               if f"synthesis.b{r}.{n}.affine.bias" in params]
    if fmt != "rosinality":
        assert list(golden["style_names"]) == forward
    assert list(golden["style_dims"]) == [params[f"{n}.affine.bias"].shape[0] for n in forward]


# --- writers and safetensors round trips ----------------------------------------------------------------------

def tiny_canonical(seed=0, res=16, channels=None, mapping_layers=3, architecture="skip", use_noise=True,
                   c_dim=0, lr=0.01, source="nvlabs"):
    channels = channels or {4: 16, 8: 16, 16: 8, 32: 4}
    channels = {r: c for r, c in channels.items() if r <= res}
    config = canonical.make_config(source_format=source, z_dim=12, w_dim=16, c_dim=c_dim, img_resolution=res,
                                   img_channels=3, mapping_layers=mapping_layers, mapping_lr_multiplier=lr,
                                   channels=channels, architecture=architecture, use_noise=use_noise)
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in canonical.expected_shapes(config).items():
        params[name] = rng.standard_normal(shape).astype(np.float32)
        if name.endswith("affine.bias"):  # as initialised (1 + small): TF's mod_bias = b - 1 is then exact
            params[name] = (1 + 0.1 * params[name]).astype(np.float32)
    fan_in = 12
    if c_dim:
        params["mapping.embed.weight"] = rng.standard_normal((16, c_dim)).astype(np.float32)
        params["mapping.embed.bias"] = rng.standard_normal(16).astype(np.float32)
        fan_in += 16
    for i in range(mapping_layers):
        params[f"mapping.fc{i}.weight"] = rng.standard_normal((16, fan_in)).astype(np.float32)
        params[f"mapping.fc{i}.bias"] = rng.standard_normal(16).astype(np.float32)
        fan_in = 16
    return params, config


@pytest.mark.parametrize("fmt_name, variant", [("tf", {}), ("tf", dict(architecture="orig", res=32)),
                                               ("tf", dict(architecture="resnet")), ("rosinality", {})])
def test_name_table_maps_every_canonical_tensor_once(fmt_name, variant):
    """The one table a format's reader and writer share: expanded for a config it names every canonical tensor
    exactly once, each to a distinct file name, and reading what writing gave returns the params bit for bit."""
    from weights_convert import names, rosinality, tf

    module = {"tf": tf, "rosinality": rosinality}[fmt_name]
    params, config = tiny_canonical(seed=4, **variant)
    layers = module.layers(names.Layout.of(params, config))
    rows = names.expand(module.TABLE, layers)
    canon = [c for c, _, _ in rows if c is not None]
    assert sorted(canon) == sorted(params) and len(set(canon)) == len(canon)
    sources = [s for _, s, _ in rows]
    assert len(set(sources)) == len(sources)
    tensors = names.from_canonical(module.TABLE, layers, params)
    back, used = names.to_canonical(module.TABLE, layers, tensors, missing=str)
    assert used == set(tensors)
    assert_same(back, params)


@pytest.mark.parametrize("kind", ["nvlabs", "tf", "rosinality", "rosinality_legacy"])
def test_writer_round_trip(kind, tmp_path):
    fmt = kind.split("_")[0]
    params, config = tiny_canonical(seed=1, mapping_layers=8 if fmt == "rosinality" else 3, source=fmt)
    path = tmp_path / f"g{SUFFIX[fmt]}"
    WRITERS[fmt](path, params, config, **({"legacy": True} if kind.endswith("legacy") else {}))
    for reader in (wc.read_weights, READERS[fmt]):
        got, got_config = reader(path)
        assert_same(got, params)
        assert got_config == config
    assert os.listdir(tmp_path) == [path.name]  # atomic write leaves no temp file


@pytest.mark.parametrize("variant", [dict(architecture="orig"), dict(use_noise=False), dict(c_dim=5),
                                     dict(lr=0.02, res=32, mapping_layers=2)])
def test_nvlabs_writer_round_trip_variants(variant, tmp_path):
    params, config = tiny_canonical(seed=2, **variant)
    writers.write_nvlabs_pkl(tmp_path / "g.pkl", params, config)
    got, got_config = wc.read_weights(tmp_path / "g.pkl")
    assert_same(got, params)
    assert got_config == config
    if variant.get("architecture") == "orig":
        assert "synthesis.b8.torgb.weight" not in got and "synthesis.b16.torgb.weight" in got


def test_tf_writer_round_trip_orig_and_lr(tmp_path):
    params, config = tiny_canonical(seed=3, architecture="orig", lr=0.05, mapping_layers=4, source="tf")
    writers.write_tf_pkl(tmp_path / "g.pkl", params, config)
    got, got_config = wc.read_tf_pkl(tmp_path / "g.pkl")
    assert_same(got, params)
    assert got_config == config


def test_writers_reproduce_fixture_canonical(fmt, tmp_path):
    params, config = read_fixture(fmt)
    path = tmp_path / f"x{SUFFIX[fmt]}"
    WRITERS[fmt](path, params, config)
    got, got_config = READERS[fmt](path)
    assert_same(got, params)
    assert got_config == config


def test_safetensors_round_trip(fmt, tmp_path):
    params, config = read_fixture(fmt)
    path = tmp_path / "g.safetensors"
    wc.save_safetensors(path, params, config)
    assert os.listdir(tmp_path) == ["g.safetensors"]
    for reader in (wc.load_safetensors, wc.read_weights):
        got, got_config = reader(path)
        assert_same(got, params)
        assert got_config == config
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format_version"] == "1" and json.loads(meta["si_jax_config"]) == config


def test_save_safetensors_validates_and_writes_nothing(tmp_path):
    params, config = tiny_canonical()
    del params["synthesis.b8.conv0.bias"]
    with pytest.raises(wc.WeightsFormatError, match="missing tensor 'synthesis.b8.conv0.bias'"):
        wc.save_safetensors(tmp_path / "g.safetensors", params, config)
    params, config = tiny_canonical()
    params["synthesis.b8.conv0.bias"] = params["synthesis.b8.conv0.bias"][:3]
    with pytest.raises(wc.WeightsFormatError, match="has shape"):
        wc.save_safetensors(tmp_path / "g.safetensors", params, config)
    assert os.listdir(tmp_path) == []


def test_safetensors_without_config_or_corrupt(tmp_path):
    from safetensors.numpy import save_file

    save_file({"a": np.zeros(3, np.float32)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(wc.WeightsFormatError, match="no si_jax config"):
        wc.read_weights(tmp_path / "plain.safetensors")
    params, config = tiny_canonical()
    wc.save_safetensors(tmp_path / "g.safetensors", params, config)
    data = (tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(wc.WeightsFormatError, match="cut.safetensors"):
        wc.read_weights(tmp_path / "cut.safetensors")


def test_one_atomic_writer_for_every_weights_file(tmp_path):
    """Every weights writer and si_jax's files go through weights_convert.files.write_atomic (si_jax.storage
    re-exports it): outputs are mode 0644 with no temp file left; a writer that fails leaves nothing; the temp
    names it and older versions leave are what remove_temp_files deletes."""
    from si_jax import storage
    from weights_convert import files

    assert storage.write_atomic is files.write_atomic and storage.temp_path is files.temp_path
    params, config = tiny_canonical()
    for fmt, write in WRITERS.items():
        write(tmp_path / f"{fmt}{SUFFIX[fmt]}", params, config)
    wc.save_safetensors(tmp_path / "g.safetensors", params, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors", "nvlabs.pkl", "rosinality.pt", "tf.pkl"]
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {"0o644"}

    def half_then_fail(f):
        f.write(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_stream_atomic(tmp_path / "x.pkl", half_then_fail, fsync=True)
    assert not (tmp_path / "x.pkl").exists() and not files.temp_path(tmp_path / "x.pkl").exists()
    files.temp_path(tmp_path / "g.safetensors").write_bytes(b"killed")
    (tmp_path / ".g.safetensors.abc123.tmp").write_bytes(b"killed, an older version")
    wc.remove_temp_files(tmp_path / "g.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors", "nvlabs.pkl", "rosinality.pt", "tf.pkl"]


# A file write outside the one atomic writer: opening for writing or appending, pathlib's write_*, numpy's save*, a
# PIL save, a rename or an O_APPEND descriptor. Allowed where the line hands the write to an in-memory buffer or to
# the atomic writer itself.
_RAW_WRITE = re.compile(r"""open\([^)]*["'][wax]b?\+?["']|\.write_(bytes|text)\(|np\.save|\.save\("""
                        r"|os\.(replace|rename)\(|os\.O_APPEND")
_WRITE_OK = re.compile(r"write_atomic|write_stream_atomic|\(buf\b|self\.save\(|checkpoint\.save\(|^\s*#|\"\"\""
                       r"|torch\.save")
_ATOMIC_ITSELF = {"weights_convert/files.py": 3,    # the writer: temp file, then os.replace
                  "si_jax/storage.py": 2,           # Outputs.commit (write_temp, os.replace); append_lines: the
                                                    # one appender (metrics.jsonl, evaluations.jsonl: logs grow)
                  "si_jax/training/checkpoint.py": 1}  # files by write_atomic in a temp folder, renamed whole


def test_no_file_write_bypasses_write_atomic():
    """Every file si_jax, weights_convert, bin/ and bench/ write goes through files.write_atomic (storage
    re-exports it): the source has no other write, except the atomic writers themselves and the listed log."""
    found = {}
    for path in sorted(p for d in ("si_jax", "weights_convert", "bin", "bench") for p in (REPO / d).rglob("*.py")):
        for line in path.read_text().splitlines():
            if _RAW_WRITE.search(line) and not _WRITE_OK.search(line):
                found.setdefault(str(path.relative_to(REPO)), []).append(line.strip())
    assert {k: len(v) for k, v in found.items()} == _ATOMIC_ITSELF, found


# --- hostile and broken input ---------------------------------------------------------------------------------

def _marker_cmd(marker):
    return f"touch {marker}"


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


PICKLE_READERS = [wc.read_weights, wc.read_nvlabs_pkl, wc.read_tf_pkl]


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_os_system_is_refused_and_never_runs(protocol, tmp_path):
    marker = tmp_path / "pwned"
    cmd = _marker_cmd(marker).encode()
    if protocol == 0:
        data = b"cos\nsystem\n(S'" + cmd + b"'\ntR."
    else:  # the same call as a modern exploit would write it, inside an NVlabs-looking dict
        data = (b"\x80" + bytes([protocol]) + b"}X\x05\x00\x00\x00G_emacos\nsystem\nX"
                + len(cmd).to_bytes(4, "little") + cmd + b"\x85Rs.")
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    for reader in PICKLE_READERS:
        with pytest.raises(wc.UnsafePickleError, match=r"refusing to load global 'os\.system' from .*evil\.pkl"):
            reader(path)
    assert not marker.exists()


def test_builtins_eval_and_unknown_class_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "eval.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Reduce(eval, (f"open({str(marker)!r}, 'w')",))}, protocol=4))
    for reader in PICKLE_READERS:
        with pytest.raises(wc.UnsafePickleError, match=r"'builtins\.eval'"):
            reader(path)
    path.write_bytes(b"\x80\x04cmymodule\nEvil\n)R.")
    for reader in PICKLE_READERS:
        with pytest.raises(wc.UnsafePickleError, match=r"'mymodule\.Evil'"):
            reader(path)
    with pytest.raises(wc.UnsafePickleError, match=r"'posix\.system'|'nt\.system'"):  # what pickle writes
        wc.read_weights(_write(tmp_path / "sys.pkl", pickle.dumps(_Reduce(os.system, (_marker_cmd(marker),)))))
    assert not marker.exists()


def _write(path, data):
    path.write_bytes(data)
    return path


def test_embedded_code_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil_src = f"open({str(marker)!r}, 'w').write('ran')\nimport os\nos.system('touch {marker}')\n"
    monkeypatch.setattr(writers, "PLACEHOLDER_SRC", evil_src)
    params, config = tiny_canonical(seed=4)
    writers.write_nvlabs_pkl(tmp_path / "nv.pkl", params, config)
    writers.write_tf_pkl(tmp_path / "tf.pkl", params, {**config, "source_format": "tf"})
    assert evil_src.encode() in (tmp_path / "nv.pkl").read_bytes()  # module_src is really in the file
    assert evil_src.encode() in (tmp_path / "tf.pkl").read_bytes()  # build_module_src too
    for name in ("nv.pkl", "tf.pkl"):
        got, _ = wc.read_weights(tmp_path / name)  # read inertly
        assert_same(got, params)
    assert not marker.exists()


def test_hostile_embedded_storage_stream_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    inner = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, inner, protocol=2)
    inner.write(b"cos\nsystem\n(S'" + _marker_cmd(marker).encode() + b"'\ntR.")
    buf = io.BytesIO()
    writers._OutPickler(buf, 4).dump({"G_ema": _Reduce(writers._load_from_bytes, (inner.getvalue(),))})
    path = _write(tmp_path / "nested.pkl", buf.getvalue())
    for reader in (wc.read_weights, wc.read_nvlabs_pkl):
        with pytest.raises(wc.UnsafePickleError, match=r"'os\.system'"):
            reader(path)
    assert not marker.exists()


def test_object_arrays_and_out_of_bounds_tensors_are_refused(tmp_path):
    path = _write(tmp_path / "obj.pkl", pickle.dumps(np.array([1, "a"], dtype=object), protocol=4))
    with pytest.raises(wc.WeightsFormatError, match="dtype"):
        wc.read_tf_pkl(path)
    arr = np.zeros((10, 10), np.float32)
    bad = writers._Tensor(arr, writers._Storage(np.zeros(5, np.float32), "0"), False)
    buf = io.BytesIO()
    writers._OutPickler(buf, 4).dump({"G_ema": bad})
    with pytest.raises(wc.WeightsFormatError, match="runs past its storage"):
        wc.read_weights(_write(tmp_path / "oob.pkl", buf.getvalue()))


def test_numpy_names_of_both_major_versions_load():
    from weights_convert import safe_pickle

    values = [np.arange(6, dtype=np.float32).reshape(2, 3), np.float32(1.5), np.arange(4, dtype=">f8")]
    data = pickle.dumps(values, protocol=4)  # NumPy 2 writes numpy._core...
    got, used = safe_pickle.restricted_loads(data, safe_pickle.NUMPY_GLOBALS, "mem", "test pickle")
    for want, have in zip(values, got):
        np.testing.assert_array_equal(np.asarray(have), want)
    assert np.asarray(got[0]).flags["C_CONTIGUOUS"]
    legacy = pickle.dumps(values, protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    got, used = safe_pickle.restricted_loads(legacy, safe_pickle.NUMPY_GLOBALS, "mem", "test pickle")
    assert "numpy.core.multiarray._reconstruct" in used
    np.testing.assert_array_equal(np.asarray(got[2]), values[2])


def test_malformed_structure_is_a_format_error(tmp_path):
    def net(name, variables, components=None):
        return writers._TFNetwork({"version": 4, "name": name, "static_kwargs": {}, "components": components or {},
                                   "build_module_src": "", "build_func_name": name, "variables": variables})

    z = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    synthesis = net("G_synthesis", [("4x4/Const/const", z(1, 4, 4, 4)), ("4x4/Conv/weight", z(3, 3, 4, 4)),
                                    ("4x4/Conv/bias", z(4)), ("4x4/Conv/mod_weight", z(8, 4)),
                                    ("4x4/Conv/mod_bias", z(4)), ("4x4/ToRGB/weight", z(12))])  # rank 1
    gs = net("Gs", [("dlatent_avg", z(8))], {"mapping": net("G_mapping", []), "synthesis": synthesis})
    buf = io.BytesIO()
    writers._OutPickler(buf, 4).dump((gs, gs, gs))
    path = _write(tmp_path / "bad_tf.pkl", buf.getvalue())
    for reader in (wc.read_weights, wc.read_tf_pkl):
        with pytest.raises(wc.WeightsFormatError, match="bad_tf.pkl: malformed TensorFlow"):
            reader(path)


@pytest.mark.parametrize("case", ["truncated", "half", "random", "empty", "json", "wrong_dict", "list"])
def test_broken_files_raise_weights_format_error(case, fmt, tmp_path):
    src = fixture_path(FORMAT_FILES[fmt][0]).read_bytes()
    data = {
        "truncated": src[:1000],
        "half": src[: len(src) // 2],
        "random": np.random.default_rng(0).bytes(4096),
        "empty": b"",
        "json": json.dumps({"G_ema": [1, 2, 3]}).encode(),
        "wrong_dict": pickle.dumps({"G": 1, "D": 2}, protocol=4),
        "list": pickle.dumps([1, 2, 3], protocol=2),
    }[case]
    path = _write(tmp_path / f"broken{SUFFIX[fmt]}", data)
    for reader in (wc.read_weights, READERS[fmt]):
        with pytest.raises(wc.WeightsFormatError) as info:
            reader(path)
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg and not isinstance(info.value, wc.UnsafePickleError)


def test_damaged_files_only_raise_weights_format_error(fmt, tmp_path):
    """Byte flips, cuts and insertions: each read either succeeds or raises a one-line WeightsFormatError."""
    src = fixture_path(FORMAT_FILES[fmt][0]).read_bytes()
    rng = np.random.default_rng(7)
    path = tmp_path / f"damaged{SUFFIX[fmt]}"
    for i in range(24):
        data = bytearray(src)
        pos = int(rng.integers(0, 20000 if i % 2 else len(data)))
        if i % 3 == 0:
            data[pos] = int(rng.integers(256))
        elif i % 3 == 1:
            del data[pos:]
        else:
            data[pos:pos] = rng.bytes(5)
        path.write_bytes(bytes(data))
        try:
            wc.read_weights(path)
        except wc.WeightsFormatError as e:
            assert "\n" not in str(e) and str(path) in str(e)


def test_wrong_reader_and_missing_file(tmp_path):
    with pytest.raises(wc.WeightsFormatError, match="dnnlib.tflib.network.Network"):
        wc.read_nvlabs_pkl(fixture_path(FORMAT_FILES["tf"][0]))
    with pytest.raises(wc.WeightsFormatError, match="torch_utils.persistence"):
        wc.read_tf_pkl(fixture_path(FORMAT_FILES["nvlabs"][0]))
    with pytest.raises(wc.WeightsFormatError, match="not a torch checkpoint"):
        wc.read_rosinality_pt(fixture_path(FORMAT_FILES["nvlabs"][0]))
    with pytest.raises(FileNotFoundError):
        wc.read_weights(tmp_path / "nope.pkl")


def test_missing_tensor_in_checkpoint(tmp_path):
    params, config = tiny_canonical(mapping_layers=8, source="rosinality")
    good = tmp_path / "g.pt"
    writers.write_rosinality_pt(good, params, config)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "bad.pt", "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):  # drop the first storage
                dst.writestr(info, src.read(info))
    with pytest.raises(wc.WeightsFormatError, match="storage '0' is missing"):
        wc.read_weights(tmp_path / "bad.pt")


# --- the binary -----------------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "bin" / "convert_weights.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_converts(tmp_path, capsys):
    """The binary as a process converts; its engine in-process (conftest.run_engine / engine_error) refuses to
    overwrite unless --overwrite."""
    src = fixture_path(FORMAT_FILES["tf"][0])
    out = tmp_path / "x.safetensors"
    proc = _cli(f"--input={src}", f"--output={out}")
    assert proc.returncode == 0, proc.stderr
    assert "tf" in proc.stdout and "428,723" in proc.stdout and len(proc.stdout.strip().splitlines()) == 1
    params, config = wc.load_safetensors(out)
    assert_same(params, read_fixture("tf")[0])
    assert os.listdir(tmp_path) == ["x.safetensors"]
    flags = {"input": str(src), "output": str(out)}
    assert "--overwrite" in engine_error(capsys, "convert_weights.py", flags)   # refuses to overwrite
    out.write_bytes(b"old")
    assert "428,723" in run_engine("convert_weights.py", {**flags, "overwrite": True})
    assert_same(wc.load_safetensors(out)[0], params)


def _bad_source(bad, tmp_path):
    src = tmp_path / "in" / "g.pkl"
    src.parent.mkdir()
    if bad == "truncated":
        src.write_bytes(fixture_path(FORMAT_FILES["nvlabs"][0]).read_bytes()[:1000])
    elif bad == "evil":
        src.write_bytes(b"cos\nsystem\n(S'" + _marker_cmd(tmp_path / "pwned").encode() + b"'\ntR.")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    return src, out_dir


def test_cli_bad_input_as_a_process(tmp_path):
    """A pickle that would run a command: exit status 1, one `error:` line, nothing written, nothing run."""
    src, out_dir = _bad_source("evil", tmp_path)
    proc = _cli(f"--input={src}", f"--output={out_dir / 'x.safetensors'}")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert os.listdir(out_dir) == []
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("bad", ["truncated", "missing", "evil"])
def test_cli_bad_input(bad, tmp_path, capsys):
    """In-process (conftest.engine_error: the binary's exit status 1 and its one `error:` line)."""
    src, out_dir = _bad_source(bad, tmp_path)
    engine_error(capsys, "convert_weights.py", {"input": str(src), "output": str(out_dir / "x.safetensors")})
    assert os.listdir(out_dir) == []
    assert not (tmp_path / "pwned").exists()
