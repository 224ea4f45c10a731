"""The package layout is the pipeline: every module imports only stages below its own (ARCHITECTURE.md)."""
import ast
import pathlib

import pytest

from conftest import REPO

# stage -> rank; a module may import si_jax stages of lower rank, and its own stage. weights_convert is the floor
# (formats, and the one atomic file writer that si_jax.storage re-exports): it imports nothing of si_jax.
RANKS = {"weights_convert": -1, "storage": 0, "metrics": 0, "world": 1, "stylegan2": 1, "editing": 2, "training": 2,
         "projection": 2, "evaluation": 3, "attributes": 3, "engines": 4, "experiments": 5}
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
        of_si_jax = sorted(imported - {"weights_convert"})
        assert not of_si_jax, f"{path.relative_to(REPO)}: {stage} is a leaf but imports {of_si_jax}"
    upward = sorted(s for s in imported if RANKS[s] >= RANKS[stage])
    assert not upward, f"{path.relative_to(REPO)} ({stage}) imports stages at or above its own: {upward}"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: pathlib.Path, known: set) -> set:
    """The modules of `known` that a module imports anywhere in its body (`from pkg import mod` names mod, `from pkg
    import name` the package: its __init__)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def _circles(graph: dict) -> list:
    """The strongly connected components of more than one module (or a module importing itself), each as a
    closed path `a -> b -> ... -> a` through its members (Tarjan, then one cycle walked inside the component)."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    circles = []
    for comp in comps:
        start = min(comp)
        path, seen = [start], {start}
        while True:   # every member of a component reaches `start` again inside it: follow that way
            nxt = sorted(w for w in graph[path[-1]] if w in comp)
            back = start if start in nxt else next((w for w in nxt if w not in seen), nxt[0])
            path.append(back)
            if back == start or back in seen:
                break
            seen.add(back)
        circles.append(" -> ".join(path[path.index(back):]))
    return circles


STAGES = sorted({_stage(p) for p in MODULES})


@pytest.mark.parametrize("stage", STAGES)
def test_no_import_circles_within_a_stage(stage):
    """Inside one stage (a package like si_jax/engines) imports form no circle, lazy imports included: a
    circle means a shared piece lives in the wrong module; move it to one both can import."""
    members = {_module_name(p): p for p in MODULES if _stage(p) == stage}
    graph = {name: _imported_modules(path, set(members)) - {name} for name, path in members.items()}
    circles = _circles(graph)
    assert not circles, (f"import circles in {stage}: {'; '.join(circles)} (move what they share into a module "
                         "that each can import)")


def test_circle_finder_names_the_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert sorted(_circles(graph)) == ["a -> b -> c -> a", "e -> e"]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b -> c -> b"]
    assert _circles({"a": {"b"}, "b": set()}) == []


SCRIPTS = sorted([*(REPO / "bin").glob("*.py"), *(REPO / "bench").glob("*.py")])


def _sys_path_edits(source: str) -> list:
    """Line numbers where `source` changes sys.path (sys.path.insert(...), .append(...), sys.path = ...), except
    the one that puts the NVlabs reference code (../shared/nvlabs_ref, `NVLABS_REF`, never copied into the repo) on
    it for bench/vs_reference.py: that code is not a package and cannot be installed."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if any(ast.unparse(a) == "NVLABS_REF" for a in node.args):
                continue
            edited = node.func.value
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            edited = node.targets[0] if isinstance(node, ast.Assign) else node.target
        else:
            continue
        if ast.unparse(edited) == "sys.path":
            lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_scripts_use_the_installed_package(path):
    """bin/ and bench/ import si_jax as installed (`pip install -e .`): no sys.path edits."""
    assert not _sys_path_edits(path.read_text()), (
        f"{path.relative_to(REPO)}: line(s) {_sys_path_edits(path.read_text())} edit sys.path; the package is "
        "installed (pip install -e .)")


def test_sys_path_edits_are_found():
    src = ("import sys\nsys.path.insert(0, 'x')\nsys.path.append('y')\nsys.path = []\nprint(sys.path[0])\n"
           "sys.path.insert(0, NVLABS_REF)\n")
    assert _sys_path_edits(src) == [2, 3, 4]


# What only engines.inputs (the one model resolver, `resolve_model`) and engines.demo (the demo's directions) call:
# an engine that resolves a generator's directions or judge on its own is a second resolver (issue 20 item 5).
MODEL_RESOLVING = {"demo_setup", "cached_directions", "load_directions", "judged_attribute"}


def _calls(source: str) -> set:
    return {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}


@pytest.mark.parametrize("path", sorted((REPO / "si_jax" / "engines").glob("*.py")), ids=lambda p: p.name)
def test_one_model_resolver(path):
    if path.stem in ("inputs", "demo"):
        return
    found = sorted(_calls(path.read_text()) & MODEL_RESOLVING)
    assert not found, f"{path.relative_to(REPO)} calls {found}: resolve the model with engines.inputs.resolve_model"


def test_model_resolving_calls_are_found():
    assert _calls("dirs = directions.load_directions(p)\nx = demo_setup('a')\nf(g(1))") == {
        "load_directions", "demo_setup", "f", "g"}
