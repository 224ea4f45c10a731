"""Attribute label files for fitting directions (`bin/fit_direction.py`).

    labels, indices = load_labels(path, num_samples, threshold=None, ratio=None)
    direction = fit_direction(codes[indices], labels, space='s')

Accepted files (sample i = row i of the codes file the labels belong to, 0-based):
- `.npy` [num_samples]: bool or 0/1 labels; or numeric (not bool) scores when `threshold` or `ratio` is given.
- `.csv` / `.txt`: rows `index,label` (label 0/1/true/false) or `index,score` (any number). A header row is
  optional; if present it names the columns `index` and `label`, `score` or the attribute (`index,smile`: read
  like a header-less column, and `column_name` gives the name). Without a header the second column is read as a
  score when `threshold` or `ratio` is given, else as a label. A UTF-8 byte-order mark is accepted. Indices may
  cover a subset of the samples (e.g. only the manually annotated ones), in any order, each at most once.

Scores become labels either with `threshold` t (score > t positive, else negative) or, as InterFaceGAN does,
with `ratio` r in (0, 0.5]: the top ⌊r·n⌋ scores are positive, the bottom ⌊r·n⌋ negative and the middle is
discarded. Returns `(labels bool [N'], indices int64 [N'])`, sorted by index. Every problem is a ValueError naming
the file and what is wrong.
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np

_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def _fail(path, msg: str):
    raise ValueError(f"label file {os.fspath(path)}: {msg}")


def _check_options(threshold, ratio):
    if threshold is not None and ratio is not None:
        raise ValueError("give either threshold or ratio, not both")
    if threshold is not None and not math.isfinite(float(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    if ratio is not None and not 0.0 < float(ratio) <= 0.5:
        raise ValueError(f"ratio must be in (0, 0.5], got {ratio}")


def scores_to_labels(scores: np.ndarray, *, threshold=None, ratio=None) -> tuple[np.ndarray, np.ndarray]:
    """scores [n] -> (labels bool [n'], positions int64 [n'] into scores, ascending).

    threshold: score > threshold is positive (n' = n). ratio r: top ⌊r·n⌋ positive, bottom ⌊r·n⌋ negative.
    """
    _check_options(threshold, ratio)
    scores = np.asarray(scores, np.float64)
    if threshold is not None:
        return scores > float(threshold), np.arange(scores.size, dtype=np.int64)
    if ratio is None:
        raise ValueError("scores need a threshold or a ratio to become labels")
    k = int(math.floor(float(ratio) * scores.size))
    if k < 1:
        raise ValueError(f"ratio {ratio} of {scores.size} scores selects no samples")
    order = np.argsort(scores, kind="stable")
    pos = np.sort(np.concatenate([order[:k], order[-k:]]))
    labels = np.zeros(scores.size, bool)
    labels[order[-k:]] = True
    return labels[pos], pos.astype(np.int64)


def _parse_label(path, lineno: int, text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    try:
        v = float(t)
    except ValueError:
        _fail(path, f"line {lineno}: label {text!r} is not a number")
    if v in (0.0, 1.0):
        return bool(v)
    _fail(path, f"line {lineno}: label {text!r} is not 0/1 (for scores pass threshold or ratio)")


def _parse_score(path, lineno: int, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        _fail(path, f"line {lineno}: score {text!r} is not a number")
    if not math.isfinite(v):
        _fail(path, f"line {lineno}: score {text!r} is not finite")
    return v


def _parse_index(path, lineno: int, text: str, num_samples: int) -> int:
    try:
        v = float(text)
    except ValueError:
        _fail(path, f"line {lineno}: index {text!r} is not a number")
    if not math.isfinite(v) or v != int(v):
        _fail(path, f"line {lineno}: index {text!r} is not an integer")
    i = int(v)
    if not 0 <= i < num_samples:
        _fail(path, f"line {lineno}: index {i} is out of range [0, {num_samples})")
    return i


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path, num_samples: int, use_scores: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """-> (indices int64 [n], values [n] (bool labels or float scores), column kind 'label'|'score')."""
    with open(path, newline="", encoding="utf-8-sig") as f:   # -sig: spreadsheets start with a byte-order mark
        rows = [(n, [c.strip() for c in r]) for n, r in enumerate(csv.reader(f), start=1)
                if any(c.strip() for c in r)]
    if not rows:
        _fail(path, "no rows")
    kind = "score" if use_scores else "label"
    first = rows[0][1]
    if first and not _is_number(first[0]):      # a header row
        names = [c.lower() for c in first]
        if len(names) != 2 or names[0] != "index" or not names[1]:
            _fail(path, f"header {first} must be 'index,label', 'index,score' or 'index,ATTRIBUTE'")
        kind = names[1] if names[1] in ("label", "score") else kind
        rows = rows[1:]
        if not rows:
            _fail(path, "header but no rows")
    indices, values, seen = [], [], {}
    for lineno, r in rows:
        if len(r) != 2:
            _fail(path, f"line {lineno}: expected 2 columns (index,{kind}), got {len(r)}")
        i = _parse_index(path, lineno, r[0], num_samples)
        if i in seen:
            _fail(path, f"line {lineno}: duplicate index {i} (first on line {seen[i]})")
        seen[i] = lineno
        indices.append(i)
        values.append(_parse_score(path, lineno, r[1]) if kind == "score" else _parse_label(path, lineno, r[1]))
    return np.asarray(indices, np.int64), np.asarray(values), kind


def _read_npy(path, num_samples: int) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        _fail(path, f"not a readable .npy array ({e})")
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        _fail(path, f"expected a 1-D array [{num_samples}], got shape {getattr(arr, 'shape', None)}")
    if arr.shape[0] != num_samples:
        _fail(path, f"has {arr.shape[0]} entries but there are {num_samples} samples")
    if arr.dtype != bool and not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        _fail(path, f"dtype {arr.dtype} is not bool or numeric")
    if not np.all(np.isfinite(arr.astype(np.float64))):
        _fail(path, f"contains NaN or inf (first at index {int(np.flatnonzero(~np.isfinite(arr.astype(float)))[0])})")
    return arr


def column_name(path) -> str | None:
    """The attribute a .csv label file names in its header ('index,smile' -> 'smile'), else None (no header, a
    generic 'label' / 'score' column, or not a .csv / .txt file)."""
    if os.path.splitext(os.fspath(path))[1].lower() not in (".csv", ".txt"):
        return None
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.reader(f):
            cells = [c.strip() for c in row]
            if any(cells):
                if len(cells) == 2 and cells[0].lower() == "index" and cells[1].lower() not in ("label", "score"):
                    return cells[1] or None
                return None
    return None


def load_labels(path, num_samples: int, *, threshold: float | None = None,
                ratio: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a label file -> (labels bool [N'], indices int64 [N'] of the samples used, ascending).

    num_samples: number of codes the labels refer to. threshold / ratio: turn scores into labels (see module
    docstring); they are required for score columns and refused for label columns.
    """
    try:
        _check_options(threshold, ratio)
    except ValueError as e:
        _fail(path, str(e))
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    use_scores = threshold is not None or ratio is not None
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if os.path.isdir(path):
        _fail(path, "is a folder, not a .npy or .csv file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file {os.fspath(path)} not found")
    if ext == ".npy":
        arr = _read_npy(path, num_samples)
        indices = np.arange(num_samples, dtype=np.int64)
        if use_scores:
            if arr.dtype == bool:
                _fail(path, "holds boolean labels, not scores: threshold and ratio apply to scores only")
            values, kind = arr.astype(np.float64), "score"
        else:
            if arr.dtype != bool and not np.all(np.isin(arr, (0, 1))):
                _fail(path, "values are not bool or 0/1; for scores pass threshold or ratio")
            values, kind = arr.astype(bool), "label"
    elif ext in (".csv", ".txt"):
        indices, values, kind = _read_csv(path, num_samples, use_scores)
    else:
        _fail(path, f"unsupported extension {ext!r} (use .npy or .csv)")
    if kind == "score":
        if not use_scores:
            _fail(path, "has a score column: pass threshold or ratio to turn scores into labels")
        try:
            labels, pos = scores_to_labels(values, threshold=threshold, ratio=ratio)
        except ValueError as e:
            _fail(path, str(e))
        indices = indices[pos]
    else:
        if use_scores:
            _fail(path, "has a label column: threshold and ratio apply to score columns only")
        labels = values.astype(bool)
    order = np.argsort(indices, kind="stable")
    labels, indices = labels[order], indices[order]
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        _fail(path, f"all {labels.size} used samples are {'positive' if n_pos else 'negative'}: need both classes")
    return labels, indices
