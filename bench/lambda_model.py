"""The learned Λ (issue 22) beside per-image SI and the shared Λ on the toyfaces world, judged by its judges.

    python bench/lambda_model.py                                   # every attribute, the sizes below
    python bench/lambda_model.py --attributes=eyeglasses --num_heldout=32 --num_train=128 --steps=150
    python bench/lambda_model.py --attributes=mouth_open,smile --targets=objective,distill,distill+objective

Prints one Markdown row per attribute (judge flips ÷ Z, outside MSE ÷ Z, wall seconds to edit 1,000 images
including the predictor's training / the shared Λ's fit) and writes --output (JSON, every number). Engine:
si_jax.experiments.lambda_bench.compare. Wall times are those of the machine it runs on (say whether it was shared).
"""
import json
import os
import platform

from absl import app, flags

from si_jax import world

flags.DEFINE_list("attributes", list(world.ATTRIBUTES), "toyfaces attributes")
flags.DEFINE_integer("num_train", 256, "predictor training images")
flags.DEFINE_integer("num_heldout", 256, "held-out images (Table 2's: seed 0)")
flags.DEFINE_integer("steps", 150, "predictor training steps (150: RESULTS.md, 300 overfits 256 images)")
flags.DEFINE_list("refine", ["0", "2"], "refine steps K per layer to measure (0: the prediction)")
flags.DEFINE_integer("num_shared", 64, "images the shared Λ is fit on")
flags.DEFINE_float("learning_rate", 3e-3, "predictor learning rate")
flags.DEFINE_list("targets", ["objective"], "training targets to compare (editing.lambda_distill.TARGETS)")
flags.DEFINE_integer("distill_steps", 400, "regression steps of the distilling targets")
flags.DEFINE_bool("si", True, "also measure per-image SI")
flags.DEFINE_string("output", "results/lambda_model.json", "JSON output")
FLAGS = flags.FLAGS


def main(argv):
    from si_jax import storage
    from si_jax.experiments import lambda_bench

    out = {}
    if os.path.isfile(FLAGS.output):
        out = json.load(open(FLAGS.output))
    for a in FLAGS.attributes:
        out[a] = lambda_bench.compare(a, num_train=FLAGS.num_train, num_heldout=FLAGS.num_heldout, steps=FLAGS.steps,
                                      refine=tuple(int(k) for k in FLAGS.refine), num_shared=FLAGS.num_shared,
                                      si=FLAGS.si, learning_rate=FLAGS.learning_rate, targets=tuple(FLAGS.targets),
                                      distill_steps=FLAGS.distill_steps,
                                      log=lambda m: print(m, flush=True))
        out[a]["machine"] = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
        storage.write_atomic(FLAGS.output, storage.json_bytes(out))   # after each attribute: nothing is lost
    for a, r in out.items():
        cells = " | ".join(f"{m}: {v['flips_over_z']:.2f} / {v['mse_over_z']:.3f} / {v['seconds_per_1000']:.0f} s"
                           for m, v in r["rows"].items() if m != "z")
        print(f"| {a} | {cells} |")


if __name__ == "__main__":
    app.run(main)
