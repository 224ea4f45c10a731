"""Each binary's frozen settings, checked once: what the engines behind bin/edit.py (also --codes),
bin/evaluate.py, bin/project.py, bin/sample.py, bin/generate.py and bin/fit_direction.py run on
(`engine.run(settings, out)`); the tool binaries' jobs are engines.tool_settings.

    job = settings.edit_job(FLAGS)                     # absl FlagValues, or a plain {flag: value} dict (tests)
    edit_cli.run(job, FLAGS.output_dir)

How flags become a dataclass (and a field's error the flag's): engines.flag_settings.
"""
from __future__ import annotations

import dataclasses

from si_jax.editing import intervention, pipeline
from si_jax.engines import checks, edit_run, errors, evaluate_cli, inputs, project_edit, project_run
from si_jax.engines.flag_settings import field_flags, flat_values, from_flags, required
from si_jax.evaluation import evaluators
from si_jax.stylegan2 import numerics as numerics_lib


@dataclasses.dataclass(frozen=True)
class EditJob:
    """bin/edit.py (latents, --samples or --codes). The edit itself is `edit` (mask / truncation_psi / batch_size
    as given: resolved by the engine); None = not given."""

    weights: str | None = None
    direction: str | None = None
    attribute: str | None = None
    samples: str | None = None
    codes: str | None = None
    space: str | None = None
    num_samples: int | None = None
    seed: int | None = None
    masks: str | None = None
    condition_on: tuple = ()
    lambda_model: str | None = None
    refine_steps: int = 0
    edit: edit_run.EditSettings = edit_run.EditSettings()
    numerics: numerics_lib.Numerics = numerics_lib.DEFAULT

    def __post_init__(self):
        """UsageError for flags that contradict each other (checked before anything is loaded)."""
        checks.demo_mode(self)
        st = self.edit
        inputs.mask_setting(st.mask, self.masks, default=None)
        k = self.refine_steps
        checks.require(checks.is_int(k) and k >= 0, "refine_steps", k, "must be an integer >= 0")
        if self.lambda_model is None:
            checks.require(k == 0, "refine_steps", k, "needs --lambda_model (it refines the predicted Λ)")
        else:
            checks.require(st.method == "intervention", "method", st.method, "cannot use --lambda_model (it predicts "
                           "the intervention's Λ); use --method=intervention")
        if self.codes:
            project_edit.code_space(self.space)
            project_edit.check_code_methods(st.method)
            if self.samples:
                raise errors.UsageError("give --codes or --samples, not both")
            given = [f for f, v in (("truncation_psi", st.truncation_psi), ("num_samples", self.num_samples),
                                    ("seed", self.seed)) if v is not None]
            if given:
                raise errors.UsageError(f"--{given[0]} does not apply to --codes (every projected image is edited; "
                                        "codes have no z)")
        elif self.space:
            raise errors.UsageError("--space picks the code space of --codes; give --codes=DIR (from bin/project.py)")
        for name in ("num_samples", "seed"):
            value = getattr(self, name)
            checks.require(value is None or value >= (1 if name == "num_samples" else 0), name, value,
                           f"must be >= {1 if name == 'num_samples' else 0}")
        if st.method == "interfacegan" and not self.condition_on:
            raise errors.UsageError("--method=interfacegan needs --condition_on direction files of other attributes")

    @property
    def is_demo(self) -> bool:
        return checks.demo_mode(self)


EDIT_FLAG_DEFAULTS = {"mask": None, "truncation_psi": None}   # not given: resolved by the engine (EditSettings)


def edit_job(flags) -> EditJob:
    """bin/edit.py's flags -> EditJob (EDIT_FLAG_DEFAULTS where a flag dict leaves them out, as bin/edit.py's
    flags default to them)."""
    flat, strict = flat_values(flags)
    return from_flags(EditJob, {**EDIT_FLAG_DEFAULTS, **flat} if strict else flags)


@dataclasses.dataclass(frozen=True)
class EvalJob:
    """bin/evaluate.py: Table 2 and the figures. The intervention's flags and defaults are bin/edit.py's
    (`intervention`; eval_job gives the demo its shorter --steps_per_layer default)."""

    weights: str | None = None
    direction: str | None = None
    attribute: str | None = None
    codes: str | None = None
    space: str | None = None
    num_samples: int | None = None
    seed: int | None = None
    truncation_psi: float | None = None
    mask: str | None = None
    masks: str | None = None
    methods: str | None = None
    condition_on: tuple = ()
    target: str = "flip"
    distance: float = 3.0
    batch_size: int = 8
    coeffs: str = ",".join(f"{c:g}" for c in evaluate_cli.DEFAULT_COEFFS)
    fig_images: int = 4
    fig_layer: str = ""
    top_frac: float = 0.05
    top_channels: int = 5
    overwrite: bool = False
    lambda_model: str | None = None
    evaluators: str | None = None
    intervention: intervention.InterventionConfig = intervention.InterventionConfig()
    numerics: numerics_lib.Numerics = numerics_lib.DEFAULT

    def __post_init__(self):
        checks.demo_mode(self)
        _ = self.method_list, self.coeff_list, self.sample_settings, self.evaluator_list   # parsed: UsageError
        for name in ("batch_size", "fig_images", "top_channels"):
            checks.require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        checks.require(0.0 < self.top_frac <= 1.0, "top_frac", self.top_frac, "must be in (0, 1]")
        edit_run.check_target(self.target, self.distance)
        inputs.mask_setting(self.mask, self.masks, default=None)

    @property
    def is_demo(self) -> bool:
        return checks.demo_mode(self)

    @property
    def method_list(self) -> tuple:
        """--methods (default: evaluate_cli.DEFAULT_METHODS; with --codes those of pipeline.CODE_METHODS)."""
        return evaluate_cli.parse_methods(self.methods if self.methods is not None else ",".join(
            m for m in evaluate_cli.DEFAULT_METHODS if not self.codes or m in pipeline.CODE_METHODS), bool(self.codes))

    @property
    def evaluator_list(self) -> tuple | None:
        """--evaluators 'outside_mse,ssim' -> names (evaluation.evaluators), None when not given (every one that
        applies). UsageError for an unknown name, listing the known ones."""
        if self.evaluators is None:
            return None
        try:
            return evaluators.parse(self.evaluators)
        except ValueError as e:
            raise errors.UsageError(f"--evaluators={self.evaluators!r}: {e}") from None

    @property
    def coeff_list(self) -> tuple:
        return evaluate_cli.parse_coeffs(self.coeffs)

    @property
    def sample_settings(self) -> tuple:
        """(num_samples, seed, truncation_psi) with their defaults (evaluate_cli.sample_settings)."""
        return evaluate_cli.sample_settings(self)


def eval_job(flags) -> EvalJob:
    """bin/evaluate.py's flags -> EvalJob (--steps_per_layer not given on the command line, or left out of a
    dict: the InterventionConfig's default; the demo's evaluate_cli.DEMO_STEPS_PER_LAYER)."""
    flat, strict = flat_values(flags)
    given = flat.get("steps_per_layer") is not None and (strict or flags["steps_per_layer"].present)
    if not given and checks.demo_mode(_Pair(flat)):
        flat["steps_per_layer"] = evaluate_cli.DEMO_STEPS_PER_LAYER
    return from_flags(EvalJob, flat if strict else {k: flat[k] for k in field_flags(EvalJob) if k in flat})


class _Pair:
    """--weights / --direction / --attribute of flat flags, for checks.demo_mode."""

    def __init__(self, flat: dict):
        self.weights, self.direction, self.attribute = (flat.get(k) for k in ("weights", "direction", "attribute"))


@dataclasses.dataclass(frozen=True)
class ProjectJob:
    """bin/project.py: the images, the generator, the optional VGG16 file and the projection's settings."""

    images: str | None = None
    weights: str = "builtin:toyfaces"
    vgg16: str | None = None
    run: project_run.ProjectSettings = project_run.ProjectSettings()
    numerics: numerics_lib.Numerics = numerics_lib.DEFAULT

    def __post_init__(self):
        if not self.images:
            raise errors.UsageError("--images is required (a folder of PNG / JPEG images)")


def project_job(flags) -> ProjectJob:
    """bin/project.py's flags -> ProjectJob."""
    return from_flags(ProjectJob, flags)


@dataclasses.dataclass(frozen=True)
class SampleJob:
    """bin/sample.py: which latents of which generator, and whether images are written too."""

    weights: str | None = None
    num_samples: int | None = None
    seed: int = 0
    truncation_psi: float = 1.0
    batch_size: int = 16
    save_images: bool = False
    numerics: numerics_lib.Numerics = numerics_lib.DEFAULT

    def __post_init__(self):
        required(self, "weights", "num_samples")
        checks.require(self.num_samples >= 1, "num_samples", self.num_samples, "must be >= 1")
        checks.require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        checks.require(self.seed >= 0, "seed", self.seed, "must be >= 0")


def sample_job(flags) -> SampleJob:
    """bin/sample.py's flags -> SampleJob."""
    return from_flags(SampleJob, flags)


NOISE_MODES = ("const", "random", "none")   # the generator's noise inputs (si_jax.synthesize)


@dataclasses.dataclass(frozen=True)
class GenerateJob:
    """bin/generate.py: latents (--latents) or style codes (--styles) through a generator."""

    weights: str | None = None
    latents: str | None = None
    styles: str | None = None
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    seed: int = 0
    batch_size: int = 16
    overwrite: bool = False
    numerics: numerics_lib.Numerics = numerics_lib.DEFAULT

    def __post_init__(self):
        required(self, "weights")
        if (self.latents is None) == (self.styles is None):
            raise errors.UsageError("give exactly one of --latents or --styles")
        checks.require(self.noise_mode in NOISE_MODES, "noise_mode", self.noise_mode,
                       f"must be one of {', '.join(NOISE_MODES)}")
        checks.require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")


def generate_job(flags) -> GenerateJob:
    """bin/generate.py's flags -> GenerateJob."""
    return from_flags(GenerateJob, flags)


@dataclasses.dataclass(frozen=True)
class FitJob:
    """bin/fit_direction.py: a sample folder, its labels and the SVMs' settings."""

    samples: str | None = None
    labels: str | None = None
    attribute: str | None = None
    threshold: float | None = None
    ratio: float | None = None
    val_fraction: float = 0.2
    seed: int = 0
    C_s: float | None = None
    overwrite: bool = False

    def __post_init__(self):
        required(self, "samples", "labels")
        checks.require(0.0 <= self.val_fraction < 1.0, "val_fraction", self.val_fraction, "must be in [0, 1)")
        checks.require(self.C_s is None or self.C_s > 0, "C_s", self.C_s, "must be > 0")


def fit_job(flags) -> FitJob:
    """bin/fit_direction.py's flags -> FitJob."""
    return from_flags(FitJob, flags)


