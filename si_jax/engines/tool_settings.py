"""The frozen settings of the tool binaries: bin/train_judges.py, bin/fit_lambda.py, bin/generator_quality.py and
bin/convert_weights.py (the editing binaries' jobs are engines.settings). Each binary is: define flags -> its job
here (every flag checked, before jax starts) -> `engine.run(job, out)`.

    job = tool_settings.judges_job(FLAGS)          # absl FlagValues, or a plain {flag: value} dict (tests)
    judges_run.run(job, FLAGS.output_dir)
"""
from __future__ import annotations

import dataclasses

from si_jax.editing import intervention
from si_jax.engines import checks, edit_run, errors, fit_lambda_run
from si_jax.engines.flag_settings import BUILDERS, EXTRA_FLAGS, build, fields_from, from_flags, required
from si_jax.stylegan2 import numerics as numerics_lib


@dataclasses.dataclass(frozen=True)
class JudgesJob:
    """bin/train_judges.py: steps of the classifier and the segmenter, rendered images per step, the world seeds of
    the training stream and of the held-out images, and whether judges already in the folder are replaced."""

    classifier_steps: int = 2000
    segmenter_steps: int = 1500
    batch_size: int = 64
    seed: int = 1
    eval_seed: int = 99
    eval_num: int = 4096
    overwrite: bool = False

    def __post_init__(self):
        for name in ("classifier_steps", "segmenter_steps", "batch_size", "eval_num"):
            checks.require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        checks.require(self.eval_seed != self.seed, "eval_seed", self.eval_seed,
                       "must differ from --seed (held-out images must not be training images)")


def judges_job(flags) -> JudgesJob:
    """bin/train_judges.py's flags -> JudgesJob."""
    return from_flags(JudgesJob, flags)


@dataclasses.dataclass(frozen=True)
class QualityJob:
    """bin/generator_quality.py: which toyfaces generator, how many generated and rendered images each."""

    weights: str = "builtin:toyfaces"
    num: int = 5000
    truncation_psi: float = 1.0

    def __post_init__(self):
        checks.require(self.num >= 2, "num", self.num, "must be >= 2")


def quality_job(flags) -> QualityJob:
    """bin/generator_quality.py's flags -> QualityJob."""
    return from_flags(QualityJob, flags)


@dataclasses.dataclass(frozen=True)
class ConvertJob:
    """bin/convert_weights.py: the weights file to convert (the output path is the engine's `out`)."""

    input: str | None = None
    overwrite: bool = False

    def __post_init__(self):
        required(self, "input")
        if not self.input:
            raise errors.UsageError("--input is empty; give a weights file (.pkl, .pt or .safetensors)")


def convert_job(flags) -> ConvertJob:
    """bin/convert_weights.py's flags -> ConvertJob."""
    return from_flags(ConvertJob, flags)


@dataclasses.dataclass(frozen=True)
class LambdaJob:
    """bin/fit_lambda.py: generator and directions (none: the demo's), the mask setting, the predictor's training
    (`fit`: its --learning_rate is the predictor's) and the objective it learns (`intervention`: --objective,
    --lambda_inside, --lambda_attr, --lambda_norm; Λ's own Adam settings do not apply)."""

    weights: str | None = None
    direction: str | None = None
    attribute: str | None = None
    mask: str | None = None
    overwrite: bool = False
    fit: fit_lambda_run.FitSettings = fit_lambda_run.FitSettings()
    intervention: intervention.InterventionConfig = intervention.InterventionConfig()
    numerics: numerics_lib.Numerics = numerics_lib.DEFAULT   # no flags: fp32 and the default conv algorithms

    def __post_init__(self):
        checks.demo_mode(self)
        if self.mask is not None:
            from si_jax.engines import inputs

            inputs.mask_setting(self.mask, None, default=None)

    @property
    def is_demo(self) -> bool:
        return checks.demo_mode(self)

    @property
    def objective(self) -> str:
        """'keep_edit' or 'paper' (--objective, read back from the config)."""
        return edit_run.objective_of(self.intervention)


OBJECTIVE_FLAGS = ("objective", "lambda_inside", "lambda_attr", "lambda_norm")   # the objective the predictor learns


def _lambda_job(values: dict) -> LambdaJob:
    """The job's own fields and FitSettings from the flags; the InterventionConfig from OBJECTIVE_FLAGS alone
    (--learning_rate is the predictor's, not Λ's)."""
    config = build(intervention.InterventionConfig, {k: values[k] for k in OBJECTIVE_FLAGS if k in values})
    return LambdaJob(**fields_from(LambdaJob, values, skip=("intervention",)), intervention=config)


BUILDERS[LambdaJob] = _lambda_job
EXTRA_FLAGS[LambdaJob] = ("objective",)


def lambda_job(flags) -> LambdaJob:
    """bin/fit_lambda.py's flags -> LambdaJob."""
    return from_flags(LambdaJob, flags)
