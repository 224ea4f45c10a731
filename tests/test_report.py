"""The browsable report (evaluation.report; index.html + per_image.csv of bin/edit.py, evaluate.py, project.py):
rows measured towards each image's target, the flags, CSV = page, and each kind of run's page opened in a real
headless Chromium (no console error, its script ran, sorting and the filter work, every picture loads).

Chromium comes from the system's packages (`apt-get install chromium`; .ci/run installs it). Without it the
browser tests are skipped with that reason, except under CI=true, where it is a failure.
"""
import base64
import csv
import io
import json
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest
from conftest import random_directions
from PIL import Image

import si_jax
from si_jax import metrics
from si_jax.editing import masks
from si_jax.engines import edit_run, runs
from si_jax.evaluation import report
from si_jax.stylegan2 import builtin

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--dump-dom")


def open_in_chromium(page: pathlib.Path, tmp_path, fragment: str = "") -> tuple:
    """Load file://page#fragment in headless Chromium. -> (the DOM after the page's scripts ran, console lines)."""
    if not os.access(CHROMIUM, os.X_OK):
        msg = f"{CHROMIUM} not found (apt-get install chromium); the report's browser test needs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           page.resolve().as_uri() + (f"#{fragment}" if fragment else "")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


def _table_rows(dom: str) -> list:
    """[(flagged, style, cells html)] of the page's row table, in DOM order."""
    table = dom.split('id="rows"')[1]
    return [(bool(f), s, c) for f, s, c in re.findall(
        r'<tr( class="flagged")?(?: style="([^"]*)")?>(.*?)</tr>', table.split("</thead>")[1], re.S)]


def check_page_in_browser(folder: pathlib.Path, tmp_path, sort_key: str, num_rows: int) -> str:
    """The page of `folder` opens without a console message, its script ran, every picture loads; sorting by
    `sort_key` (descending, via the URL fragment) orders the rows by that column; 'flagged only' shows exactly
    the flagged rows. -> the sorted DOM."""
    dom, console = open_in_chromium(folder / "index.html", tmp_path, f"sort={sort_key}&desc=1")
    assert not console, console
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-report="ready"' in body and 'data-broken-images="0"' in body, body
    rows = _table_rows(dom)
    assert len(rows) == num_rows
    col = re.findall(r'<th data-key="([^"]+)"', dom).index(sort_key)
    values = [re.findall(r'data-v="([^"]*)"', cells)[col] for _, _, cells in rows]
    numbers = [float(v) for v in values if v]
    assert len(numbers) > 1 and numbers == sorted(numbers, reverse=True), values
    assert 'class="desc"' in dom
    dom_flagged, console = open_in_chromium(folder / "index.html", tmp_path, "flagged=1")
    assert not console, console
    rows = _table_rows(dom_flagged)
    assert [flagged for flagged, style, _ in rows if "none" not in (style or "")] == [True] * sum(
        flagged for flagged, _, _ in rows)
    return dom


def read_csv(path) -> list:
    return list(csv.DictReader(io.StringIO(pathlib.Path(path).read_text())))


# ------------------------------------------------------------------------------------------------ pure parts

def test_gain_is_measured_towards_each_images_target():
    """With --target=flip the images on either side move in opposite directions: raw changes cancel, gains add."""
    before, after, sign = np.array([-1.0, 1.0]), np.array([1.0, -1.0]), np.array([1.0, -1.0])
    np.testing.assert_allclose(metrics.score_gain(before, after, sign), [2.0, 2.0])
    s = report.direction_summary(sign, before, after, judge_before=[-3.0, 2.0], judge_after=[4.0, 1.0])
    assert s["svm_score_change_raw_mean"] == 0.0 and s["svm_score_gain_mean"] == 2.0
    assert s["judge_score_gain_mean"] == pytest.approx((7.0 + 1.0) / 2)
    assert s["targets"] == {"add": 1, "remove": 1} and s["judge_flip_rate"] == 0.5 and s["no_flip_count"] == 1
    assert s["judge_svm_disagree_rate"] == 0.0 and s["on_target_already_count"] == 0


def test_rows_flag_disagreement_and_missing_flips():
    rows = report.edit_rows(np.arange(3), [1, -1, 1], [-1.0, 2.0, -0.5], [1.0, -1.0, 0.6], [0.1, 0.3, 0.2],
                            judge_before=[-2.0, 3.0, 1.0], judge_after=[2.0, 3.5, 4.0])
    assert [r["flags"] for r in rows] == [[], ["no_flip"], ["judge_disagrees", "on_target_already", "no_flip"]]
    assert [r["target"] for r in rows] == ["add", "remove", "add"]
    assert rows[1]["judge_gain"] == pytest.approx(-0.5)   # moved away from the target: negative
    no_judge = report.edit_rows(np.arange(2), [1, 1], [-1.0, -1.0], [1.0, -0.5], [0.0, 0.0])
    assert [r["flags"] for r in no_judge] == [[], ["no_flip"]] and no_judge[0]["judge_gain"] is None
    removed = report.edit_rows(np.arange(1), [-1], [-0.1], [-2.0], [0.0], judge_before=[-6.0], judge_after=[-9.0])
    assert removed[0]["flags"] == ["on_target_already", "no_flip"]   # 'remove' from a face the judge sees without
    assert report.direction_summary([-1], [-0.1], [-2.0], [-6.0], [-9.0])["on_target_already_count"] == 1


def test_csv_holds_the_page_rows_and_html_escapes_names():
    rows = report.edit_rows(np.arange(2), [1, -1], [-1.0, 2.0], [1.0, 1.5], [0.1, 0.25], names=["a<b>.png", "c&d"],
                            thumbs=["images/000000.png", report.thumbnail_uri(np.zeros((300, 900, 3), np.uint8))])
    back = list(csv.DictReader(io.StringIO(report.render_csv(rows, report.EDIT_COLUMNS))))
    assert [r["image"] for r in back] == ["a<b>.png", "c&d"] and back[1]["flags"] == "no_flip"
    assert float(back[0]["svm_gain"]) == rows[0]["svm_gain"] and back[0]["judge_before"] == ""
    assert back[0]["thumb"] == "images/000000.png" and back[1]["thumb"] == ""   # no data URI in the CSV
    page = report.render_html("x <y>", rows, report.EDIT_COLUMNS, summary={"num_images": 2, "settings": {"a": 1}})
    assert "a&lt;b&gt;.png" in page and "<title>x &lt;y&gt;</title>" in page and "a<b>" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)   # self-contained: nothing fetched
    thumb = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(thumb))).size == (288, report.THUMB_HEIGHT)


# ------------------------------------------------------------------------------------------------ an edit run

@pytest.fixture(scope="module")
def demo_model():
    """builtin:demo and directions fit on random codes (conftest.random_directions): the pages and CSVs below are
    checked against the runs' own numbers, which any valid direction feeds."""
    canonical, cfg = builtin.demo_generator()
    params = si_jax.to_jax_params(canonical, cfg)
    return params, cfg, random_directions(cfg)


def _judge(images):
    """A stand-in judge for the demo generator: the red channel's mean, centred (its sign differs per image)."""
    red = np.asarray(images)[..., 0].mean(axis=(1, 2))
    return red - np.median(red)


EDIT_SETTINGS = dict(method="s", mask="box:4,4,16,16", batch_size=2)


@pytest.fixture(scope="module")
def edit_folder(tmp_path_factory, demo_model):
    """An edit run in-process (the S-only method: no layer programs to compile), 4 images, a stand-in judge."""
    params, cfg, dirs = demo_model
    out = tmp_path_factory.mktemp("edit") / "run"
    st = edit_run.EditSettings(**EDIT_SETTINGS)
    z = np.random.default_rng(0).standard_normal((4, cfg.z_dim)).astype(np.float32)
    summary = edit_run.run_edits(runs.RunDir(out, {"test": "report"}), params, cfg, dirs, z, st,
                                 masks.resolve(st.mask, 4, cfg.img_resolution), judge=_judge,
                                 log=lambda m: None)
    return out, summary, dirs


def test_edit_run_writes_page_csv_and_direction_summary(edit_folder):
    out, summary, dirs = edit_folder
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["attribute"] == dirs["s"].attribute and summary["target"] == "flip"
    assert summary["targets"]["add"] + summary["targets"]["remove"] == 4
    assert {"svm_score_gain_mean", "judge_score_gain_mean", "judge_svm_disagree_rate", "judge_flip_rate"} <= set(
        summary) and "svm_score_gain_mean" in summary["definitions"]
    rows = read_csv(out / "per_image.csv")
    shards = [dict(np.load(out / "shards" / f"shard_0000{k}.npz")) for k in range(2)]
    sign, before, after = (np.concatenate([s[key] for s in shards]) for key in ("target_sign", "score_before",
                                                                                 "score_after"))
    assert set(sign) <= {-1.0, 1.0}
    np.testing.assert_allclose([float(r["svm_gain"]) for r in rows], (after - before) * sign, rtol=1e-6)
    assert summary["svm_score_gain_mean"] == pytest.approx(float(np.mean((after - before) * sign)), rel=1e-5)
    assert [r["target"] for r in rows] == ["add" if s > 0 else "remove" for s in sign]
    assert all((out / r["thumb"]).is_file() for r in rows)
    judge_before = np.array([float(r["judge_before"]) for r in rows])
    disagree = [("judge_disagrees" in r["flags"]) for r in rows]
    assert disagree == list((judge_before > 0) != (before > 0))
    assert sum(disagree) == round(summary["judge_svm_disagree_rate"] * 4)
    page = (out / "index.html").read_text()
    assert page.count('<tr class="flagged">') == sum(bool(r["flags"]) for r in rows)


def test_edit_run_page_opens_in_chromium(edit_folder, tmp_path):
    check_page_in_browser(edit_folder[0], tmp_path, "svm_gain", 4)


def test_finish_rewrites_page_and_csv_with_the_same_bytes(edit_folder):
    """A rerun of a finished run (what a resumed run ends with) writes the page and CSV byte for byte again."""
    out, summary, dirs = edit_folder
    before = {name: (out / name).read_bytes() for name in ("index.html", "per_image.csv", "summary.json")}
    again = edit_run.finish(runs.RunDir(out, {"test": "report"}), 2, edit_run.EditSettings(**EDIT_SETTINGS),
                            attribute=dirs["s"].attribute)
    assert again == summary
    assert {name: (out / name).read_bytes() for name in before} == before


# ------------------------------------------------------------------------------------------------ evaluate, project

def test_evaluate_run_page_and_csv(demo_model, tmp_path):
    """bin/evaluate.py's driver in-process (builtin:demo, methods z and s: no layer programs): one row per method
    and image, thumbnails of the kept images inline, the page opens in Chromium."""
    from si_jax.editing import directions
    from si_jax.engines import evaluate_cli, settings

    params, cfg, dirs = demo_model
    direction = tmp_path / "dir.npz"
    directions.save_directions(direction, dirs, generator_id=si_jax.fingerprint(builtin.demo_generator()[0]))
    job = settings.eval_job(dict(
        methods="z,s", coeffs="0,1", num_samples=3, batch_size=2, fig_images=2, steps_per_layer=2, learning_rate=0.2,
        mask="box:4,4,16,16", weights="builtin:demo", direction=str(direction), seed=0, top_channels=3))
    lines = []
    table = evaluate_cli.run(job, tmp_path / "eval", log=lines.append)
    out = tmp_path / "eval"
    assert table["attribute"] == dirs["s"].attribute and sum(table["targets"].values()) == 3
    assert any(f"attribute '{dirs['s'].attribute}'" in line for line in lines)
    rows = read_csv(out / "per_image.csv")
    assert [(r["method"], r["image"]) for r in rows] == [(m, str(i)) for m in ("Z-space", "S-space (Δs_n)")
                                                          for i in range(3)]
    for m in ("z", "s"):   # the page's mean per method is the table's
        gains = [float(r["svm_gain"]) for r in rows if r["method"] == evaluate_cli.comparison.METHOD_NAMES[m]]
        assert np.mean(gains) == pytest.approx(table["methods"][m]["s_score_gain"]["mean"], rel=1e-5)
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 * 2   # fig_images kept images x 2 methods
    check_page_in_browser(out, tmp_path, "mse_outside", 6)


def test_project_run_page_and_csv(tmp_path):
    """bin/project.py's engine in-process (a random 16 px generator: the page and CSV hold the run's own numbers;
    3 images, W, 2 steps): a row per image with PSNR / SSIM, the images/ PNGs as pictures; the page opens in
    Chromium."""
    from si_jax import projection
    from si_jax.engines import project_run
    from si_jax.stylegan2.config import G2Config

    cfg = G2Config.make(img_resolution=16, channel_base=256, channel_max=16, z_dim=8, w_dim=8, mapping_layers=2)
    params = si_jax.to_jax_params(si_jax.random_canonical(cfg, seed=0), cfg)
    images = np.random.default_rng(1).uniform(-1, 1, (3, cfg.img_resolution, cfg.img_resolution, 3))
    folder = projection.ImageFolder(images.astype(np.float32), ["b.png", "a<1>.png", "c.jpg"], [[], [], []], [])
    st = project_run.ProjectSettings(projection.ProjectConfig(num_steps=2), ("w",), batch_size=2)
    out = tmp_path / "proj"
    manifest = project_run.run_projection(runs.RunDir(out, {"test": "report"}), params, cfg, folder, st,
                                          projection.ProjectAux(), {"generator_id": "x"}, log=lambda m: None)
    rows = read_csv(out / "per_image.csv")
    assert [r["image"] for r in rows] == ["b.png", "a<1>.png", "c.jpg"]
    with np.load(out / project_run.CODES) as codes:
        np.testing.assert_allclose([float(r["psnr_w"]) for r in rows], codes["psnr_w"], rtol=1e-6)
    assert np.mean([float(r["psnr_w"]) for r in rows]) == pytest.approx(
        manifest["reconstruction"]["w"]["psnr_mean"], rel=1e-5)
    assert all((out / r["thumb"]).is_file() for r in rows)
    check_page_in_browser(out, tmp_path, "psnr_w", 3)


# ------------------------------------------------------------------------------------------------ pictures vs words

def test_fig6_plot_has_x_ticks():
    """Fig. 6's error plot marks the layers under its x axis: tick marks at 'Z' (x = 0) and every step of layers,
    where the plot without ticks has only white below the axis."""
    from si_jax.evaluation import figure_panels, pictures

    pix = np.linspace(1.0, 0.1, 12)[:, None] * np.ones((1, 2))   # the Z edit + 11 layers, 2 images
    img = figure_panels.fig6_mse_plot(pix)
    left, right, bottom = 50, 480 - 10, 270 - 38
    dark = img[bottom + 1:bottom + 4].min(axis=(0, 2)) < 128
    ticks = [round(left + (right - left) * i / 11) for i in (0, 2, 4, 6, 8, 10)]
    assert all(dark[x - 1:x + 2].any() for x in ticks)
    assert not dark[ticks[0] + 10:ticks[1] - 10].any()   # nothing between two ticks
    plain = pictures.line_plot({"mean": pix[:, 0]}, width=480, height=270)   # no ticks: its axis at 270 - 25
    assert (plain[270 - 25 + 1:270 - 25 + 4, left + 10:right - 10] > 128).all()
