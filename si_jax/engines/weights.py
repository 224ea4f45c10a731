"""The generator a run computes with: --weights and the numerics flags (--precision, --bf16_from_res, --conv3x3,
--upconv, --conv_library) -> (canonical weights, G2Config with its Numerics), and the numerics' record in a run's
settings."""
from __future__ import annotations

import os

from si_jax.engines.errors import UsageError


def load_weights(path, numerics=None) -> tuple:
    """--weights -> (canonical weights, G2Config computing with `numerics` (a Numerics, e.g. `numerics_of(flags)`;
    None = the default fp32)), with a clear error for a folder given as weights."""
    from si_jax.stylegan2 import loading

    if path is not None and not str(path).startswith("builtin:") and os.path.isdir(path):
        raise UsageError(f"--weights {path} is a folder; give a weights file (.safetensors, .pkl or .pt) or "
                         "builtin:demo / builtin:toyfaces")
    canonical, cfg = loading.load_canonical(path)
    return canonical, with_numerics(cfg, numerics)


NUMERICS_FLAGS = ("precision", "bf16_from_res", "conv3x3", "upconv", "conv_library")


def define_numerics_flags(flags) -> None:
    """Define --precision, --bf16_from_res, --conv3x3, --upconv, --conv_library (si_jax.stylegan2.numerics) on absl
    `flags`."""
    from si_jax.stylegan2 import numerics

    flags.DEFINE_enum("precision", "fp32", list(numerics.PRECISIONS), "fp32: float32 at precision HIGHEST; tf32: "
                      "float32 at the backend's default precision (TF32 tensor cores on Ampere / Hopper GPUs; the "
                      "same as fp32 on CPU); bf16: synthesis activations and convs in bfloat16 from --bf16_from_res "
                      "up, styles / demodulation / image / loss / Λ in float32 (emulated, slow, on CPU).")
    flags.DEFINE_integer("bf16_from_res", None, "With --precision=bf16: lowest resolution computed in bfloat16 (a "
                         "power of two). Default: NVlabs' rule, the model's num_fp16_res highest resolutions (4 when "
                         "it has 0), at least 8 px.")
    flags.DEFINE_enum("conv3x3", "auto", list(numerics.CONV3X3_ALGORITHMS), "Same-size 3x3 conv algorithm. auto: "
                      "on CPU in float32 the form measured fastest on this host for layers of over 1e8 FLOPs per image "
                      "(si_jax.stylegan2.autotune; $SI_JAX_CONV_TUNING=off: Winograd where it measured faster on a "
                      "2-core AMD EPYC), direct on GPU / TPU and in bfloat16.")
    flags.DEFINE_enum("upconv", "auto", list(numerics.UPCONV_ALGORITHMS), "Up-sampling conv form. auto: polyphase "
                      "on CPU, its phase convs by Winograd in float32 (polyphase_w2 at 8-32 px x >= 256 channels, "
                      "polyphase_r4 at 64-256 px; measured against the other forms for large layers unless "
                      "$SI_JAX_CONV_TUNING=off), one transposed conv on GPU / TPU.")
    flags.DEFINE_enum("conv_library", "auto", list(numerics.CONV_LIBRARIES), "The library XLA runs the convs in on "
                      "CPU: ynn (XLA's default, YNNPACK: one thread per conv) or eigen (Eigen: every core). auto: the "
                      "one measured faster on this host for the batch being edited or sampled (bin/edit.py, "
                      "bin/sample.py; si_jax.stylegan2.conv_library; ynn when $SI_JAX_CONV_TUNING=off), XLA's "
                      "default elsewhere.")


def numerics_of(flags):
    """The Numerics of --precision / --bf16_from_res / --conv3x3 / --upconv / --conv_library (defaults where `flags`
    lacks them); UsageError naming the flag for a bad value (the rules are Numerics' own, `numerics.problem`)."""
    from si_jax.stylegan2 import numerics

    values = {name: getattr(flags, name, getattr(numerics.DEFAULT, name)) for name in NUMERICS_FLAGS}
    problem = numerics.problem(**values, name=lambda field: f"--{field}")
    if problem:
        raise UsageError(problem)
    return numerics.Numerics(**values)


def with_numerics(cfg, numerics):
    """cfg computing with `numerics` (None: cfg unchanged); UsageError when --bf16_from_res is above the model's
    resolution (no layer would run in bfloat16: G2Config's rule, its message given the flag's dashes)."""
    if numerics is None:
        return cfg
    try:
        return cfg.with_numerics(numerics)
    except ValueError as e:   # G2Config's only check that depends on numerics: 'bf16_from_res=... is above ...'
        raise UsageError(f"--{e}") from None


def numerics_settings(numerics) -> dict:
    """{'numerics': {...}} for a run's settings, or {} for the default (so that runs made before these flags
    existed, all at the default, keep their settings and resume); conv_library only when it is not 'auto' (it came
    later: a run recorded with the other four resumes)."""
    from si_jax.stylegan2 import numerics as numerics_lib

    if numerics is None or numerics == numerics_lib.DEFAULT:
        return {}
    return {"numerics": {name: getattr(numerics, name) for name in NUMERICS_FLAGS
                         if name != "conv_library" or numerics.conv_library != "auto"}}

