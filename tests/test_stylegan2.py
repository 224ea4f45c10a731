"""Structure and building blocks of the JAX StyleGAN2, without weight files."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import si_jax
from si_jax.stylegan2 import conv3x3, convgrad, kernels, ops
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.numerics import UPCONV_ALGORITHMS, Numerics

TINY = G2Config.make(img_resolution=16, channel_base=256, channel_max=16, z_dim=8, w_dim=8, mapping_layers=2)
synthesize = jax.jit(si_jax.synthesize, static_argnums=(1, 3))
generate = jax.jit(si_jax.generate, static_argnums=(1, 3))


@pytest.fixture(scope="module")
def tiny():
    return si_jax.to_jax_params(si_jax.random_canonical(TINY, seed=0), TINY), TINY


def test_config_f_1024_structure():
    cfg = G2Config.make()  # config-f 1024: channel_base 32768, channel_max 512, z = w = 512
    space = si_jax.StyleSpace.of(cfg)
    assert space.num_layers == 26 and space.total == 9088 and cfg.num_ws == 18
    assert space.kinds.count("conv") == 17 and space.kinds.count("torgb") == 9
    assert space.names[:5] == ("b4.conv1", "b4.torgb", "b8.conv0", "b8.conv1", "b8.torgb")
    assert space.names[-1] == "b1024.torgb" and space.dims[-1] == 32
    assert list(space.w_index[:6]) == [0, 1, 1, 2, 3, 3]
    assert G2Config.make(256, channel_base=16384).style_dim == 7424  # paper256, reference_timings.txt


@pytest.mark.parametrize("res,base,want", [(1024, 32768, 30_370_060), (256, 16384, 24_767_458)])
def test_random_init_parameter_count_matches_reference(res, base, want):
    """Random config-f 1024 / paper256 weights validate against the layout and have the reference's parameter
    count (reference_timings.txt counts trainable parameters: no w_avg, noise buffers or FIR filters)."""
    cfg = G2Config.make(res, channel_base=base)
    canon = si_jax.random_canonical(cfg, seed=0)
    trainable = sum(a.size for k, a in canon.items() if not k.endswith(("noise_const", "w_avg")))
    assert trainable == want
    params = si_jax.to_jax_params(canon, cfg)
    assert params["layers"][-1]["weight"].shape == (1, 1, 32 if res == 1024 else 64, 3)


def test_style_space_roundtrip_and_lookup():
    space = si_jax.StyleSpace.of(TINY)
    flat = np.arange(2 * space.total, dtype=np.float32).reshape(2, space.total)
    parts = space.split(flat)
    assert [p.shape[1] for p in parts] == list(space.dims)
    np.testing.assert_array_equal(space.concat(parts), flat)
    layer, ch = space.layer_of_channel(space.offsets[3] + 2)
    assert (layer, ch) == (3, 2)
    with pytest.raises(ValueError, match="values"):
        space.split(flat[:, :-1])
    with pytest.raises(KeyError, match="no style layer"):
        space.layer_index("b4.conv0")


def _upfirdn_reference(x, f1d, up, pad0, pad1, gain):
    """Direct numpy upfirdn2d on NHWC (zero-insert, pad, full 2-D convolution): independent of ops.py."""
    f = np.outer(f1d, f1d)
    f = f / f.sum() * gain
    n, h, w, c = x.shape
    u = np.zeros((n, h * up, w * up, c))
    u[:, ::up, ::up] = x
    u = np.pad(u, ((0, 0), (pad0, pad1), (pad0, pad1), (0, 0)))
    k = len(f1d)
    oh, ow = u.shape[1] - k + 1, u.shape[2] - k + 1
    out = np.zeros((n, oh, ow, c))
    ff = f[::-1, ::-1]
    for i in range(k):
        for j in range(k):
            out += ff[i, j] * u[:, i:i + oh, j:j + ow]
    return out


def test_upsample_matches_direct_upfirdn():
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype(np.float32)
    got = ops.upsample_2d(jnp.asarray(x), (1, 3, 3, 1))
    want = _upfirdn_reference(x, np.array([1, 3, 3, 1.0]), up=2, pad0=2, pad1=1, gain=4)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # an asymmetric filter catches flips
    f = (1, 2, 5, 1)
    np.testing.assert_allclose(ops.upsample_2d(jnp.asarray(x), f),
                               _upfirdn_reference(x, np.array(f, float), 2, 2, 1, 4), atol=1e-5)


@pytest.mark.parametrize("upconv", ["polyphase", "polyphase_w2", "polyphase_w4", "polyphase_r4", "transposed"])
@pytest.mark.parametrize("shape,filt", [((1, 4, 4, 2), (1, 3, 3, 1)), ((2, 5, 3, 2), (1, 2, 5, 1))])
def test_conv_up_matches_scatter_transpose(shape, filt, upconv):
    """conv_up_2d == scatter-form transposed conv (PyTorch conv_transpose2d semantics) + FIR with padding 1.

    Every form (polyphase, with direct or Winograd phase convs: CPU's 'auto'; one dilated conv: other backends'
    'auto'); the asymmetric filter and non-square map catch flips/transposes.
    """
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    n, h, w, _ = shape
    k = rng.standard_normal((3, 3, 2, 3))  # HWIO, forward-conv orientation
    t = np.zeros((n, 2 * h + 1, 2 * w + 1, 3))
    for i in range(h):
        for j in range(w):
            t[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("nc,abco->nabo", x[:, i, j], k)
    want = _upfirdn_reference(t, np.array(filt, float), up=1, pad0=1, pad1=1, gain=4)
    got = ops.conv_up_2d(jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32), filt, Numerics(upconv=upconv))
    assert got.shape == (n, 2 * h, 2 * w, 3)
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("algo", ["direct", "winograd2d", "winograd4x4", "rows"])
@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 16, 16, 4), (1, 17, 22, 3)])
def test_conv3x3_algorithms_match_float64(algo, shape):
    """Every 3x3 algorithm (incl. sizes that are not a multiple of the tile) == float64 correlation; its
    gradient == the direct conv's."""
    numerics = Numerics(conv3x3=algo)
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal(shape), rng.standard_normal((3, 3, shape[-1], 5))
    n, h, w, _ = shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = sum(np.einsum("nhwi,io->nhwo", xp[:, a:a + h, b:b + w], k[a, b]) for a in range(3) for b in range(3))
    xj, kj = jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32)
    with jax.default_matmul_precision("highest"):   # jitted: one program each, not one per op (~2x faster here)
        got = jax.jit(lambda x, k: ops.conv_2d(x, k, numerics))(xj, kj)
        np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())
        loss = lambda f: (lambda x, k: jnp.sum(jnp.sin(f(x, k))))  # noqa: E731
        g = jax.jit(jax.grad(loss(lambda x, k: ops.conv_2d(x, k, numerics)), (0, 1)))(xj, kj)
        g_ref = jax.jit(jax.grad(loss(lambda x, k: ops._conv(x, k, ((1, 1), (1, 1)))), (0, 1)))(xj, kj)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(b).max())


# Max |error| / max |float32 result| in bfloat16 (measured on [2, 16, 16, 64] -> 32 and [1, 32, 32, 128] -> 32,
# 2-core CPU): direct 2.9e-3 - 3.9e-3, winograd2d 6.8e-3 - 9.9e-3, rows F(4, 3) 1.8e-2 - 2.2e-2, winograd4x4
# F(4x4, 3x3) 4.7e-2 - 5.5e-2 (2026-12-05). Winograd's transforms amplify rounding (F(4, 3) most, in 2-D twice):
# the bound per algorithm is about 1.5x the worst measured. ('auto' is direct for bfloat16.)
# conv_2d's 3x3 algorithms, then conv_up_2d's forms (measured 7.7e-3, 8.5e-3, 3.1e-2, 1.2e-2, 9.7e-3)
BF16_REL_ERROR = {"direct": 6e-3, "winograd2d": 1.5e-2, "rows": 3.5e-2, "winograd4x4": 8e-2,
                  "polyphase": 1.2e-2, "polyphase_w2": 1.3e-2, "polyphase_w4": 4.5e-2, "polyphase_r4": 1.9e-2,
                  "transposed": 1.5e-2}


@pytest.mark.parametrize("algo", sorted(BF16_REL_ERROR))
def test_conv_bfloat16_matches_float32(algo):
    """conv_2d's 3x3 paths and conv_up_2d's forms run in bfloat16 (no float32 constant promotes them: that was a
    TypeError in the Winograd transforms) and stay within BF16_REL_ERROR of the float32 result; the gradient stays
    bfloat16."""
    if algo in UPCONV_ALGORITHMS:
        conv = lambda a, b: ops.conv_up_2d(a, b, (1, 3, 3, 1), Numerics(upconv=algo))  # noqa: E731
    else:
        conv = lambda a, b: ops.conv_2d(a, b, Numerics(conv3x3=algo))  # noqa: E731
    rng = np.random.default_rng(5)
    x, k = rng.standard_normal((2, 16, 16, 64)), rng.standard_normal((3, 3, 64, 32)) / 24.0
    with jax.default_matmul_precision("highest"):
        want = np.asarray(jax.jit(conv)(jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32)))
        xb, kb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(k, jnp.bfloat16)
        got = jax.jit(conv)(xb, kb)
        grads = jax.jit(jax.grad(lambda a, b: jnp.sum(jnp.square(conv(a, b).astype(jnp.float32))), (0, 1)))(xb, kb)
    assert got.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in grads)
    assert np.abs(np.asarray(got, np.float32) - want).max() <= BF16_REL_ERROR[algo] * np.abs(want).max()


def test_conv3x3_algorithm_choice():
    """The fixed rule of 'auto' (what it is with $SI_JAX_CONV_TUNING=off, as in this suite; measured choices:
    tests/test_autotune.py): the CPU rule for float32; direct off CPU and for bfloat16; a set field wins."""
    auto = Numerics()
    assert [auto.conv3x3_for(r, r, 512, "float32", "cpu") for r in (8, 16, 32, 64, 1024)] == [
        "direct", "winograd2d", "winograd2d", "rows", "rows"]
    assert auto.conv3x3_for(64, 64, 64, "float32", "cpu") == "direct"  # narrow layers: not worth the compile time
    assert {auto.conv3x3_for(r, r, 512, "float32", b) for r in (16, 64) for b in ("gpu", "tpu")} == {"direct"}
    assert auto.conv3x3_for(32, 32, 512, jnp.bfloat16, "cpu") == "direct"
    assert (auto.upconv_for("cpu"), auto.upconv_for("gpu")) == ("polyphase", "transposed")
    # up-convs: Winograd phase convs for float32 inputs of 8-32 px x >= 256 channels (2-D tiles) and 64-256 px x
    # >= 64 channels (along rows), direct phases elsewhere
    assert [auto.upconv_for("cpu", r, 512) for r in (4, 8, 16, 32, 64, 128, 256, 512)] == [
        "polyphase", "polyphase_w2", "polyphase_w2", "polyphase_w2", "polyphase_r4", "polyphase_r4", "polyphase_r4",
        "polyphase"]
    assert {auto.upconv_for("cpu", 16, 128), auto.upconv_for("cpu", 128, 32),
            auto.upconv_for("cpu", 16, 512, jnp.bfloat16), auto.upconv_for("cpu", 16, 512, prepared=False)} == {
        "polyphase"}   # without prepared transforms (training, raw params): direct phases
    assert auto.upconv_for("gpu", 16, 512) == "transposed" and Numerics(upconv="polyphase_w4").upconv_for("cpu") \
        == "polyphase_w4"
    assert Numerics(conv3x3="rows").conv3x3_for(8, 8, 16, "float32", "gpu") == "rows"
    with pytest.raises(ValueError, match="conv3x3='fastest' must be one of"):
        Numerics(conv3x3="fastest")


def test_nonfused_modconv_equals_per_sample_weights():
    rng = np.random.default_rng(2)
    x, k = rng.standard_normal((2, 6, 6, 4)), rng.standard_normal((3, 3, 4, 5))
    s = rng.standard_normal((2, 4)) + 1
    got = ops.modulated_conv(jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32), jnp.asarray(s, jnp.float32),
                             demodulate=True, up=False)
    for n in range(2):
        wn = k * s[n][None, None, :, None]
        wn = wn / np.sqrt((wn**2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)
        want = ops.conv_2d(jnp.asarray(x[n:n + 1], jnp.float32), jnp.asarray(wn, jnp.float32))
        np.testing.assert_allclose(got[n:n + 1], want, atol=1e-4)


def test_noise_modes(tiny):
    params, cfg = tiny
    z = jnp.asarray(np.random.default_rng(3).standard_normal((2, cfg.z_dim)), jnp.float32)
    styles = si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, z))
    const = synthesize(params, cfg, styles, "const")
    np.testing.assert_array_equal(const, synthesize(params, cfg, styles, "const"))
    none = synthesize(params, cfg, styles, "none")
    r1 = synthesize(params, cfg, styles, "random", jax.random.PRNGKey(0))
    r2 = synthesize(params, cfg, styles, "random", jax.random.PRNGKey(1))
    assert float(jnp.abs(const - none).max()) > 1e-4
    assert float(jnp.abs(r1 - r2).max()) > 1e-4
    with pytest.raises(ValueError, match="PRNG key"):
        synthesize(params, cfg, styles, "random")
    with pytest.raises(ValueError, match="noise_mode"):
        synthesize(params, cfg, styles, "bogus")


def test_conv_clamp_is_honoured():
    cfg = G2Config.make(16, 256, 16, 8, 8, mapping_layers=2, conv_clamp=0.05)
    canon = si_jax.random_canonical(TINY, seed=0)
    z = jnp.ones((1, 8))
    img_free = generate(si_jax.to_jax_params(canon, TINY), TINY, z)[2]
    img_clamped = generate(si_jax.to_jax_params(canon, cfg), cfg, z)[2]
    # toRGB outputs are clamped to +-0.05 each and summed over 3 blocks after upsampling: bounded well below free
    assert float(jnp.abs(img_clamped).max()) <= 0.05 * 3 * 1.01
    assert float(jnp.abs(img_free).max()) > 0.2


def test_synthesize_from_reuses_state(tiny):
    params, cfg = tiny
    z = jnp.asarray(np.random.default_rng(4).standard_normal((2, cfg.z_dim)), jnp.float32)
    styles = si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, z))
    full = synthesize(params, cfg, styles)
    for start in (0, 3, len(cfg.layers) - 1):
        state = si_jax.run_layers(params, cfg, si_jax.initial_state(params, 2), styles, 0, start)
        np.testing.assert_allclose(si_jax.synthesize_from(params, cfg, state, styles, start), full, atol=1e-5)


def test_nnx_module_equals_functional(tiny):
    from flax import nnx

    params, cfg = tiny
    gen = si_jax.StyleGAN2(params, cfg)
    z = jnp.asarray(np.random.default_rng(5).standard_normal((3, cfg.z_dim)), jnp.float32)
    want = generate(params, cfg, z, 0.7)[2]
    np.testing.assert_allclose(gen(z, truncation_psi=0.7), want, atol=1e-5)
    np.testing.assert_allclose(nnx.jit(lambda m, z: m(z, 0.7))(gen, z), want, atol=1e-4)
    flat = si_jax.StyleSpace.of(cfg).concat(gen.styles(gen.mapping(z, 0.7)))
    np.testing.assert_allclose(gen.synthesize(flat), want, atol=1e-5)


def test_unsupported_configs_raise():
    with pytest.raises(ValueError, match="architecture 'resnet'"):
        G2Config.make(16, 256, 16, 8, 8, architecture="resnet")
    with pytest.raises(ValueError, match="conditional"):
        G2Config.make(16, 256, 16, 8, 8, c_dim=10)
    with pytest.raises(ValueError, match="shape"):
        canon = si_jax.random_canonical(TINY, seed=0)
        canon["synthesis.b8.conv0.weight"] = canon["synthesis.b8.conv0.weight"][:, :-1]
        si_jax.to_jax_params(canon, TINY)


def test_winograd_network_matches_direct_under_vmap_and_grad():
    """A 128-channel model (Winograd at 16 and 32 px, polyphase up-convs): image and vmapped per-image style
    gradients (the intervention's pattern) equal those with direct convs and transposed up-convs."""
    base = G2Config.make(img_resolution=32, channel_base=4096, channel_max=128, z_dim=8, w_dim=8, mapping_layers=1)
    cfg = base.with_numerics(conv3x3="winograd2d", upconv="polyphase")
    params = si_jax.to_jax_params(si_jax.random_canonical(cfg, seed=1), cfg)
    styles = si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, jnp.ones((2, 8))))

    def run(cfg):
        loss = lambda s: jnp.sum(jnp.sin(si_jax.synthesize(params, cfg, [x[None] for x in s])))  # noqa: E731
        img = jax.jit(lambda s: si_jax.synthesize(params, cfg, s))(styles)
        return img, jax.jit(jax.vmap(jax.grad(loss)))(styles)

    img, grads = run(cfg)
    img_d, grads_d = run(base.with_numerics(conv3x3="direct", upconv="transposed"))
    np.testing.assert_allclose(img, img_d, atol=1e-5 * float(jnp.abs(img_d).max()))
    for g, gd in zip(grads, grads_d):
        np.testing.assert_allclose(g, gd, atol=1e-5 * float(jnp.abs(gd).max()) + 1e-7)


def test_polyphase_tap_gradient_matches_autodiff_first_and_second_order():
    """ops._conv_tapgrad (conv3x3.direct_t with per-tap weight gradients, for the up-conv's even kernels) ==
    autodiff of the plain conv."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
    for shape, pad in (((2, 2), ((1, 1), (1, 1))), ((2, 1), ((1, 1), (0, 0))), ((1, 2), ((0, 0), (1, 1)))):
        k = jnp.asarray(rng.normal(size=(*shape, 3, 4)), jnp.float32)
        c = jnp.asarray(rng.normal(size=(2, 5 + sum(pad[0]) - shape[0] + 1, 6 + sum(pad[1]) - shape[1] + 1, 4)))
        with jax.default_matmul_precision("highest"):
            for f in (ops._conv, ops._conv_tapgrad):
                assert f(x, k, pad).shape == c.shape
            loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k, pad)) * c)  # noqa: E731
            jit_grad = lambda f, arg=(0, 1): jax.jit(jax.grad(f, arg))  # noqa: E731   (one program, not one per op)
            ref, got = jit_grad(loss(ops._conv))(x, k), jit_grad(loss(ops._conv_tapgrad))(x, k)
            for a, b in zip(ref, got):
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
            # second order (R1 and path-length regularisers differentiate gradients again)
            gg = lambda conv: lambda x, k: jnp.sum(jnp.square(jax.grad(loss(conv), 0)(x, k)))  # noqa: E731
            np.testing.assert_allclose(jit_grad(gg(ops._conv_tapgrad), 1)(x, k), jit_grad(gg(ops._conv), 1)(x, k),
                                       rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algo", ["polyphase_w2", "polyphase_w4", "polyphase_r4"])
def test_winograd_phase_convs_match_direct_first_and_second_order(algo):
    """conv3x3.winograd_t on each Winograd phase conv of the up-conv (kernels.phase_specs: 2x2, 2x1, 1x2 taps, their
    padding kernels.PHASE_PAD; 2-D tiles or along rows; sizes not a multiple of the tile) == float64 correlation,
    and its gradients w.r.t. x and the sub-kernel, first and second order (R1's form), == autodiff of the direct
    conv."""
    rng = np.random.default_rng(4)
    x64 = rng.normal(size=(2, 5, 7, 3))
    x = jnp.asarray(x64, jnp.float32)
    for name, specs in kernels.phase_specs(algo).items():
        k64 = rng.normal(size=(*(len(taps) for taps in kernels.POLYPHASE[name]), 3, 4))
        k = jnp.asarray(k64, jnp.float32)
        pad = (kernels.PHASE_PAD[name[0]], kernels.PHASE_PAD[name[1]])
        xp = np.pad(x64, ((0, 0), *pad, (0, 0)))
        ho, wo = xp.shape[1] - k64.shape[0] + 1, xp.shape[2] - k64.shape[1] + 1
        want = sum(np.einsum("nhwi,io->nhwo", xp[:, a:a + ho, b:b + wo], k64[a, b])
                   for a in range(k64.shape[0]) for b in range(k64.shape[1]))
        c = jnp.asarray(rng.normal(size=want.shape), jnp.float32)

        def wino(x, k):   # the forms derived inline, as on the params path
            kt = conv3x3.transposed(k)
            return conv3x3.winograd_t(x, k, kt, conv3x3.transform(k, specs), conv3x3.transform(kt, specs), specs,
                                      pad, "highest")
        direct = lambda x, k: conv3x3.direct(x, k, pad, "highest")  # noqa: E731
        loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)) * c)  # noqa: E731
        gg = lambda f: lambda x, k: jnp.sum(jnp.square(jax.grad(loss(f), 0)(x, k)))  # noqa: E731
        close = lambda b, a: np.testing.assert_allclose(b, a, atol=1e-5 * float(np.abs(a).max()))  # noqa: E731
        jit_grad = lambda f: jax.jit(jax.grad(f, (0, 1)))  # noqa: E731   (one program each, not one per op)
        close(np.asarray(jax.jit(wino)(x, k)), want)
        for f in (loss, gg):
            for a, b in zip(jit_grad(f(direct))(x, k), jit_grad(f(wino))(x, k)):
                close(b, a)


def test_upconv_auto_keeps_direct_phases_without_prepared_transforms():
    """'auto' picks Winograd phase convs only with their transforms prepared (synthesis w.r.t. styles); on the
    params path (training) the phase convs stay direct; a forced 'polyphase_w2' derives its transforms inline."""
    x, k = jnp.zeros((1, 16, 16, 256)), jnp.zeros((3, 3, 256, 256))
    forms = kernels.layer_forms(k, jnp.float32, up=True, demodulate=False, algos=("polyphase_w2",), poly=True)
    jaxpr = lambda numerics, forms=None: str(jax.make_jaxpr(  # noqa: E731
        lambda x, k: ops.conv_up_2d(x, k, (1, 3, 3, 1), numerics, forms))(x, k))
    assert "conv_general_dilated" in jaxpr(Numerics())   # direct phase convs
    assert "conv_general_dilated" not in jaxpr(Numerics(), forms)
    assert "conv_general_dilated" not in jaxpr(Numerics(upconv="polyphase_w2"))


def test_narrow_rows_conv_gradients_match_direct_first_and_second_order():
    """ops.conv_2d with F(4, 3) along rows on a narrow kernel and no prepared forms (training: input gradient by
    rows on forms derived inline, conv3x3.weight_grad through the transforms) == the direct conv's autodiff: values,
    first-order gradients w.r.t. x and kernel, and the kernel gradient of a squared input gradient (R1's form)."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(3, 9, 10, 5)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, 5, 6)), jnp.float32)
    c = jnp.asarray(rng.normal(size=(3, 9, 10, 6)), jnp.float32)
    conv = lambda algo: lambda x, k: ops.conv_2d(x, k, Numerics(conv3x3=algo))  # noqa: E731
    loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)) * c)  # noqa: E731
    gg = lambda f: lambda x, k: jnp.sum(jnp.square(jax.grad(loss(f), 0)(x, k)))  # noqa: E731
    rows, direct = conv("rows"), conv("direct")
    close = lambda b, a: np.testing.assert_allclose(b, a, atol=2e-5 * float(jnp.abs(a).max()))  # noqa: E731
    jit_grad = lambda f: jax.jit(jax.grad(f, (0, 1)))  # noqa: E731   (one program each, not one per op)
    close(jax.jit(rows)(x, k), jax.jit(direct)(x, k))
    for a, b in zip(jit_grad(loss(direct))(x, k), jit_grad(loss(rows))(x, k)):
        close(b, a)
    for a, b in zip(jit_grad(gg(direct))(x, k), jit_grad(gg(rows))(x, k)):
        close(b, a)
    # the fast forms are the ones run: every conv of fwd + bwd is a 1x3 one (no 3x3 kernel in or out)
    convs = [ln for ln in jax.jit(jax.grad(loss(rows), (0, 1))).lower(x, k).as_text().splitlines()
             if "convolution" in ln]
    assert convs and not [ln for ln in convs if "tensor<3x3x5x6x" in ln or "tensor<3x3x6x5x" in ln]


def test_down2_gradients_match_autodiff_first_and_second_order():
    """convgrad.down2 (the discriminator's stride-2 conv, own VJP) == lax's strided conv and its autodiff: values,
    first-order gradients w.r.t. x and kernel, and the kernel gradient of a squared input gradient (R1's form)."""
    rng = np.random.default_rng(1)

    def lax_down(x, k):
        return jax.lax.conv_general_dilated(x, k, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    for size, ks in ((9, (3, 3)), (10, (3, 3)), (8, (2, 1)), (7, (1, 1))):
        x = jnp.asarray(rng.normal(size=(2, size, size + 1, 3)), jnp.float32)
        k = jnp.asarray(rng.normal(size=(*ks, 3, 4)), jnp.float32)
        with jax.default_matmul_precision("highest"):
            ref = lax_down(x, k)
            c = jnp.asarray(rng.normal(size=ref.shape), jnp.float32)
            np.testing.assert_allclose(jax.jit(convgrad.down2)(x, k), ref, rtol=1e-5, atol=1e-5)
            loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)) * c)  # noqa: E731
            jit_grad = lambda f: jax.jit(jax.grad(f, (0, 1)))  # noqa: E731   (one program each, not one per op)
            for a, b in zip(jit_grad(loss(lax_down))(x, k), jit_grad(loss(convgrad.down2))(x, k)):
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
            gg = lambda conv: lambda x, k: jnp.sum(jnp.square(jax.grad(loss(conv), 0)(x, k)))  # noqa: E731
            for a, b in zip(jit_grad(gg(lax_down))(x, k), jit_grad(gg(convgrad.down2))(x, k)):
                np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


def test_phase_blur_gradients_match_autodiff_first_and_second_order():
    """convgrad.phase_blur (the polyphase up-conv's blur, its gradient the hand-written transpose) == autodiff of
    the same shift-add: gradients w.r.t. both phases along either axis, and those of a squared gradient."""
    rng = np.random.default_rng(3)
    ft = (0.1, 0.7, 0.6, 0.3)
    for axis in (1, 2):
        shape_e, shape_o = [2, 5, 6, 3], [2, 5, 6, 3]
        shape_e[axis], shape_o[axis] = 7, 8
        e, o = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in (shape_e, shape_o))
        out = list(shape_e)
        out[axis] = 6   # L = len(o) - 2
        c = jnp.asarray(rng.normal(size=(2, 2, *out[1:])), jnp.float32)
        loss = lambda blur: lambda e, o: jnp.sum(jnp.sin(jnp.stack(blur(e, o, axis, ft), 1)) * c)  # noqa: E731
        gg = lambda blur: lambda e, o: jnp.sum(jnp.square(jax.grad(loss(blur), 0)(e, o)))  # noqa: E731
        for f in (loss, gg):
            for a, b in zip(jax.grad(f(convgrad._blur), (0, 1))(e, o), jax.grad(f(convgrad.phase_blur), (0, 1))(e, o)):
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
