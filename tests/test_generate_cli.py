"""bin/generate.py: latents or styles in, w/styles/images out; raw and converted weights; bad input. In-process
(conftest.run_engine: settings from the flags, then engines.generate_run.run(settings, out))."""
import pathlib

import numpy as np
import pytest

from conftest import FORMAT_FILES, engine_error, fixture_path, run_engine


@pytest.mark.parametrize("fmt_name", sorted(FORMAT_FILES))
def test_generate_from_raw_weights_matches_golden(tmp_path, fmt_name):
    weights, golden = FORMAT_FILES[fmt_name]
    g = np.load(fixture_path(golden))
    np.savez(tmp_path / "z.npz", z=g["z"])
    run_engine("generate.py", {"weights": str(fixture_path(weights)), "latents": str(tmp_path / "z.npz"),
                               "truncation_psi": 0.5, "output": str(tmp_path / "res.npz"),
                               "batch_size": 3})  # 4 latents: a padded last batch
    res = np.load(tmp_path / "res.npz")
    assert res["images"].shape == (4, 32, 32, 3) and res["styles"].shape == (4, 640) and res["w"].shape == (4, 128)
    np.testing.assert_allclose(res["w"], g["w_psi05"], atol=1e-5)
    np.testing.assert_allclose(res["styles"], g["s_all_psi05"], atol=1e-5)
    np.testing.assert_allclose(res["images"].transpose(0, 3, 1, 2), g["img_psi05"], atol=1e-4)


def test_generate_from_styles(tmp_path):
    g = np.load(fixture_path(FORMAT_FILES["nvlabs"][1]))
    np.savez(tmp_path / "s.npz", s=g["s_all"] + g["delta"])
    run_engine("generate.py", {"weights": str(fixture_path(FORMAT_FILES["nvlabs"][0])),
                               "styles": str(tmp_path / "s.npz"), "output": str(tmp_path / "res.npz")})
    res = np.load(tmp_path / "res.npz")
    assert "w" not in res.files
    np.testing.assert_allclose(res["images"].transpose(0, 3, 1, 2), g["img_edit"], atol=1e-4)


@pytest.mark.parametrize("case", ["missing_weights", "wrong_dim", "nan", "both_inputs", "corrupt_weights"])
def test_generate_bad_input(tmp_path, case, capsys):
    weights = str(fixture_path(FORMAT_FILES["rosinality"][0]))
    z = np.zeros((2, 128), np.float32)
    extra = {}
    if case == "missing_weights":
        weights = str(tmp_path / "missing.pkl")
    elif case == "wrong_dim":
        z = np.zeros((2, 64), np.float32)
    elif case == "nan":
        z[1, 3] = np.nan
    elif case == "both_inputs":
        np.savez(tmp_path / "s.npz", s=np.zeros((2, 640), np.float32))
        extra = {"styles": str(tmp_path / "s.npz")}
    elif case == "corrupt_weights":
        (tmp_path / "bad.pkl").write_bytes(pathlib.Path(weights).read_bytes()[:5000])
        weights = str(tmp_path / "bad.pkl")
    np.savez(tmp_path / "z.npz", z=z)
    out = tmp_path / "res.npz"
    engine_error(capsys, "generate.py", {"weights": weights, "latents": str(tmp_path / "z.npz"), "output": str(out),
                                         **extra})
    assert not out.exists() and not list(tmp_path.glob(".res.npz*"))
