"""Per-image results as a page to browse (`index.html`) and a table (`per_image.csv`): rows in, text out.

    rows = edit_rows(index, target_sign, svm_before, svm_after, mse_outside, judge_before=..., judge_after=...,
                     thumbs=[f"images/{i:06d}.png" for i in index])
    html = render_html("eyeglasses: Style Intervention", rows, EDIT_COLUMNS, summary={...})
    text = render_csv(rows, EDIT_COLUMNS)

Pure: the engines write both files with their summary (storage.Outputs, all or none). The output is a function
of the rows alone (no timestamps), so a resumed run writes the same bytes.

A row is a dict {column key: float | int | str | None (not measured)} plus 'thumb' (a path relative to the page,
or a data: URI; None: no picture) and 'flags' (keys of FLAGS). The page is one self-contained file: inline CSS and
a few lines of inline JS, no network. Clicking a header sorts by it (again: the other way); "flagged only" hides
the rest; flagged rows are tinted. The URL fragment presets both, e.g. `index.html#sort=svm_gain&desc=1&flagged=1`.
Once its script has run, the page marks `<body data-report="ready">`, and after loading the pictures
`data-broken-images="N"` (the headless-browser test reads both).

Edit rows (`edit_rows`), per image:
  target        'add' / 'remove': the side of the attribute the edit goes towards (the sign of the latent step)
  svm_before / svm_after / svm_gain      the S-space SVM's decision on the styles, and (after − before) · ±1:
                the change TOWARDS the target (metrics.score_gain; > 0 = the right direction)
  judge_before / judge_after / judge_gain   the same for the independent judge (toyfaces classifier logit)
  mse_outside   outside-mask MSE of the edit (+ any `extra` columns)
  flags         judge_disagrees: the judge and the SVM put the INPUT on different sides (the edit's target, fixed
                from the latent classifier, may then be the wrong way for what the image shows); no_flip: the
                judge's label (without a judge: the SVM's) did not change; on_target_already: the judge (else the
                SVM) sees the input on the target side already (the target comes from the latent classifier).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math

import numpy as np
from PIL import Image

from si_jax import metrics

FLAGS = {"judge_disagrees": "judge disagrees with the SVM about the input",
         "on_target_already": "the judge (else the SVM) already put the input on the target side: the target was "
                              "set by the latent classifier, which saw it on the other side",
         "no_flip": "no flip (the judge's label, else the SVM's, did not change)",
         "low_psnr": "reconstruction PSNR more than 2 std below the mean"}

# (key, header, decimals or None for text): what the edit pages show, in order
EDIT_COLUMNS = (("image", "image", None), ("target", "target", None),
                ("svm_before", "SVM before", 3), ("svm_after", "SVM after", 3), ("svm_gain", "SVM Δ→target", 3),
                ("judge_before", "judge before", 2), ("judge_after", "judge after", 2),
                ("judge_gain", "judge Δ→target", 2), ("mse_outside", "MSE outside", 5))
THUMB_HEIGHT = 96   # px of a data: URI thumbnail (bigger images are scaled down before encoding)


# ------------------------------------------------------------------------------------------------ rows

def edit_rows(index, target_sign, svm_before, svm_after, mse_outside, *, judge_before=None, judge_after=None,
              names=None, thumbs=None, extra=None, method=None) -> list:
    """One row per edited image (keys in the module docstring). Every array [N]; target_sign ±1; names: [N] str
    (default: the index); thumbs: [N] relative paths / data URIs or None; extra: {column key: [N]} added as they
    are; method: a 'method' value for every row (pages that list several methods)."""
    n = len(index)
    sign = np.asarray(target_sign, np.float32)
    svm_before, svm_after = np.asarray(svm_before, np.float32), np.asarray(svm_after, np.float32)
    svm_gain = metrics.score_gain(svm_before, svm_after, sign)
    judged = judge_before is not None
    if judged:
        judge_before, judge_after = np.asarray(judge_before, np.float32), np.asarray(judge_after, np.float32)
        judge_gain = metrics.score_gain(judge_before, judge_after, sign)
    rows = []
    for i in range(n):
        flags = []
        if judged and (judge_before[i] > 0) != (svm_before[i] > 0):
            flags.append("judge_disagrees")
        before, after = (judge_before[i], judge_after[i]) if judged else (svm_before[i], svm_after[i])
        if before * sign[i] > 0:
            flags.append("on_target_already")
        if not before * after < 0:
            flags.append("no_flip")
        row = {"image": str(names[i]) if names is not None else int(index[i]),
               **({} if method is None else {"method": method}),
               "target": "add" if sign[i] > 0 else "remove", "svm_before": float(svm_before[i]),
               "svm_after": float(svm_after[i]), "svm_gain": float(svm_gain[i]),
               "judge_before": float(judge_before[i]) if judged else None,
               "judge_after": float(judge_after[i]) if judged else None,
               "judge_gain": float(judge_gain[i]) if judged else None,
               "mse_outside": float(mse_outside[i]),
               **{k: float(v[i]) for k, v in (extra or {}).items()},
               "thumb": None if thumbs is None else thumbs[i], "flags": flags}
        rows.append(row)
    return rows


def projection_rows(names, thumbs, psnr: dict, ssim: dict) -> tuple:
    """Rows of a projection run (bin/project.py): per image its name, picture and per code space SP the PSNR
    ('psnr_SP', dB) and SSIM ('ssim_SP') of the reconstruction; flag low_psnr where a space's PSNR lies more than
    2 std below that space's mean. psnr, ssim: {space: [N]}. -> (rows, columns)."""
    low = {sp: np.asarray(v) < np.mean(v) - 2 * np.std(v) for sp, v in psnr.items()}
    columns = (("image", "image", None),) + tuple(
        col for sp in psnr for col in ((f"psnr_{sp}", f"PSNR {sp} (dB)", 2), (f"ssim_{sp}", f"SSIM {sp}", 3)))
    rows = [{"image": str(name), **{f"psnr_{sp}": float(psnr[sp][i]) for sp in psnr},
             **{f"ssim_{sp}": float(ssim[sp][i]) for sp in ssim}, "thumb": thumbs[i],
             "flags": ["low_psnr"] if any(bool(v[i]) for v in low.values()) else []}
            for i, name in enumerate(names)]
    return rows, columns


def direction_summary(target_sign, svm_before, svm_after, judge_before=None, judge_after=None) -> dict:
    """The summary.json fields of the edit's direction, every score change measured towards the target:
    {'targets': {'add', 'remove'}, 'svm_flip_rate', 'svm_score_gain_mean', 'svm_score_change_raw_mean', and with
    a judge 'judge_flip_rate', 'judge_score_gain_mean', 'judge_score_change_raw_mean',
    'judge_svm_disagree_rate'; 'no_flip_count', 'on_target_already_count'}. Arrays [N]; `_raw` = after − before,
    whose mean cancels across images edited in opposite directions (kept for comparison with older summaries)."""
    sign = np.asarray(target_sign, np.float32)
    b, a = np.asarray(svm_before, np.float32), np.asarray(svm_after, np.float32)
    out = {"targets": {"add": int(np.sum(sign > 0)), "remove": int(np.sum(sign < 0))},
           "svm_flip_rate": float(metrics.flip_rate(b, a)),
           "svm_score_gain_mean": float(metrics.score_gain(b, a, sign).mean()),
           "svm_score_change_raw_mean": float((a - b).mean())}
    if judge_before is not None:
        jb, ja = np.asarray(judge_before, np.float32), np.asarray(judge_after, np.float32)
        out.update(judge_flip_rate=float(metrics.flip_rate(jb, ja)),
                   judge_score_gain_mean=float(metrics.score_gain(jb, ja, sign).mean()),
                   judge_score_change_raw_mean=float((ja - jb).mean()),
                   judge_svm_disagree_rate=float(np.mean((jb > 0) != (b > 0))))
        b, a = jb, ja
    out["no_flip_count"] = int(np.sum(~(b * a < 0)))
    out["on_target_already_count"] = int(np.sum(b * sign > 0))
    return out


DIRECTION_DEFINITIONS = {
    "targets": "images the edit adds the attribute to / removes it from (sign of the latent step; per image in "
               "per_image.csv)",
    "svm_score_gain_mean": "mean of (after - before) x (+1 add, -1 remove) of the S-space SVM decision: the change "
                           "towards the target (paper Table 2)",
    "svm_score_change_raw_mean": "mean of after - before (cancels across images edited in opposite directions)",
    "judge_score_gain_mean": "as svm_score_gain_mean, for the independent judge's logit",
    "judge_score_change_raw_mean": "as svm_score_change_raw_mean, for the judge's logit",
    "judge_svm_disagree_rate": "fraction of inputs that the judge and the S-space SVM put on different sides",
    "no_flip_count": "images whose judge label (without a judge: SVM label) did not change",
    "on_target_already_count": "inputs that the judge (without a judge: the SVM) puts on the target side already",
}


def notes_on(summary: dict) -> list:
    """Log lines that put a direction_summary (within a summary.json dict) into words: the targets, the judge's
    verdict beside the SVM's, and a note when they disagree about inputs or the judge sees far fewer flips."""
    t, n = summary["targets"], summary["num_images"]
    what = summary.get("attribute") or "the attribute"
    lines = [f"targets: add {what} to {t['add']} images, remove it from {t['remove']} (per image: index.html, "
             "per_image.csv)"]
    if "judge_flip_rate" not in summary:
        lines.append(f"S-space SVM: flip rate {summary['svm_flip_rate']:.2f}, score change towards the target "
                     f"{summary['svm_score_gain_mean']:+.3g} (no judge for this generator: the SVM is a weak witness)")
        return lines
    lines.append(f"judge: flip rate {summary['judge_flip_rate']:.2f}, logit change towards the target "
                 f"{summary['judge_score_gain_mean']:+.3g}; S-space SVM: {summary['svm_flip_rate']:.2f}, "
                 f"{summary['svm_score_gain_mean']:+.3g}")
    k = round(summary["judge_svm_disagree_rate"] * n)
    if k:
        lines.append(f"note: the judge and the S-space SVM disagree about {k} of {n} inputs (flag judge_disagrees "
                     "in index.html): for those the target may be the wrong way for what the image shows")
    if summary["on_target_already_count"]:
        lines.append(f"note: the judge sees {summary['on_target_already_count']} of {n} inputs on the target side "
                     "already (flag on_target_already): the latent classifier that set their target saw them on "
                     "the other side")
    if summary["judge_flip_rate"] < 0.5 * summary["svm_flip_rate"]:
        lines.append("note: the judge sees far fewer flips than the S-space SVM; the judge's verdict is the one "
                     "to trust")
    return lines


def thumbnail_uri(image_u8, height: int = THUMB_HEIGHT) -> str:
    """[H, W, 3] uint8 (e.g. an input | edit | mask strip) -> a PNG data: URI, scaled down (never up) to
    `height` px high, for pages of runs that write no per-image PNGs."""
    img = Image.fromarray(np.asarray(image_u8, np.uint8))
    if img.height > height:
        img = img.resize((max(1, round(img.width * height / img.height)), height), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------------------------ text out

def _number(v, decimals) -> str:
    """The shown text of a cell (fixed decimals; '' for None)."""
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{decimals}f}" if decimals is not None and isinstance(v, float) else str(v)


def render_csv(rows, columns) -> str:
    """rows -> CSV text: the `columns` (full precision, repr of the float32 values), then 'flags' (';'-joined
    keys) and 'thumb'. Empty cells: not measured."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = [k for k, _, _ in columns]
    writer.writerow(keys + ["flags", "thumb"])
    for row in rows:
        cells = ["" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float) else str(row[k])
                 for k in keys]
        thumb = row.get("thumb") or ""
        writer.writerow(cells + [";".join(row["flags"]), "" if thumb.startswith("data:") else thumb])
    return buf.getvalue()


_CSS = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;vertical-align:middle}
th{background:#eee;cursor:pointer;user-select:none;position:sticky;top:0}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
tr.flagged td{background:#fde8e8}
td.text{text-align:left} td.flags{text-align:left;color:#a00}
img{image-rendering:pixelated;height:96px}
#summary{display:flex;flex-wrap:wrap;gap:4px 18px;max-width:1100px}
#summary span{white-space:nowrap}
"""

_JS = """
(function () {
  var table = document.getElementById("rows"), body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells, box = document.getElementById("flagged-only");
  function value(row, c) {
    var v = row.cells[c].getAttribute("data-v");
    return v === null || v === "" ? null : (isNaN(Number(v)) ? v : Number(v));
  }
  function sort(c, desc) {
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, c), y = value(b, c);
      if (x === null || y === null) return (x === null) - (y === null);
      var r = x < y ? -1 : x > y ? 1 : 0;
      return desc ? -r : r;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) heads[i].className = "";
    heads[c].className = desc ? "desc" : "asc";
  }
  function filter() {
    Array.prototype.forEach.call(body.rows, function (r) {
      r.style.display = box.checked && r.className !== "flagged" ? "none" : "";
    });
  }
  Array.prototype.forEach.call(heads, function (th, c) {
    if (th.getAttribute("data-key") === null) return;
    th.addEventListener("click", function () { sort(c, th.className === "asc"); });
  });
  box.addEventListener("change", filter);
  var opts = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("="); if (p[0]) opts[p[0]] = decodeURIComponent(p[1] || "");
  });
  if (opts.sort) {
    for (var i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute("data-key") === opts.sort) sort(i, opts.desc === "1");
    }
  }
  if (opts.flagged === "1") { box.checked = true; }
  filter();
  document.body.setAttribute("data-report", "ready");
  window.addEventListener("load", function () {
    var bad = Array.prototype.filter.call(document.images, function (im) { return !im.naturalWidth; });
    document.body.setAttribute("data-broken-images", String(bad.length));
  });
})();
"""


def _scalars(summary: dict, skip=("settings", "definitions")) -> list:
    """[(label, value)] of a summary's numbers and strings; a nested dict's as 'key.sub' (one level)."""
    out = []
    for k, v in summary.items():
        if k in skip:
            continue
        if isinstance(v, dict):
            out += [(f"{k}.{sub}", x) for sub, x in v.items() if isinstance(x, (int, float, str))]
        elif isinstance(v, (int, float, str)):
            out.append((k, v))
    return out


def render_html(title: str, rows, columns, *, summary=None, notes=()) -> str:
    """rows -> one self-contained HTML page (module docstring). summary: a summary.json dict, whose numbers and
    strings are shown above the table (not its 'settings' or 'definitions'); notes: lines of explanation below it
    (the meanings of the flags that occur are added). Columns with no value in any row are left out (the CSV
    keeps every column)."""
    e = html.escape
    n_flagged = sum(bool(r["flags"]) for r in rows)
    columns = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]   # no judge: no empty columns
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    if summary:
        out.append('<div id="summary">' + "".join(
            f"<span><b>{e(k)}</b> {e(_number(v, 4) if isinstance(v, float) else str(v))}</span>"
            for k, v in _scalars(summary)) + "</div>")
    used = sorted({f for r in rows for f in r["flags"]}, key=list(FLAGS).index)
    out.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in notes) +
               "".join(f"<li><b>{e(f)}</b>: {e(FLAGS[f])}</li>" for f in used) + "</ul>")
    out.append(f'<p><label><input type="checkbox" id="flagged-only"> flagged only ({n_flagged} of {len(rows)} '
               "rows)</label> · click a header to sort</p>")
    with_thumbs = any(r.get("thumb") for r in rows)
    heads = (["<th>picture</th>"] if with_thumbs else []) + [
        f'<th data-key="{e(k)}">{e(h)}</th>' for k, h, _ in columns] + ['<th data-key="flags">flags</th>']
    out.append('<table id="rows"><thead><tr>' + "".join(heads) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        if with_thumbs:
            thumb = row.get("thumb")
            cells.append(f'<td><img src="{e(thumb)}" alt="{e(str(row.get("image", "")))}"></td>' if thumb
                         else "<td></td>")
        for k, _, decimals in columns:
            v = row.get(k)
            raw = "" if v is None else repr(v) if isinstance(v, float) else str(v)
            cls = ' class="text"' if decimals is None else ""
            cells.append(f'<td{cls} data-v="{e(raw)}">{e(_number(v, decimals))}</td>')
        flags = ", ".join(row["flags"])
        cells.append(f'<td class="flags" data-v="{e(flags)}">{e(flags)}</td>')
        out.append(("<tr class=\"flagged\">" if row["flags"] else "<tr>") + "".join(cells) + "</tr>")
    out += ["</tbody></table>", f"<script>{_JS}</script>", "</body></html>", ""]
    return "\n".join(out)
