"""Train the toyfaces judges (attribute/identity classifier, part segmenter) on rendered images; report held-out
accuracy per attribute, error per nuisance factor and IoU per part.

    python bin/train_judges.py --output_dir=si_jax/data --overwrite   # replaces toyfaces_{classifier,segmenter}.safetensors
"""
import json
import sys

from absl import flags

from si_jax.engines import errors, hosts

flags.DEFINE_string("output_dir", None, "Folder for the two .safetensors files (e.g. si_jax/data).")
flags.DEFINE_integer("classifier_steps", 2000, "Training steps of the classifier.")
flags.DEFINE_integer("segmenter_steps", 1500, "Training steps of the segmenter.")
flags.DEFINE_integer("batch_size", 64, "Rendered images per step.")
flags.DEFINE_integer("seed", 1, "World seed of the training stream.")
flags.DEFINE_integer("eval_seed", 99, "World seed of the held-out evaluation images.")
flags.DEFINE_integer("eval_num", 4096, "Held-out images.")
hosts.define_cache_flag(flags)
flags.DEFINE_bool("overwrite", False, "Replace judges already in --output_dir (e.g. the shipped ones in si_jax/data).")
flags.mark_flags_as_required(["output_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    def run():
        hosts.setup_jax(FLAGS.compilation_cache)
        from si_jax.world import judge_training

        log = lambda m: print(m, flush=True)  # noqa: E731
        log(f"training the classifier, then the segmenter; each compiles its step first ({hosts.compile_note()})")
        with hosts.heartbeat("training the judges", log=log):
            report = judge_training.train_judges(
                FLAGS.output_dir, classifier_steps=FLAGS.classifier_steps, segmenter_steps=FLAGS.segmenter_steps,
                batch=FLAGS.batch_size, seed=FLAGS.seed, eval_seed=FLAGS.eval_seed, eval_num=FLAGS.eval_num,
                command=" ".join(["python bin/train_judges.py", *sys.argv[1:]]), log=log,
                overwrite=FLAGS.overwrite)
        print(json.dumps(report, indent=1))

    errors.run_guarded(run)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
