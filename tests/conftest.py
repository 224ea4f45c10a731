"""Shared pytest fixtures.

Reference fixtures (weights + goldens) live outside the repo, in `../shared/fixtures` next to the checkout.
`SI_JAX_FIXTURES` overrides the path. When they are absent the tests that need them are skipped with the reason,
except under CI (`CI=true`), where absence is a failure.
"""
import os
import pathlib

import jax
import pytest

jax.config.update("jax_enable_x64", False)

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(os.environ.get("SI_JAX_FIXTURES", REPO.parent / "shared" / "fixtures"))

FORMAT_FILES = {
    "nvlabs": ("stylegan2_nvlabs_32.pkl", "stylegan2_nvlabs_32.golden.npz"),
    "tf": ("stylegan2_tf_32.pkl", "stylegan2_tf_32.golden.npz"),
    "rosinality": ("stylegan2_rosinality_32.pt", "stylegan2_rosinality_32.golden.npz"),
}


def fixture_path(name: str) -> pathlib.Path:
    """Path of a reference fixture file; skips (or fails under CI=true) when it is missing."""
    path = FIXTURES / name
    if not path.is_file():
        msg = f"reference fixture {path} not found (set SI_JAX_FIXTURES to the fixtures folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(params=sorted(FORMAT_FILES))
def fmt(request):
    """Each of the three weight formats in turn."""
    return request.param
