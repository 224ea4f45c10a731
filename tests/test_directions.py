"""si_jax.editing.directions (SVM directions, file format, Table 1, conditional editing) and si_jax.engines.labels."""
import json
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from si_jax.editing import directions as D
from si_jax.engines.labels import load_labels

INFORMATIVE = (0, 100, 199)   # informative columns of make_codes() at dim 200: scales 1e-3, ~1, 1e3


def make_codes(n=1000, dim=200, shift=2.5, seed=0):
    """Codes [n, dim] with column j at scale logspace(-3, 3)[j]; positives shifted by `shift` std in 3 columns
    (first, middle, last) -> (codes float32 [n, dim], labels bool [n])."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(-3, 3, dim)
    y = rng.random(n) < 0.5
    u = rng.standard_normal((n, dim))
    u[:, [0, dim // 2, dim - 1]] += shift * y[:, None]
    return (u * scales).astype(np.float32), y


@pytest.fixture(scope="module")
def data():
    return make_codes()


@pytest.fixture(scope="module")
def d_s(data):
    x, y = data
    return D.fit_direction(x, y, space="s", attribute="synthetic")


# ---------------------------------------------------------------------------------------------------- fitting


def test_l1_direction_is_sparse_and_finds_all_scales(d_s):
    support = set(np.flatnonzero(d_s.coef).tolist())
    assert set(INFORMATIVE) <= support
    assert d_s.sparsity > 0.9 and d_s.val_acc > 0.95 and d_s.train_acc > 0.95
    assert d_s.penalty == "l1" and d_s.dim == 200 and d_s.n_train + d_s.n_val == 1000 and d_s.n_val == 200
    assert set(np.flatnonzero(d_s.normal).tolist()) == support          # zero pattern preserved in raw space
    assert np.isclose(np.linalg.norm(d_s.normal.astype(np.float64)), 1.0, atol=1e-6)
    x, y = make_codes(seed=1)                                            # normal points towards the positives
    assert (x[y] @ d_s.normal).mean() > (x[~y] @ d_s.normal).mean()


def test_without_standardisation_small_scale_feature_is_missed(data, d_s):
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        raw = LinearSVC(penalty="l1", loss="squared_hinge", dual=False, C=d_s.C, max_iter=2000,
                        intercept_scaling=D.INTERCEPT_SCALING).fit(x, y)
    coef = raw.coef_.ravel()
    assert coef[0] == 0.0                        # the 1e-3-scale informative column is lost without scaling ...
    assert d_s.coef[0] != 0.0                    # ... and found with it
    assert np.count_nonzero(coef) > 3 * np.count_nonzero(d_s.coef)


def test_default_C_is_relative_to_l1_min_c(data):
    x, y = data
    d_small = D.fit_direction(x[:400], y[:400], space="s")
    d_big = D.fit_direction(x, y, space="s")
    assert d_small.C > 1.5 * d_big.C             # scales ~1/N, unlike a fixed C
    assert D.fit_direction(x, y, space="z").penalty == "l2"
    assert D.fit_direction(x, y, space="z").C == D.L2_C_DEFAULT


def test_decision_matches_sklearn_on_standardised_codes(data, d_s):
    x, y = data
    tr, _ = D.split_indices(y, 0.2, 0)
    model = LinearSVC(penalty="l1", loss="squared_hinge", dual=False, C=d_s.C, max_iter=10000,
                      intercept_scaling=D.INTERCEPT_SCALING, random_state=0)
    model.fit((x[tr] - d_s.mean) / d_s.scale, y[tr])
    ref = model.decision_function((x - d_s.mean) / d_s.scale)
    np.testing.assert_allclose(d_s.decision(x), ref, rtol=1e-6, atol=1e-6)


def test_step_along_normal_changes_score_by_t_times_grad_norm(data, d_s):
    x = data[0][:50].astype(np.float64)
    g = d_s.score_gradient
    for t in (-3.0, 0.5, 7.0):
        delta = d_s.decision(x + t * d_s.normal.astype(np.float64)) - d_s.decision(x)
        np.testing.assert_allclose(delta, t * np.linalg.norm(g), rtol=1e-5)
    np.testing.assert_allclose(g, d_s.coef / d_s.scale)


def test_constant_column_does_not_explode():
    x, y = make_codes(n=300, dim=20)
    x[:, 5] = 3.0
    d = D.fit_direction(x, y, space="s")
    assert d.scale[5] > 0 and d.coef[5] == 0.0 and np.all(np.isfinite(d.normal))


@pytest.mark.parametrize("mutate, message", [
    (lambda x, y: (x, np.ones_like(y)), "single class"),
    (lambda x, y: (x, y[:-1]), "labels have"),
    (lambda x, y: (np.where(np.arange(x.shape[0])[:, None] == 7, np.nan, x), y), "NaN"),
    (lambda x, y: (x, np.arange(y.size) < 3), "too few samples per class"),
    (lambda x, y: (x, np.where(y, 2, 0)), "0/1"),
])
def test_fit_validation(mutate, message):
    x, y = make_codes(n=60, dim=10)
    with pytest.raises(ValueError, match=message):
        D.fit_direction(*mutate(x, y), space="s")


def test_fit_rejects_bad_space_and_too_small_C(data):
    x, y = data
    with pytest.raises(ValueError, match="space"):
        D.fit_direction(x, y, space="q")
    with pytest.raises(ValueError, match="no direction"):
        D.fit_direction(x, y, space="s", C=1e-9)


# ---------------------------------------------------------------------------------------------- file format


def _check_same(a: D.Direction, b: D.Direction):
    for f in ("normal", "mean", "scale", "coef"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert getattr(a, f).dtype == getattr(b, f).dtype
    for f in D._META_FIELDS:
        va, vb = getattr(a, f), getattr(b, f)
        assert va == vb or (isinstance(va, float) and np.isnan(va) and np.isnan(vb)), f


def test_save_load_round_trip(tmp_path, data, d_s):
    x, y = data
    d_z = D.fit_direction(x[:, :16], y, space="z", attribute="synthetic", val_fraction=0.0)
    assert np.isnan(d_z.val_acc) and d_z.n_val == 0
    path = tmp_path / "dirs.npz"
    D.save_directions(path, {"s": d_s, "z": d_z}, generator_id="abc123")
    assert [p.name for p in tmp_path.iterdir()] == ["dirs.npz"]          # no temp file left behind
    with np.load(path, allow_pickle=False) as f:                         # plain arrays + a JSON string
        assert {"s/normal", "s/coef", "z/mean", "meta"} <= set(f.files)
        assert json.loads(str(f["meta"]))["generator_id"] == "abc123"
    loaded = D.load_directions(path)
    assert list(loaded) == ["s", "z"]
    _check_same(loaded["s"], d_s)
    _check_same(loaded["z"], d_z)
    np.testing.assert_array_equal(loaded["s"].decision(x), d_s.decision(x))
    assert D.load_directions_meta(path)["generator_id"] == "abc123"
    assert D.load_directions(path, expect_generator_id="abc123")
    with pytest.raises(ValueError, match="fitted for generator"):
        D.load_directions(path, expect_generator_id="other")


def test_load_rejects_truncated_wrong_and_incomplete_files(tmp_path, d_s):
    good = tmp_path / "good.npz"
    D.save_directions(good, {"s": d_s})
    raw = good.read_bytes()
    cases = {"truncated.npz": raw[: len(raw) // 2], "text.npz": b"hello world"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not a readable"):
            D.load_directions(tmp_path / name)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no 'meta'"):
        D.load_directions(tmp_path / "other.npz")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable"):                 # needs pickle: refused
        D.load_directions(tmp_path / "pickled.npy")
    with np.load(good, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    del arrays["s/coef"]
    np.savez(tmp_path / "incomplete.npz", **arrays)
    with pytest.raises(ValueError, match="missing s/coef"):
        D.load_directions(tmp_path / "incomplete.npz")
    with zipfile.ZipFile(tmp_path / "incomplete.npz") as z:                # members are plain .npy, no pickles
        assert all(n.endswith(".npy") for n in z.namelist())
    for field, value, message in (("version", 99, "version 99 is not supported"),
                                  ("format", "other.tool", "is not an si_jax directions file")):
        with np.load(good, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays["meta"]))
        meta[field] = value
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(tmp_path / f"bad_{field}.npz", **arrays)
        with pytest.raises(ValueError, match=message):
            D.load_directions(tmp_path / f"bad_{field}.npz")


def test_table1_report(d_s):
    report = D.table1_report({"smile_s": d_s})
    lines = report.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("| key | space | attribute")
    assert f"{100 * d_s.val_acc:.2f}" in lines[2] and f"{100 * d_s.sparsity:.2f}" in lines[2]
    assert "| smile_s | S | synthetic |" in lines[2]


# ---------------------------------------------------------------------------------------- conditional editing


def test_conditional_direction():
    rng = np.random.default_rng(3)
    primary = rng.standard_normal(64)
    others = [primary + rng.standard_normal(64), rng.standard_normal(64)]
    n = D.conditional_direction(primary, others)
    assert n.shape == (64,) and np.isclose(np.linalg.norm(n), 1.0, atol=1e-6)
    for o in others:
        assert abs(float(n @ o)) < 1e-5 * np.linalg.norm(o)
    assert float(n @ primary) > 0
    np.testing.assert_allclose(D.conditional_direction(primary, []), primary / np.linalg.norm(primary), rtol=1e-6)
    with pytest.raises(ValueError, match="degenerate"):
        D.conditional_direction(others[0] - 2 * others[1], others)
    with pytest.raises(ValueError, match="shape"):
        D.conditional_direction(primary, [np.ones(3)])


# -------------------------------------------------------------------------------------------------- labels


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_labels_npy(tmp_path):
    p = tmp_path / "l.npy"
    np.save(p, np.array([0, 1, 1, 0, 1]))
    labels, idx = load_labels(p, 5)
    assert labels.dtype == bool and labels.tolist() == [False, True, True, False, True]
    assert idx.tolist() == [0, 1, 2, 3, 4]
    np.save(p, np.array([0.1, 0.9, 0.5, 0.3, 0.7]))
    labels, idx = load_labels(p, 5, threshold=0.4)
    assert labels.tolist() == [False, True, True, False, True]


def test_labels_csv_label_with_and_without_header(tmp_path):
    for text in ("index,label\n3,1\n0,0\n\n2,true\n", "3,1\n0,0\n2,1\n"):
        labels, idx = load_labels(_write(tmp_path, "l.csv", text), 4)
        assert idx.tolist() == [0, 2, 3] and labels.tolist() == [False, True, True]


def test_labels_csv_score_threshold(tmp_path):
    p = _write(tmp_path, "s.csv", "index,score\n0,0.2\n1,-1.5\n2,3.0\n4,0.9\n")
    labels, idx = load_labels(p, 5, threshold=0.5)
    assert idx.tolist() == [0, 1, 2, 4] and labels.tolist() == [False, False, True, True]


def test_labels_csv_score_ratio(tmp_path):
    scores = [0.5, 9.0, -2.0, 3.0, 0.0, 7.0, 1.0, -5.0, 2.0, 4.0]
    p = _write(tmp_path, "s.csv", "".join(f"{i},{s}\n" for i, s in enumerate(scores)))
    labels, idx = load_labels(p, 10, ratio=0.3)            # top 3: 1, 5, 9 ; bottom 3: 2, 4, 7
    assert idx.tolist() == [1, 2, 4, 5, 7, 9]
    assert labels.tolist() == [True, False, False, True, False, True]


@pytest.mark.parametrize("name, content, kwargs, message", [
    ("l.npy", np.array([0, 1, 1]), {}, "has 3 entries but there are 4"),
    ("l.npy", np.array([0.0, np.nan, 1.0, 0.0]), {"threshold": 0.5}, "NaN"),
    ("l.npy", np.array([0, 2, 1, 0]), {}, "not bool or 0/1"),
    ("l.csv", "0,1\n7,0\n", {}, "index 7 is out of range"),
    ("l.csv", "0,1\n1,0\n0,1\n", {}, "duplicate index 0"),
    ("l.csv", "0,1\n1,maybe\n", {}, "label 'maybe' is not a number"),
    ("s.csv", "index,score\n0,0.1\n1,abc\n", {"threshold": 0.0}, "score 'abc' is not a number"),
    ("s.csv", "index,score\n0,0.1\n1,nan\n", {"threshold": 0.0}, "not finite"),
    ("l.csv", "0,1\n1,1\n2,1\n", {}, "need both classes"),
    ("s.csv", "index,score\n0,0.1\n1,0.9\n", {}, "pass threshold or ratio"),
    ("l.csv", "index,label\n0,1\n1,0\n", {"threshold": 0.5}, "label column"),
    ("l.csv", "idx,lbl\n0,1\n", {}, "header"),
    ("l.csv", "0,1,2\n", {}, "expected 2 columns"),
    ("s.csv", "0,1\n1,2\n", {"threshold": 1.0, "ratio": 0.2}, "not both"),
    ("l.json", "{}", {}, "unsupported extension"),
])
def test_label_errors_name_the_problem_and_file(tmp_path, name, content, kwargs, message):
    p = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(p, content)
    else:
        p.write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        load_labels(p, 4, **kwargs)
    assert name in str(e.value)
