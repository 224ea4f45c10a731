"""XLA:CPU's conv library as a numerics choice (Numerics.conv_library; si_jax.stylegan2.conv_library): 'eigen'
compiles a program's convs outside YNNPACK with the same values, the edit loop's programs carry the choice, and
'auto' is measured once per host and batch, then read from the cache."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import si_jax
from si_jax.editing import intervention
from si_jax.stylegan2 import autotune, conv_library, programs
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.numerics import EIGEN_CONVS, Numerics

from test_autotune import cache  # noqa: F401  (fixture: measuring on, a fresh cache file)

# over 16 channels: XLA leaves convs of 16 channels or fewer out of YNNPACK whatever the options
CFG = G2Config.make(16, channel_base=512, channel_max=32, z_dim=8, w_dim=8, mapping_layers=1)


def _params_styles(batch=2):
    params = si_jax.to_jax_params(si_jax.random_canonical(CFG, 0), CFG)
    z = jax.random.normal(jax.random.PRNGKey(1), (batch, CFG.z_dim))
    return params, si_jax.styles_from_w(params, CFG, si_jax.mapping(params, CFG, z))


def _eigen_faster(candidates, *args, **kwargs) -> dict:
    """Stands for time_candidates: Eigen twice as fast; conv forms, if any are measured, all alike (a tie keeps
    the rule's)."""
    return {name: 1.0 if name == "eigen" else 2.0 for name in candidates}


def _ynn_convs(compiled) -> int:
    """Convolutions inside YNNPACK fusions of a compiled program."""
    text = compiled.as_text()
    called = re.findall(r"calls=%?([\w.\-]+)[^\n]*__ynn_fusion", text)
    bodies = {m.group(1): m.group(2) for m in re.finditer(r"\n%?([\w.\-]+) [^\n]*\{\n(.*?)\n\}", text, re.S)}
    return sum(bodies.get(name, "").count(" convolution(") for name in called)


def test_conv_library_field_is_checked_and_gives_options():
    with pytest.raises(ValueError, match="conv_library='oneDNN' must be one of auto, ynn, eigen"):
        Numerics(conv_library="oneDNN")
    assert Numerics(conv_library="eigen").compiler_options("cpu") == EIGEN_CONVS
    assert Numerics(conv_library="eigen").compiler_options("gpu") is None
    assert Numerics(conv_library="ynn").compiler_options("cpu") is None
    assert Numerics().compiler_options("cpu") is None


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's libraries")
def test_eigen_keeps_convs_out_of_ynnpack_with_the_same_images():
    params, styles = _params_styles()
    out = {}
    for lib in ("ynn", "eigen"):
        cfg = CFG.with_numerics(conv_library=lib, conv3x3="direct", upconv="polyphase")
        prog = programs.synth_program(cfg)
        out[lib] = (_ynn_convs(prog.lower(params, styles).compile()), np.asarray(prog(params, styles)))
    assert out["ynn"][0] > 0 and out["eigen"][0] == 0
    np.testing.assert_allclose(out["eigen"][1], out["ynn"][1], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's libraries")
def test_the_edit_loops_programs_carry_the_library():
    params, styles = _params_styles()
    ds = [0.1 * jnp.ones_like(s) for s in styles]
    mask = jnp.ones((2, 16, 16), jnp.float32)
    config = intervention.InterventionConfig(steps_per_layer=2)
    for lib, expect_ynn in (("eigen", False), ("ynn", True)):
        cfg = CFG.with_numerics(conv_library=lib, conv3x3="direct", upconv="polyphase")
        compiled = intervention.compile_programs(params, cfg, styles, ds, ds, mask, config, loop="scan", layers=[0])
        assert (_ynn_convs(compiled[0]) > 0) == expect_ynn, lib


def test_auto_is_measured_once_then_read_from_the_cache(cache, monkeypatch):  # noqa: F811
    params, styles = _params_styles()
    calls = []

    def fake(candidates, specs, mode, names="xw", max_repeats=None, options=None, **kw):
        calls.append((sorted(candidates), options, specs[2][0].shape))   # specs: (params, state, styles)
        return {"ynn": 2.0, "eigen": 1.0}

    monkeypatch.setattr(autotune, "time_candidates", fake)
    prepared = programs.prepared(params, CFG)   # as the edit loop runs; the key says which
    assert conv_library.resolve(prepared, CFG, 2).numerics.conv_library == "eigen"
    assert conv_library.resolve(params, CFG, 2, edit=False).numerics.conv_library == "eigen"
    dim = CFG.layers[0].dim   # the edit loop's probe runs one image per vmapped call; a batch forward, the batch
    assert calls == [(["eigen", "ynn"], {"eigen": EIGEN_CONVS}, (2, 1, dim)),
                     (["eigen", "ynn"], {"eigen": EIGEN_CONVS}, (2, dim))]
    monkeypatch.setattr(autotune, "time_candidates", lambda *a, **k: pytest.fail("measured again"))
    autotune._memo.clear()   # read back from the file
    assert conv_library.resolve(prepared, CFG, 2).numerics.conv_library == "eigen"
    assert sorted(k for k in autotune._hosts(cache)[autotune.host_key()] if k.startswith("conv_library")) == \
        ["conv_library edit_top_block 2x16x16x32->32 3ch float32",
         "conv_library synthesis_unprepared_top_block 2x16x16x32->32 3ch float32"]
    # a set library is kept; measuring off keeps XLA's default ('auto', nothing measured)
    assert conv_library.resolve(params, CFG.with_numerics(conv_library="ynn"), 2).numerics.conv_library == "ynn"
    monkeypatch.setenv(autotune.TUNING_ENV, "off")
    assert conv_library.resolve(params, CFG, 2) is CFG


def test_near_tie_keeps_xla_default(cache, monkeypatch):  # noqa: F811
    params, _ = _params_styles()
    monkeypatch.setattr(autotune, "time_candidates", lambda *a, **k: {"ynn": 1.0, "eigen": 0.97})
    assert conv_library.resolve(params, CFG, 3) is CFG


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's libraries")
def test_the_probe_is_timed_for_real_and_recorded(cache):  # noqa: F811
    params, styles = _params_styles()
    conv_library.resolve(params, CFG, 2)
    record = autotune._hosts(cache)[autotune.host_key()][
        "conv_library edit_unprepared_top_block 2x16x16x32->32 3ch float32"]
    assert set(record["ms"]) == {"ynn", "eigen"} and all(t > 0 for t in record["ms"].values())
    assert record["choice"] == autotune.pick(record["ms"], "ynn")
    # each library's probe chose its conv forms timed in that library
    forms = [k for k in autotune._hosts(cache)[autotune.host_key()] if k.startswith("modconv_")]
    assert any(k.endswith(" eigen") for k in forms) and any(not k.endswith(" eigen") for k in forms)



def test_judges_take_the_library_measured_for_their_batch(cache, monkeypatch):  # noqa: F811
    from si_jax.world import judges as judges_lib
    plain = judges_lib.load_judges()
    judges = plain.with_options_for(conv_library.batch_options)
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    monkeypatch.setattr(autotune, "time_candidates", lambda *a, **k: {"ynn": 2.0, "eigen": 1.0})
    used, jitted = [], judges_lib._jitted
    monkeypatch.setattr(judges_lib, "_jitted", lambda fn, options: used.append(dict(options)) or jitted(fn, options))
    np.testing.assert_allclose(judges.score("smile", images), plain.score("smile", images), rtol=1e-4, atol=1e-4)
    assert used == [EIGEN_CONVS, {}]   # measured for this batch: Eigen; the plain judges: XLA's defaults
    assert "conv_library judge_classify 3x32x32x3 float32" in autotune._hosts(cache)[autotune.host_key()]
    assert judges.placed(lambda tree: tree).options_for is conv_library.batch_options
    # inside a trace (a loss over the judge) the outer program decides: nothing measured, XLA's defaults
    monkeypatch.setattr(autotune, "time_candidates", lambda *a, **k: pytest.fail("measured inside a trace"))
    grad = jax.grad(lambda x: judges.outputs(x)["logits"].sum())(jnp.asarray(images[:2]))
    assert used[-1] == {} and bool(jnp.all(jnp.isfinite(grad)))


def test_the_quality_report_samples_and_judges_in_the_measured_library(cache, monkeypatch):  # noqa: F811
    from si_jax.training import quality
    from si_jax.world import judges as judges_lib
    monkeypatch.setattr(autotune, "time_candidates", _eigen_faster)
    used, jitted = [], judges_lib._jitted
    monkeypatch.setattr(judges_lib, "_jitted", lambda fn, options: used.append(dict(options)) or jitted(fn, options))
    judges = judges_lib.load_judges().with_options_for(conv_library.batch_options)
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    stats = quality.judge_stats(judges, [images])
    assert used == [EIGEN_CONVS, EIGEN_CONVS] and stats["features"].shape[0] == 3   # classify, segment


def test_batch_programs_run_in_the_library_measured_for_each_batch(cache, monkeypatch):  # noqa: F811
    params, styles = _params_styles()
    monkeypatch.setattr(autotune, "time_candidates", lambda candidates, specs, *a, **k: {   # Eigen faster at 2 only
        name: 1.0 if (name == "eigen") == (jax.tree.leaves(specs)[-1].shape[0] == 2) else 2.0 for name in candidates})
    synth = programs.synth_program(CFG)
    wide = [jnp.concatenate([s, s]) for s in styles]
    assert [_ynn_convs(synth.lower(params, batch).compile()) > 0 for batch in (styles, wide)] == [False, True]
    assert synth.program_for(params, styles) is programs.synth_program(CFG.with_numerics(conv_library="eigen"))
    np.testing.assert_allclose(np.asarray(synth(params, styles)), np.asarray(synth(params, wide))[:2], rtol=1e-4,
                               atol=1e-5)
    recorded = [k for k in autotune._hosts(cache)[autotune.host_key()] if k.startswith("conv_library")]
    assert sorted(recorded) == [f"conv_library synthesis_unprepared_top_block {n}x16x16x32->32 3ch float32"
                                for n in (2, 4)]
    monkeypatch.setenv(autotune.TUNING_ENV, "off")   # measuring off: XLA's default, whatever is recorded
    assert synth.program_for(params, styles) is programs.synth_program(CFG).build(CFG)


def test_the_projector_runs_in_the_library_measured_for_its_batch(cache, monkeypatch):  # noqa: F811
    from si_jax import projection
    from si_jax.projection import _project
    monkeypatch.setattr(autotune, "time_candidates", _eigen_faster)
    params, _ = _params_styles()
    stats = projection.code_stats(params, CFG, num=64)
    targets = si_jax.generate(params, CFG, jax.random.normal(jax.random.PRNGKey(2), (2, CFG.z_dim)))[2]
    built, program, keys = [], _project._batch_program, projection.image_keys(0, [0, 1])
    monkeypatch.setattr(_project, "_batch_program", lambda cfg, *a: built.append((cfg, program(cfg, *a))) or
                        built[-1][1])
    static, hp = projection.ProjectConfig(num_steps=3).split()
    run = lambda cfg: projection.project_batch(params, cfg, stats, None, targets, keys, "w",  # noqa: E731
                                               projection.ProjectConfig(num_steps=3))
    eigen, ynn = run(CFG), run(CFG.with_numerics(conv_library="ynn"))
    assert [cfg.numerics.conv_library for cfg, _ in built] == ["eigen", "ynn"]
    aux = projection.ProjectAux()
    assert [_ynn_convs(prog.lower(params, stats, aux, hp, targets, keys).compile()) > 0 for _, prog in built] == \
        [False, True]   # the compiled programs carry the library
    assert "conv_library edit_unprepared_top_block 2x16x16x32->32 3ch float32" in \
        autotune._hosts(cache)[autotune.host_key()]
    np.testing.assert_allclose(np.asarray(eigen.image), np.asarray(ynn.image), rtol=1e-4, atol=1e-4)
