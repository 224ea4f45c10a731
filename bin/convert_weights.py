"""Convert StyleGAN2 weights (NVlabs .pkl, TF .pkl, rosinality .pt, or an si_jax .safetensors) to .safetensors.

    python bin/convert_weights.py --input=network-snapshot.pkl --output=G.safetensors [--overwrite]

The input format is detected from the content. Pickles are read by a restricted unpickler: nothing from the
file is ever executed (weights_convert/FORMATS.md). The output holds the canonical tensors (NVlabs G_ema names)
and the model config in its metadata; it is written atomically. On any problem one `error: ...` line goes to
stderr, the exit code is 1 and no output file is left behind.
"""
from absl import flags

from si_jax.engines import convert_run, errors, tool_settings

flags.DEFINE_string("input", None, "Weights file: NVlabs/TF .pkl, rosinality .pt, or .safetensors.")
flags.DEFINE_string("output", None, "Output .safetensors path.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flags_as_required(["input", "output"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise errors.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    print(convert_run.run(tool_settings.convert_job(FLAGS), FLAGS.output))


if __name__ == "__main__":
    errors.run_app(lambda argv: errors.run_guarded(lambda: main(argv)))
