"""Convert StyleGAN2 weights (NVlabs .pkl, TF .pkl, rosinality .pt, or an si_jax .safetensors) to .safetensors.

    python bin/convert_weights.py --input=network-snapshot.pkl --output=G.safetensors [--overwrite]

The input format is detected from the content. Pickles are read by a restricted unpickler: nothing from the
file is ever executed (weights_convert/FORMATS.md). The output holds the canonical tensors (NVlabs G_ema names)
and the model config in its metadata; it is written atomically. On any problem one `error: ...` line goes to
stderr, the exit code is 1 and no output file is left behind.
"""
import os
import sys

from absl import flags

flags.DEFINE_string("input", None, "Weights file: NVlabs/TF .pkl, rosinality .pt, or .safetensors.")
flags.DEFINE_string("output", None, "Output .safetensors path.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flags_as_required(["input", "output"])
FLAGS = flags.FLAGS


def convert(src: str, dst: str, overwrite: bool) -> str:
    """Read `src`, write `dst`; returns the one-line summary. Raises WeightsFormatError / OSError / ValueError."""
    import weights_convert as wc

    if not src:
        raise ValueError("--input is empty; give a weights file (.pkl, .pt or .safetensors)")
    if not dst:
        raise ValueError("--output is empty; give a .safetensors path")
    if os.path.isdir(src):
        raise IsADirectoryError(f"--input {src} is a folder; give a weights file (.pkl, .pt or .safetensors)")
    if not dst.endswith(".safetensors"):
        raise ValueError(f"--output must end with .safetensors: {dst}")
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f"output exists (pass --overwrite to replace it): {dst}")
    out_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"output folder does not exist: {out_dir}")
    if os.path.isdir(dst):
        raise IsADirectoryError(f"--output {dst} is a folder; give a file path")
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise ValueError(f"--output {dst} is the --input file; choose another output path")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write into {out_dir} (no permission or read-only); choose another location")
    params, config = wc.read_weights(src)
    wc.save_safetensors(dst, params, config)
    os.chmod(dst, 0o644)   # like every si_jax output (the writer's temp file is 0600)
    res = config["img_resolution"]
    return (f"converted {config['source_format']} {src} -> {dst}: {res}x{res}, {len(params)} tensors, "
            f"{wc.count_parameters(params):,} parameters, {wc.style_dim(config)} style values")


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 1
    try:
        summary = convert(FLAGS.input, FLAGS.output, FLAGS.overwrite)
    except (ValueError, OSError) as e:  # WeightsFormatError is a ValueError; FileNotFoundError an OSError
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
