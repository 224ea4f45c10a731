"""Shared pytest fixtures.

Reference fixtures (weights + goldens) live outside the repo, in `../shared/fixtures` next to the checkout.
`SI_JAX_FIXTURES` overrides the path. When they are absent the tests that need them are skipped with the reason,
except under CI (`CI=true`), where absence is a failure.
"""
import os
import pathlib
import subprocess
import sys

# Compile time dominates this suite (tiny images, many small XLA programs). XLA's backend optimisation level 0
# halves it (measured: 102 s -> 45 s for the demo generator's 11 layer programs); results stay within the tests'
# tolerances. Set before jax initialises its backend; subprocesses inherit it. Opt out: SI_JAX_TEST_XLA_O0=0.
if os.environ.get("SI_JAX_TEST_XLA_O0", "1") != "0" and "xla_backend_optimization_level" not in os.environ.get(
        "XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

# Conv algorithms: 'auto' is the fixed rule (si_jax.stylegan2.numerics), not measured on this host
# (si_jax.stylegan2.autotune): which program a test traces must not depend on a timing taken on a loaded machine
# (at this suite's optimisation level 0, which does not even time what users run), no test may write to the
# user's ~/.cache, and measuring costs seconds of compiles per shape. tests/test_autotune.py switches it on.
os.environ.setdefault("SI_JAX_CONV_TUNING", "off")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", False)
# Pinned precision, so that no result depends on a backend's default: the generator's convs and matmuls run at
# the precision of its cfg.numerics (default fp32 = HIGHEST, explicit in every op); this pins everything else
# (losses, metrics, projection, judges) to HIGHEST too. On CPU both are float32 anyway.
jax.config.update("jax_default_matmul_precision", "highest")

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(os.environ.get("SI_JAX_FIXTURES", REPO.parent / "shared" / "fixtures"))

FORMAT_FILES = {
    "nvlabs": ("stylegan2_nvlabs_32.pkl", "stylegan2_nvlabs_32.golden.npz"),
    "tf": ("stylegan2_tf_32.pkl", "stylegan2_tf_32.golden.npz"),
    "rosinality": ("stylegan2_rosinality_32.pt", "stylegan2_rosinality_32.golden.npz"),
}


# The test session's persistent XLA compilation cache (`jax_cache`), made once per session (per pytest-xdist
# worker: jax writes its cache files in place, so two writers must not share one folder) by `_session_cache`.
_SESSION = {"jax_cache": None}


def xla_env(devices: int = 1, full_opt: bool = False, cache: bool = True) -> dict:
    """Environment for a subprocess: this suite's XLA_FLAGS, plus forced host devices when devices > 1.
    full_opt: without the optimisation level 0, for subprocesses that run the toyfaces generator, whose convs run
    ~10x slower at level 0 (the demo bin/edit.py run: 47.7 s cold / 20.5 s warm cache vs 54.4 / 39.2 s at level 0).
    cache: JAX_COMPILATION_CACHE_DIR is the session's `jax_cache` (every binary's default --compilation_cache, so
    no test writes to the user's ~/.cache, and a program one test's process compiled is a cache hit for the next);
    False for a process that counts its own compiles."""
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if cache and _SESSION["jax_cache"]:
        env["JAX_COMPILATION_CACHE_DIR"] = _SESSION["jax_cache"]
    drop = ("force_host_platform_device_count",) + (("xla_backend_optimization_level",) if full_opt else ())
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not any(d in f for d in drop)]
    if devices > 1:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def fixture_path(name: str) -> pathlib.Path:
    """Path of a reference fixture file; skips (or fails under CI=true) when it is missing."""
    path = FIXTURES / name
    if not path.is_file():
        msg = f"reference fixture {path} not found (set SI_JAX_FIXTURES to the fixtures folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


# ------------------------------------------------------------------------------------ two processes (pytest-xdist)
# `python -m pytest -q -n 2` (the README's command) runs the suite on two worker processes. Each worker gets whole
# files (a file's module fixtures and its programs, compiled once, stay in one process), handed out in collection
# order to the next free worker, the longest files first: none starts last and runs alone (longest-first balances
# two workers). Seconds per file: the idle `-n 2` run of 2026-12-05 21:47 UTC (AMD EPYC 2 cores; junit), less what
# the night's third cut measured per test (projection's batch checks in-process, stylegan2's checks jitted,
# lambda_model's tiny generator, ...); files not listed follow in their usual order. The order changes nothing
# else; without -n the files run in their usual order.
LONGEST_FILES = ("test_training.py", "test_edit_cli.py", "test_lambda_model.py", "test_stylegan2.py",
                 "test_intervention.py", "test_projection.py", "test_kernels.py", "test_paper_claims.py",
                 "test_bad_inputs.py", "test_evaluate.py", "test_numerics.py", "test_sample_fit_cli.py",
                 "test_devices.py", "test_autotune.py", "test_world.py", "test_stylegan2_parity.py", "test_readme.py",
                 "test_judges.py", "test_toyfaces.py", "test_report.py", "test_weights_convert.py")


def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker: the files of LONGEST_FILES first, in that order (a stable sort)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {name: i for i, name in enumerate(LONGEST_FILES)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """-n without --dist: whole files, in collection order (`--dist loadfile --no-loadscope-reorder`; xdist's own
    default, test by test, would run a module fixture once per worker). An explicit --dist is kept."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)


@pytest.fixture(params=sorted(FORMAT_FILES))
def fmt(request):
    """Each of the three weight formats in turn."""
    return request.param


@pytest.fixture(scope="session", autouse=True)
def jax_cache(tmp_path_factory) -> str:
    """One persistent XLA compilation cache for every process the tests start (`xla_env`), made before the first
    test. The tests' own process does not use it (in memory, jax compiles each program once per process anyway)."""
    _SESSION["jax_cache"] = str(tmp_path_factory.mktemp("jax_cache"))
    return _SESSION["jax_cache"]


@pytest.fixture(scope="session", autouse=True)
def demo_directions_cache(tmp_path_factory):
    """The demo's fitted directions ($SI_JAX_DEMO_DIRECTIONS, si_jax.engines.demo) kept in this session's temporary
    folder, one for both pytest-xdist workers (written atomically), and inherited by every process the tests start:
    no test reads or writes the user's ~/.cache, and a run on a fresh machine (CI) pays the fit as this one does."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "demo_directions"
    before = os.environ.get("SI_JAX_DEMO_DIRECTIONS")
    os.environ["SI_JAX_DEMO_DIRECTIONS"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("SI_JAX_DEMO_DIRECTIONS", None)
    else:
        os.environ["SI_JAX_DEMO_DIRECTIONS"] = before


def demo_directions_fitted() -> None:
    """The demo's 'eyeglasses' directions in the session's folder (`demo_directions_cache`), fitted, when missing, by
    a process at XLA's full optimisation (`run_python(full_opt=True)`), not by the in-process run about to need them
    (this suite's level 0 runs the toyfaces generator ~10x slower: test_project_then_edit_end_to_end took 56.6 s in
    the idle suite fitting them itself, 14.8 s alone with this; AMD EPYC, 2 cores, 2026-12-05). Call before such a
    run."""
    if not any(pathlib.Path(os.environ["SI_JAX_DEMO_DIRECTIONS"]).glob("eyeglasses_*.npz")):
        proc = run_python("-c", "from si_jax.engines import demo; demo.demo_setup(log=lambda m: None)", full_opt=True)
        assert proc.returncode == 0, proc.stderr[-3000:]


def random_directions(cfg, seed: int = 0, attribute: str = "a") -> dict:
    """{'s', 'z', 'w'} directions for a generator config, fit on random codes (64 per space, labels: the sign of
    the first coordinate): valid, not meaningful, for tests that need direction files of the right shapes but no
    edit semantics (synthetic.fit_demo_directions costs ~11 CPU-s at this suite's optimisation level)."""
    import numpy as np

    from si_jax.editing import directions

    rng, dirs = np.random.default_rng(seed), {}
    for space, dim in (("s", cfg.style_dim), ("z", cfg.z_dim), ("w", cfg.w_dim)):
        codes = rng.standard_normal((64, dim)).astype(np.float32)
        dirs[space] = directions.fit_direction(codes, codes[:, 0] > 0, space=space, attribute=attribute)
    return dirs


# ------------------------------------------------------------------------------------------ running the binaries

def run_python(*args, devices: int = 1, full_opt: bool = False, env=None, unset=(), timeout: float = 600,
               popen: bool = False, **popen_kw):
    """THE way a test starts a fresh Python process (`python ARGS...`, in the repository): a true end-to-end run
    (exit status, kill-and-resume, several processes, the README's commands). -> CompletedProcess (text, stdout and
    stderr captured), or with `popen` the running Popen (popen_kw: its stdout / stderr / text). env: added to
    `xla_env(devices, full_opt)`; unset: names taken out of it. Everything else calls the engines in-process
    (`run_engine`): no Python + JAX start."""
    cmd = [sys.executable, *map(str, args)]
    environ = {k: v for k, v in {**xla_env(devices, full_opt), **(env or {})}.items() if k not in unset}
    if popen:
        return subprocess.Popen(cmd, cwd=REPO, env=environ, **popen_kw)
    return subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True, timeout=timeout)


def run_binary(name: str, *args, **kw):
    """bin/<name> ARGS as a fresh process (`run_python`)."""
    return run_python(REPO / "bin" / name, *args, **kw)


def _engines() -> dict:
    from si_jax.engines import (convert_run, edit_cli, evaluate_cli, fit_direction_run, fit_lambda_run, generate_run,
                                project_cli, sample_run, settings, tool_settings)

    return {"edit.py": (settings.edit_job, edit_cli.run), "evaluate.py": (settings.eval_job, evaluate_cli.run),
            "project.py": (settings.project_job, project_cli.run), "sample.py": (settings.sample_job, sample_run.run),
            "generate.py": (settings.generate_job, generate_run.run),
            "fit_direction.py": (settings.fit_job, fit_direction_run.run),
            "fit_lambda.py": (tool_settings.lambda_job, fit_lambda_run.run),
            "convert_weights.py": (tool_settings.convert_job, convert_run.run)}


def run_engine(name: str, flags: dict, **kw):
    """bin/<name>'s work in-process: its settings from `flags` ({flag: value}, as the binary would parse them;
    'output_dir' / 'output' is the folder or file the engine writes), then `engine.run(settings, out, **kw)`.
    -> what the engine returns. Errors are raised (see `engine_error` for the binary's one line)."""
    job_of, run = _engines()[name]
    flags = dict(flags)
    out = flags.pop("output_dir", None) if "output_dir" in flags else flags.pop("output", None)
    return run(job_of(flags), out, **kw)


def engine_error(capsys, name: str, flags: dict) -> str:
    """`run_engine` as the binary runs it (si_jax.engines.errors.run_guarded): exit status 1 and exactly one
    `error: ...` line on stderr, its last (progress lines may come before it), with no traceback or warning.
    -> that line."""
    from si_jax.engines import errors

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        errors.run_guarded(lambda: run_engine(name, flags))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    found = [line for line in lines if line.startswith("error:")]
    assert info.value.code == 1 and len(found) == 1 and lines[-1] == found[0], err[-3000:]
    assert "Traceback" not in err and "Warning" not in err, err[-3000:]
    return found[0]
