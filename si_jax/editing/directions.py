"""Attribute directions: linear SVMs on latent / style codes (paper Sec. 3.1, Table 1; InterFaceGAN).

Pure numpy + scikit-learn, no JAX. A `Direction` holds one fitted classifier and the unit edit direction derived
from it; `fit_direction` fits one, `save_directions` / `load_directions` store a named set of them in a code-free
`.npz`, `table1_report` renders the paper's Table 1, `conditional_direction` is InterFaceGAN's conditional
manipulation.

Standardisation and the raw-space direction
-------------------------------------------
Style channels differ in scale by orders of magnitude, and an L1 penalty on raw coefficients would favour the
large-scale channels (a small coefficient on a large-scale channel buys as much margin as a huge one on a
small-scale channel). So each column is standardised with the training split's mean μ_j and std σ_j (σ floored
at `STD_FLOOR_REL`·median(σ), so constant columns do not explode) and the SVM is fitted on u = (x − μ)/σ:

    f(x) = Σ_j c_j (x_j − μ_j)/σ_j + b          (c = `coef`, b = `intercept`)

f is linear in the raw code x, with gradient  g = ∇_x f = c/σ  (elementwise; `score_gradient`). Among raw steps
δ of fixed L2 length t, f(x + δ) − f(x) = g·δ is largest for δ = t·g/‖g‖ (Cauchy–Schwarz), so the edit
direction is  n = g/‖g‖  (`normal`, unit L2 norm, towards the positive class). g_j = 0 exactly where c_j = 0, so
n has the same zero pattern as the L1 solution: sparsity is preserved. A step t·n changes the score by exactly
t·(g·n) = t·‖g‖, and f(x)/‖g‖ is the signed raw L2 distance of x to the decision hyperplane.

Default C
---------
l2: C = 1.0 (sklearn's and InterFaceGAN's default; the Z/W codes are roughly isotropic so the choice matters little).
l1: C = `L1_C_FACTOR` × l1_min_c, where l1_min_c = 0.5 / max_j |Σ_i y_i u_ij| (y = ±1, features only:
`sklearn.svm.l1_min_c(u, y, fit_intercept=False)`) is the C at and below which the L1 solution is all zero. It
scales like 1/N, so a fixed multiple gives the same regularisation per sample whatever the number of codes (a
fixed C gets denser as N grows). The intercept is left out of the bound on purpose: u is centred, and with
unbalanced labels an intercept column would dominate it (measured: 24x too small a C at 20 % positives, 93x at 5 %).
Measured (fit on 80 %, accuracy on the 20 % hold-out; "L2" = l2 penalty, C = 1):
  demo 32px generator, 640-d styles, 4 box-colour attributes, InterFaceGAN ratio 0.25 (N = 6000):
      factor 10: sparsity 96.6–97.0 %, val 1.0–2.8 points below L2;  20: 94.5–95.8 %, 0.4–1.2 below;
      50: 93.3–94.1 %, 0.0–0.4 below;  200: 90.6–91.7 %, same as L2 (±0.3).
  same, median-threshold labels: sparsity at factor 20 is 93–95 % for N = 1500, 4000 and 12000 alike.
  9088-d synthetic codes (N = 10000, low-rank correlated, 300-feature signal): factor 20: 97.9 %, val 0.862;
      50: 95.5 %, 0.878;  100: 87.5 %, 0.868;  L2: val 0.828 (overfits, train 1.00).
      Fit time 8–25 s (factors 10–100, 2 CPU cores).
  3-of-200 synthetic (tests): factors 1.5–20 find exactly the 3 features; 50 adds 19 noise features.
Factor 20 stays in the paper's sparsity range (93–98 %, Table 1) and within about a point of the best accuracy;
pass C explicitly (or a larger factor × `l1_min_c_of`) to trade sparsity for accuracy.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile

import numpy as np

from si_jax import storage

SPACES = ("s", "z", "w")
PENALTIES = ("l1", "l2")
STD_FLOOR_REL = 1e-6       # σ_j >= STD_FLOOR_REL * median_j(σ_j): constant columns get a finite, harmless scale
L1_C_FACTOR = 20.0         # default l1 C = L1_C_FACTOR * l1_min_c (measurements in the module docstring)
L2_C_DEFAULT = 1.0
INTERCEPT_SCALING = 10.0   # liblinear penalises the intercept like a feature; a constant 10 makes that 10x weaker
MIN_PER_CLASS = 4
FILE_FORMAT = "si_jax.directions"
FILE_VERSION = 1
_ARRAY_FIELDS = ("normal", "mean", "scale", "coef")
_META_FIELDS = ("space", "attribute", "intercept", "train_acc", "val_acc", "sparsity", "penalty", "C",
                "n_train", "n_val")


@dataclasses.dataclass(frozen=True, eq=False)
class Direction:
    """One fitted linear classifier f(x) = ((x − mean)/scale)·coef + intercept and its raw-space edit direction.

    normal: [D] float32, unit L2 norm; from `fit_direction` it is score_gradient/‖score_gradient‖ (towards the
        positive class). `dataclasses.replace(d, normal=conditional_direction(...))` gives a conditional variant.
    mean, scale, coef: [D] float64 (standardisation stats of the training split; weights on standardised codes).
    sparsity: fraction of exactly-zero entries of coef (= of normal). val_acc is NaN when n_val == 0.
    """

    normal: np.ndarray
    space: str
    attribute: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    train_acc: float
    val_acc: float
    sparsity: float
    penalty: str
    C: float
    n_train: int
    n_val: int

    def __post_init__(self):
        arrays = {"normal": np.asarray(self.normal, np.float32)}
        arrays.update({k: np.asarray(getattr(self, k), np.float64) for k in ("mean", "scale", "coef")})
        dim = arrays["normal"].shape
        for name, arr in arrays.items():
            if arr.ndim != 1 or arr.shape != dim:
                raise ValueError(f"Direction.{name} has shape {arr.shape}, expected {dim} (1-D, same as normal)")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"Direction.{name} contains NaN or inf")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if self.space not in SPACES:
            raise ValueError(f"Direction.space must be one of {SPACES}, got {self.space!r}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"Direction.penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if np.any(arrays["scale"] <= 0):
            raise ValueError("Direction.scale must be positive")
        if abs(float(np.linalg.norm(arrays["normal"].astype(np.float64))) - 1.0) > 1e-4:
            raise ValueError("Direction.normal must have unit L2 norm")
        for name in ("intercept", "train_acc", "val_acc", "sparsity", "C"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("n_train", "n_val"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def dim(self) -> int:
        """D, the dimension of the code space."""
        return int(self.normal.shape[0])

    @property
    def score_gradient(self) -> np.ndarray:
        """g = coef/scale [D] float64: raw-space gradient of `decision`; a step t·normal changes it by t·‖g‖."""
        return self.coef / self.scale

    def decision(self, codes) -> np.ndarray:
        """codes: [..., D] raw codes -> [...] float64 decision value f(x) = ((x − mean)/scale)·coef + intercept."""
        x = np.asarray(codes)
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"codes have shape {x.shape}, expected [..., {self.dim}] ({self.space}-space codes)")
        flat = x.reshape(-1, self.dim)
        out = np.empty(flat.shape[0], np.float64)
        for i in range(0, flat.shape[0], 8192):                    # float64 in blocks: bounded memory
            out[i:i + 8192] = ((flat[i:i + 8192].astype(np.float64) - self.mean) / self.scale) @ self.coef
        return (out + self.intercept).reshape(x.shape[:-1])


# ----------------------------------------------------------------------------------------------------- fitting


def _check_training_data(codes, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validated (codes [N, D] float, labels [N] bool); ValueError naming the problem otherwise."""
    x = np.asarray(codes)
    if x.ndim != 2:
        raise ValueError(f"codes must be a 2-D array [N, D], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"codes must be real numbers, got dtype {x.dtype}")
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array [N], got shape {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"codes have {x.shape[0]} samples but labels have {y.shape[0]}")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isin(y, (0, 1))):
            raise ValueError("labels must be bool or 0/1 (got other values); threshold scores first "
                             "(see si_jax.engines.labels)")
        y = y.astype(bool)
    if not np.all(np.isfinite(x)):
        bad = np.unique(np.nonzero(~np.isfinite(x))[0])
        raise ValueError(f"codes contain NaN or inf in {bad.size} sample(s), first at row {bad[0]}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"labels have a single class ({n_pos} positive, {n_neg} negative): need both")
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        raise ValueError(f"too few samples per class ({n_pos} positive, {n_neg} negative): need at least "
                         f"{MIN_PER_CLASS} of each")
    return x, y


def split_indices(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random split -> (train indices, val indices), each sorted; val is empty for val_fraction 0."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in (False, True):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(val_fraction * idx.size))
        if val_fraction > 0:
            n_val = min(max(n_val, 1), idx.size - 2)   # both classes in val, at least 2 of each in train
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def standardisation(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x_train [N, D] -> (mean [D], scale [D]) float64; scale = std floored at STD_FLOOR_REL·median(std)."""
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    med = float(np.median(std))
    floor = STD_FLOOR_REL * med if med > 0 else 1.0
    return mean, np.maximum(std, floor)


def default_C(penalty: str, u_train: np.ndarray, y_train: np.ndarray) -> float:
    """The default C for standardised training codes u_train [N, D] (see module docstring)."""
    if penalty == "l2":
        return L2_C_DEFAULT
    return L1_C_FACTOR * l1_min_c_of(u_train, y_train)


def l1_min_c_of(u_train: np.ndarray, y_train: np.ndarray) -> float:
    """Smallest C for which the l1 squared-hinge SVM on u_train [N, D] has a non-zero coefficient.

    Features only: u_train is centred, so the intercept does not compete with them, and with unbalanced classes
    an intercept column would dominate the bound and make C far too small.
    """
    from sklearn.svm import l1_min_c
    return float(l1_min_c(u_train, y_train, loss="squared_hinge", fit_intercept=False))


def raw_direction(coef: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Unit raw-space edit direction g/‖g‖ with g = coef/scale [D]; ValueError if all coef are zero."""
    g = np.asarray(coef, np.float64) / np.asarray(scale, np.float64)
    norm = float(np.linalg.norm(g))
    if not norm > 0 or not math.isfinite(norm):
        raise ValueError("the classifier found no direction (all coefficients are zero): C is too small for "
                         "these labels, or the codes do not separate them")
    return (g / norm).astype(np.float32)


def _accuracy(model, u: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(u) == y)) if y.size else float("nan")


def fit_direction(codes, labels, *, space: str, attribute: str = "attr", penalty: str | None = None,
                  C: float | None = None, val_fraction: float = 0.2, seed: int = 0, max_iter: int = 10000,
                  tol: float = 1e-4, class_weight=None) -> Direction:
    """Fit a linear SVM on standardised codes and return its `Direction`.

    codes: [N, D] raw codes of `space` ('s' style, 'z' or 'w' latent). labels: [N] bool or 0/1 (True = positive).
    penalty: 'l1' (sparse; default for 's') or 'l2' (default for 'z', 'w'). C: None = `default_C`.
    val_fraction: stratified hold-out fraction (seeded by `seed`) for `val_acc`; 0 disables validation.
    The SVM is `LinearSVC(loss='squared_hinge', dual=False)`; mean/scale come from the training split only.
    """
    from sklearn.svm import LinearSVC

    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    penalty = penalty or ("l1" if space == "s" else "l2")
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    if C is not None and not (math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive number, got {C}")
    x, y = _check_training_data(codes, labels)
    tr, va = split_indices(y, val_fraction, seed)
    mean, scale = standardisation(x[tr])
    u_tr = (x[tr] - mean) / scale
    u_va = (x[va] - mean) / scale
    C = float(C) if C is not None else default_C(penalty, u_tr, y[tr])
    model = LinearSVC(penalty=penalty, loss="squared_hinge", dual=False, C=C, tol=tol, max_iter=max_iter,
                      fit_intercept=True, intercept_scaling=INTERCEPT_SCALING, class_weight=class_weight,
                      random_state=seed)
    model.fit(u_tr, y[tr])
    coef = model.coef_.ravel().astype(np.float64)
    return Direction(normal=raw_direction(coef, scale), space=space, attribute=str(attribute), mean=mean,
                     scale=scale, coef=coef, intercept=float(model.intercept_[0]),
                     train_acc=_accuracy(model, u_tr, y[tr]), val_acc=_accuracy(model, u_va, y[va]),
                     sparsity=float(np.mean(coef == 0.0)), penalty=penalty, C=C, n_train=tr.size, n_val=va.size)


# ------------------------------------------------------------------------------------------------ file format


def _meta_of(d: Direction) -> dict:
    meta = {k: getattr(d, k) for k in _META_FIELDS}
    if not math.isfinite(meta["val_acc"]):
        meta["val_acc"] = None   # strict JSON has no NaN
    return meta


def save_directions(path, directions: dict, generator_id: str | None = None) -> None:
    """Write {key: Direction} to a code-free .npz at `path` (atomic and fsynced: `storage.write_atomic`).

    Layout: arrays `<key>/normal|mean|scale|coef`, plus `meta`, a 0-d unicode array holding JSON
    {"format", "version", "generator_id", "directions": {key: {space, attribute, intercept, accuracies, ...}}}.
    generator_id: optional fingerprint of the generator the codes came from (checked by `load_directions`).
    """
    if not directions:
        raise ValueError("no directions to save")
    arrays, meta = {}, {}
    for key, d in directions.items():
        if not isinstance(key, str) or not key or key == "meta":
            raise ValueError(f"direction keys must be non-empty strings other than 'meta', got {key!r}")
        if not isinstance(d, Direction):
            raise ValueError(f"directions[{key!r}] is a {type(d).__name__}, not a Direction")
        arrays.update({f"{key}/{f}": getattr(d, f) for f in _ARRAY_FIELDS})
        meta[key] = _meta_of(d)
    header = {"format": FILE_FORMAT, "version": FILE_VERSION,
              "generator_id": None if generator_id is None else str(generator_id), "directions": meta}
    arrays["meta"] = np.array(json.dumps(header))
    storage.write_stream_atomic(path, lambda f: np.savez(f, **arrays), fsync=True)


def _read(path) -> tuple[dict, dict]:
    """(header dict, {name: array}) of a directions file; ValueError if it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"directions file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path} is not a readable si_jax directions file: {e}") from None
    if "meta" not in data:
        raise ValueError(f"{path} is not an si_jax directions file: no 'meta' entry")
    try:
        header = json.loads(str(data["meta"]))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: the 'meta' entry is not valid JSON: {e}") from None
    storage.check_format_header(header, path, "directions file", FILE_FORMAT, FILE_VERSION)
    if not isinstance(header.get("directions"), dict):
        raise ValueError(f"{path}: 'meta' has no 'directions' table")
    return header, data


def load_directions_meta(path) -> dict:
    """The file's JSON header: {"format", "version", "generator_id" (str or None), "directions": {key: {...}}}."""
    return _read(path)[0]


def load_directions(path, expect_generator_id: str | None = None) -> dict:
    """Read a file written by `save_directions` -> {key: Direction}; never unpickles anything.

    expect_generator_id: if given and the file records a different generator_id, ValueError (the directions
    were fitted on another generator). Files without a generator_id are accepted.
    """
    header, data = _read(path)
    gid = header.get("generator_id")
    if expect_generator_id is not None and gid is not None and gid != expect_generator_id:
        raise ValueError(f"{os.fspath(path)} was fitted for generator {gid!r}, not {expect_generator_id!r}")
    out = {}
    for key, meta in header["directions"].items():
        missing = [f"{key}/{f}" for f in _ARRAY_FIELDS if f"{key}/{f}" not in data]
        missing += [f"meta.{key}.{f}" for f in _META_FIELDS if not isinstance(meta, dict) or f not in meta]
        if missing:
            raise ValueError(f"{os.fspath(path)}: direction {key!r} is incomplete, missing {', '.join(missing)}")
        fields = {f: data[f"{key}/{f}"] for f in _ARRAY_FIELDS}
        fields.update({f: meta[f] for f in _META_FIELDS})
        if fields["val_acc"] is None:
            fields["val_acc"] = float("nan")
        try:
            d = Direction(**fields)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{os.fspath(path)}: direction {key!r} is invalid: {e}") from None
        out[key] = d
    return out


# ------------------------------------------------------------------------------------------------- reporting


def _pct(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{100.0 * v:.2f}"


def table1_report(directions: dict) -> str:
    """Markdown table in the spirit of the paper's Table 1: one row per direction, accuracies and sparsity in %."""
    rows = ["| key | space | attribute | dim | penalty | C | train acc % | val acc % | sparsity % | n_train | n_val |",
            "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for key, d in directions.items():
        rows.append(f"| {key} | {d.space.upper()} | {d.attribute} | {d.dim} | {d.penalty} | {d.C:.3g} | "
                    f"{_pct(d.train_acc)} | {_pct(d.val_acc)} | {_pct(d.sparsity)} | {d.n_train} | {d.n_val} |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------- conditional editing


def conditional_direction(primary, others, *, tol: float = 1e-6) -> np.ndarray:
    """InterFaceGAN conditional manipulation: primary [D] projected onto the orthogonal complement of span(others).

    others: list of [D] arrays (or Directions, whose .normal is used). Returns a unit [D] float32 vector n with
    n·o = 0 for every o in others and n·primary > 0. ValueError if primary (almost) lies in span(others), i.e.
    the residual is shorter than tol·‖primary‖.
    """
    p = np.asarray(getattr(primary, "normal", primary), np.float64)
    if p.ndim != 1 or not np.all(np.isfinite(p)) or not np.linalg.norm(p) > 0:
        raise ValueError(f"primary must be a finite, non-zero 1-D vector, got shape {p.shape}")
    vs = [np.asarray(getattr(o, "normal", o), np.float64) for o in others]
    for i, v in enumerate(vs):
        if v.shape != p.shape or not np.all(np.isfinite(v)):
            raise ValueError(f"others[{i}] has shape {v.shape} or non-finite values; expected finite {p.shape}")
    r = p.copy()
    if vs:
        b = np.stack(vs, axis=1)                                   # [D, k]
        for _ in range(2):                                         # second pass removes round-off
            r = r - b @ np.linalg.lstsq(b, r, rcond=None)[0]
    norm = float(np.linalg.norm(r))
    if norm < tol * float(np.linalg.norm(p)):
        raise ValueError("conditional direction is degenerate: the primary direction lies in the span of the "
                         "others (nothing is left after removing them)")
    return (r / norm).astype(np.float32)
