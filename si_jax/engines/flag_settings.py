"""Flags -> frozen settings dataclasses: the machinery behind every binary's job (engines.settings,
engines.tool_settings) and the flags that several binaries share.

    job = flag_settings.from_flags(SampleJob, FLAGS)     # absl FlagValues, or a plain {flag: value} dict (tests)

`from_flags(Settings, values)` fills a frozen dataclass from flat flag values: a field takes the flag of its own
name (FLAG_OF lists the exceptions: none today), a field that is itself a dataclass is filled from the same flags
(by BUILDERS where it needs more than its fields, e.g. the InterventionConfig from --objective), every float is
checked finite and every int an integer. The dataclasses validate themselves; a ValueError they raise about one of
their fields ('steps_per_layer must be >= 1, got 0') comes out as a UsageError naming the flag the user typed
('--steps_per_layer=0 must be >= 1'). A plain dict with a key that is no field is a TypeError (a typo in a test).
"""
from __future__ import annotations

import dataclasses
import re
import typing

from si_jax import projection
from si_jax.editing import edits, intervention
from si_jax.engines import checks, errors, evaluate_cli, project_run, weights
from si_jax.stylegan2 import numerics as numerics_lib

FLAG_OF: dict = {}   # dataclass field -> the flag that sets it, where the names differ


def flag_of(field: str) -> str:
    return FLAG_OF.get(field, field)


def flat_values(values) -> tuple:
    """-> ({flag: value}, strict): absl FlagValues (every defined flag; not strict) or a dict (strict)."""
    if isinstance(values, dict):
        return dict(values), True
    return {name: values[name].value for name in values}, False


def field_flags(cls) -> set:
    hints = typing.get_type_hints(cls)
    names = set()
    for f in dataclasses.fields(cls):
        sub = hints[f.name]
        names |= field_flags(sub) if dataclasses.is_dataclass(sub) else {flag_of(f.name)}
    return names | set(EXTRA_FLAGS.get(cls, ()))


def checked(name: str, value, kind):
    """A flag value against its field's annotation: float -> finite float, int -> an integer, tuple -> tuple."""
    flag = flag_of(name)
    args = typing.get_args(kind)
    if value is None and (kind is type(None) or type(None) in args):
        return None
    base = next((a for a in args if a is not type(None)), kind) if args else kind
    if base is float:
        checks.require(checks.is_finite(value), flag, value, "must be a finite number")
        return float(value)
    if base is int:
        checks.require(checks.is_int(value), flag, value, "must be an integer")
        return int(value)
    if base is tuple:
        return tuple(value)
    return value


def fields_from(cls, values: dict, skip=()) -> dict:
    """The keyword arguments of cls from the flat flags (nested dataclasses built by `build`), but for the fields
    `skip` (a builder sets them)."""
    hints, kw = typing.get_type_hints(cls), {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            kw[f.name] = build(kind, values)
        elif flag_of(f.name) in values:
            kw[f.name] = checked(f.name, values[flag_of(f.name)], kind)
    return kw


_FIELD_ERROR = re.compile(r"^(\w+)(=\S+)? (.*?)(?:, got (.*))?$")


def _as_flag_error(e: ValueError, values: dict) -> ValueError:
    """'name must be ..., got X' (a dataclass's own check) -> UsageError '--flag=X must be ...'."""
    if isinstance(e, errors.UsageError):
        return e
    m = _FIELD_ERROR.match(str(e))
    if not m or m.group(1) not in values:
        return e
    value = m.group(4) if m.group(4) is not None else repr(values[m.group(1)])   # as the dataclass saw it
    return errors.UsageError(f"--{flag_of(m.group(1))}={value} {m.group(3)}")


def build(cls, values: dict):
    """One dataclass from the flat flags: BUILDERS[cls] where it has one, else its fields (`_fields_from`)."""
    try:
        return BUILDERS[cls](values) if cls in BUILDERS else cls(**fields_from(cls, values))
    except ValueError as e:
        raise _as_flag_error(e, values) from None


def from_flags(cls, values):
    """Settings `cls` (a frozen dataclass) from flags: absl FlagValues or {flag: value} (a key that is no flag of
    cls: TypeError). UsageError naming the flag for a bad value."""
    flat, strict = flat_values(values)
    if strict:
        unknown = sorted(set(flat) - field_flags(cls))
        if unknown:
            raise TypeError(f"{cls.__name__} has no flag {', '.join(unknown)}")
    return build(cls, flat)


# ---------------------------------------------------------------------------------------------- builders

def _intervention_config(values: dict) -> intervention.InterventionConfig:
    """--objective and the config's own flags (--steps_per_layer None: the config's default)."""
    kw = fields_from(intervention.InterventionConfig, {k: v for k, v in values.items() if k != "pixel_loss"
                                                          and not (k == "steps_per_layer" and v is None)})
    objective = values.get("objective", "keep_edit")
    checks.require(objective in intervention.OBJECTIVES, "objective", objective,
                   f"must be one of {', '.join(intervention.OBJECTIVES)}")
    return intervention.config_for(objective, **kw)


def _numerics(values: dict) -> numerics_lib.Numerics:
    import types

    return weights.numerics_of(types.SimpleNamespace(**{k: values[k] for k in weights.NUMERICS_FLAGS if k in values}))


def _project_settings(values: dict) -> project_run.ProjectSettings:
    """--spaces 'w,wplus,s', the projector's flags, --lambda_vgg (default: 1 with --vgg16, else 0)."""
    vgg = values.get("lambda_vgg")
    if vgg is None:
        vgg = 1.0 if values.get("vgg16") else 0.0
    if vgg > 0 and not values.get("vgg16"):
        raise errors.UsageError(f"--lambda_vgg={vgg:g} needs --vgg16 (a torchvision vgg16 state-dict file)")
    projector = build(projection.ProjectConfig, {**values, "lambda_vgg": vgg})
    spaces = tuple(s.strip() for s in str(values.get("spaces", ",".join(projection.SPACES))).split(",") if s.strip())
    kw = {k: checked(k, values[k], int) for k in ("batch_size", "seed") if k in values}
    return project_run.ProjectSettings(projector, spaces, **kw)   # it checks the spaces


BUILDERS = {intervention.InterventionConfig: _intervention_config, numerics_lib.Numerics: _numerics,
            project_run.ProjectSettings: _project_settings}
EXTRA_FLAGS = {intervention.InterventionConfig: ("objective",), project_run.ProjectSettings: ("spaces",)}


# ---------------------------------------------------------------------------------------------- jobs' helpers

def required(job, *names) -> None:
    """UsageError naming the first of the flags `names` that the job lacks (None)."""
    for name in names:
        if getattr(job, name) is None:
            raise errors.UsageError(f"--{flag_of(name)} is required")


# ---------------------------------------------------------------------------------------------- shared flags

def define_intervention_flags(flags) -> None:
    """The flags of the edit's target and of the intervention's InterventionConfig, with the same defaults in
    bin/edit.py and bin/evaluate.py (--steps_per_layer: the config's default; bin/evaluate.py's demo, when the
    flag is not given on the command line: its own shorter one, `eval_job`)."""
    c = intervention.InterventionConfig()
    flags.DEFINE_enum("target", "flip", list(edits.TARGETS), "Where the Z edit lands (InterFaceGAN).")
    flags.DEFINE_float("distance", 3.0, "Target distance to the Z hyperplane.")
    flags.DEFINE_integer("steps_per_layer", c.steps_per_layer, "Adam steps per style layer (bin/evaluate.py's "
                         f"demo, when it is not given: {evaluate_cli.DEMO_STEPS_PER_LAYER}).")
    flags.DEFINE_float("learning_rate", c.learning_rate, "Adam learning rate for Λ.")
    flags.DEFINE_float("lambda_attr", c.lambda_attr, "Weight of the cosine attribute term (paper: 1e-2).")
    flags.DEFINE_float("lambda_norm", c.lambda_norm, "Weight of ‖Λ‖₂ (paper: 1e-6).")
    flags.DEFINE_float("lambda_init", c.lambda_init, "Initial λ of the layer being optimised.")
    flags.DEFINE_enum("objective", "keep_edit", list(intervention.OBJECTIVES), "keep_edit: MSE outside the mask + "
                      "lambda_inside x MSE inside against the Z edit (measured best, RESULTS.md); paper: Eq. 11 "
                      "exactly.")
    flags.DEFINE_float("lambda_inside", c.lambda_inside, "keep_edit only: weight of the inside-mask term.")


def define_mask_flags(flags, verb: str) -> None:
    """--mask, --masks, --attribute and --condition_on, with the same wording and defaults in bin/edit.py and
    bin/evaluate.py (both resolve them through editing.masks.resolve / engines.inputs). verb: 'edit' | 'evaluate'."""
    flags.DEFINE_string("mask", None, "auto (from the S-only edit's own image difference) | box:x0,y0,x1,y1 | "
                        "ellipse:cx,cy,rx,ry (pixels) | part:NAME (toyfaces segmenter). Default: auto (demo: the "
                        "attribute's part).")
    flags.DEFINE_string("masks", None, "Per-image masks: .npz (masks [N,H,W]) / .npy / PNG / folder of PNGs.")
    flags.DEFINE_string("attribute", None, f"Demo only: the toyfaces attribute to {verb} (default eyeglasses).")
    flags.DEFINE_multi_string("condition_on", [], "Direction files of other attributes (method interfacegan: "
                              "bin/edit.py needs them, bin/evaluate.py skips the method with a note without them).")
