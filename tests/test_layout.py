"""The package layout is the pipeline: every module imports only stages below its own (ARCHITECTURE.md)."""
import ast
import pathlib

import pytest

from conftest import REPO

# stage -> rank; a module may import si_jax stages of lower rank, and its own stage.
RANKS = {"weights_convert": 0, "storage": 0, "metrics": 0, "world": 1, "stylegan2": 1, "editing": 2, "training": 2,
         "projection": 2, "evaluation": 3, "engines": 4}
LEAVES = {"weights_convert", "storage", "metrics"}     # import nothing of si_jax at all


def _stage(path: pathlib.Path) -> str:
    rel = path.relative_to(REPO).with_suffix("").parts
    return rel[0] if rel[0] == "weights_convert" else rel[1]


def _imported_stages(path: pathlib.Path) -> set:
    """si_jax stages (and weights_convert) a module imports anywhere in its body, lazily or not."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "weights_convert":
                found.add("weights_convert")
            elif parts[0] == "si_jax" and len(parts) > 1 and parts[1] in RANKS:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in [*(REPO / "si_jax").rglob("*.py"), *(REPO / "weights_convert").rglob("*.py")]
                 if p.name != "__init__.py" or p.parent.name not in ("si_jax",))


def test_every_stage_is_known():
    stages = {p.name.removesuffix(".py") for p in (REPO / "si_jax").iterdir()
              if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")}
    assert stages <= set(RANKS), f"give new stages a rank in RANKS (and ARCHITECTURE.md): {stages - set(RANKS)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path):
    stage = _stage(path)
    imported = _imported_stages(path) - {stage}
    if stage in LEAVES:
        assert not imported, f"{path.relative_to(REPO)}: {stage} is a leaf but imports {sorted(imported)}"
    upward = sorted(s for s in imported if RANKS[s] >= RANKS[stage])
    assert not upward, f"{path.relative_to(REPO)} ({stage}) imports stages at or above its own: {upward}"
