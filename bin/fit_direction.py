"""Fit an attribute's directions in S (sparse, L1), Z and W (L2) from a sample folder and a label file.

    python bin/fit_direction.py --samples=runs/g_10k --labels=smile.csv --ratio=0.25 --output=dirs/smile.npz

--samples: a finished `bin/sample.py` folder. --labels: `.npy` [N] (labels, or scores with --threshold/--ratio)
or `.csv` rows `index,label|score` covering any subset of the samples (see `si_jax.engines.labels`); only the labelled
samples are used. Writes the three directions with `save_directions` (keys 's', 'z', 'w', tied to the generator's
fingerprint from the samples' manifest), prints the Table-1 report and writes it to `<output stem>.table1.md`.
Nothing is written when anything fails.
"""
import os
import sys

from absl import flags

from si_jax.engines import cli

flags.DEFINE_string("samples", None, "Folder written by bin/sample.py.")
flags.DEFINE_string("labels", None, "Label file: .npy [N] or .csv index,label|score (see si_jax.engines.labels).")
flags.DEFINE_string("output", None, "Output directions file (.npz).")
flags.DEFINE_string("attribute", None, "Attribute name stored with the directions (default: the "
                    "column name of a .csv header 'index,NAME', else the label file's stem).")
flags.DEFINE_float("threshold", None, "Scores: score > threshold is positive.")
flags.DEFINE_float("ratio", None, "Scores: top/bottom ratio·n are positive/negative, the middle is dropped (0, 0.5].")
flags.DEFINE_float("val_fraction", 0.2, "Stratified hold-out fraction for the validation accuracy.")
flags.DEFINE_integer("seed", 0, "Seed of the train/val split.")
flags.DEFINE_float("C_s", None, "C of the S-space L1 SVM (default: si_jax.editing.directions.default_C).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output (and its .table1.md).")
cli.define_cache_flag(flags)
flags.mark_flags_as_required(["samples", "labels", "output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cli.run_guarded(_run)


def _run():
    cli.setup_jax(FLAGS.compilation_cache)
    from si_jax import storage
    from si_jax.editing import directions
    from si_jax.engines import labels, samples

    if not FLAGS.output.endswith(".npz"):
        raise cli.UsageError(f"--output must end in .npz, got {FLAGS.output}")
    table_path = FLAGS.output[:-len(".npz")] + ".table1.md"
    cli.check_finite_flags(threshold=FLAGS.threshold, ratio=FLAGS.ratio, C_s=FLAGS.C_s)
    cli.require(0.0 <= FLAGS.val_fraction < 1.0, "val_fraction", FLAGS.val_fraction, "must be in [0, 1)")
    cli.require(FLAGS.C_s is None or FLAGS.C_s > 0, "C_s", FLAGS.C_s, "must be > 0")
    cli.check_input_files(labels=FLAGS.labels)
    for path in (FLAGS.output, table_path):
        cli.check_output_free(path, FLAGS.overwrite, inputs=[FLAGS.samples, FLAGS.labels])
    data = samples.load_samples(FLAGS.samples)
    n = len(data["index"])
    y, idx = labels.load_labels(FLAGS.labels, n, threshold=FLAGS.threshold, ratio=FLAGS.ratio)
    attribute = (FLAGS.attribute or labels.column_name(FLAGS.labels) or
                 os.path.splitext(os.path.basename(FLAGS.labels))[0])
    print(f"{attribute}: {idx.size} of {n} samples labelled ({int(y.sum())} positive)", file=sys.stderr)
    fitted = {}
    for space, key, C in (("s", "styles", FLAGS.C_s), ("z", "z", None), ("w", "w", None)):
        fitted[space] = directions.fit_direction(data[key][idx], y, space=space, attribute=attribute, C=C,
                                                 val_fraction=FLAGS.val_fraction, seed=FLAGS.seed)
        d = fitted[space]
        cli.finite_or_error(f"the {space}-space direction", d.normal[None], f"degenerate {key} codes or --C_s")
    report = directions.table1_report(fitted)
    outputs = storage.Outputs()   # both files or neither
    outputs.add(FLAGS.output, lambda tmp: directions.save_directions(
        tmp, fitted, generator_id=data["manifest"]["generator_id"]))
    outputs.add_text(table_path, report)
    outputs.commit()
    print(report, end="")
    print(f"wrote {FLAGS.output} and {table_path}", file=sys.stderr)


if __name__ == "__main__":
    from si_jax.engines.cli import run_app

    run_app(main)
