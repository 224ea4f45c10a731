"""The engine of `bin/fit_direction.py`: a FitJob (engines.settings) and the output file -> the attribute's S, Z and W
directions from a sample folder and its labels, with the Table-1 report beside them; `run(job, out)`."""
from __future__ import annotations

import os
import sys

from si_jax import storage
from si_jax.editing import directions
from si_jax.engines import checks, errors, labels, samples


def run(job, out) -> None:
    """A FitJob (its flags checked) and --output (.npz): check the inputs and both output paths (nothing
    created), fit the three directions, then write `out` and `<out stem>.table1.md` together (bin/fit_direction.py's
    docstring)."""
    if not out:
        raise errors.UsageError("--output is required")
    out = str(out)
    if not out.endswith(".npz"):
        raise errors.UsageError(f"--output must end in .npz, got {out}")
    table_path = out[:-len(".npz")] + ".table1.md"
    checks.check_input_files(labels=job.labels)
    for path in (out, table_path):
        checks.check_output_free(path, job.overwrite, inputs=[job.samples, job.labels])
    data = samples.load_samples(job.samples)
    n = len(data["index"])
    y, idx = labels.load_labels(job.labels, n, threshold=job.threshold, ratio=job.ratio)
    attribute = (job.attribute or labels.column_name(job.labels) or
                 os.path.splitext(os.path.basename(job.labels))[0])
    print(f"{attribute}: {idx.size} of {n} samples labelled ({int(y.sum())} positive)", file=sys.stderr)
    fitted = {}
    for space, key, C in (("s", "styles", job.C_s), ("z", "z", None), ("w", "w", None)):
        fitted[space] = directions.fit_direction(data[key][idx], y, space=space, attribute=attribute, C=C,
                                                 val_fraction=job.val_fraction, seed=job.seed)
        d = fitted[space]
        errors.finite_or_error(f"the {space}-space direction", d.normal[None], f"degenerate {key} codes or --C_s")
    report = directions.table1_report(fitted)
    outputs = storage.Outputs()   # both files or neither
    outputs.add(out, lambda tmp: directions.save_directions(
        tmp, fitted, generator_id=data["manifest"]["generator_id"]))
    outputs.add_text(table_path, report)
    outputs.commit()
    print(report, end="")
    print(f"wrote {out} and {table_path}", file=sys.stderr)
