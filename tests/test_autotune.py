"""Measured conv choices (si_jax.stylegan2.autotune): 'auto' on CPU is the fastest candidate timed on this host,
cached on disk; deterministic given the cache, a damaged cache is rebuilt, measuring can be switched off.

The suite runs with measuring off (tests/conftest.py); these tests switch it on with a cache file of their own."""
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from si_jax.stylegan2 import autotune, conv3x3, conv_timing, kernels, ops
from si_jax.stylegan2.numerics import Numerics

X = jnp.asarray(np.random.default_rng(0).standard_normal((1, 8, 8, 16)), jnp.float32)
K = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 16, 16)) / 12, jnp.float32)
S = jnp.asarray(np.random.default_rng(2).uniform(0.5, 1.5, (1, 16)), jnp.float32)
B = jax.ShapeDtypeStruct((16,), jnp.float32)
KEY = autotune.entry_key("conv3x3", (X, K, B), "highest", "fwd")          # conv_2d alone: timed with bias + lrelu
MOD_KEY = autotune.entry_key("modconv_3x3", (X, K, S, B), "highest", "fwd")   # a synthesis layer's 3x3 conv


class _Share:
    """Stands for conv_timing.Others: the block ran while others used `share` of the CPUs."""
    def __init__(self, share):
        self.share = share

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Measuring on, into a fresh cache file, as if no other process were busy; the process memo emptied before
    and after."""
    path = tmp_path / "conv_choices.json"
    monkeypatch.setenv(autotune.TUNING_ENV, "on")
    monkeypatch.setenv(autotune.CACHE_ENV, str(path))
    monkeypatch.setattr(autotune, "MIN_FLOPS", 0)   # these tests' convs are tiny
    monkeypatch.setattr(autotune, "_spent", [0.0])
    monkeypatch.setattr(autotune, "_remeasured", set())
    monkeypatch.setattr(autotune, "_announced", [False])
    monkeypatch.setattr(conv_timing, "Others", _Share(0.0))   # measured on a quiet host, whatever the load now
    autotune._memo.clear()
    yield path
    autotune._memo.clear()


def _write(path, entries):
    path.write_text(json.dumps({"format": autotune.FORMAT, "version": autotune.VERSION,
                                "hosts": {autotune.host_key(): entries}}))


def _winograd_calls(fn, *args) -> int:
    """How many Winograd convs (custom_vjp calls of conv3x3.conv3x3) the traced program has."""
    return str(jax.make_jaxpr(fn)(*args)).count("custom_vjp_call")


def _no_timing(*a, **k):
    raise AssertionError("measured although the cache holds the choice")


def test_the_choice_is_the_cached_one_and_a_warm_cache_times_nothing(cache, monkeypatch):
    monkeypatch.setattr(autotune, "time_candidates", _no_timing)
    for choice, calls in (("rows", 1), ("direct", 0), ("winograd2d", 1)):
        _write(cache, {KEY: {"choice": choice, "ms": {}}})
        autotune._memo.clear()
        # a new function each time (jax caches traces per function): default numerics, conv3x3 'auto'
        assert _winograd_calls(lambda x, k: ops.conv_2d(x, k), X, K) == calls, choice
        assert autotune.choose("conv3x3", dict.fromkeys(("direct", "winograd2d", "rows")), (X, K, B), "highest",
                               rule="direct") == choice
    # a forced algorithm is not looked up, measured or cached: the flag wins
    assert _winograd_calls(lambda x, k: ops.conv_2d(x, k, Numerics(conv3x3="direct")), X, K) == 0


def test_cold_choice_is_the_fastest_and_is_written(cache, monkeypatch):
    times = {"direct": 3e-3, "winograd2d": 1e-3, "rows": 2e-3}
    calls = []
    monkeypatch.setattr(autotune, "time_candidates", lambda c, *a, **k: calls.append(a) or {n: times[n] for n in c})
    assert autotune.choose("conv3x3", dict.fromkeys(times), (X, K, B), "highest", rule="direct") == "winograd2d"
    assert calls == [((X, K, B), "fwd", "xw")]
    data = json.loads(cache.read_text())
    assert data["format"] == autotune.FORMAT
    record = data["hosts"][autotune.host_key()][KEY]
    assert (record["choice"], record["ms"]) == ("winograd2d", {"direct": 3.0, "winograd2d": 1.0, "rows": 2.0})
    autotune._memo.clear()  # a new process: reads the file, measures nothing
    monkeypatch.setattr(autotune, "time_candidates", _no_timing)
    assert autotune.choose("conv3x3", dict.fromkeys(times), (X, K, B), "highest", rule="direct") == "winograd2d"


def test_a_record_that_timed_fewer_candidates_is_measured_again(cache, monkeypatch):
    """A form added since a choice was recorded (the up-conv's 'polyphase_w2') is not left untimed by a warm cache."""
    key = autotune.entry_key("conv_up", (X, K, B), "highest", "fwd")
    _write(cache, {key: {"choice": "polyphase", "ms": {"polyphase": 1.0, "transposed": 2.0}}})
    times = {"polyphase": 2e-3, "polyphase_w2": 1e-3, "transposed": 3e-3}
    monkeypatch.setattr(autotune, "time_candidates", lambda c, *a, **k: {n: times[n] for n in c})
    assert autotune.choose("conv_up", dict.fromkeys(times), (X, K, B), "highest", rule="polyphase") == "polyphase_w2"
    assert set(json.loads(cache.read_text())["hosts"][autotune.host_key()][key]["ms"]) == set(times)


def test_small_convs_keep_the_rule_unmeasured(cache, monkeypatch):
    monkeypatch.setattr(autotune, "time_candidates", _no_timing)
    monkeypatch.setattr(autotune, "MIN_FLOPS", autotune.conv_flops(X.shape, K.shape) + 1)
    assert autotune.choose("conv3x3", dict.fromkeys(("direct", "rows")), (X, K), "highest", rule="rows") == "rows"
    batch = jnp.zeros((64,) + X.shape[1:])   # per image: a batch of small convs keeps the rule too
    assert autotune.choose("conv3x3", dict.fromkeys(("direct", "rows")), (batch, K), "highest", rule="rows") == "rows"
    assert not cache.exists()
    assert autotune.conv_flops((1, 32, 32, 64), (3, 3, 64, 64)) == 2 * 32 * 32 * 9 * 64 * 64


def test_a_long_running_program_counts_whole_calls_and_measures_past_the_budget(cache, monkeypatch):
    """autotune.long_running (the training step's scope): a batch of convs each under MIN_FLOPS is measured when the
    whole call is over it, the budget spent does not stop the measuring, and a recorded choice is kept even where it
    was measured under load; outside, the per-image threshold and the budget hold again."""
    monkeypatch.setattr(autotune, "MIN_FLOPS", 4 * autotune.conv_flops(X.shape, K.shape))
    monkeypatch.setattr(autotune, "_spent", [1e9])   # the budget long spent
    monkeypatch.setattr(autotune, "time_candidates", lambda c, *a, **k: {"direct": 1.0, "rows": 0.5})
    forms, batch = dict.fromkeys(("direct", "rows")), jnp.zeros((4,) + X.shape[1:])
    assert autotune.choose("conv3x3", forms, (batch, K), "highest", rule="direct") == "direct"   # per image: small
    with autotune.long_running():
        assert autotune.choose("conv3x3", forms, (X, K), "highest", rule="direct") == "direct"   # one image: small
        assert autotune.choose("conv3x3", forms, (batch, K), "highest", rule="direct") == "rows"
    assert len(json.loads(cache.read_text())["hosts"][autotune.host_key()]) == 1
    busy_key = autotune.entry_key("conv3x3", (batch, K), "highest", "grad_x")   # measured under load before
    _write(cache, {busy_key: {"choice": "direct", "ms": {"direct": 1.0, "rows": 1.1}, "others": 0.9}})
    autotune._memo.clear()
    with autotune.long_running():   # kept, not measured again: a resumed run compiles the same program
        assert autotune.choose("conv3x3", forms, (batch, K), "highest", rule="rows", mode="grad_x") == "direct"
    other = jnp.zeros((1, 17, 17, X.shape[3]))   # over MIN_FLOPS per image, but outside the budget holds again
    assert autotune.choose("conv3x3", forms, (other, K), "highest", rule="direct") == "direct"
    assert len(json.loads(cache.read_text())["hosts"][autotune.host_key()]) == 1


def test_the_training_step_measures_its_convs_per_call(cache, monkeypatch):
    """steps.train_step runs inside long_running: on the tiny training config (batch 4) the 8 px convs, under
    MIN_FLOPS per image and over it per call, are measured at their batch shape; the 4 px ones, under it per call
    too, are not."""
    import dataclasses
    from si_jax.training import data as data_lib
    from si_jax.training import state as state_lib
    from si_jax.training import steps
    from test_training import TC
    tc = dataclasses.replace(TC, seed=TC.seed + 7919)   # a trace of its own: jit caches traces per static args
    monkeypatch.setattr(autotune, "MIN_FLOPS", autotune.conv_flops((2, 8, 8, 16), (3, 3, 16, 16)))
    timed = []
    monkeypatch.setattr(autotune, "time_candidates",
                        lambda c, args, *a, **k: timed.append(args[0].shape) or {n: 1.0 + (n != "direct") for n in c})
    state = jax.eval_shape(lambda: state_lib.init_state(tc))
    steps.train_step.lower(state, tc, data_lib.Blobs(0, 8), None, do_pl=False, do_r1=False)
    assert timed and set(timed) == {(tc.batch, 8, 8, 16)}, timed
    keys = json.loads(cache.read_text())["hosts"][autotune.host_key()]
    assert {k.split()[0] for k in keys} == {"modconv_3x3", "conv3x3"}, keys   # G's conv1 and D's conv0 at 8 px


def test_no_thread_measures_while_another_holds_exclusive(cache, monkeypatch):
    """autotune.exclusive (bin/train.py holds it around each step): a conv traced on another thread meanwhile is
    measured only after it is released, so never beside the running step; one already recorded is looked up at once."""
    import threading
    import time as time_lib
    events = []
    monkeypatch.setattr(autotune, "time_candidates",
                        lambda c, *a, **k: events.append("measured") or {"direct": 1.0, "rows": 0.5})
    worker = threading.Thread(target=lambda: autotune.choose(
        "conv3x3", dict.fromkeys(("direct", "rows")), (X, K), "highest", rule="direct"))
    with autotune.exclusive():
        worker.start()
        time_lib.sleep(0.3)
        events.append("step done")
    worker.join(10)
    assert events == ["step done", "measured"]
    # a choice already recorded is looked up without waiting (a resumed run's background traces)
    looked_up = []
    worker = threading.Thread(target=lambda: looked_up.append(autotune.choose(
        "conv3x3", dict.fromkeys(("direct", "rows")), (X, K), "highest", rule="direct")))
    with autotune.exclusive():
        worker.start()
        worker.join(10)
        assert looked_up == ["rows"] and events == ["step done", "measured"]
    with autotune.exclusive():   # re-entrant: the holder's own traces still measure (a step traced in the loop)
        assert autotune.choose("conv3x3", dict.fromkeys(("direct", "rows")), (X, K[:, :, :, :8]),
                               "highest", rule="direct") == "rows"


def test_a_process_measures_within_its_budget_then_keeps_the_rule_unrecorded(cache, monkeypatch, capsys):
    clock = iter(range(0, 1000, 3))   # autotune's clock: each measurement "takes" 3 s of the process's budget
    monkeypatch.setattr(autotune, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    monkeypatch.setattr(autotune, "time_candidates", lambda c, *a, **k: {"direct": 1.0, "rows": 0.5})
    monkeypatch.setenv(autotune.BUDGET_ENV, "5")
    forms = dict.fromkeys(("direct", "rows"))
    xs = [jnp.zeros((1, r, r, 16)) for r in (8, 9, 10)]
    assert [autotune.choose("conv3x3", forms, (x, K), "highest", "direct") for x in xs] == ["rows", "rows", "direct"]
    entries = json.loads(cache.read_text())["hosts"][autotune.host_key()]
    assert len(entries) == 2   # the third was over budget: the rule, not recorded, measured by a later process
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("measuring conv algorithms")]
    assert len(said) == 1, said   # once per process
    assert "a budget of 5 s of measuring per start" in said[0] and str(cache) in said[0]
    monkeypatch.setattr(autotune, "_spent", [0.0])
    assert autotune.choose("conv3x3", forms, (xs[2], K), "highest", "direct") == "rows"
    monkeypatch.setenv(autotune.BUDGET_ENV, "soon")
    with pytest.raises(ValueError, match="SI_JAX_CONV_TUNING_BUDGET='soon' is not a number"):
        autotune.choose("conv3x3", forms, (jnp.zeros((1, 11, 11, 16)), K), "highest", "direct")


def test_near_ties_keep_the_fixed_rule():
    assert autotune.pick({"direct": 1.04, "rows": 1.0}, rule="direct") == "direct"
    assert autotune.pick({"direct": 1.06, "rows": 1.0}, rule="direct") == "rows"
    assert autotune.pick({"polyphase": 1.0, "transposed": 2.0}, rule="transposed") == "polyphase"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": autotune.FORMAT, "version": 1, "hosts": {}}),
                                     json.dumps({"format": "other", "version": 1, "hosts": {}}),
                                     json.dumps({"format": autotune.FORMAT, "version": autotune.VERSION,
                                                 "hosts": {"h": {"k": {"choice": 3}}}})])
def test_a_damaged_cache_is_rebuilt_not_trusted(cache, monkeypatch, capsys, content):
    cache.write_text(content)
    monkeypatch.setattr(autotune, "time_candidates", lambda c, *a, **k: {"direct": 1.0, "rows": 2.0})
    assert autotune.choose("conv3x3", dict.fromkeys(("direct", "rows")), (X, K, B), "highest", rule="rows") == "direct"
    err = capsys.readouterr().err
    assert f"conv choices cache {cache} is damaged" in err and "measuring again" in err
    data = json.loads(cache.read_text())
    assert data["format"] == autotune.FORMAT and data["hosts"][autotune.host_key()][KEY]["choice"] == "direct"


def test_measuring_on_by_default_and_off_is_the_fixed_rule_writing_nothing(cache, monkeypatch):
    monkeypatch.delenv(autotune.TUNING_ENV, raising=False)
    assert autotune.enabled() and autotune.applies(np.float32, "cpu")   # on by default, in a one-process run
    assert not autotune.applies(np.float32, "gpu") and not autotune.applies(jnp.bfloat16, "cpu")
    with monkeypatch.context() as m:
        m.setattr(jax, "process_count", lambda: 2)   # processes that must compile the same programs
        assert not autotune.applies(np.float32, "cpu")
    monkeypatch.setenv(autotune.TUNING_ENV, "sometimes")
    with pytest.raises(ValueError, match="SI_JAX_CONV_TUNING='sometimes' must be 'on' or 'off'"):
        autotune.enabled()
    monkeypatch.setenv(autotune.TUNING_ENV, "off")
    monkeypatch.setattr(autotune, "time_candidates", _no_timing)
    _write(cache, {KEY: {"choice": "rows", "ms": {}}})
    autotune._memo.clear()
    assert autotune.choose("conv3x3", dict.fromkeys(("direct", "rows")), (X, K), "highest", rule="direct") == "direct"
    assert _winograd_calls(lambda x, k: ops.conv_2d(x, k), X, K) == 0   # the rule: direct below 16 px
    cache.unlink()
    ops.conv_up_2d(X, K, (1, 3, 3, 1))
    assert not cache.exists()


def test_measuring_runs_inside_jit_vmap_and_grad_and_keys_what_is_differentiated(cache):
    """Real timing, at trace time of jit(vmap(grad)) of the up-conv: the candidates run eagerly (not staged into
    the traced program), the entry says 'grad_x', the choice is the fastest recorded, and the values are right."""
    f = lambda x, k: jnp.sum(jnp.square(ops.conv_up_2d(x, k, (1, 3, 3, 1))))  # noqa: E731
    got = jax.jit(jax.vmap(jax.grad(f), in_axes=(0, None)))(X[None], K)
    want = jax.grad(lambda x, k: f(x, k))(X, K)   # measured again? no: same shape, now 'grad_x' is cached
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want), rtol=1e-4, atol=1e-4)
    entries = json.loads(cache.read_text())["hosts"][autotune.host_key()]
    key = autotune.entry_key("conv_up", (X, K, B), "highest", "grad_x")
    assert set(entries) == {key}
    assert set(entries[key]["ms"]) == {"polyphase", "transposed"}   # no forms given: no Winograd phases
    ms = entries[key]["ms"]   # the fastest recorded, or the rule's polyphase within MARGIN of it
    assert ms[entries[key]["choice"]] <= (1 + autotune.MARGIN) * min(ms.values()) + 1e-3
    jax.jit(lambda x, k: ops.conv_up_2d(x, k, (1, 3, 3, 1)))(X, K)   # forward only: its own entry
    jax.grad(lambda k: f(X, k))(K)                                   # w.r.t. the kernel: another
    modes = {k.split()[1] for k in json.loads(cache.read_text())["hosts"][autotune.host_key()]}
    assert modes == {"grad_x", "fwd", "grad_w"}


def test_differentiated_sees_through_jit_and_vmap():
    seen = []

    def f(x, k):
        seen.append(autotune.mode_of((x, k)))
        return jnp.sum(x * k)

    jax.jit(f)(1.0, 2.0)
    jax.grad(f)(1.0, 2.0)
    jax.jit(jax.vmap(jax.grad(f, argnums=(0, 1)), in_axes=(0, None)))(jnp.ones(2), 2.0)
    jax.grad(lambda k: jax.grad(f)(1.0, k))(2.0)
    assert seen == ["fwd", "grad_x", "grad_xw", "grad_xw"]
    assert autotune.mode_of((X, K, B), "xw-") == "fwd"


def test_a_synthesis_layer_is_timed_in_context_and_a_warm_cache_times_nothing(cache, monkeypatch):
    """modulated_conv measures its layer (modulated conv + bias + lrelu, each form forced: the same function, so
    the same values), keyed by what is differentiated, and never the conv alone; from a warm cache it times
    nothing and the traced program uses the cached form."""
    seen = {}

    def fake_times(candidates, specs, mode, names="xw", **kw):
        seen[mode] = candidates, names
        return {n: 1.0 + 0.1 * i for i, n in enumerate(candidates)}   # the first listed is fastest

    monkeypatch.setattr(autotune, "time_candidates", fake_times)
    f = lambda x, s: jnp.sum(ops.modulated_conv(x, K, s, demodulate=True, up=True))  # noqa: E731
    jax.jit(jax.grad(f, argnums=(0, 1)))(X, S)
    jax.jit(f)(X, S)
    keys = set(json.loads(cache.read_text())["hosts"][autotune.host_key()])
    assert keys == {autotune.entry_key("modconv_up", (X, K, S, B), "highest", m) for m in ("grad_xs", "fwd")}
    forms, names = seen["grad_xs"]
    assert names == "xws--" and set(forms) == {"polyphase", "transposed"}   # Winograd phases: with their forms
    bias = jnp.linspace(-0.1, 0.1, 16)
    want = ops.bias_act(ops.modulated_conv(X, K, S, demodulate=True, up=True), bias, act="lrelu")
    for form, fn in forms.items():   # each candidate is the layer itself with the form forced
        np.testing.assert_allclose(np.asarray(fn(X, K, S, bias, None)), np.asarray(want), rtol=1e-4, atol=1e-5)
    monkeypatch.setattr(autotune, "time_candidates", _no_timing)
    for choice, calls in (("rows", 1), ("direct", 0)):
        grad_key = autotune.entry_key("modconv_3x3", (X, K, S, B), "highest", "grad_xs")   # narrow K: own gradient
        _write(cache, {MOD_KEY: {"choice": choice, "ms": {}}, grad_key: {"choice": choice, "ms": {}}})
        autotune._memo.clear()
        g = lambda x, s: ops.modulated_conv(x, K, s, demodulate=True, up=False)  # noqa: E731
        assert _winograd_calls(g, X, S) == calls, choice
        # narrow kernels (K: 16 channels) take their input gradient by the same algorithm: a second Winograd conv
        per_grad = 2 if min(K.shape[2:]) < conv3x3.NARROW else 1
        assert _winograd_calls(jax.grad(lambda x, s: jnp.sum(g(x, s)), argnums=(0, 1)), X, S) == calls * per_grad
    # given its kernel forms (prepared params), the up-conv's candidates include the Winograd phases
    monkeypatch.setattr(autotune, "time_candidates", fake_times)
    up_forms = kernels.layer_forms(K, jnp.float32, up=True, demodulate=True, algos=kernels.UPCONV_WINOGRAD, poly=True)
    jax.grad(lambda x: jnp.sum(ops.modulated_conv(x, K, S, demodulate=True, up=True, prepared=up_forms)))(X)
    assert set(seen["grad_x"][0]) == {"polyphase", "polyphase_w2", "polyphase_r4", "transposed"}


def test_the_forms_are_timed_in_the_programs_conv_library(cache, monkeypatch):
    """A conv traced for a program compiled with Eigen convs (Numerics.conv_library 'eigen') times its forms compiled
    so, under a key of their own; XLA's default keeps the plain key and options."""
    from si_jax.stylegan2.numerics import EIGEN_CONVS
    seen = []

    def fake_times(candidates, specs, mode, names="xw", options=None, **kw):
        seen.append((sorted(candidates), options))
        return {n: 1.0 + 0.1 * i for i, n in enumerate(candidates)}

    monkeypatch.setattr(autotune, "time_candidates", fake_times)
    for library in ("auto", "eigen"):
        numerics = Numerics(conv_library=library)
        jax.jit(lambda x, s: ops.modulated_conv(x, K, s, demodulate=True, up=False, numerics=numerics))(X, S)
    assert set(json.loads(cache.read_text())["hosts"][autotune.host_key()]) == {MOD_KEY, MOD_KEY + " eigen"}
    forms = sorted(("direct",) + tuple(kernels.WINOGRAD))
    assert seen == [(forms, None), (forms, dict.fromkeys(forms, EIGEN_CONVS))]


def test_with_kernel_forms_each_candidate_is_timed_on_its_forms_given_and_prepare_has_them_all(cache, monkeypatch):
    """On prepared params (kernels.prepare: forms once per weights) each candidate layer takes every candidate's
    kernel forms as an argument (derived outside the timed call), under a kind of its own, and its backward is
    timed (the Winograd forms' input gradient is their own); prepare, with measuring on, gives a measured layer
    every candidate's forms, so the chosen one runs as timed; values and style gradients are the direct conv's."""
    seen = {}

    def fake_times(candidates, specs, mode, names="xw", **kw):
        seen[mode] = candidates, specs, names
        return {n: 1.0 + 0.1 * i for i, n in enumerate(reversed(list(candidates)))}   # the last listed is fastest

    monkeypatch.setattr(autotune, "time_candidates", fake_times)
    from si_jax.stylegan2 import config, kernels
    cfg = config.G2Config.make(img_resolution=8, channel_base=32, channel_max=16, z_dim=8, w_dim=8,
                               mapping_layers=1)
    spec = next(s for s in cfg.layers if s.kind == "conv" and not s.up and s.res == 8)
    forms = kernels.prepare_layer(K, spec, cfg)
    assert set(forms) == {"wsq", "wt", "winograd2d", "winograd2d_t", "rows", "rows_t"}
    f = lambda x, s, p: jnp.sum(ops.modulated_conv(x, K, s, demodulate=True, up=False, prepared=p))  # noqa: E731
    jax.jit(jax.grad(f, argnums=(0, 1)))(X, S, forms)
    entries = json.loads(cache.read_text())["hosts"][autotune.host_key()]
    key = autotune.entry_key("modconv_3x3_prepared", (X, K, S, B), "highest", "grad_xs")
    assert set(entries) == {key} and entries[key]["choice"] == "rows"
    candidates, specs, names = seen["grad_xs"]
    assert names == "xws--" and set(specs[-1]) == set(forms)
    assert list(candidates) == ["direct", "winograd2d", "rows"]   # 'winograd4x4' only when set (numerics)
    bias = jnp.linspace(-0.1, 0.1, 16)
    want = ops.bias_act(ops.modulated_conv(X, K, S, demodulate=True, up=False, numerics=Numerics(conv3x3="direct")),
                        bias, act="lrelu")
    for fn in candidates.values():
        np.testing.assert_allclose(np.asarray(fn(X, K, S, bias, forms)), np.asarray(want), rtol=1e-4, atol=1e-5)
    jaxpr = str(jax.make_jaxpr(f)(X, S, forms))
    assert jaxpr.count("name=conv3x3") == 1   # the choice, rows, runs on the given forms
    got = jax.grad(f, argnums=(0, 1))(X, S, forms)
    plain = lambda x, s: jnp.sum(ops.modulated_conv(x, K, s, demodulate=True, up=False,  # noqa: E731
                                                    numerics=Numerics(conv3x3="direct")))
    for g, w in zip(got, jax.grad(plain, argnums=(0, 1))(X, S)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)


def test_paper256_convs_from_8_px_are_measured_and_the_demo_models_keep_the_rule():
    """MIN_FLOPS (per image) measures every paper256 conv from 8 px up and none of the shipped 32 px
    model's (the demo's: measuring them cost it ~10 s a start for no gain, autotune's docstring)."""
    from si_jax.stylegan2 import builtin
    from si_jax.stylegan2.config import G2Config
    import si_jax
    for cfg in (si_jax.load_generator(builtin.BUILTIN_TOYFACES)[1], G2Config.make(256, channel_base=16384)):
        for layer in cfg.conv_layers:
            res = layer.res // 2 if layer.up else layer.res
            flops = autotune.conv_flops((1, res, res, layer.in_ch), (3, 3, layer.in_ch, layer.out_ch))
            measured = cfg.img_resolution == 256 and res >= 8
            assert (flops >= autotune.MIN_FLOPS) == measured, (cfg.img_resolution, layer.name, flops)


def test_a_choice_measured_under_load_is_measured_again_and_the_quieter_kept(cache, monkeypatch):
    """A record measured while other processes used over CONTENDED of the CPUs is measured again by a later
    process (once per process, at most TRIES in all); the measurement with less load is kept. Quiet records and
    records without the field are final (a warm cache times nothing)."""
    args = (X, K, B)
    candidates = dict.fromkeys(("direct", "rows"))
    choose = lambda: autotune.choose("conv3x3", candidates, args, "highest", rule="direct")  # noqa: E731
    entry = lambda: json.loads(cache.read_text())["hosts"][autotune.host_key()][KEY]  # noqa: E731
    monkeypatch.setattr(autotune, "time_candidates", lambda c, *a, **k: {"direct": 1.0, "rows": 0.5})
    # busier again than the first time: the first measurement's choice is kept, the try counted
    _write(cache, {KEY: {"choice": "direct", "ms": {}, "others": 0.6}})
    monkeypatch.setattr(autotune.conv_timing, "Others", _Share(0.8))
    assert choose() == "direct" and entry()["tries"] == 2 and entry()["others"] == 0.6
    monkeypatch.setattr(autotune, "time_candidates", _no_timing)
    assert choose() == "direct"   # once per process
    # a later process, quieter: its measurement replaces the busy one
    autotune._memo.clear(), autotune._remeasured.clear()
    monkeypatch.setattr(autotune, "time_candidates", lambda c, *a, **k: {"direct": 1.0, "rows": 0.5})
    monkeypatch.setattr(autotune.conv_timing, "Others", _Share(0.1))
    assert choose() == "rows" and entry()["tries"] == 3 and entry()["others"] == 0.1
    # final now (quiet; and TRIES reached): never measured again
    monkeypatch.setattr(autotune, "time_candidates", _no_timing)
    autotune._memo.clear(), autotune._remeasured.clear()
    assert choose() == "rows"
    for record in ({"choice": "rows", "others": 0.9, "tries": autotune.TRIES}, {"choice": "rows", "others": 0.1},
                   {"choice": "rows"}):
        _write(cache, {KEY: record})
        autotune._memo.clear(), autotune._remeasured.clear()
        assert choose() == "rows"
    # a busy record with the budget spent: its choice, not the rule, and nothing measured
    _write(cache, {KEY: {"choice": "rows", "others": 0.9}})
    autotune._memo.clear()
    monkeypatch.setattr(autotune, "_spent", [autotune.budget()])
    assert choose() == "rows"


def test_a_narrow_conv_without_forms_is_timed_with_its_gradient_a_wide_one_forward_only(cache, monkeypatch):
    """Training (no prepared forms) differentiates conv_2d: a narrow kernel's forms run its input and weight
    gradients too (ops.conv_2d), so the candidates are timed fwd + VJP; a wide kernel's gradient is the direct conv's
    in every form, so only the forward is timed."""
    modes = []
    monkeypatch.setattr(autotune, "time_candidates",
                        lambda c, specs, mode, *a, **k: modes.append(mode) or {n: 1.0 for n in c})
    for ch in (16, conv3x3.NARROW):
        x, k = jnp.zeros((1, 16, 16, ch)), jnp.zeros((3, 3, ch, ch))
        jax.make_jaxpr(jax.grad(lambda x, k: jnp.sum(ops.conv_2d(x, k)), argnums=(0, 1)))(x, k)
    assert modes == ["grad_xw", "fwd"]


def test_unprepared_up_convs_keep_direct_phases_with_measuring_on(tmp_path, monkeypatch):
    """With measuring on (the default) an up-conv under MIN_FLOPS takes the rule; on raw params (training, sample /
    generate programs) the rule is direct phases, on prepared params the Winograd ones (polyphase_w2 at 8 px x 256
    channels). It used to force the prepared-path rule on raw params too, deriving the phase transforms per call."""
    import si_jax
    from si_jax.stylegan2.config import G2Config
    monkeypatch.setenv(autotune.TUNING_ENV, "on")
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "choices.json"))
    monkeypatch.setattr(autotune, "MIN_FLOPS", 1e12)   # every conv here takes the rule, unmeasured
    cfg = G2Config.make(16, channel_base=4096, channel_max=256, z_dim=8, w_dim=8, mapping_layers=1)
    params = si_jax.to_jax_params(si_jax.random_canonical(cfg, 0), cfg)
    styles = [jnp.ones((1, d)) for d in (spec.dim for spec in cfg.layers)]
    program = lambda p: str(jax.make_jaxpr(lambda s: si_jax.synthesize(p, cfg, s))(styles))  # noqa: E731
    assert "winograd_t" not in program(params)
    assert "winograd_t" in program(kernels.prepare(params, cfg))
    assert not (tmp_path / "choices.json").exists()   # nothing measured
