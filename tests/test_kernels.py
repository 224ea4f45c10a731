"""Kernel forms computed once per weights (si_jax.stylegan2.kernels): the prepared path equals the plain one."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import si_jax
from si_jax.stylegan2 import kernels, programs
from si_jax.stylegan2.config import G2Config

# 128 channels up to 64 px: direct convs at 4 and 8 px, Winograd F(2x2, 3x3) at 16 and 32, F(4, 3) rows at 64,
# polyphase up-convs (CPU 'auto' rule).
BASE = G2Config.make(img_resolution=64, channel_base=8192, channel_max=128, z_dim=8, w_dim=8, mapping_layers=1)
# The numbers: 16 channels up to 8 px (compiles in seconds), each conv form forced in turn by the numerics
# (direct / Winograd F(2x2, 3x3) / F(4, 3) rows, polyphase up-convs, their phase convs direct or by Winograd
# F(2x2, 2x2) / F(2, 2) or F(4, 2) along rows; 'plain' = REFERENCE).
SMALL = G2Config.make(img_resolution=8, channel_base=128, channel_max=16, z_dim=8, w_dim=8, mapping_layers=1)
REFERENCE = {"conv3x3": "direct", "upconv": "transposed"}   # XLA's autodiff throughout: no custom gradients
VARIANTS = {"direct": {"conv3x3": "direct"}, "winograd2d": {"conv3x3": "winograd2d"}, "rows": {"conv3x3": "rows"},
            "upconv_w2": {"conv3x3": "winograd2d", "upconv": "polyphase_w2"}, "upconv_r4": {"upconv": "polyphase_r4"},
            "plain": REFERENCE}


def _model(cfg):
    params = si_jax.to_jax_params(si_jax.random_canonical(cfg, seed=1), cfg)
    return params, si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, jnp.ones((2, 8))))


@pytest.fixture(scope="module")
def model():
    return _model(SMALL)


def _close(got, want, tol=2e-5):
    np.testing.assert_allclose(got, want, atol=tol * float(jnp.abs(want).max()) + 1e-7)


def test_prepare_puts_the_forms_the_rule_picks():
    params, _ = _model(BASE)
    prepared = kernels.prepare(params, BASE, backend="cpu")
    assert kernels.is_prepared(prepared) and not kernels.is_prepared(params)
    forms = {spec.name: set(lp["prepared"]) for spec, lp in zip(BASE.layers, prepared["layers"])}
    assert forms["b4.conv1"] == {"wsq", "wt"} and forms["b4.torgb"] == set()   # toRGB: a matmul, no form
    assert forms["b8.conv0"] == {"wsq", "poly"}
    assert forms["b32.conv1"] == {"wsq", "wt", "winograd2d", "winograd2d_t"}
    assert forms["b64.conv1"] == {"wsq", "wt", "rows", "rows_t"}
    w = params["layers"][BASE.layers.index(next(s for s in BASE.layers if s.name == "b32.conv1"))]["weight"]
    lp = prepared["layers"][[s.name for s in BASE.layers].index("b32.conv1")]["prepared"]
    np.testing.assert_array_equal(lp["wt"][2, 0, 5, 7], w[0, 2, 7, 5])   # flipped, I/O swapped
    assert lp["winograd2d"].shape == (16, 128, 128)
    # Winograd phase convs in the up-conv: their transforms and those of the transposed sub-kernels
    up = kernels.prepare(params, BASE.with_numerics(upconv="polyphase_w2"), backend="cpu")["layers"][
        [s.name for s in BASE.layers].index("b8.conv0")]["prepared"]
    assert set(up) == {"wsq", "poly", "polyphase_w2"} and set(up["polyphase_w2"]) == {"EE", "EO", "OE"}
    assert [u.shape for u in up["polyphase_w2"]["EE"]] == [(9, 128, 128)] * 2
    assert [u.shape for u in up["polyphase_w2"]["EO"]] == [(3, 128, 128)] * 2
    # the params themselves are not changed
    assert all("prepared" not in lp for lp in params["layers"])


def _run(cfg, p, styles):
    """(image, vmapped per-image style gradients) of params p (plain or prepared) under cfg's numerics."""
    loss = lambda s: jnp.sum(jnp.sin(si_jax.synthesize(p, cfg, [x[None] for x in s])))  # noqa: E731
    return jax.jit(lambda s: si_jax.synthesize(p, cfg, s))(styles), jax.jit(jax.vmap(jax.grad(loss)))(styles)


@pytest.fixture(scope="module")
def reference(model):
    """`_run` of the params with XLA's autodiff of direct convs (REFERENCE): computed once for every variant."""
    params, styles = model
    return _run(SMALL.with_numerics(**REFERENCE), params, styles)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prepared_synthesis_and_style_gradients_equal_the_plain_ones(model, reference, variant):
    """Image and per-image style gradients (vmapped, the intervention's pattern) from prepared params equal those
    from the params (same numerics) and XLA's autodiff of direct convs (the reference numerics)."""
    params, styles = model
    cfg = SMALL.with_numerics(**VARIANTS[variant])
    prepared = programs.prepare_program(cfg)(params)
    img, grads = _run(cfg, prepared, styles)
    plain = reference if variant == "plain" else _run(cfg, params, styles)   # 'plain': the reference numerics
    for want_img, want_grads in (plain, reference):
        _close(img, want_img)
        for g, gw in zip(grads, want_grads):
            _close(g, gw)


def _g_loss(cfg, prepare_inside: bool):
    """A generator loss of params with a path-length-like second-order term (d image / d styles, then its norm)."""
    def loss(params, styles):
        p = kernels.prepare(params, cfg) if prepare_inside else params
        img = lambda s: si_jax.synthesize(p, cfg, s)  # noqa: E731
        pl = jax.grad(lambda s: jnp.sum(img(s) * jnp.cos(img(s))))(styles)
        return jnp.mean(jnp.square(img(styles))) + sum(jnp.sum(jnp.square(g)) for g in pl)
    return loss


@pytest.fixture(scope="module")
def training_reference(model):
    """The gradients of `_g_loss` w.r.t. the params by XLA's autodiff of direct convs: computed once for every
    variant."""
    params, styles = model
    return jax.jit(jax.grad(_g_loss(SMALL.with_numerics(**REFERENCE), False)))(params, [s[:1] for s in styles])


@pytest.mark.parametrize("variant", ["winograd2d", "upconv_w2", "upconv_r4"])
def test_training_gradients_unchanged_first_and_second_order(model, training_reference, variant):
    """Gradients w.r.t. the params (training: G's loss and a double backward through G, as the path-length
    regulariser) are those of XLA's autodiff of direct convs, on the plain path and with the forms derived inside
    the differentiated function."""
    params, styles = model
    styles = [s[:1] for s in styles]
    want = training_reference
    cfg = SMALL.with_numerics(**VARIANTS[variant])   # Winograd's custom VJPs, polyphase up-convs
    for inside in (False, True):
        got = jax.jit(jax.grad(_g_loss(cfg, inside)))(params, styles)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            _close(a, b, 1e-4)


@pytest.mark.parametrize("variant", ["winograd2d", "upconv_w2", "upconv_r4"])
def test_first_order_weight_gradients_through_prepared_params(model, variant):
    """d loss / d weight of prepared params (forms given, zero cotangents) == that of the params."""
    params, styles = model
    cfg = SMALL.with_numerics(**VARIANTS[variant])
    loss = lambda p: jnp.mean(jnp.square(si_jax.synthesize(p, cfg, styles)))  # noqa: E731
    want = jax.jit(jax.grad(loss))(params)
    got = jax.jit(jax.grad(loss))(kernels.prepare(params, cfg))
    for lg, lw in zip(got["layers"], want["layers"]):
        _close(lg["weight"], lw["weight"])
        assert all(not np.any(a) for a in jax.tree_util.tree_leaves(lg["prepared"]))


def test_prepared_once_per_weights(model):
    """programs.prepared: the same kernel arrays give the same prepared params; new weights prepare anew."""
    params, _ = model
    first = programs.prepared(params, SMALL)
    assert programs.prepared(params, SMALL) is first and programs.prepared(first, SMALL) is first
    changed = dict(params, layers=[dict(lp) for lp in params["layers"]])
    changed["layers"][-2]["weight"] = params["layers"][-2]["weight"] * 2.0
    other = programs.prepared(changed, SMALL)
    assert other is not first
    np.testing.assert_allclose(other["layers"][-2]["prepared"]["wt"], 2.0 * first["layers"][-2]["prepared"]["wt"])


def test_prepared_follows_the_measuring_setting(monkeypatch):
    """Switching measured conv choices on within a process prepares again, with every candidate's forms for the
    3x3 convs measured (kernels.prepare_layer: those of autotune.MIN_FLOPS per image), and switching off returns
    the rule's forms (it used to keep whichever setting prepared first)."""
    from si_jax.stylegan2 import autotune
    params, _ = _model(BASE)
    names = [s.name for s in BASE.layers]
    forms = lambda name: set(programs.prepared(params, BASE)["layers"][names.index(name)]["prepared"])  # noqa: E731
    rule = {"wsq", "wt", "rows", "rows_t"}   # b64.conv1: 64 px x 128 channels, 1.2 GFLOP: rows by the rule
    monkeypatch.setenv(autotune.TUNING_ENV, "off")
    assert forms("b64.conv1") == rule and forms("b8.conv1") == {"wsq", "wt"}
    monkeypatch.setenv(autotune.TUNING_ENV, "on")
    assert forms("b64.conv1") == rule | {"winograd2d", "winograd2d_t"}
    assert forms("b8.conv1") == {"wsq", "wt"}   # 19 MFLOP per image: the rule, unmeasured, needs no candidates
    monkeypatch.setenv(autotune.TUNING_ENV, "off")
    assert forms("b64.conv1") == rule
