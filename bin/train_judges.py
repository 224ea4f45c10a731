"""Train the toyfaces judges (attribute/identity classifier, part segmenter) on rendered images; report held-out
accuracy per attribute, error per nuisance factor and IoU per part.

    python bin/train_judges.py --output_dir=si_jax/data --overwrite   # replaces toyfaces_{classifier,segmenter}.safetensors
"""
import sys

from absl import flags

from si_jax.engines import errors, hosts, judges_run, tool_settings

_J = tool_settings.JudgesJob()
flags.DEFINE_string("output_dir", None, "Folder for the two .safetensors files (e.g. si_jax/data).")
flags.DEFINE_integer("classifier_steps", _J.classifier_steps, "Training steps of the classifier.")
flags.DEFINE_integer("segmenter_steps", _J.segmenter_steps, "Training steps of the segmenter.")
flags.DEFINE_integer("batch_size", _J.batch_size, "Rendered images per step.")
flags.DEFINE_integer("seed", _J.seed, "World seed of the training stream.")
flags.DEFINE_integer("eval_seed", _J.eval_seed, "World seed of the held-out evaluation images.")
flags.DEFINE_integer("eval_num", _J.eval_num, "Held-out images.")
hosts.define_cache_flag(flags)
flags.DEFINE_bool("overwrite", False, "Replace judges already in --output_dir (e.g. the shipped ones in si_jax/data).")
flags.mark_flags_as_required(["output_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    job = tool_settings.judges_job(FLAGS)   # every flag checked, before jax starts
    hosts.setup_jax(FLAGS.compilation_cache)
    judges_run.run(job, FLAGS.output_dir, log=lambda m: print(m, flush=True),
                   command=" ".join(["python bin/train_judges.py", *sys.argv[1:]]))


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
