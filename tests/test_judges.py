"""The shipped toyfaces judges: files, fingerprints, and their recorded held-out accuracy on fresh renders."""
import numpy as np
import pytest

from si_jax import world
from si_jax.world import judge_training, judges as J

FRESH_SEED, FRESH_NUM = 123, 512  # neither the training stream (seed 1) nor the recorded evaluation (seed 99)


@pytest.fixture(scope="module")
def shipped():
    return J.load_judges()


def test_shipped_files_are_small_and_match_their_fingerprints(shipped):
    for name in (J.CLASSIFIER_FILE, J.SEGMENTER_FILE):
        assert (J.DATA / name).stat().st_size <= 2 * 1024 * 1024, name
    assert J.fingerprint(shipped.classifier) == shipped.meta["classifier"]["fingerprint"]
    assert J.fingerprint(shipped.segmenter) == shipped.meta["segmenter"]["fingerprint"]
    assert "bin/train_judges.py" in shipped.meta["classifier"]["command"]


@pytest.fixture(scope="module")
def fresh_report(shipped):
    return judge_training.evaluate(shipped, seed=FRESH_SEED, num=FRESH_NUM)


def test_classifier_reaches_its_recorded_accuracy_on_fresh_renders(shipped, fresh_report):
    recorded = shipped.meta["classifier"]["heldout"]
    for attr in world.ATTRIBUTES:
        # 512 images: a binomial std of <= 0.022 at 50 %; 3 std of slack
        assert fresh_report["attribute_accuracy"][attr] >= recorded["attribute_accuracy"][attr] - 0.03, attr
        assert recorded["attribute_accuracy"][attr] >= 0.9, attr
    for name in world.NUISANCE:
        assert fresh_report["nuisance_mae"][name] <= recorded["nuisance_mae"][name] + 0.03, name


def test_segmenter_reaches_its_recorded_iou_on_fresh_renders(shipped, fresh_report):
    recorded = shipped.meta["segmenter"]["heldout"]
    for part in world.PARTS:
        assert fresh_report["part_iou"][part] >= recorded["part_iou"][part] - 0.03, part
    assert min(recorded["part_iou"].values()) >= 0.5


def test_named_interface(shipped):
    data = world.render_batch(FRESH_SEED, np.arange(64), 32)
    smile = shipped.score("smile", data["images"])
    assert smile.shape == (64,)
    truth = np.asarray(data["attributes"][:, world.ATTRIBUTES.index("smile")])
    assert np.mean((smile > 0) == truth) > 0.85
    mask = shipped.part_mask("mouth", data["images"])
    assert mask.shape == (64, 32, 32) and 0 < mask.mean() < 0.2
    big = shipped.part_mask("mouth", np.asarray(world.render_batch(FRESH_SEED, np.arange(4), 64)["images"]))
    assert big.shape == (4, 64, 64)  # judges resize to 32 px and back
    with pytest.raises(KeyError, match="unknown toyfaces attribute"):
        shipped.score("beard", data["images"])


def test_nuisance_difference_wraps_the_hue_only():
    hue = world.NUISANCE.index("bg_hue")
    a, b = np.zeros(len(world.NUISANCE)), np.zeros(len(world.NUISANCE))
    a[hue], b[hue], a[0], b[0] = 0.95, 0.05, 0.95, 0.05
    d = np.asarray(judge_training.nuisance_difference(a, b))
    assert d[hue] == pytest.approx(-0.1) and d[0] == pytest.approx(0.9)


def test_saved_params_round_trip_atomically(tmp_path):
    """save_params writes through storage.write_atomic: mode 0644, no temp file left, load_params gives back the
    tree, the metadata and the fingerprint."""
    params = {"conv": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "bias": np.ones(4, np.float32)}
    J.save_params(tmp_path / "j.safetensors", params, {"command": "test"})
    assert [p.name for p in tmp_path.iterdir()] == ["j.safetensors"]
    assert oct((tmp_path / "j.safetensors").stat().st_mode & 0o777) == "0o644"
    tree, meta = J.load_params(tmp_path / "j.safetensors")
    np.testing.assert_array_equal(tree["conv"]["kernel"], params["conv"]["kernel"])
    np.testing.assert_array_equal(tree["bias"], params["bias"])
    assert meta == {"command": "test", "fingerprint": J.fingerprint(params)}


def test_train_judges_job_checks_its_flags():
    """bin/train_judges.py's settings (engines.tool_settings.judges_job): the binary's defaults; a held-out seed
    equal to the training seed or a step count < 1 is one line naming the flag."""
    from si_jax.engines import errors, tool_settings

    assert tool_settings.judges_job({}) == tool_settings.JudgesJob()
    with pytest.raises(errors.UsageError, match=r"^--eval_seed=1 must differ from --seed"):
        tool_settings.judges_job({"eval_seed": 1})
    with pytest.raises(errors.UsageError, match=r"^--segmenter_steps=0 must be >= 1$"):
        tool_settings.judges_job({"segmenter_steps": 0})
