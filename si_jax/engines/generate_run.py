"""The engine of `bin/generate.py`: a GenerateJob (engines.settings) and an output file -> images, w and style
codes of latents (or images of style codes), checked finite, written atomically; `run(job, out)`."""
from __future__ import annotations

import sys

import jax
import numpy as np

import si_jax
from si_jax import storage
from si_jax.editing import batches
from si_jax.engines import checks, errors, hosts, weights
from si_jax.stylegan2 import programs


def run(job, out) -> None:
    """A GenerateJob (its flags checked) and --output: check the inputs and the output path (nothing created),
    generate every batch, then write `out` (bin/generate.py's docstring)."""
    if not out:
        raise errors.UsageError("--output is required")
    checks.check_input_files(latents=job.latents, styles=job.styles)
    checks.check_output_free(out, job.overwrite, inputs=[job.weights, job.latents, job.styles])
    canonical, cfg = weights.load_weights(job.weights, job.numerics)
    params = si_jax.to_jax_params(canonical, cfg)
    space = si_jax.StyleSpace.of(cfg)
    if job.latents:
        inputs = storage.load_npz_array(job.latents, "z", ndim=2, last_dim=cfg.z_dim)
        fn = programs.noisy_generate_program(cfg, job.truncation_psi, job.noise_mode)
        hint = errors.likely_cause(truncation_psi=job.truncation_psi)
    else:
        inputs = storage.load_npz_array(job.styles, "s", ndim=2, last_dim=space.total)
        synth = programs.noisy_synth_program(cfg, job.noise_mode)
        fn = lambda p, s, k: (None, *synth(p, s, k))  # noqa: E731 - no w for styles
        hint = f"style codes in {job.styles} too large for the generator"
    bs = errors.note_batch_size(min(job.batch_size, len(inputs)))   # never pad a few inputs up to a huge batch
    key = jax.random.PRNGKey(job.seed)
    print(f"compiling the generator program with the first batch ({hosts.compile_note()})", file=sys.stderr, flush=True)
    parts = {"w": [], "styles": [], "images": []}
    for start in hosts.progress(range(0, len(inputs), bs), len(inputs), bs, "images"):
        chunk = batches.pad_batch(inputs[start:start + bs], bs)
        w, s, img = fn(params, chunk.array, jax.random.fold_in(key, start))
        got = {"w": w, "styles": space.concat(s), "images": img}
        for name, value in got.items():
            if value is not None:
                parts[name].append(errors.finite_or_error(name, np.asarray(value)[:chunk.valid], hint,
                                                          index=np.arange(start, start + chunk.valid)))
    arrays = {name: np.concatenate(v) for name, v in parts.items() if v}
    storage.save_npz_atomic(out, **arrays)
    print(f"wrote {out}: {len(arrays['images'])} images {arrays['images'].shape[1:]}, styles {space.total}")
