"""How good is a toyfaces generator, measured by the shipped judges (si_jax.training.quality): the Fréchet
distance in the classifier's feature space to rendered images (and the rendered-vs-rendered floor), attribute
frequencies generated vs the world's, the share of images where the segmenter finds every part.

    python bin/generator_quality.py --weights=builtin:toyfaces --num=5000 [--output=quality.json]
"""
import json
import sys

from absl import flags

from si_jax.engines import checks, errors, hosts, weights

flags.DEFINE_string("weights", "builtin:toyfaces", "Generator weights (a toyfaces generator).")
flags.DEFINE_integer("num", 5000, "Generated and rendered images each.")
flags.DEFINE_float("truncation_psi", 1.0, "Truncation of the generated samples.")
flags.DEFINE_string("output", None, "Also write the report as JSON here (atomically).")
hosts.define_cache_flag(flags)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    def run():
        import math

        import numpy as np

        import si_jax
        from si_jax.engines import runs
        from si_jax.training import quality
        from si_jax.world import judges

        if FLAGS.num < 2 or not math.isfinite(FLAGS.truncation_psi):
            raise errors.UsageError("--num must be >= 2 and --truncation_psi finite")
        if FLAGS.output:
            checks.check_output_free(FLAGS.output, overwrite=True, inputs=[FLAGS.weights])
        hosts.setup_jax(FLAGS.compilation_cache)
        canonical, cfg = weights.load_weights(FLAGS.weights)
        hint = errors.likely_cause(truncation_psi=FLAGS.truncation_psi)
        try:
            print(f"generating, rendering and judging {FLAGS.num} images each; the programs compile first "
                  f"({hosts.compile_note()})", file=sys.stderr, flush=True)
            with hosts.heartbeat(f"generating, rendering and judging {FLAGS.num} images each"):
                report = quality.quality_report(si_jax.to_jax_params(canonical, cfg), cfg, judges.load_judges(),
                                                num=FLAGS.num, truncation_psi=FLAGS.truncation_psi)
        except np.linalg.LinAlgError as e:   # the Fréchet distance of non-finite features
            raise errors.NonFiniteError(f"quality report: the Fréchet distance failed ({e}); likely cause: {hint}") \
                from None
        report.update(weights=FLAGS.weights, fingerprint=si_jax.fingerprint(canonical))
        errors.finite_numbers_or_error(report, "quality report", hint)
        if FLAGS.output:
            runs.write_json_atomic(FLAGS.output, report)
        print(json.dumps(report))

    errors.run_guarded(run)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
