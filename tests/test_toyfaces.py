"""The shipped toyfaces generator (builtin:toyfaces): its record, and what the judges see in its images."""
import json

import numpy as np
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
    classifier sees every attribute in about the recorded share of images, none rare or everywhere (each can be
    edited both ways). The shares differ from the world's by up to 0.21 (smile, mouth_open; TRAINING.md)."""
    canonical, cfg, record = shipped
    stats = quality.judge_stats(J.load_judges(), quality.generated(si_jax.to_jax_params(canonical, cfg), cfg, 512,
                                                                   seed=3, batch=256))
    assert stats["found"].mean() >= record["quality"]["parts_found"] - 0.06
    for i, attr in enumerate(world.ATTRIBUTES):
        gen, true = record["quality"]["attribute_freq"][attr]
        assert abs(stats["attributes"][:, i].mean() - gen) < 0.08, attr      # the recorded frequency
        assert 0.15 < gen < 0.85 and abs(gen - true) < 0.25, attr              # ... and near the world's


def test_unknown_builtin_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="builtin:toyfaces"):
        si_jax.load_generator("builtin:toyface")


def test_builtin_demo_is_the_same_generator_on_one_core():
    """builtin:demo's weights, hence its fingerprint (which direction files carry), do not depend on the CPU cores:
    a process pinned to one core builds the same bits (its w_avg came from a float32 XLA reduction whose order
    follows the threads: 2 cores and 1 gave different fingerprints, 2026-12-06)."""
    import os
    import subprocess
    import sys

    from conftest import REPO, xla_env
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a host where this process has 2+ cores to pin a child to one")
    one = min(os.sched_getaffinity(0))   # the child pins itself before jax starts (no preexec_fn: a fork of jax)
    code = (f"import os; os.sched_setaffinity(0, {{{one}}}); import si_jax; "
            "print(si_jax.fingerprint(si_jax.load_canonical('builtin:demo')[0]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=xla_env(1), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == si_jax.fingerprint(si_jax.load_canonical(builtin.BUILTIN_DEMO)[0])


@pytest.mark.parametrize("writer", ["write_nvlabs_pkl", "write_tf_pkl", "write_rosinality_pt"])
def test_shipped_generator_is_a_standard_stylegan2_in_every_format(shipped, writer, tmp_path):
    """The project's writers turn it into each format people use, and the safe readers give it back exactly."""
    import weights_convert
    from weights_convert import writers

    canonical, _, _ = shipped
    _, config = weights_convert.read_weights(builtin.SHIPPED[builtin.BUILTIN_TOYFACES])
    path = tmp_path / ("G.pt" if "rosinality" in writer else "G.pkl")
    getattr(writers, writer)(path, canonical, config)
    back, _ = weights_convert.read_weights(path)
    assert set(back) >= set(canonical)
    for key, value in canonical.items():  # TF stores affine biases minus 1: one float32 rounding, 3e-8 measured
        np.testing.assert_allclose(back[key], value, rtol=0, atol=1e-6, err_msg=key)
