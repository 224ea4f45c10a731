"""The claims RESULTS.md makes, re-measured on a small fixed set of toyfaces samples by the independent judges.

Fixed set: builtin:toyfaces, 'eyeglasses' directions fit on 1000 classifier-labelled samples (seed 1000), the first
8 latents of seed 0, the segmenter's glasses part of the input or the Z edit as the mask, the default 15 Adam
steps per layer at learning rate 0.3.
Measured when written (paper_suite.claims(), 2-core CPU, jax 0.10.2): outside MSE Z 0.191; judge flips Z 8/8,
default (keep_edit) 8/8 at outside MSE 0.0204 (0.107 of Z's), paper (Eq. 11) 5/8 at 0.0038 (0.020 of Z's); S only
1/8 although it flips the S-space SVM on 8/8.
"""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, xla_env

from si_jax import world
from si_jax.editing import intervention
from si_jax.experiments import paper_report, paper_suite
from si_jax.evaluation import judged
from si_jax.world import judges as judges_lib

N = 8


@pytest.fixture(scope="module")
def measured():
    """paper_suite.claims() in a subprocess at XLA's default optimisation level: this suite's level 0 (conftest)
    halves compile time but runs the toyfaces generator's convs ~10x slower."""
    env = xla_env(full_opt=True)
    code = f"import json; from si_jax.experiments import paper_suite; print(json.dumps(paper_suite.claims(num_images={N})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mean(measured, method, key):
    return measured[method][key]


def test_default_intervention_edits_what_the_judge_sees_and_keeps_the_rest(measured):
    """Target of issue 11 on this set: >= 90 % of the Z edit's judge flips, <= 1/5 of its outside MSE (measured:
    8/8 flips, 0.107 of Z's MSE; tolerance: 7 of 8 and 0.2)."""
    z_flips = _mean(measured, "z", "judge_flipped")
    assert z_flips >= 7 / N
    assert _mean(measured, "intervention", "judge_flipped") >= max(0.9 * z_flips, 7 / N)
    assert _mean(measured, "intervention", "mse_outside") <= 0.2 * _mean(measured, "z", "mse_outside")
    assert _mean(measured, "intervention", "judge_gain") > 5.0          # logits, measured ~15


def test_paper_mode_is_reachable_and_reproduces_its_numbers(measured):
    """The paper's Eq. 11 (objective='paper'): recorded on this set 5/8 flips at outside MSE 0.0038; tolerance
    4/8-6/8 flips and MSE within 0.0030-0.0047 (±20 %). It keeps the image better than the default by editing less."""
    assert 4 / N <= _mean(measured, "intervention_paper", "judge_flipped") <= 6 / N
    assert 0.0030 <= _mean(measured, "intervention_paper", "mse_outside") <= 0.0047
    assert intervention.config_for("paper").pixel_loss == "l2"
    assert intervention.config_for("paper", lambda_inside=5.0).lambda_inside == 0.0


def test_s_only_satisfies_its_own_svm_but_not_the_judge(measured):
    """Why the judges exist: the S-space SVM sees every S-only edit flip; the judge sees (almost) none."""
    assert _mean(measured, "s", "flipped") >= 7 / N
    assert _mean(measured, "s", "judge_flipped") <= 2 / N


def test_judge_metrics_on_exact_counterfactual_renders():
    """Renders with only eyeglasses toggled: the judge sees the flip, and no change of identity or of the other
    attributes; an image against itself changes nothing."""
    judges = judges_lib.load_judges()
    f = world.sample_factors(11, np.arange(32))
    img0 = world.render(f, 32)[0]
    img1 = world.render(world.with_attribute(f, "eyeglasses", 1 - float(f["eyeglasses"][0])), 32)[0]
    flip = np.asarray(f["eyeglasses"]) == np.asarray(f["eyeglasses"][0])   # the images whose glasses changed
    jm = judged.JudgeMetrics(judges, "eyeglasses")
    out = jm(img0, img1, np.zeros((32, 32, 32), np.float32), np.ones(32))
    assert out["judge_flipped"][flip].mean() >= 0.95 and out["judge_flipped"][~flip].sum() == 0
    assert out["others_flipped"].mean() < 0.03 and out["nuisance_change"][flip].mean() < 0.05
    same = jm(img0, img0, np.zeros((32, 32, 32), np.float32), np.ones(32))
    assert np.all(same["judge_flipped"] == 0) and np.all(same["nuisance_change"] == 0)
    assert np.all(same["inside_mse"] == 0)
    feats = jm.features(img0)
    assert judged.frechet_with_spread(feats, feats)["mean"] < 1e-6


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="pixel_loss"):
        intervention.InterventionConfig(pixel_loss="l1")
    with pytest.raises(ValueError, match="lambda_inside"):
        intervention.InterventionConfig(lambda_inside=-1.0)
    with pytest.raises(ValueError, match="objective"):
        intervention.config_for("best")


def test_summary_marks_the_target_only_when_both_halves_hold():
    def table(flip, mse):
        return {"methods": {m: {"judge_flipped": {"mean": f}, "mse_outside": {"mean": e}}
                            for m, f, e in (("z", 0.8, 0.1), ("intervention", flip, mse),
                                            ("intervention_paper", flip, mse), ("amortised", flip, mse),
                                            ("s", 0.0, 0.001))}}

    rows = {(r["attribute"], r["method"]): r["met"] for r in paper_report.summary_rows(
        {"ok": table(0.75, 0.015), "few_flips": table(0.70, 0.015), "leaky": table(0.8, 0.03)})}
    assert rows[("ok", "intervention")] and not rows[("ok", "s")]
    assert not rows[("few_flips", "intervention")] and not rows[("leaky", "intervention")]


def test_interfacegan_conditions_on_the_correlated_partner():
    assert paper_suite.condition_for("smile", {a: None for a in world.ATTRIBUTES}) == "mouth_open"
    assert paper_suite.condition_for("bangs", {a: None for a in world.ATTRIBUTES}) == "blond_hair"
    assert dataclasses.replace(paper_suite.QUICK).num_images < paper_suite.SuiteSettings().num_images
