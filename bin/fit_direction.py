"""Fit an attribute's directions in S (sparse, L1), Z and W (L2) from a sample folder and a label file.

    python bin/fit_direction.py --samples=runs/g_10k --labels=smile.csv --ratio=0.25 --output=dirs/smile.npz

--samples: a finished `bin/sample.py` folder. --labels: `.npy` [N] (labels, or scores with --threshold/--ratio)
or `.csv` rows `index,label|score` covering any subset of the samples (see `si_jax.engines.labels`); only the labelled
samples are used. Writes the three directions with `save_directions` (keys 's', 'z', 'w', tied to the generator's
fingerprint from the samples' manifest), prints the Table-1 report and writes it to `<output stem>.table1.md`.
Nothing is written when anything fails.
"""
from absl import flags

from si_jax.engines import errors, hosts

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
hosts.define_cache_flag(flags)
flags.mark_flags_as_required(["samples", "labels", "output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    from si_jax.engines import fit_direction_run, settings

    job = settings.fit_job(FLAGS)   # every flag checked, before jax starts
    hosts.setup_jax(FLAGS.compilation_cache)
    fit_direction_run.run(job, FLAGS.output)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
