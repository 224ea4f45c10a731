"""Evaluation (paper Table 2, Figs. 2, 5, 6): bin/evaluate.py end to end on the demo, the table's ranking of a
local versus an entangled edit, Fig. 2's channel/mask IoU on a constructed case, Fig. 5's strip end points, and
bad input (one error line, nothing written)."""
import ast
import functools
import json

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, engine_error, random_directions, run_binary
from PIL import Image

import si_jax
from si_jax import metrics
from si_jax.editing import intervention
from si_jax.attributes import synthetic
from si_jax.engines import errors, evaluate_cli, flag_settings, settings
from si_jax.evaluation import comparison, evaluators, figure_data
from si_jax.stylegan2 import builtin, programs

OUTPUTS = ("table2.md", "table2.json", "fig5_interpolation.png", "fig6_layers.png", "fig6_mse.png",
           "fig2_channels.png", "fig2_iou.json", "fig5_interpolation.json", "fig6_mse.json")


@functools.lru_cache(maxsize=None)
def _demo():
    """Demo generator (no directions needed here), 3 images' styles."""
    canon, cfg = builtin.demo_generator()
    params = si_jax.to_jax_params(canon, cfg)
    z = np.random.default_rng(0).standard_normal((3, cfg.z_dim)).astype(np.float32)
    styles = si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, jnp.asarray(z)))
    return params, cfg, [np.asarray(s) for s in styles]


def test_evaluate_demo_end_to_end(tmp_path, jax_cache):
    """3 samples in batches of 2 (the last padded), every method but interfacegan (no --condition_on: skipped
    with a note). Also checks the paper's Table 2 claim on the demo: the intervention preserves the outside of
    the mask better than the Z-space edit."""
    out = tmp_path / "eval"
    proc = run_binary("evaluate.py", f"--compilation_cache={jax_cache}", f"--output_dir={out}", "--num_samples=3",
                      "--batch_size=2", "--steps_per_layer=3", "--fig_images=3",
                      "--methods=z,w,interfacegan,s,intervention", full_opt=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DEMO" in proc.stdout and "skipping method 'interfacegan'" in proc.stdout
    assert "| method |" in proc.stdout and "| Style Intervention |" in proc.stdout
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    table = json.loads((out / "table2.json").read_text())
    assert table["demo"] and table["num_images"] == 3 and "interfacegan" in table["skipped"]
    assert table["rows"] == ["z", "w", "s", "intervention"] and set(table["methods"]) == set(table["rows"])
    for m, cols in table["methods"].items():
        for key in ("mse_outside", "ssim_outside", "psnr_outside", "s_score_gain", "flipped", "judge_gain",
                    "judge_flipped", "others_flipped", "nuisance_change", "inside_mse"):
            assert np.isfinite(cols[key]["mean"]) and np.isfinite(cols[key]["std"]), (m, key)
            assert cols[key]["n"] == 3
    mse = {m: table["methods"][m]["mse_outside"]["mean"] for m in table["methods"]}
    ssim = {m: table["methods"][m]["ssim_outside"]["mean"] for m in table["methods"]}
    assert mse["intervention"] < mse["z"] and ssim["intervention"] > ssim["z"], (mse, ssim)
    for name in OUTPUTS:
        if name.endswith(".png"):
            with Image.open(out / name) as img:
                assert img.size[0] > 200 and img.size[1] > 100, name
    iou = json.loads((out / "fig2_iou.json").read_text())
    assert len(iou["channels"]) == 5 and iou["num_images"] == 3
    assert all(0.0 <= c["mean_iou"] <= 1.0 for c in iou["channels"])
    fig5 = json.loads((out / "fig5_interpolation.json").read_text())
    assert len(fig5["mse_outside_mean"]) == len(evaluate_cli.DEFAULT_COEFFS)
    fig6 = json.loads((out / "fig6_mse.json").read_text())
    assert len(fig6["mse_outside_mean"]) == len(si_jax.load_canonical("builtin:toyfaces")[1].layers) + 1
    assert fig6["mse_outside_mean"][-1] < fig6["mse_outside_mean"][0]  # the layer-wise optimisation helped


def test_table_ranks_entangled_edit_worse_than_local_one():
    """A provably local edit (pixels change only inside the mask) against an entangled one (the same inside
    change plus a global colour shift): lower MSE, higher SSIM and PSNR for the local one, and it is bold."""
    rng = np.random.default_rng(0)
    img0 = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    mask = synthetic.RegionAttribute().mask(4, 32, 32)
    inside = 0.8 * rng.standard_normal(img0.shape).astype(np.float32) * mask[..., None]
    local = img0 + inside
    entangled = img0 + inside + np.float32(0.3) * np.array([1.0, -0.5, 0.2], np.float32)
    red = synthetic.RegionAttribute().score
    dr = float(metrics.image_data_range(img0))
    results = {"num_images": 4, "data_range": dr, "methods": {
        name: comparison.edit_metrics(img0, img, mask, data_range=dr, classifier=red)
        for name, img in (("entangled", entangled), ("local", local))}}
    np.testing.assert_array_equal(results["methods"]["local"]["mse_outside"], 0.0)
    np.testing.assert_allclose(results["methods"]["local"]["classifier_change"], red(local) - red(img0), atol=1e-6)
    markdown, table = comparison.table2(results)
    loc, ent = table["methods"]["local"], table["methods"]["entangled"]
    assert loc["mse_outside"]["mean"] < ent["mse_outside"]["mean"]
    assert loc["ssim_outside"]["mean"] > ent["ssim_outside"]["mean"]
    assert loc["psnr_outside"]["mean"] is None and loc["psnr_outside"]["n_nonfinite"] == 4  # +inf: nothing changed
    assert loc["ssim_outside"]["mean"] == pytest.approx(1.0)
    row = next(line for line in markdown.splitlines() if line.startswith("| local |"))
    assert row.startswith("| local | **0 ± 0** | **") and "| **inf** |" in row, markdown  # best values in bold
    json.dumps(table, allow_nan=False)  # strict JSON


def test_channel_mask_iou_finds_the_channel_that_is_the_mask():
    """Mask := channel 7's own top-5 % map (per image) -> channel 7 ranks first with IoU 1."""
    params, cfg, styles = _demo()
    layer = figure_data.resolve_layer(cfg, "b16.conv1")
    maps = figure_data.channel_maps(params, cfg, styles, layer)
    assert maps.shape == (3, 32, 32, cfg.layers[layer].out_ch)
    binary = figure_data.top_fraction_maps(maps, 0.05)
    assert np.all(binary.sum(axis=(1, 2)) >= 52)  # ceil(0.05 * 1024), ties kept
    mask = binary[..., 7].astype(np.float32)
    best = figure_data.channel_mask_iou(params, cfg, styles, mask, layer, top_frac=0.05, k=3)
    assert best[0][0] == 7 and best[0][1] == pytest.approx(1.0)
    assert len(best) == 3 and best[1][1] < 1.0 and best[1][1] <= best[0][1]
    with pytest.raises(ValueError, match="toRGB"):
        figure_data.channel_mask_iou(params, cfg, styles, mask, figure_data.resolve_layer(cfg, "b4.conv1") + 1)


def test_interpolation_strip_end_points():
    """s(c) = s + (1 − Λ*)Δs_z + c·Λ*Δs_n: c = 1 is the intervention's edit (apply_lambda), c = 0 keeps only the
    Z part Λ* let through; Λ* = 0 makes every c the Z edit, Λ* = 1 makes the strip the S-space line s + c·Δs_n."""
    params, cfg, styles = _demo()
    rng = np.random.default_rng(1)
    ds_z = [0.3 * rng.standard_normal(s.shape).astype(np.float32) for s in styles]
    ds_n = [rng.standard_normal(s.shape).astype(np.float32) * (rng.random(s.shape) < 0.1) for s in styles]
    lam = [rng.random(s.shape).astype(np.float32) for s in styles]
    coeffs = (0.0, 0.5, 1.0, 1.5)
    strip = figure_data.interpolation_strip(params, cfg, styles, ds_z, ds_n, lam, coeffs)
    assert strip.shape == (4, 3, 32, 32, 3)
    synth = programs.synth_program(cfg)
    _, img_lam = intervention.apply_lambda(params, cfg, styles, ds_z, ds_n, lam)
    np.testing.assert_allclose(strip[2], img_lam, rtol=1e-5, atol=1e-5)
    no_n = np.asarray(synth(params, [s + (1 - l) * d for s, d, l in zip(styles, ds_z, lam)]))
    np.testing.assert_allclose(strip[0], no_n, rtol=1e-5, atol=1e-5)
    assert not np.allclose(strip[0], strip[3], atol=1e-3)
    zero = [np.zeros_like(l) for l in lam]
    flat = figure_data.interpolation_strip(params, cfg, styles, ds_z, ds_n, zero, coeffs)
    img_z = np.asarray(synth(params, [s + d for s, d in zip(styles, ds_z)]))
    for k in range(len(coeffs)):
        np.testing.assert_allclose(flat[k], img_z, rtol=1e-5, atol=1e-5)
    one = [np.ones_like(l) for l in lam]
    line = figure_data.interpolation_strip(params, cfg, styles, ds_z, ds_n, one, (1.5,))
    np.testing.assert_allclose(line[0], synth(params, [s + 1.5 * d for s, d in zip(styles, ds_n)]),
                               rtol=1e-5, atol=1e-5)
    mse = figure_data.strip_outside_mse(strip, np.asarray(synth(params, styles)), synthetic.RegionAttribute().mask(
        3, 32, 32))
    assert mse.shape == (4, 3) and np.all(mse >= 0)
    with pytest.raises(ValueError, match="coeffs"):
        figure_data.interpolation_strip(params, cfg, styles, ds_z, ds_n, lam, [])


def _flags(**kw) -> dict:
    """bin/evaluate.py's flags for the demo, 2 samples."""
    return {**dict(methods="z,s,intervention", coeffs="0,1", num_samples=2, batch_size=2, fig_images=2,
                   steps_per_layer=2, learning_rate=0.2, seed=0, truncation_psi=1.0), **kw}


def _resolve(tmp_path, **kw):
    return evaluate_cli.resolve_inputs(settings.eval_job(_flags(**kw)), tmp_path / "out", log=lambda m: None)


@pytest.mark.parametrize("kw, message", [
    (dict(methods="z,bogus"), "unknown method"),
    (dict(methods="interfacegan"), "nothing to compare"),
    (dict(coeffs="0,x"), "--coeffs"),
    (dict(num_samples=0), "--num_samples"),
    (dict(mask="box:0,0,99,99"), "outside"),
    (dict(fig_layer="b16.torgb"), "toRGB"),
    (dict(fig_layer="b99.conv1"), "no style layer"),
    (dict(top_frac=0.0), "--top_frac"),
])
def test_bad_input_rejected_before_anything_is_computed(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        _resolve(tmp_path, **kw)
    assert not (tmp_path / "out").exists()


def test_non_empty_output_dir_refused_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        _resolve(tmp_path)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_bad_input_one_error_line_nothing_written(tmp_path, capsys):
    out = tmp_path / "out"
    line = engine_error(capsys, "evaluate.py", {"output_dir": str(out), "methods": "z,nope"})
    assert line.startswith("error: unknown method") and not out.exists()


def test_evaluate_has_the_edit_flags_and_defaults():
    """bin/evaluate.py's intervention flags are bin/edit.py's, with the same defaults (engines.settings); the demo
    alone starts from fewer steps per layer."""
    config = intervention.InterventionConfig()
    real = {"weights": "builtin:demo", "direction": "d.npz"}
    assert settings.eval_job(real).intervention == settings.edit_job(real).edit.intervention == config
    assert settings.eval_job({}).intervention.steps_per_layer == evaluate_cli.DEMO_STEPS_PER_LAYER
    kw = dict(steps_per_layer=4, learning_rate=0.1, lambda_attr=0.5, lambda_norm=0.0, lambda_init=0.25,
              objective="paper", lambda_inside=2.0)
    paper = settings.eval_job({**real, **kw}).intervention
    assert paper == settings.edit_job({**real, **kw}).edit.intervention == intervention.config_for(**kw)
    assert (paper.pixel_loss, paper.lambda_inside) == ("l2", 0.0)


def _defined_flags(define, *args) -> dict:
    """{flag: (default, help)} that a define_*_flags(flags, ...) function defines."""
    out = {}

    class Recorder:
        def __getattr__(self, kind):
            return lambda name, default, *rest, **kw: out.setdefault(name, (default, rest[-1] if rest else None))
    define(Recorder(), *args)
    return out


def test_edit_and_evaluate_share_their_mask_and_intervention_flags():
    """bin/edit.py and bin/evaluate.py define --mask / --masks / --attribute / --condition_on and the intervention
    flags through the same functions (one wording, one default), and neither defines any of them itself."""
    shared = {**_defined_flags(flag_settings.define_intervention_flags), **_defined_flags(
        flag_settings.define_mask_flags, "edit")}
    assert {"mask", "masks", "attribute", "condition_on", "objective", "steps_per_layer"} <= set(shared)
    assert _defined_flags(flag_settings.define_mask_flags, "edit")["mask"] == _defined_flags(
        flag_settings.define_mask_flags, "evaluate")["mask"]
    for binary in ("edit", "evaluate"):
        tree = ast.parse((REPO / "bin" / f"{binary}.py").read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
        own = {c.args[0].value for c in calls if c.func.attr.startswith("DEFINE_") and c.args
               and isinstance(c.args[0], ast.Constant)}
        assert not own & set(shared), (binary, own & set(shared))
        assert {"define_mask_flags", "define_intervention_flags"} <= {c.func.attr for c in calls}, binary


# ------------------------------------------------------------------------------------------- evaluators by name

def test_unknown_evaluator_is_one_line_listing_the_known_ones():
    with pytest.raises(errors.UsageError) as err:
        settings.eval_job({"evaluators": "ssim,sharpness"})
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("--evaluators='ssim,sharpness': unknown evaluator(s) 'sharpness'")
    assert msg.endswith("known: " + ", ".join(evaluators.DEFAULT)), msg
    with pytest.raises(ValueError, match="listed twice"):
        evaluators.parse("ssim,ssim")
    assert settings.eval_job({"evaluators": "psnr, ssim"}).evaluator_list == ("psnr", "ssim")
    assert settings.eval_job({}).evaluator_list is None


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory):
    """builtin:demo, directions fit on random codes (conftest.random_directions: the tests below compare columns and
    values between runs, which any valid direction feeds), saved to a file (for bin/evaluate.py's engine)."""
    from si_jax.editing import directions

    canonical, cfg = builtin.demo_generator()
    params = si_jax.to_jax_params(canonical, cfg)
    dirs = random_directions(cfg)
    path = tmp_path_factory.mktemp("dirs") / "dir.npz"
    directions.save_directions(path, dirs, generator_id=si_jax.fingerprint(canonical))
    return params, cfg, dirs, path


def test_chosen_evaluators_are_exactly_those_columns_with_the_default_numbers(demo_dirs):
    """compare_methods + table2 with evaluators ('ssim', 'outside_mse'): exactly their columns, in that order, and
    the same statistics as the default run's; 's_score' without an S direction is refused when named."""
    params, cfg, dirs, _ = demo_dirs
    z = np.random.default_rng(3).standard_normal((3, cfg.z_dim)).astype(np.float32)
    mask = synthetic.RegionAttribute().mask(3, cfg.img_resolution, cfg.img_resolution)
    run = functools.partial(comparison.compare_methods, params, cfg, z, dirs, mask, ("z", "s"), batch_size=2)
    full, chosen = run(), run(evaluators="ssim,outside_mse")
    _, table = comparison.table2(full)
    markdown, sub = comparison.table2(chosen, evaluators=("ssim", "outside_mse"))
    assert [c["key"] for c in table["columns"]] == ["mse_outside", "ssim_outside", "psnr_outside", "s_score_gain",
                                                    "flipped"]
    assert [c["key"] for c in sub["columns"]] == ["ssim_outside", "mse_outside"]
    assert markdown.splitlines()[0] == "| method | SSIM outside ↑ | MSE outside ↓ |"
    assert chosen["evaluators"] == ["ssim", "outside_mse"] and set(chosen["methods"]["z"]) == {"ssim_outside",
                                                                                             "mse_outside"}
    for m in ("z", "s"):
        assert sub["methods"][m] == {k: table["methods"][m][k] for k in ("ssim_outside", "mse_outside")}
    no_s = {k: v for k, v in dirs.items() if k != "s"}
    with pytest.raises(ValueError, match="evaluator 's_score' needs an S-space direction"):
        comparison.compare_methods(params, cfg, z, no_s, mask, ("z",), evaluators="s_score")


def test_evaluations_jsonl_appended_per_row_and_evaluator(demo_dirs, tmp_path):
    """bin/evaluate.py's engine in-process twice into one folder (the second with --overwrite and
    --evaluators=ssim): evaluations.jsonl holds the first run's lines (a row and evaluator each, the table's
    statistics), then the second's appended; the second table has the SSIM column alone, with the same numbers.
    An evaluator the inputs cannot feed (the judges on builtin:demo) is refused before anything is written."""
    _, _, dirs, path = demo_dirs
    flags = dict(methods="z,s", coeffs="0,1", num_samples=3, batch_size=2, fig_images=2, mask="box:4,4,16,16",
                 weights="builtin:demo", direction=str(path), seed=0, top_channels=3)
    out = tmp_path / "eval"
    with pytest.raises(ValueError, match="evaluator 'judge' needs the toyfaces judges"):
        evaluate_cli.run(settings.eval_job({**flags, "evaluators": "ssim,judge"}), out, log=lambda m: None)
    assert not out.exists()
    first = evaluate_cli.run(settings.eval_job(flags), out, log=lambda m: None)
    lines = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert [(r["method"], r["evaluator"]) for r in lines] == [
        (m, e) for m in ("z", "s") for e in ("outside_mse", "ssim", "psnr", "s_score")]
    for r in lines:
        assert r["attribute"] == dirs["s"].attribute and r["num_images"] == 3
        assert r["values"] == {k: first["methods"][r["method"]][k] for k in r["values"]}
    assert set(lines[3]["values"]) == {"s_score_gain", "flipped"}
    second = evaluate_cli.run(settings.eval_job({**flags, "evaluators": "ssim", "overwrite": True}), out,
                              log=lambda m: None)
    again = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert again[:len(lines)] == lines and [(r["method"], r["evaluator"]) for r in again[len(lines):]] == [
        ("z", "ssim"), ("s", "ssim")]
    assert [c["key"] for c in second["columns"]] == ["ssim_outside"]
    for m in ("z", "s"):
        assert second["methods"][m]["ssim_outside"] == first["methods"][m]["ssim_outside"]
    assert json.loads((out / "table2.json").read_text())["columns"] == second["columns"]
    assert (out / "per_image.csv").is_file() and again[-1]["settings_digest"] != lines[0]["settings_digest"]
