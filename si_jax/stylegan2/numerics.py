"""How the generator computes: conv algorithms and floating-point precision, as one hashable value.

    cfg = cfg.with_numerics(precision="bf16")          # G2Config carries a Numerics; every program keys on cfg
    cfg.numerics.conv3x3_for(64, 64, 512, "float32", "cpu")   # -> 'rows'

`Numerics` is a field of `G2Config` (si_jax.stylegan2.config), so it is part of the jit static argument and of the
key of every cached program (editing.intervention caches its layer programs on cfg): two configs that differ only
in numerics compile two programs, and a changed choice cannot be hidden behind a cached one. It is not part of the
model: `G2Config.to_dict` leaves it out, so saved configs and generator fingerprints do not change.

Conv algorithms ('auto' resolves when a function is traced, with the backend `ops` passes: jax.default_backend()).
For float32 arrays on CPU `ops` makes 'auto' the candidate measured fastest on this host for the layer at hand
(si_jax.stylegan2.autotune, cached on disk; by default, for convs of over autotune.MIN_FLOPS per image; not with
$SI_JAX_CONV_TUNING=off); otherwise 'auto' is the rules below (`conv3x3_for`, `upconv_for`):
- conv3x3 (same-size 3x3 convs): 'direct' (one XLA conv), 'winograd2d' (F(2x2, 3x3) tiles), 'rows' (F(4, 3) along
  rows; si_jax.stylegan2.conv3x3), 'winograd4x4' (F(4x4, 3x3) tiles; only when set: faster per conv at 16-64 px,
  1.00-1.03x on the paper256 network (2-core AMD EPYC, avx512f), ~7x F(2x2)'s rounding error, BENCHMARKS.md
  2026-12-05). The CPU rule was measured on 2-core AMD EPYC CPUs (BENCHMARKS.md): direct below 16 px, winograd2d
  below 64 px, rows from 64 px up; below 128 channels rows at 32 px, direct elsewhere. Off CPU and for bfloat16
  arrays 'auto' is 'direct': on GPU / TPU a conv is one tensor-core (MXU) kernel while Winograd becomes transform
  fusions plus many small matmuls, and Winograd's transforms amplify rounding: 2.5-5x the direct conv's error in
  bfloat16 (measured on CPU, tests/test_stylegan2.py BF16_REL_ERROR) and ~3x in TF32 (issue 13's figures against
  float64: direct 3e-4, F(2x2) 5e-4, F(4, 3) 9e-4; TF32 cannot be run here). Winograd has not been measured on an
  accelerator, so it is not the default there.
- upconv (the 2x up-sampling 3x3 conv + [1,3,3,1] blur): 'polyphase' (four small stride-1 convs, no products with
  inserted zeros; measured faster on CPU, with a hand-written weight gradient), 'polyphase_w2' / 'polyphase_w4'
  (the same with its 2x2-, 2x1- and 1x2-tap phase convs by Winograd F(2x2, 2x2) and F(2, 2) / F(4x4, 2x2) and
  F(4, 2): 1.44x / 1.78x fewer multiplications; float32 results within ~2e-7 / ~1e-6 of the max of the direct
  phases'), 'polyphase_r4' (the 2x2-tap phase by F(4, 2) along rows with direct 1x2 convs, the 2x1-tap one by
  F(4, 2), the 1x2-tap one direct: 1.33x fewer; ~3e-7), or 'transposed' (one XLA conv of the 2x-dilated input, then
  the blur: what cuDNN / the TPU run as one kernel). 'auto' (`upconv_for`): transposed off CPU; on CPU for float32
  polyphase_w2 at inputs of 8-32 px x >= 256 channels, polyphase_r4 at 64-256 px x >= 64 channels, polyphase
  elsewhere (2-core AMD EPYC, BENCHMARKS.md 2026-12-06: 2-D tiles lose on large maps, rows-only wins there);
  'polyphase_w4' only when set (faster than polyphase_w2 nowhere in fwd+bwd).
  An 'auto' up-conv takes Winograd phases only with their transforms prepared (si_jax.stylegan2.kernels; synthesis
  w.r.t. styles); without (training) its phases stay direct.

conv_library (a compile option of a whole program, not a form of one conv): 'ynn', XLA:CPU's default, runs every
conv as a YNNPACK fusion, which in jax 0.10.2 uses one thread (a [32, 32, 32, 64] x [3, 3, 64, 64] conv: 25.0 ms on
2 cores, 12.6 ms on one core at half the batch); 'eigen' runs them as XLA's Eigen convolutions on every core
(14.3 ms) but is slower at batch 1 on large maps (a 256 px x 64 channel conv's fwd+VJP 137 vs 84 ms; idle 2-core AMD
EPYC (avx512f), 2026-12-06, BENCHMARKS.md). 'auto': XLA's default, except where a batch of images is edited
(editing.intervention), projected (projection.project_batch) or sampled (bin/sample.py, the demo's labelling,
the quality report), where si_jax.stylegan2.conv_library measures the two on this host for the batch and generator
at hand (float32 on CPU, measuring on) and keeps the faster (and the toyfaces judges, through
world.judges.Judges.with_options_for and conv_library.batch_options).
The training step and other programs keep XLA's default. A program's 'auto' conv forms are measured in its library
(autotune.choose: another cache entry per library), since the fastest form depends on it.

Precision:
- 'fp32': float32 arrays, convs and matmuls at precision HIGHEST (true float32 on every backend).
- 'tf32': float32 arrays at precision DEFAULT: TF32 tensor cores on NVIDIA Ampere and later (Hopper: H100 / H200),
  bf16 passes on TPU; on CPU the same as fp32 (XLA CPU computes float32 exactly either way).
- 'bf16': as NVlabs' mixed precision (fp16 there; bfloat16 has float32's exponent range, so neither NVlabs'
  pre-scaling of weights and styles nor a conv_clamp is needed against overflow; a model's conv_clamp is applied
  in the layer's dtype, as NVlabs does): the activations, conv inputs and kernels of the synthesis layers of
  resolution >= `bf16_from_res` in bfloat16; styles, modulation and demodulation coefficients, the layers below,
  the toRGB outputs (cast before their bias, as NVlabs casts them before adding), the skip accumulation and the
  image in float32 (HIGHEST). The loss, Λ and Adam see only the float32 image. On CPU bfloat16 is emulated.
  bf16_from_res=None: NVlabs' rule, res >= max(2^(log2 R + 1 - n), 8) with n = the model's num_fp16_res, or n = 4
  (NVlabs' training default for every config) when the model says 0: config-f 1024 -> 128 px and up, paper256 ->
  32 px, the 32 px toyfaces model -> 8 px.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

CONV3X3_ALGORITHMS = ("auto", "direct", "winograd2d", "winograd4x4", "rows")
UPCONV_ALGORITHMS = ("auto", "polyphase", "polyphase_w2", "polyphase_w4", "polyphase_r4", "transposed")
PRECISIONS = ("fp32", "tf32", "bf16")
CONV_LIBRARIES = ("auto", "ynn", "eigen")
# XLA:CPU's library fusions without its YNNPACK convolutions (its default list less INDIVIDUAL_CONVOLUTION): the
# convs run as XLA's Eigen convolutions, the dots and reductions stay in YNNPACK (`Numerics.compiler_options`)
EIGEN_CONVS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
DEFAULT_NUM_FP16_RES = 4   # NVlabs stylegan2-ada-pytorch train.py: num_fp16_res = 4 for every config


def _dtype_name(dtype) -> str:
    """'float32' / 'bfloat16' for a dtype, a scalar type (jnp.float32) or a name."""
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


def _is_power_of_two(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 4 and v & (v - 1) == 0


def problem(conv3x3, upconv, precision, bf16_from_res, conv_library="auto", name=str) -> str | None:
    """The first rule these Numerics fields break, worded with `name(field)` for every field named ('precision', or
    '--precision' where the fields are a binary's flags), or None when they are valid.

    >>> problem("auto", "auto", "fp32", 16)
    'bf16_from_res=16 applies only with precision=bf16 (got precision=fp32)'
    """
    for field, value, allowed in (("precision", precision, PRECISIONS), ("conv3x3", conv3x3, CONV3X3_ALGORITHMS),
                                  ("upconv", upconv, UPCONV_ALGORITHMS),
                                  ("conv_library", conv_library, CONV_LIBRARIES)):
        if value not in allowed:
            return f"{name(field)}={value!r} must be one of {', '.join(allowed)}"
    if bf16_from_res is not None:
        if precision != "bf16":
            return (f"{name('bf16_from_res')}={bf16_from_res!r} applies only with {name('precision')}=bf16 (got "
                    f"{name('precision')}={precision})")
        if not _is_power_of_two(bf16_from_res):
            return f"{name('bf16_from_res')}={bf16_from_res!r} must be a power of two >= 4 (a resolution)"
    return None


@dataclasses.dataclass(frozen=True)
class Numerics:
    """Conv algorithms and precision of the synthesis network (frozen, hashable: part of G2Config's key).

    conv3x3: 'auto' | 'direct' | 'winograd2d' | 'winograd4x4' | 'rows'; upconv: 'auto' | 'polyphase' |
    'polyphase_w2' | 'polyphase_w4' | 'polyphase_r4' | 'transposed';
    precision: 'fp32' | 'tf32' | 'bf16'; bf16_from_res: lowest resolution computed in bfloat16 (a power of two
    >= 4; only with precision 'bf16'; None = the model's rule, see the module docstring); conv_library: 'auto' |
    'ynn' | 'eigen', the library XLA:CPU runs the convs of a program in (`compiler_options`, module docstring).
    """

    conv3x3: str = "auto"
    upconv: str = "auto"
    precision: str = "fp32"
    bf16_from_res: int | None = None
    conv_library: str = "auto"

    def __post_init__(self):
        wrong = problem(self.conv3x3, self.upconv, self.precision, self.bf16_from_res, self.conv_library)
        if wrong:
            raise ValueError(wrong)

    def bf16_resolution(self, img_resolution: int, num_fp16_res: int = 0) -> int | None:
        """Lowest resolution whose synthesis layers run in bfloat16, or None (precision is not 'bf16')."""
        if self.precision != "bf16":
            return None
        if self.bf16_from_res is not None:
            return self.bf16_from_res
        n = num_fp16_res if num_fp16_res > 0 else DEFAULT_NUM_FP16_RES
        return max(2 ** (int(math.log2(img_resolution)) + 1 - n), 8)

    def compiler_options(self, backend: str) -> dict | None:
        """XLA compiler options of the programs computed with these numerics (jax.jit(..., compiler_options=)):
        EIGEN_CONVS for conv_library 'eigen' on CPU; None (XLA's defaults) otherwise."""
        return dict(EIGEN_CONVS) if self.conv_library == "eigen" and backend == "cpu" else None

    def matmul_precision(self, dtype) -> str:
        """lax `precision` for a conv / matmul on arrays of `dtype`: 'highest' for float32 (fp32, and bf16's float32
        parts), 'default' in tf32 mode and for bfloat16 arrays (the dtype is the precision there)."""
        if _dtype_name(dtype) == "bfloat16" or self.precision == "tf32":
            return "default"
        return "highest"

    def conv3x3_for(self, h: int, w: int, channels: int, dtype, backend: str) -> str:
        """The algorithm of a same-size 3x3 conv on an h x w map with min(in, out) = `channels`, arrays of `dtype`,
        on `backend` (jax.default_backend()): the field unless 'auto'; for 'auto' the fixed rule (module docstring),
        which `ops` replaces by a measurement for float32 on CPU (si_jax.stylegan2.autotune.applies).

        On CPU the Winograd gain is modest (~10 % on the paper256 forward, none at 1024) and its transforms cost
        compile time, so narrow layers (small test and demo models) stay direct, except at 32 px, where rows
        measured faster in the training step (32 px x 64 channels, batch 32; BENCHMARKS.md 2026-12-05). Rows was
        the fastest at 8 and 16 px too (toyfaces synthesis layers, training convs; idle 2-core AMD EPYC (avx512f),
        2026-12-06), but the rule stays: switched there, it gained 1-2 % on the training step and changed the
        rounding of every toyfaces result (tests/test_lambda_model's held-out claim lost one judged flip of 24);
        the training step measures its convs instead (autotune.long_running).
        >>> Numerics().conv3x3_for(32, 32, 512, "float32", "cpu"), Numerics().conv3x3_for(32, 32, 512, "float32", "gpu")
        ('winograd2d', 'direct')
        """
        if self.conv3x3 != "auto":
            return self.conv3x3
        if backend != "cpu" or _dtype_name(dtype) != "float32":
            return "direct"
        size = min(h, w)
        if channels < 128:   # narrow: rows F(4, 3) at 32 px (training config, 2-core AMD EPYC: plain step 1.07x)
            return "rows" if size == 32 else "direct"
        return "direct" if size < 16 else "winograd2d" if size < 64 else "rows"

    def upconv_for(self, backend: str, size: int | None = None, channels: int | None = None,
                   dtype="float32", prepared: bool = True) -> str:
        """The up-sampling conv's form on `backend` for an input of size x size px with min(in, out) = `channels`
        (None: not known), arrays of `dtype`: the field unless 'auto'; for 'auto' off CPU 'transposed', on CPU for
        float32 with the kernel's forms prepared (si_jax.stylegan2.kernels) 'polyphase_w2' at 8-32 px x >= 256
        channels, 'polyphase_r4' at 64-256 px x >= 64 channels (measured faster there, the whole network too:
        BENCHMARKS.md 2026-12-06), else 'polyphase' (also without prepared forms, i.e. training: the Winograd
        phases were not measured with their transforms derived per call).
        >>> Numerics().upconv_for("cpu", 16, 512), Numerics().upconv_for("cpu", 64, 128), Numerics().upconv_for("gpu")
        ('polyphase_w2', 'polyphase_r4', 'transposed')
        """
        if self.upconv != "auto":
            return self.upconv
        if backend != "cpu":
            return "transposed"
        if size is None or _dtype_name(dtype) != "float32" or not prepared:
            return "polyphase"
        if 8 <= size < 64 and channels >= 256:
            return "polyphase_w2"
        return "polyphase_r4" if 64 <= size <= 256 and channels >= 64 else "polyphase"


DEFAULT = Numerics()
