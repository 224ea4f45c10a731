"""Numerics (si_jax.stylegan2.numerics): conv algorithms and precision reach the compiled programs, bf16 works."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import si_jax
from si_jax.editing import intervention
from si_jax.engines import errors, weights
from si_jax.stylegan2 import programs
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.numerics import DEFAULT, Numerics

# 128 channels at 16 px: 'auto' on CPU with measuring off (tests/conftest.py) picks Winograd F(2x2, 3x3) for
# b16.conv1, polyphase for the up-convs.
WIDE = G2Config.make(img_resolution=16, channel_base=2048, channel_max=128, z_dim=8, w_dim=8, mapping_layers=1)
TINY = G2Config.make(img_resolution=8, channel_base=64, channel_max=8, z_dim=8, w_dim=8, mapping_layers=1)

# bf16 vs fp32 synthesis of the toyfaces generator, 32 images, PSNR over the [-1, 1] range (peak-to-peak 2).
# Measured 2026-12-01 (CPU, jax 0.10.2): 54.4 dB over the batch, 53.8-56.5 dB per image, max abs diff 0.045.
BF16_MIN_PSNR_DB = 45.0


def _styles(params, cfg, n, seed=0):
    z = jnp.asarray(np.random.default_rng(seed).standard_normal((n, cfg.z_dim)), jnp.float32)
    return si_jax.styles_from_w(params, cfg, si_jax.mapping(params, cfg, z))


def _psnr(a, b) -> float:
    return float(10 * np.log10(4.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def test_numerics_is_a_cache_key_but_not_part_of_the_model():
    cfg = WIDE.with_numerics(conv3x3="direct")
    assert cfg != WIDE and hash(cfg) != hash(WIDE) and WIDE.numerics == DEFAULT
    assert cfg.to_dict() == WIDE.to_dict() and "numerics" not in WIDE.to_dict()
    assert G2Config.from_dict({**cfg.to_dict(), "numerics": "ignored"}) == WIDE
    assert programs.synth_program(cfg) is not programs.synth_program(WIDE)
    assert WIDE.with_numerics(Numerics(precision="bf16")).numerics.precision == "bf16"


def test_bad_numerics_name_the_field():
    for kw, match in ((dict(precision="fp16"), "precision='fp16' must be one of"), (dict(upconv="fft"), "upconv"),
                      (dict(precision="fp32", bf16_from_res=16), "applies only with precision=bf16"),
                      (dict(precision="bf16", bf16_from_res=12), "power of two")):
        with pytest.raises(ValueError, match=match):
            Numerics(**kw)
    with pytest.raises(ValueError, match="bf16_from_res=32 is above the generator's 16 px"):
        WIDE.with_numerics(precision="bf16", bf16_from_res=32)


def test_bf16_resolution_rule():
    """NVlabs: res >= max(2^(log2 R + 1 - num_fp16_res), 8); num_fp16_res 0 counts as 4; a given value wins."""
    bf16 = Numerics(precision="bf16")
    assert bf16.bf16_resolution(1024, 0) == 128 and bf16.bf16_resolution(1024, 2) == 512
    assert bf16.bf16_resolution(256, 4) == 32 and bf16.bf16_resolution(32, 0) == 8
    assert Numerics(precision="bf16", bf16_from_res=64).bf16_resolution(1024, 4) == 64
    assert DEFAULT.bf16_resolution(1024, 4) is None and Numerics(precision="tf32").bf16_resolution(1024, 4) is None
    cfg = WIDE.with_numerics(precision="bf16")
    assert [cfg.layer_dtype(r) for r in (4, 8, 16)] == ["float32", "bfloat16", "bfloat16"]
    assert {WIDE.layer_dtype(r) for r in (4, 8, 16)} == {"float32"}


def _count(text: str, word: str) -> int:
    return text.count(word)


@pytest.fixture(scope="module")
def wide():
    params = si_jax.to_jax_params(si_jax.random_canonical(WIDE, seed=2), WIDE)
    return params, _styles(params, WIDE, 2)


def test_conv_algorithms_reach_the_compiled_programs(wide):
    """Configs that differ only in numerics compile different programs (their lowered HLO differs: Winograd's
    batched matmul and the polyphase up-conv's four convs per up layer vs one conv each), with the same image."""
    params, styles = wide
    variants = {"winograd2d+polyphase": WIDE.with_numerics(conv3x3="winograd2d", upconv="polyphase"),
                "direct+polyphase": WIDE.with_numerics(conv3x3="direct", upconv="polyphase"),
                "direct+transposed": WIDE.with_numerics(conv3x3="direct", upconv="transposed")}
    texts, images = {}, {}
    for name, cfg in variants.items():
        program = programs.synth_program(cfg)
        texts[name] = program.lower(params, styles).as_text()
        images[name] = np.asarray(program(params, styles))
    convs = {name: _count(t, "stablehlo.convolution") for name, t in texts.items()}
    # 16 px model: 3 same-size 3x3 convs (b4.conv1, b8.conv1, b16.conv1; the 3 toRGB 1x1 convs are matmuls),
    # 2 up-convs (polyphase: 3 convs each, the odd-odd phase's 1x1 conv is a matmul).
    assert convs["direct+transposed"] == 3 + 2
    assert convs["direct+polyphase"] == 3 + 2 * 3
    assert convs["winograd2d+polyphase"] == convs["direct+polyphase"] - 3  # the 3x3 convs are dot_generals now
    assert _count(texts["winograd2d+polyphase"], "dot_general") > _count(texts["direct+polyphase"], "dot_general")
    # auto on CPU, measuring off: the CPU rule (Winograd only for b16.conv1: >= 16 px, 128 channels; polyphase up-convs)
    assert _count(programs.synth_program(WIDE).lower(params, styles).as_text(),
                  "stablehlo.convolution") == convs["direct+polyphase"] - 1
    ref = images["direct+transposed"]
    for name, img in images.items():
        np.testing.assert_allclose(img, ref, atol=2e-5 * np.abs(ref).max(), err_msg=name)


def test_precision_reaches_the_compiled_programs(wide):
    """fp32 lowers every conv / matmul at HIGHEST, tf32 at DEFAULT (none HIGHEST), bf16 has bf16 convs."""
    params, styles = wide
    text = {p: programs.synth_program(WIDE.with_numerics(precision=p)).lower(params, styles).as_text()
            for p in ("fp32", "tf32", "bf16")}
    n_conv = _count(text["fp32"], "stablehlo.convolution")
    assert _count(text["fp32"], "HIGHEST") >= n_conv > 0
    assert _count(text["tf32"], "HIGHEST") == 0
    assert "bf16" in text["bf16"] and "bf16" not in text["fp32"]
    if jax.default_backend() == "cpu":   # documented: tf32 is fp32 on CPU
        np.testing.assert_array_equal(programs.synth_program(WIDE.with_numerics(precision="tf32"))(params, styles),
                                      programs.synth_program(WIDE)(params, styles))


@pytest.fixture(scope="module")
def toyfaces():
    params, cfg = si_jax.load_generator("builtin:toyfaces")
    return params, cfg, _styles(params, cfg, 32, seed=1)


def test_bf16_toyfaces_synthesis_is_close_to_fp32_but_not_equal(toyfaces):
    params, cfg, styles = toyfaces
    bf16 = cfg.with_numerics(precision="bf16")
    img32 = programs.synth_program(cfg)(params, styles)
    img16 = programs.synth_program(bf16)(params, styles)
    assert img32.dtype == jnp.float32 and img16.dtype == jnp.float32
    state = si_jax.run_layers(params, bf16, si_jax.initial_state(params, 2), [s[:2] for s in styles], 0, 3)
    assert state.x.dtype == jnp.bfloat16 and state.img.dtype == jnp.float32   # after b8.conv0
    diff = float(jnp.abs(img16 - img32).max())
    assert diff > 1e-3, "bf16 never engaged"
    assert _psnr(img16, img32) >= BF16_MIN_PSNR_DB


def test_bf16_fig2_channel_maps_are_float32_and_close(toyfaces):
    from si_jax.evaluation import figure_data
    params, cfg, styles = toyfaces
    few = [s[:2] for s in styles]
    m32, m16 = (figure_data.channel_maps(params, c, few, 6) for c in (cfg, cfg.with_numerics(precision="bf16")))
    assert m16.dtype == np.float32 and m16.shape == m32.shape
    assert np.abs(m16 - m32).max() <= 0.05 * np.abs(m32).max()


def test_bf16_intervention_runs_finite_in_float32():
    """A bf16 intervention: Λ, losses, errors and image stay float32 and finite, close to the fp32 result (which
    runs loop 'one', one program to compile: the loops find the same Λ, tests/test_intervention.py)."""
    params = si_jax.to_jax_params(si_jax.random_canonical(TINY, seed=3), TINY)
    styles = _styles(params, TINY, 2, seed=4)
    rng = np.random.default_rng(5)
    ds_z = [jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32) for s in styles]
    ds_n = [jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32) for s in styles]
    mask = np.zeros((2, 8, 8), np.float32)
    mask[:, 2:6, 2:6] = 1
    config = intervention.InterventionConfig(steps_per_layer=2)
    cfg16 = TINY.with_numerics(precision="bf16", bf16_from_res=4)
    got = intervention.intervene(params, cfg16, styles, ds_z, ds_n, mask, config)
    want = intervention.intervene(params, TINY, styles, ds_z, ds_n, mask, config, loop="one")
    assert got.image.dtype == np.float32 and got.loss_history.dtype == np.float32
    assert all(np.asarray(lam).dtype == np.float32 for lam in got.lam)
    for a in (got.image, got.loss_history, got.pix_error, *got.lam):
        assert np.all(np.isfinite(np.asarray(a)))
    assert not np.array_equal(got.image, want.image)
    # Measured (CPU, jax 0.10.2): the first loss (same Λ, only the synthesis differs) within 1.1 % of fp32's, the
    # final image within 0.046 x its max (Adam amplifies the difference); bounds with ~4x / 3x margin.
    np.testing.assert_allclose(got.loss_history[0, 0], want.loss_history[0, 0], rtol=0.05)
    np.testing.assert_allclose(got.image, want.image, atol=0.15 * np.abs(want.image).max())


def _flags(**kw):
    return types.SimpleNamespace(**{"precision": "fp32", "bf16_from_res": None, "conv3x3": "auto",
                                    "upconv": "auto", **kw})


def test_numerics_flags():
    assert weights.numerics_of(types.SimpleNamespace()) == DEFAULT   # flags that a binary does not define
    assert weights.numerics_of(_flags(precision="bf16", bf16_from_res=16)) == Numerics(precision="bf16",
                                                                                    bf16_from_res=16)
    assert weights.numerics_settings(DEFAULT) == {}
    assert weights.numerics_settings(Numerics(precision="tf32"))["numerics"] == {
        "precision": "tf32", "bf16_from_res": None, "conv3x3": "auto", "upconv": "auto"}   # as runs recorded it
    assert weights.numerics_settings(Numerics(conv_library="eigen"))["numerics"]["conv_library"] == "eigen"
    for kw, match in ((dict(precision="fp16"), "--precision='fp16' must be one of"),
                      (dict(conv3x3="fft"), "--conv3x3='fft'"),
                      (dict(bf16_from_res=16), "--bf16_from_res=16 applies only with --precision=bf16"),
                      (dict(precision="bf16", bf16_from_res=24), "--bf16_from_res=24 must be a power of two")):
        with pytest.raises(errors.UsageError, match=match):
            weights.numerics_of(_flags(**kw))
    with pytest.raises(errors.UsageError, match="--bf16_from_res=64 is above the generator's 16 px"):
        weights.with_numerics(WIDE, Numerics(precision="bf16", bf16_from_res=64))
    _, cfg = weights.load_weights("builtin:demo", Numerics(precision="tf32"))
    assert cfg.numerics.precision == "tf32"


def _generate(tmp_path, name, **flags):
    """bin/generate.py's engine (conftest.run_engine: the flags as the binary parses them) on builtin:toyfaces for
    2 latents -> its images."""
    from conftest import run_engine

    z = tmp_path / "z.npz"
    if not z.exists():
        np.savez(z, z=np.random.default_rng(7).standard_normal((2, 64)).astype(np.float32))
    out = tmp_path / f"{name}.npz"
    run_engine("generate.py", {"weights": "builtin:toyfaces", "latents": str(z), "output": str(out), **flags})
    return np.load(out)["images"]


def test_precision_flag_reaches_a_binary(tmp_path, capsys):
    """--precision=bf16 changes bin/generate.py's images (a little); a bad value is one error naming the flag
    (in-process, conftest.engine_error: the binary's exit status 1 and its one line; generate.py as a process:
    tests/test_bad_inputs.py)."""
    from conftest import engine_error

    img32 = _generate(tmp_path, "fp32")
    img16 = _generate(tmp_path, "bf16", precision="bf16", conv3x3="direct")
    # measured: max abs diff 0.064, PSNR 51.2 dB (2 images)
    assert img16.dtype == np.float32 and 1e-3 < np.abs(img16 - img32).max() < 0.2
    assert _psnr(img16, img32) >= BF16_MIN_PSNR_DB
    line = engine_error(capsys, "generate.py", {"weights": "builtin:toyfaces", "latents": str(tmp_path / "z.npz"),
                                                "output": str(tmp_path / "bad.npz"), "bf16_from_res": 16})
    assert line == "error: --bf16_from_res=16 applies only with --precision=bf16 (got --precision=fp32)"
    assert not (tmp_path / "bad.npz").exists()


def test_nnx_module_takes_numerics():
    gen = si_jax.StyleGAN2.from_file("builtin:demo", Numerics(precision="bf16"))
    assert gen.cfg.numerics.precision == "bf16" and gen.cfg.to_dict() == si_jax.StyleGAN2.from_file(
        "builtin:demo").cfg.to_dict()
