"""Style Intervention: Eq. 8 end points, batching, constraints, monotone layer-wise progress, and bad inputs.
Whether it edits what an independent judge sees and keeps the rest is tests/test_paper_claims.py (the toyfaces
world; it replaced the synthetic red-box benchmark on the random demo generator that stood here, 66 s in CI)."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import si_jax
from si_jax import metrics
from si_jax.editing import intervention, loops
from si_jax.editing.intervention import InterventionConfig
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.programs import synth_program

TINY = G2Config.make(img_resolution=16, channel_base=256, channel_max=16, z_dim=8, w_dim=8, mapping_layers=2)
# The mechanics tests use the paper's objective (Eq. 11: no inside term, so the outside error may only trade
# against λ_attr·cos); the keep_edit objective has its own test below and tests/test_paper_claims.py.
# Every test that runs intervene per image does so on a batch of 3 (but the batch-1 runs of the vmap test): compile
# dominates, and a new batch size compiles every layer's programs again.
FAST = dataclasses.replace(intervention.PAPER_CONFIG, steps_per_layer=6, learning_rate=0.2)


@functools.lru_cache(maxsize=None)
def _tiny():
    return si_jax.to_jax_params(si_jax.random_canonical(TINY, seed=0), TINY)


def _problem(batch, seed=0):
    """styles, Δs_z, Δs_n (random, fixed seed) and a box mask for the tiny generator."""
    params, rng = _tiny(), np.random.default_rng(seed)
    z = jnp.asarray(rng.standard_normal((batch, TINY.z_dim)), jnp.float32)
    styles = si_jax.styles_from_w(params, TINY, si_jax.mapping(params, TINY, z))
    ds_z = [jnp.asarray(0.5 * rng.standard_normal(s.shape), jnp.float32) for s in styles]
    ds_n = [jnp.asarray(rng.standard_normal(s.shape) * (rng.random(s.shape[1]) < 0.2), jnp.float32)
            for s in styles]
    mask = np.zeros((batch, 16, 16), np.float32)
    mask[:, 2:9, 3:12] = 1
    return params, styles, ds_z, ds_n, jnp.asarray(mask)


@functools.lru_cache(maxsize=None)
def _tiny_result(batch=3):
    """On loop 'one' (one program; test_every_loop_finds_the_same_lambda reuses it): every loop finds the same Λ."""
    params, styles, ds_z, ds_n, mask = _problem(batch)
    return intervention.intervene(params, TINY, styles, ds_z, ds_n, mask, FAST, return_layer_images=True, loop="one")


def test_lambda_end_points_are_z_and_s_edits():
    params, styles, ds_z, ds_n, _ = _problem(2)
    synth = jax.jit(si_jax.synthesize, static_argnums=1)
    lam0 = [jnp.zeros_like(s) for s in styles]
    lam1 = [jnp.ones_like(s) for s in styles]
    for lam, ref in ((lam0, ds_z), (lam1, ds_n)):
        mixed = intervention.mix(ds_z, ds_n, lam)
        for a, b in zip(mixed, ref):
            np.testing.assert_array_equal(a, b)
        img = synth(params, TINY, [s + d for s, d in zip(styles, mixed)])
        np.testing.assert_array_equal(img, synth(params, TINY, [s + d for s, d in zip(styles, ref)]))


def test_lambda_in_unit_box_and_loss_decreases():
    res = _tiny_result()
    flat = np.concatenate([np.asarray(l) for l in res.lam], axis=1)
    assert flat.min() >= 0.0 and flat.max() <= 1.0
    assert 0.0 < flat.mean() < 1.0  # the optimiser moved away from both end points
    start, best = res.loss_history[:, 0, :], res.loss_history.min(axis=1)
    assert np.all(best <= start + 1e-6)
    assert np.mean(best < start - 1e-4) > 0.5  # most layer/image pairs improved


def test_pixel_error_per_layer_non_increasing_from_z_edit():
    params, styles, ds_z, ds_n, mask = _problem(3)
    res = _tiny_result()
    z_img = jax.jit(si_jax.synthesize, static_argnums=1)(params, TINY, [s + d for s, d in zip(styles, ds_z)])
    img0 = jax.jit(si_jax.synthesize, static_argnums=1)(params, TINY, styles)
    z_mse = np.asarray(metrics.outside_mask_mse(z_img, img0, mask))
    np.testing.assert_allclose(res.pix_error[0], z_mse, rtol=1e-5)
    # best-iterate guarantees the total loss; the pixel part may trade against λ_attr·cos (≤ 2e-2) only
    steps = np.diff(res.pix_error, axis=0)
    assert np.all(steps <= 1e-3 + 1e-3 * res.pix_error[:-1]), steps.max()
    assert np.all(res.pix_error[-1] < 0.5 * res.pix_error[0])
    assert res.layer_images.shape == (len(TINY.layers), 3, 16, 16, 3)
    np.testing.assert_allclose(res.layer_images[-1], res.image)


def test_vmapped_batch_equals_per_image_runs():
    params, styles, ds_z, ds_n, mask = _problem(3)
    batched = _tiny_result()
    for b in range(3):
        one = intervention.intervene(params, TINY, [s[b:b + 1] for s in styles], [d[b:b + 1] for d in ds_z],
                                     [d[b:b + 1] for d in ds_n], mask[b:b + 1], FAST, loop="one")
        np.testing.assert_allclose(one.pix_error[:, 0], batched.pix_error[:, b], rtol=1e-3, atol=1e-5)
        for a, c in zip(one.lam, batched.lam):
            np.testing.assert_allclose(a[0], c[b], atol=2e-3)


@functools.lru_cache(maxsize=None)
def _loop_result(loop, shared):
    params, styles, ds_z, ds_n, mask = _problem(3)
    return intervention.intervene(params, TINY, styles, ds_z, ds_n, mask, FAST, shared=shared, loop=loop)


@pytest.mark.parametrize("loop, shared", [("steps", False), ("steps", True), ("one", False), ("one", True)])
def test_every_loop_finds_the_same_lambda(loop, shared):
    """The loops are the same math as 'scan' (one program per layer): 'steps' (a program per Adam step, the CPU
    default) and 'one' (one program for all layers, the gradient masked to the current layer) find the same Λ*,
    loss histories and images within float tolerance (the programs fuse differently; Adam's normalised steps
    amplify gradient rounding where a gradient is ~0, hence Λ's looser bound)."""
    ref, got = _loop_result("scan", shared), _loop_result(loop, shared)
    assert got.loss_history.shape == ref.loss_history.shape == (len(TINY.layers), FAST.steps_per_layer + 1, 3)
    np.testing.assert_allclose(got.loss_history, ref.loss_history, rtol=1e-4, atol=1e-6)
    for a, b in zip(got.lam, ref.lam):
        np.testing.assert_allclose(a, b, atol=1e-3 if loop == "steps" else 1e-2)
    np.testing.assert_allclose(got.image, ref.image, atol=1e-4 if loop == "steps" else 1e-3)


@pytest.mark.parametrize("loop, programs", [("steps", len(TINY.layers)), ("one", 1)])
def test_compile_programs_counts_what_it_compiles(loop, programs):
    """on_compiled (the binaries' 'compiling N ...' / 'compiled k/N' lines): announced with 0 first, then once per
    program as it finishes; 'one' is a single program whatever the number of layers. (The batch of the other
    tests: the programs they compiled are reused, as intervene reuses these, and the count is the same.)"""
    params, styles, ds_z, ds_n, mask = _problem(3)
    calls = []
    compiled = intervention.compile_programs(params, TINY, styles, ds_z, ds_n, mask, FAST, loop=loop,
                                             on_compiled=lambda done, total: calls.append((done, total)))
    assert len(compiled) == programs and calls == [(k, programs) for k in range(programs + 1)]


def test_auto_loop_rule():
    """'auto': the step programs on CPU, one program for short runs of small images on CPU (its compile saving
    outweighs its slower steps there, not at 256 px), the scan elsewhere; the shared mode the same."""
    resolve, short, small = intervention.resolve_loop, intervention.ONE_PROGRAM_MAX_BATCHES, loops.ONE_PROGRAM_MAX_RES
    assert resolve("auto", "cpu") == resolve("auto", "cpu", batches=short + 1, resolution=small) == "steps"
    assert resolve("auto", "cpu", batches=1) == resolve("auto", "cpu", batches=1, resolution=2 * small) == "steps"
    assert resolve("auto", "cpu", batches=short, resolution=small) == resolve("one", "gpu") == "one"
    assert resolve("auto", "cpu", batches=1, resolution=32, shared=True) == resolve("one", "cpu", shared=True) \
        == "one"
    assert resolve("auto", "cpu", shared=True) == "steps"
    assert resolve("auto", "gpu", batches=1) == resolve("auto", "tpu") == "scan"
    with pytest.raises(ValueError, match="loop must be one of"):
        resolve("while")


def test_bad_inputs_raise_clear_errors():
    params, styles, ds_z, ds_n, mask = _problem(2)
    with pytest.raises(ValueError, match="mask must have shape"):
        intervention.intervene(params, TINY, styles, ds_z, ds_n, mask[:, :8], FAST)
    with pytest.raises(ValueError, match="ds_n must be a list"):
        intervention.intervene(params, TINY, styles, ds_z, ds_n[:-1], mask, FAST)
    bad = list(ds_z)
    bad[2] = bad[2].at[0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="ds_z contains NaN"):
        intervention.intervene(params, TINY, styles, bad, ds_n, mask, FAST)
    with pytest.raises(ValueError, match="lambda_init"):
        InterventionConfig(lambda_init=1.5)


def test_keep_edit_objective_keeps_the_z_edit_inside_the_mask():
    """keep_edit with λ_attr = 0 and a mask covering the whole image: every term is >= 0 and all are 0 at Λ = 0
    (the Z edit), so the best iterate is exactly the Z edit. The paper's objective on the same problem moves away
    from it (its outside term is empty, its cosine term pulls Λ towards Δs_n)."""
    params, styles, ds_z, ds_n, _ = _problem(3)
    full = jnp.ones((3, 16, 16), jnp.float32)
    keep = dataclasses.replace(InterventionConfig(), steps_per_layer=6, lambda_attr=0.0)
    res = intervention.intervene(params, TINY, styles, ds_z, ds_n, full, keep)
    z_img = jax.jit(si_jax.synthesize, static_argnums=1)(params, TINY, [s + d for s, d in zip(styles, ds_z)])
    np.testing.assert_array_equal(res.image, np.asarray(z_img))
    assert all(float(jnp.max(lam)) == 0.0 for lam in res.lam)
    paper = intervention.intervene(params, TINY, styles, ds_z, ds_n, full, FAST)
    assert float(np.mean(np.concatenate([np.asarray(lam) for lam in paper.lam], 1))) > 0.1


def test_pixel_loss_kinds_are_the_paper_norm_and_the_mean_square():
    a, b = jnp.ones((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 3))
    mask = jnp.zeros((1, 4, 4)).at[0, :2].set(1.0)                     # 8 pixels inside, 8 outside
    for cfg, want in ((intervention.PAPER_CONFIG, np.sqrt(8 * 3)), (InterventionConfig(), 1.0)):
        got = intervention.pixel_loss(a, b, mask, intervention.hyper_parameters(cfg))
        np.testing.assert_allclose(np.asarray(got), [want], rtol=1e-6)


def test_nan_during_optimisation_is_reported_not_returned():
    params, styles, ds_z, ds_n, mask = _problem(3)
    huge = [d.at[1].set(3e38 * jnp.sign(d[1] + 0.5)) for d in ds_n]  # finite inputs that overflow in synthesis
    with pytest.raises(FloatingPointError, match=r"images \[1\]"):
        intervention.intervene(params, TINY, styles, ds_z, huge, mask, FAST)


def _structured_problem(batch, seed):
    """Like a real edit: Δs_z from one Z direction (α = 2), Δs_n = one sparse S direction (same for all)."""
    from types import SimpleNamespace

    from si_jax.editing import edits

    params, rng = _tiny(), np.random.default_rng(100)  # the directions are fixed; the images vary with seed
    n_z = rng.standard_normal(TINY.z_dim).astype(np.float32)
    n_s = rng.standard_normal(TINY.style_dim) * (rng.random(TINY.style_dim) < 0.1)
    z = np.random.default_rng(seed).standard_normal((batch, TINY.z_dim)).astype(np.float32)
    ds_z = edits.delta_s_z(params, TINY, z, SimpleNamespace(normal=n_z / np.linalg.norm(n_z)), np.full(batch, 2.0))
    space = si_jax.StyleSpace.of(TINY)
    ds_n = [jnp.asarray(a) for a in space.split(np.repeat(n_s[None].astype(np.float32), batch, 0))]
    styles = edits.styles_of(params, TINY, z)
    mask = np.zeros((batch, 16, 16), np.float32)
    mask[:, 2:9, 3:12] = 1
    return params, styles, ds_z, ds_n, jnp.asarray(mask)


def test_amortised_lambda_transfers_to_new_images():
    """One Λ fitted on batch A, applied to batch B with no optimisation: better than the Z edit on B, and no
    better than B's own per-image Λ (per-image is the upper bound)."""
    params, styles, ds_z, ds_n, mask = _structured_problem(3, seed=0)
    shared = intervention.intervene(params, TINY, styles, ds_z, ds_n, mask, FAST, shared=True)
    flat = np.concatenate([np.asarray(l) for l in shared.lam], axis=1)
    np.testing.assert_array_equal(flat, np.broadcast_to(flat[:1], flat.shape))
    _, sb, dzb, dnb, mb = _structured_problem(3, seed=7)
    _, img = intervention.apply_lambda(params, TINY, sb, dzb, dnb, [l[0] for l in shared.lam])
    synth = jax.jit(si_jax.synthesize, static_argnums=1)
    img0 = synth(params, TINY, sb)
    z_img = synth(params, TINY, [s + d for s, d in zip(sb, dzb)])
    amortised = np.asarray(metrics.outside_mask_mse(img, img0, mb))
    z_edit = np.asarray(metrics.outside_mask_mse(z_img, img0, mb))
    own = intervention.intervene(params, TINY, sb, dzb, dnb, mb, FAST).pix_error[-1]
    print(f"outside-mask MSE on new images: Z {z_edit.mean():.4f}, amortised {amortised.mean():.4f}, "
          f"per-image {own.mean():.4f}")
    assert amortised.mean() < z_edit.mean()
    assert own.mean() <= amortised.mean() * 1.05


def test_input_images_reuse_the_callers_synthesis_program():
    """intervene runs its loop on prepared params (kernel forms once per weights), but synthesises the input images
    on the caller's params: a caller that synthesised them first compiled the run's only synthesis program."""
    params, styles, ds_z, ds_n, mask = _problem(3)
    synth = synth_program(TINY).program_for(params, styles)   # the jitted program of this batch's library
    synth.clear_cache()   # what earlier tests compiled: counted from here (the loop's program is theirs, reused)
    synth(params, styles)
    intervention.intervene(params, TINY, styles, ds_z, ds_n, mask, dataclasses.replace(FAST, steps_per_layer=1),
                           loop="one")
    assert synth._cache_size() == 1
