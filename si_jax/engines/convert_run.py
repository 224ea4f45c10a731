"""The engine of bin/convert_weights.py: any supported weights file -> an si_jax .safetensors file.

    summary = run(tool_settings.convert_job(FLAGS), FLAGS.output)     # one line, printed by the binary
"""
from __future__ import annotations

import errno
import os

from si_jax.engines import errors


def run(job, out) -> str:
    """A ConvertJob (engines.tool_settings) and the output .safetensors path -> read job.input (the format from its
    content; pickles by the restricted unpickler, nothing of the file runs), write `out` atomically (mode 0644).
    -> the one-line summary. Raises WeightsFormatError / OSError / ValueError (UsageError for a bad flag) naming
    the problem, before anything is written."""
    import weights_convert as wc

    src, dst = job.input, out
    if not dst:
        raise errors.UsageError("--output is empty; give a .safetensors path")
    if os.path.isdir(src):
        raise errors.UsageError(f"--input {src} is a folder; give a weights file (.pkl, .pt or .safetensors)")
    if not dst.endswith(".safetensors"):
        raise ValueError(f"--output must end with .safetensors: {dst}")
    if os.path.exists(dst) and not job.overwrite:
        raise FileExistsError(f"output exists (pass --overwrite to replace it): {dst}")
    out_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"output folder does not exist: {out_dir}")
    if os.path.isdir(dst):
        raise errors.UsageError(f"--output {dst} is a folder; give a file path")
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise ValueError(f"--output {dst} is the --input file; choose another output path")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "no permission", out_dir)   # run_guarded: 'DIR: no permission; ...'
    params, config = wc.read_weights(src)
    wc.save_safetensors(dst, params, config)
    os.chmod(dst, 0o644)   # like every si_jax output (the writer's temp file is 0600)
    res = config["img_resolution"]
    return (f"converted {config['source_format']} {src} -> {dst}: {res}x{res}, {len(params)} tensors, "
            f"{wc.count_parameters(params):,} parameters, {wc.style_dim(config)} style values")
