"""Training: params round trip, equalized-lr Adam, D, losses, steps, checkpoints, resume, export, settings, devices.

Every test uses the same tiny run (8 px, 16 channels, batch 4, blobs) so that the four step programs compile
once for the whole file; reg intervals 2 (PL) and 3 (R1) make iterations 0-3 run all four (do_pl, do_r1) variants.
"""
import concurrent.futures
import dataclasses
import json
import math
import pathlib
import shutil
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, xla_env
from safetensors.numpy import load_file
from PIL import Image

import si_jax
from si_jax.engines import errors, hosts, train_programs, train_run
from si_jax.stylegan2 import network
from si_jax.stylegan2 import params as params_lib
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.discriminator import DConfig, discriminate, init_discriminator
from si_jax.training import checkpoint, losses, steps
from si_jax.training import data as data_lib
from si_jax.training import state as state_lib

SMALL = train_run.TrainSettings(
    name="tiny", data="blobs", resolution=8, channel_base=128, channel_max=16, z_dim=16, w_dim=16,
    mapping_layers=2, batch=4, kimg=0.016, gamma=1.0, g_reg_interval=2, d_reg_interval=3,
    grid_kimg=0.008, checkpoint_kimg=0.008, log_every_s=0.0001)
TC = SMALL.train_config()
DATA = data_lib.Blobs(0, 8)


def _numpy(tree):
    return jax.tree.map(np.asarray, tree)


def _max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --- params ---------------------------------------------------------------------------------------------------
def test_from_jax_params_is_the_inverse_of_to_jax_params():
    cfg = G2Config.make(16, 256, 32, 16, 16, mapping_layers=3)
    canonical = params_lib.random_canonical(cfg, 0)
    back = params_lib.from_jax_params(params_lib.to_jax_params(canonical, cfg), cfg)
    assert set(back) == set(canonical)
    for k in canonical:
        assert back[k].shape == canonical[k].shape and back[k].dtype == np.float32
        np.testing.assert_allclose(back[k], canonical[k], rtol=1e-7, atol=0, err_msg=k)
    p = params_lib.to_jax_params(canonical, cfg)
    assert _max_diff(params_lib.to_jax_params(back, cfg), p) <= 1e-7 * max(
        float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(p))


def test_equalized_lr_adam_equals_nvlabs_adam_on_stored_weights():
    """Two Adam steps of NVlabs (stored weights θ, runtime φ = g·θ, lazy-reg lr·c and β2**c), by hand in float64,
    against si_jax's optimizer on the folded pytree."""
    cfg = TC.g
    canonical = state_lib.init_canonical(cfg, 3)
    canonical.update({k: v + 0.1 for k, v in canonical.items() if k.endswith(("bias", "noise_strength"))})
    gain, _ = state_lib.split_w_avg(params_lib.to_jax_params({k: np.ones_like(v) for k, v in canonical.items()}, cfg))
    phi, w_avg = state_lib.split_w_avg(params_lib.to_jax_params(canonical, cfg))
    z = jax.random.normal(jax.random.PRNGKey(0), (4, cfg.z_dim))
    target = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 3))
    grad = jax.jit(jax.grad(lambda p: jnp.sum(network.generate(state_lib.with_w_avg(p, w_avg), cfg, z)[2] * target)))
    buffers = {"noise_const"}
    is_buffer = jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key in buffers, phi)

    c = TC.g_lazy_ratio
    lr, b2, eps = TC.lr * c, 0.99**c, 1e-8
    assert c == 2 / 3
    theta = jax.tree.map(lambda p, g: np.asarray(p, np.float64) / np.asarray(g), phi, gain)
    v = jax.tree.map(np.zeros_like, theta)
    tx = state_lib.g_optimizer(TC)
    mine, opt = phi, tx.init(phi)
    for t in (1, 2):
        g_phi = grad(jax.tree.map(lambda th, g: jnp.asarray(th * np.asarray(g), jnp.float32), theta, gain))
        g_theta = jax.tree.map(lambda gp, g: np.asarray(gp, np.float64) * np.asarray(g), g_phi, gain)
        v = jax.tree.map(lambda v_, gt: b2 * v_ + (1 - b2) * gt**2, v, g_theta)
        bc = 1 - b2**t
        theta = jax.tree.map(lambda th, gt, v_, buf, bc=bc: th if buf else th - lr * gt / (np.sqrt(v_ / bc) + eps),
                             theta, g_theta, v, is_buffer)
        updates, opt = jax.jit(tx.update)(grad(mine), opt, mine)
        mine = jax.tree.map(lambda p, u: p + u, mine, updates)
    want = jax.tree.map(lambda th, g: th * np.asarray(g), theta, gain)
    # per leaf: the step agrees to 1e-3 of its size, up to float32 rounding of the parameter itself
    for (path, a), b, p0 in zip(jax.tree_util.tree_flatten_with_path(mine)[0], jax.tree.leaves(want),
                                jax.tree.leaves(phi)):
        p0 = np.asarray(p0, np.float64)
        tol = 1e-3 * np.max(np.abs(b - p0)) + 4 * np.finfo(np.float32).eps * np.abs(p0)
        assert np.all(np.abs(np.asarray(a, np.float64) - b) <= tol), jax.tree_util.keystr(path)
    assert _max_diff(mine, phi) > 1e-3  # it did move


# --- discriminator and losses -----------------------------------------------------------------------------------
def test_discriminator_shapes_and_minibatch_stddev_groups():
    dcfg = DConfig.make(8, 128, 16)
    d = init_discriminator(jax.random.PRNGKey(0), dcfg)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 8, 8, 3))
    run = jax.jit(discriminate, static_argnums=1)
    out = run(d, dcfg, x)
    assert out.shape == (8,) and bool(jnp.all(jnp.isfinite(out)))
    moved = run(d, dcfg, x.at[1].multiply(3.0))  # sample 1 shares its mbstd group with 0, 2, 3
    assert float(jnp.abs(moved[0] - out[0])) > 1e-4
    np.testing.assert_array_equal(np.asarray(moved[4:]), np.asarray(out[4:]))  # the other group is untouched


def test_r1_penalty_is_zero_for_a_d_constant_in_x():
    d = init_discriminator(jax.random.PRNGKey(0), TC.d)
    real = DATA.images(0, 4)
    r1 = jax.jit(losses.r1_penalty, static_argnums=1)
    assert float(jnp.min(r1(d, TC, real))) > 0
    flat = {**d, "fromrgb": {**d["fromrgb"], "w": jnp.zeros_like(d["fromrgb"]["w"])}}
    np.testing.assert_array_equal(np.asarray(r1(flat, TC, real)), 0.0)


# --- steps -------------------------------------------------------------------------------------------------------
def test_steps_run_every_variant_change_g_d_g_ema_and_compile_once():
    state = state_lib.init_state(TC)
    history = [_numpy(state)]
    before = steps.train_step._cache_size()
    for i in range(4):
        do_pl, do_r1 = TC.reg_flags(i)
        state, m = steps.train_step(state, TC, DATA, None, do_pl=do_pl, do_r1=do_r1)
        m = jax.device_get(m)
        assert {"G", "D", "fake_score", "real_score"} <= set(m)
        assert ("pl" in m) == do_pl and ("r1" in m) == do_r1
        assert all(math.isfinite(float(v)) for v in m.values()), m
        history.append(_numpy(state))
    assert [TC.reg_flags(i) for i in range(4)] == [(True, True), (False, False), (True, False), (False, True)]
    state, _ = steps.train_step(state, TC, DATA, None, do_pl=False, do_r1=False)  # a 2nd call: no new program
    assert steps.train_step._cache_size() - before <= 4
    first, last = history[0], history[-1]
    for part in ("g", "d", "g_ema"):
        assert _max_diff(getattr(first, part), getattr(last, part)) > 1e-4, part
    assert int(last.step) == 4 and float(last.pl_mean) > 0 and _max_diff(first.w_avg, last.w_avg) > 0
    # step 0: beta = 0, so G_ema is a copy of G after the first iteration
    assert _max_diff(history[1].g, history[1].g_ema) == 0
    np.testing.assert_array_equal(last.g["layers"][0]["noise_const"], first.g["layers"][0]["noise_const"])


def test_discriminator_separates_a_trivial_dataset():
    """Reals are constant white images. G trains too, so D's margin oscillates; averaged over iterations 10-29,
    D(real) − D(fake) > 0.8 logits and the D loss is < 1.1 (chance: 2·ln 2 = 1.386; at init both ~0 / ~1.39)."""
    white = data_lib.Constant(1.0, 8)
    state = state_lib.init_state(TC)
    margin, loss = [], []
    for i in range(30):
        state, m = steps.train_step(state, TC, white, None, do_pl=False, do_r1=False)
        if i >= 10:
            m = jax.device_get(m)
            margin.append(float(m["real_score"] - m["fake_score"]))
            loss.append(float(m["D"]))
    assert np.mean(margin) > 0.8 and np.mean(loss) < 1.1, (margin, loss)


# --- the loop: resume, export, settings --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("train_a")
    out = train_run.train(SMALL, workdir)
    return workdir, out


def _ckpt_arrays(path) -> dict:
    return load_file(str(pathlib.Path(path) / checkpoint.STATE_FILE))


def test_run_writes_checkpoints_metrics_grids(uninterrupted):
    workdir, out = uninterrupted
    assert out["step"] == 4
    assert [p.name for p in checkpoint.all_checkpoints(workdir / "checkpoints")] == ["ckpt_000000002",
                                                                                 "ckpt_000000004"]
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert lines[0]["r1"] is not None and lines[0]["pl"] is not None and lines[1]["r1"] is None
    assert {"G", "D"} <= set(lines[-1]["losses"]) and lines[-1]["timing"]["kimg_per_s"] > 0
    assert sorted(p.name for p in workdir.glob("grid_*.png")) == [   # grid_kimg 0.008: none overwrites another
        "grid_000000.000.png", "grid_000000.008.png", "grid_000000.016.png"]
    with Image.open(workdir / "grid_000000.000.png") as grid:   # an 8 x 8 grid with its kimg written above it
        band = np.asarray(grid.convert("L"))[:grid.height - grid.width]
    assert 10 < len(band) < 30 and band.min() < 100 and band.max() == 255
    meta = checkpoint.read_meta(workdir / "checkpoints" / "ckpt_000000004")
    assert meta["step"] == 4 and meta["data_position"] == 16 and meta["kimg"] == pytest.approx(0.016)


def test_kill_and_resume_gives_the_uninterrupted_state(uninterrupted, tmp_path):
    workdir_a, _ = uninterrupted

    def kill_at_3(step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run.train(SMALL, tmp_path, on_step=kill_at_3)
    assert [p.name for p in checkpoint.all_checkpoints(tmp_path / "checkpoints")] == ["ckpt_000000002"]
    out = train_run.train(SMALL, tmp_path)
    assert out["step"] == 4
    a, b = _ckpt_arrays(workdir_a / "checkpoints" / "ckpt_000000004"), _ckpt_arrays(out["checkpoint"])
    assert set(a) == set(b)
    for k in a:  # exact on CPU: the same programs on the same inputs
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_exported_g_ema_loads_and_reproduces_the_in_memory_g_ema(uninterrupted):
    workdir, out = uninterrupted
    state = out["state"]
    canonical = params_lib.from_jax_params(state_lib.with_w_avg(_numpy(state.g_ema), np.asarray(state.w_avg)),
                                           TC.g)
    loaded, cfg = si_jax.load_canonical(workdir / "G_ema.safetensors")
    assert cfg == TC.g
    assert si_jax.fingerprint(loaded) == si_jax.fingerprint(canonical)
    params, cfg = si_jax.load_generator(workdir / "G_ema.safetensors")
    z = train_run.grid_latents(SMALL)[:8]
    mine = steps.ema_images(state.g_ema, state.w_avg, TC.g, z)
    theirs = steps.ema_images(*state_lib.split_w_avg(params), cfg, z)
    assert _max_diff(params, state_lib.with_w_avg(state.g_ema, state.w_avg)) <= 1e-7 * 100
    np.testing.assert_allclose(np.asarray(theirs), np.asarray(mine), atol=1e-5)


def test_resume_refuses_other_settings(uninterrupted):
    workdir, _ = uninterrupted
    with pytest.raises(errors.UsageError, match=r"lr: 0.0025 -> 0.001"):
        train_run.train(dataclasses.replace(SMALL, lr=0.001), workdir)


@pytest.mark.parametrize("change, match", [
    (dict(kimg=0.0), "--kimg=0.0 must be > 0"),
    (dict(lr=float("nan")), "--lr=nan must be a finite number"),
    (dict(batch=6), "minibatch-stddev group 4"),
    (dict(resolution=12), "power of two"),
    (dict(mixing_prob=1.5), "mixing_prob"),
    (dict(gamma=-1.0), "--gamma=-1.0 must be >= 0"),
    (dict(batch=4.0), "--batch=4.0 must be an integer"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, change, match):
    with pytest.raises(errors.UsageError, match=match):
        train_run.train(dataclasses.replace(SMALL, **change), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_batch_must_split_over_devices():
    with pytest.raises(errors.UsageError, match="multiple of the 3 local devices"):
        SMALL.check(num_devices=3)


def test_non_finite_loss_stops_before_writing_a_checkpoint(tmp_path, monkeypatch):
    """Iteration 1 (whose end would be the first checkpoint) reports D = nan: the run stops naming it."""
    real_step = steps.train_step

    def nan_at_step_1(state, *args, **kw):
        step = int(state.step)
        state, m = real_step(state, *args, **kw)
        return state, {**m, "D": jnp.float32(jnp.nan)} if step == 1 else m

    nan_at_step_1.lower = real_step.lower   # train_run compiles the steps ahead
    monkeypatch.setattr(train_run.steps, "train_step", nan_at_step_1)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step 1: D = nan.*no checkpoint written"):
        train_run.train(SMALL, tmp_path)
    assert not checkpoint.all_checkpoints(tmp_path / "checkpoints") and not (tmp_path / "G_ema.safetensors").exists()


def test_a_stopped_run_compiles_no_further_program_and_exit_waits_for_the_one_under_way():
    """Background.cancel (a run that raised, or ^C) lets the compile under way end and starts no other; the
    at-exit hook waits for it (a daemon thread killed inside XLA's compiler aborts the process)."""
    started, release, built = threading.Event(), threading.Event(), []

    def build(variant):
        built.append(variant)
        started.set()
        release.wait(10)

    bg = train_programs.Background(build, [(False, False), (True, False), None])
    assert started.wait(10)
    bg.cancel()
    release.set()
    bg._at_exit()
    assert built == [(False, False)] and not bg._thread.is_alive()
    assert bg.wait(False, False) >= 0.0
    with pytest.raises(concurrent.futures.CancelledError):
        bg.wait(True, False)


def test_checkpoint_refuses_non_finite_state_and_restore_names_a_mismatch(tmp_path):
    state = state_lib.init_state(TC)
    bad = state._replace(pl_mean=jnp.float32(jnp.inf))
    with pytest.raises(FloatingPointError, match=r"\.pl_mean has non-finite values"):
        checkpoint.save(tmp_path, bad, {})
    path = checkpoint.save(tmp_path, state, {})
    other = state_lib.init_state(dataclasses.replace(SMALL, w_dim=8).train_config())
    with pytest.raises(ValueError, match=r"checkpoint array \.g\['layers'\]\[0\]\['affine_w'\] is float32\[16, 16\], "
                                         r"this model needs float32\[8, 16\]"):
        checkpoint.restore(path, other)
    restored, meta = checkpoint.restore(path, state)
    assert meta["step"] == 0 and _max_diff(restored, state) == 0


# --- devices -----------------------------------------------------------------------------------------------------
TWO_DEVICES = """
import sys, numpy as np, jax
from jax.sharding import Mesh
from si_jax.training import checkpoint, data, state as S, steps
from test_training import SMALL
assert jax.device_count() == 2
tc = SMALL.train_config()
mesh = Mesh(np.asarray(jax.devices()), ('data',))
st = steps.replicate(S.init_state(tc), mesh)
for i in range(2):
    st, m = steps.train_step(st, tc, data.Blobs(0, 8), mesh, do_pl=True, do_r1=True)
assert st.g['const'].sharding.is_fully_replicated
np.savez(sys.argv[1], **{k: v for k, v in checkpoint.flatten(st).items()}, **{'m_' + k: v for k, v in m.items()})
"""


def test_two_devices_match_one(tmp_path):
    out = tmp_path / "two.npz"
    subprocess.run([sys.executable, "-c", TWO_DEVICES, str(out)], check=True, env=xla_env(devices=2),
                   cwd=REPO / "tests", timeout=300)
    state = state_lib.init_state(TC)
    for _ in range(2):
        state, m = steps.train_step(state, TC, DATA, None, do_pl=True, do_r1=True)
    one, two = checkpoint.flatten(state), dict(np.load(out))
    for k, v in jax.device_get(m).items():
        assert float(two["m_" + k]) == pytest.approx(float(v), rel=1e-4, abs=1e-6), k
    # Adam's first steps are ±lr·c per parameter (beta1 = 0): a gradient within rounding of 0 may flip sign, so a
    # few elements may differ by up to 2·lr; everything else agrees to float32 summation order.
    flipped, total = 0, 0
    for k, a in one.items():
        diff = np.abs(np.asarray(a, np.float64) - two[k])
        flipped += int(np.sum(diff > 1e-5))
        total += a.size
        assert float(diff.max(initial=0)) <= 2.5 * TC.lr, k
    assert flipped <= 1e-3 * total, (flipped, total)


# --- bin/train.py --config=smoke: says what it compiles, then a line from the first step -------------------------
def _train(workdir, cache, *args):
    proc = subprocess.run([sys.executable, str(REPO / "bin" / "train.py"), "--config=smoke", f"--workdir={workdir}",
                           f"--compilation_cache={cache}", *args], cwd=REPO, env=xla_env(), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr.splitlines() + proc.stdout.splitlines()   # progress on stderr, then the final 'done:'


def _first(lines, text, after=-1) -> int:
    found = [i for i, line in enumerate(lines) if text in line and i > after]
    assert found, f"no line with {text!r} after line {after}:\n" + "\n".join(lines)
    return found[0]


def test_smoke_config_trains_end_to_end_announcing_compiles_and_resumes(tmp_path, jax_cache):
    """The smoke config (explicit flags win over it) trains toyfaces at 16 px: the programs are announced and
    counted, the first step's (and the initial grid's) before the first step, whose progress line comes at once (the
    ETA excludes compiling), the other step program in the background; each batch is split over one CPU device per
    core ('auto'); the exported G_ema loads; a longer re-run resumes from the checkpoint."""
    work = tmp_path / "smoke"
    lines = _train(work, jax_cache, "--kimg=0.024")   # 3 steps of 8: one with both regularisers, two without
    n = hosts.host_devices("auto", train_run.SMOKE.batch)   # the default: one CPU device per core
    announce = _first(lines, "compiling 3 training programs", _first(lines, f"training on {n} cpu device(s)"))
    step1 = _first(lines, "kimg 0.01/0.02  step 1 ", _first(lines, "  compiled 2/3 (", announce))
    assert _first(lines, "  compiled 3/3 (", announce) < _first(lines, "done: 0.02 kimg, step 3", step1)
    settings = json.loads((work / train_run.SETTINGS_FILE).read_text())
    assert (settings["resolution"], settings["channel_max"], settings["data"], settings["kimg"]) == \
        (train_run.SMOKE.resolution, train_run.SMOKE.channel_max, "toyfaces", 0.024)
    _, cfg = si_jax.load_canonical(str(work / train_run.GEMA_FILE))
    assert cfg.img_resolution == 16
    again = _train(work, jax_cache, "--kimg=0.048")
    resumed = _first(again, "resuming from")
    _first(again, "kimg 0.03/0.05  step 4 ", _first(again, "compiling 3 training programs", resumed))


# --- bad inputs and leftovers (issue 21) ---------------------------------------------------------------------------

def test_failure_at_the_first_step_creates_nothing_and_the_corrected_run_starts(tmp_path, monkeypatch):
    """A run that fails at step 0 (its loss made NaN, as --lr=1e30 would) leaves no folder, settings.json or grid,
    so the corrected command, with other settings (its name), is not refused for 'other settings'. The failing run
    has the corrected run's TrainConfig (a new lr would compile the training programs again: ~14 CPU-s)."""
    real_step = steps.train_step

    def nan_at_step_0(state, *args, **kw):
        state, m = real_step(state, *args, **kw)
        return state, {**m, "G": jnp.float32(jnp.nan)}

    nan_at_step_0.lower = real_step.lower   # train_programs.compile_steps compiles the real step ahead

    monkeypatch.setattr(train_run.steps, "train_step", nan_at_step_0)
    work = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="non-finite loss at step 0"):
        train_run.train(dataclasses.replace(SMALL, name="tiny_failing"), work)
    assert not work.exists()
    monkeypatch.setattr(train_run.steps, "train_step", real_step)
    out = train_run.train(dataclasses.replace(SMALL, kimg=0.004, grid_kimg=0.004), work)
    assert out["step"] == 1 and (work / "settings.json").is_file()
    assert sorted(p.name for p in work.glob("grid_*")) == ["grid_000000.000.png", "grid_000000.004.png"]
    assert oct((work / "G_ema.safetensors").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("text, words", [("[]", r"holds list \[\]"), ("{garbage", "is damaged")])
def test_damaged_settings_json_is_named(tmp_path, text, words):
    (tmp_path / "settings.json").write_text(text)
    with pytest.raises(errors.UsageError, match=words) as info:
        train_run.train(SMALL, tmp_path)
    assert str(tmp_path / "settings.json") in str(info.value) and "delete it" in str(info.value)
    assert (tmp_path / "settings.json").read_text() == text


def test_damaged_newest_checkpoint_falls_back_and_is_named(uninterrupted, tmp_path, capsys):
    """A truncated newest checkpoint (or one with a planted NaN) is named; the previous intact one is resumed;
    an export temp file left by a kill is removed."""
    workdir, _ = uninterrupted
    work = tmp_path / "w"
    shutil.copytree(workdir, work)
    newest = work / "checkpoints" / "ckpt_000000004"
    state_file = newest / checkpoint.STATE_FILE
    state_file.write_bytes(state_file.read_bytes()[:1000])
    (work / ".G_ema.safetensors.abc.tmp").write_bytes(b"half")
    out = train_run.train(SMALL, work, stream=sys.stderr)
    err = capsys.readouterr().err
    assert "ckpt_000000004: unreadable checkpoint state" in err and "resuming from the previous checkpoint" in err
    assert out["step"] == 4 and not (work / ".G_ema.safetensors.abc.tmp").exists()
    a, b = _ckpt_arrays(workdir / "checkpoints" / "ckpt_000000004"), _ckpt_arrays(out["checkpoint"])
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # NaN planted in the only checkpoint left: named, nothing restored from it
    only = tmp_path / "only"
    shutil.copytree(workdir, only)
    shutil.rmtree(only / "checkpoints" / "ckpt_000000002")
    arrays = _ckpt_arrays(only / "checkpoints" / "ckpt_000000004")
    key = next(k for k, v in arrays.items() if v.dtype == np.float32 and v.size > 1)
    arrays[key][0] = np.nan
    from safetensors.numpy import save_file

    save_file(arrays, str(only / "checkpoints" / "ckpt_000000004" / checkpoint.STATE_FILE))
    before = (only / "settings.json").read_bytes()
    with pytest.raises(ValueError, match=r"NaN or infinite values.*no intact checkpoint is left: delete"):
        train_run.train(SMALL, only)
    assert (only / "settings.json").read_bytes() == before


def test_host_devices_auto_is_the_largest_divisor_of_the_batch_within_the_cores():
    assert [hosts.host_devices("auto", b, cores=c) for b, c in ((32, 2), (32, 1), (6, 4), (7, 2), (2, 16))] == \
        [2, 1, 3, 1, 2]
    assert hosts.host_devices("4", 32) == 4
    for bad in ("3", "0", "-2", "two"):
        with pytest.raises(errors.UsageError, match=f"--host_devices='{bad}' must be 'auto' or a positive integer"):
            hosts.host_devices(bad, 32)


def test_background_programs_are_waited_for_in_order_and_their_errors_reach_the_loop():
    """train_programs.Background: wait(variant) blocks until that program is built (the grid's: no argument) and
    re-raises its build error in the caller; a variant built before (not in the background) costs no wait."""
    from si_jax.engines import train_programs

    built, gate = [], threading.Event()

    def build(variant):
        gate.wait(5)
        if variant == (True, True):
            raise MemoryError("R1 program too large")
        built.append(variant)

    bg = train_programs.Background(build, [(True, False), None, (True, True)])
    assert bg.wait(False, False) == 0.0 and built == []   # not a background variant
    gate.set()
    bg.wait(True, False)
    assert built[0] == (True, False)
    bg.wait()
    assert built == [(True, False), None]
    with pytest.raises(MemoryError, match="R1 program too large"):
        bg.wait(True, True)
    bg.finish()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's conv libraries")
def test_the_step_compiles_in_the_conv_library_asked_with_the_same_losses():
    """bin/train.py --conv_library: the step and grid programs carry tc.g's XLA options (Eigen convs), the same
    losses to float32 rounding. 32 channels: XLA leaves convs of 16 or fewer out of YNNPACK whatever the options."""
    from test_conv_library import _ynn_convs
    wide = dataclasses.replace(SMALL, channel_max=32).train_config()
    state = state_lib.init_state(wide)
    out = {}
    for library in ("ynn", "eigen"):
        tc = dataclasses.replace(wide, g=wide.g.with_numerics(conv_library=library))
        step = steps.step_program(tc)
        compiled = step.lower(state, tc, DATA, None, do_pl=False, do_r1=False).compile()
        z = jnp.zeros((2, tc.g.z_dim))
        grid = steps.ema_program(tc.g).lower(state.g_ema, state.w_avg, tc.g, z).compile()
        _, metrics = compiled(jax.tree.map(jnp.copy, state))   # the state is donated
        out[library] = (_ynn_convs(compiled) > 0, _ynn_convs(grid) > 0, jax.device_get(metrics))
    assert out["ynn"][:2] == (True, True) and out["eigen"][:2] == (False, False)
    for k, v in out["ynn"][2].items():
        np.testing.assert_allclose(out["eigen"][2][k], v, rtol=1e-4, atol=1e-5, err_msg=k)
    assert steps.step_program(TC) is steps.train_step   # XLA's default: the one program
