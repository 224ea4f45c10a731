"""How good is a toyfaces generator, measured by the shipped judges (si_jax.training.quality): the Fréchet
distance in the classifier's feature space to rendered images (and the rendered-vs-rendered floor), attribute
frequencies generated vs the world's, the share of images where the segmenter finds every part.

    python bin/generator_quality.py --weights=builtin:toyfaces --num=5000 [--output=quality.json]
"""
from absl import flags

from si_jax.engines import errors, hosts, quality_run, tool_settings

_Q = tool_settings.QualityJob()
flags.DEFINE_string("weights", _Q.weights, "Generator weights (a toyfaces generator).")
flags.DEFINE_integer("num", _Q.num, "Generated and rendered images each.")
flags.DEFINE_float("truncation_psi", _Q.truncation_psi, "Truncation of the generated samples.")
flags.DEFINE_string("output", None, "Also write the report as JSON here (atomically).")
hosts.define_cache_flag(flags)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    job = tool_settings.quality_job(FLAGS)   # every flag checked, before jax starts
    hosts.setup_jax(FLAGS.compilation_cache)
    quality_run.run(job, FLAGS.output)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
