"""The shipped toyfaces generator (builtin:toyfaces): its record, and what the judges see in its images."""
import json

import pytest

import si_jax
from si_jax import world
from si_jax.stylegan2 import builtin
from si_jax.training import quality
from si_jax.world import judges as J

RECORD = builtin.DATA / "toyfaces_G.json"


@pytest.fixture(scope="module")
def shipped():
    canonical, cfg = si_jax.load_canonical(builtin.BUILTIN_TOYFACES)
    return canonical, cfg, json.loads(RECORD.read_text())


def test_file_is_small_and_matches_its_record(shipped):
    canonical, cfg, record = shipped
    assert builtin.SHIPPED[builtin.BUILTIN_TOYFACES].stat().st_size <= 2 * 1024 * 1024
    assert si_jax.fingerprint(canonical) == record["fingerprint"]
    assert "bin/train.py" in record["command"] and record["kimg"] > 0
    assert cfg.img_resolution == 32


def test_judges_find_faces_in_generated_images(shipped):
    """512 samples: the segmenter finds every always-present part about as often as recorded on 5000, and the
    classifier sees every attribute in a share of images near the world's (the generator covers the world)."""
    canonical, cfg, record = shipped
    stats = quality.judge_stats(J.load_judges(), quality.generated(si_jax.to_jax_params(canonical, cfg), cfg, 512,
                                                                   seed=3, batch=256))
    assert stats["found"].mean() >= record["quality"]["parts_found"] - 0.06
    for i, attr in enumerate(world.ATTRIBUTES):
        gen, true = record["quality"]["attribute_freq"][attr]
        assert abs(stats["attributes"][:, i].mean() - gen) < 0.08, attr      # the recorded frequency
        assert abs(gen - true) < 0.15, attr                                   # ... and the world's


def test_unknown_builtin_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="builtin:toyfaces"):
        si_jax.load_generator("builtin:toyface")
