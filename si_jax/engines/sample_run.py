"""The engine of `bin/sample.py`: a SampleJob (engines.settings) and a run folder -> z, w and style codes (and
optionally images) of N samples in resumable shards; `run(job, out)`. Layout and the latent rule: engines.samples;
the rules of the run (devices, hosts, resume, checks): bin/sample.py's docstring."""
from __future__ import annotations

import sys
import time

import jax
import numpy as np

import si_jax
from si_jax import storage
from si_jax.editing import batches
from si_jax.engines import checks, errors, hosts, runs, samples, weights
from si_jax.evaluation import pictures
from si_jax.stylegan2 import conv_library, programs

CONTACT_SHEET = "contact_sheet.png"
CONTACT_MAX, CONTACT_COLS = 64, 8
NOISE_MODE = "const"


def _contact_sheet(folder, num_samples: int, resolution: int):
    from PIL import Image

    tiles = [np.asarray(Image.open(folder / samples.image_file(i)).convert("RGB"))
             for i in range(min(num_samples, CONTACT_MAX))]
    rows = [tiles[r:r + CONTACT_COLS] for r in range(0, len(tiles), CONTACT_COLS)]
    return pictures.grid(rows, scale=pictures.upscale_for_viewing(resolution))


def _manifest(settings, cfg, space, shards, display_range, weights) -> dict:
    layers = [{"name": n, "kind": k, "resolution": r, "dim": d, "offset": o}
              for n, k, r, d, o in zip(space.names, space.kinds, space.resolutions, space.dims, space.offsets)]
    return {
        "format": samples.FORMAT, "version": samples.VERSION, "settings": settings,
        "generator_id": settings["generator_id"], "weights": str(weights),
        "num_samples": settings["num_samples"], "num_shards": len(shards), "shard_size": settings["batch_size"],
        "seed": settings["seed"], "truncation_psi": settings["truncation_psi"], "z_rule": samples.Z_RULE,
        "z_dim": cfg.z_dim, "w_dim": cfg.w_dim, "style_dim": space.total, "style_layers": layers,
        "img_resolution": cfg.img_resolution, "img_channels": cfg.img_channels, "noise_mode": NOISE_MODE,
        "shards": [{"file": samples.shard_file(k), "start": s, "count": n} for k, (s, n) in enumerate(shards)],
        "images": None if display_range is None else {
            "dir": "images", "pattern": "{index:06d}.png", "display_range": list(display_range),
            "contact_sheet": CONTACT_SHEET},
    }


def run(job, out) -> None:
    """A SampleJob (engines.settings: its flags checked) and the run folder (--output_dir): check the folder and
    the weights (nothing created), then sample every shard not done yet; process 0 then writes the contact sheet
    and manifest.json (module docstring of bin/sample.py). jax's hosts must be started already (`hosts.start_hosts`)."""
    if not out:
        raise errors.UsageError("--output_dir is required")
    numerics = job.numerics
    lead = jax.process_index() == 0
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if lead else (lambda msg: None)
    t0 = time.perf_counter()
    checks.check_output_dir(out, inputs=[job.weights])
    canonical, cfg = weights.load_weights(job.weights, numerics)
    params = si_jax.to_jax_params(canonical, cfg)
    space = si_jax.StyleSpace.of(cfg)
    mesh = runs.local_mesh()
    n = job.num_samples
    bs = runs.fit_batch_size(job.batch_size, n, mesh)
    settings = {"generator_id": si_jax.fingerprint(canonical), "num_samples": n, "seed": job.seed,
                "truncation_psi": job.truncation_psi, "batch_size": bs, "save_images": job.save_images,
                "noise_mode": NOISE_MODE, **weights.numerics_settings(numerics)}
    run = runs.RunDir(out, settings)   # checks only: created with the first finished shard
    shards = samples.shard_ranges(n, bs)
    log(f"{n} samples in {len(shards)} shards of {bs}; {jax.process_count()} process(es), {mesh.devices.size} "
        f"local device(s); generator {settings['generator_id']}")
    if bs < job.batch_size:
        log(f"note: --batch_size={job.batch_size} capped at {bs} (the number of samples)")
    if job.save_images:   # the library XLA:CPU runs this batch's convs in ('auto': measured, conv_library)
        cfg = conv_library.resolve(params, cfg, bs // mesh.devices.size, edit=False)
    generate = programs.sample_program(cfg, job.truncation_psi, job.save_images)
    params = runs.replicate(params, mesh)

    def compute(k, index):
        """Shard k's samples `index` -> their z, w, styles and images (None without --save_images)."""
        z = samples.latents(job.seed, index, cfg.z_dim)
        w, s, img = generate(params, runs.shard_batch(batches.pad_batch(z, bs).array, mesh))
        return {"index": index.astype(np.int64), "z": z, "w": np.asarray(w), "styles": np.asarray(s),
                "images": None if img is None else np.asarray(img)}

    def write(k, index, arrays):
        if "images" in arrays:   # images first: a shard file on disk means its images are there too
            run.create()
            (run.path / "images").mkdir(exist_ok=True)
            for i, im in zip(index, pictures.to_uint8(arrays["images"], *display_range)):
                pictures.save_png(run.path / samples.image_file(int(i)), im)
        run.write_shard(k, **{key: arrays[key] for key in ("index", "z", "w", "styles")})

    log(f"compiling the sampling program with the first shard ({hosts.compile_note()})")
    display_range, hint = None, errors.likely_cause(truncation_psi=job.truncation_psi)
    if job.save_images:   # one range for the whole run, from shard 0 (deterministic whatever is resumed)
        first = np.arange(shards[0][1])
        images = errors.finite_or_error("images", compute(0, first)["images"][:len(first)], hint, first)
        display_range = runs.from_process_0(pictures.display_range(images))
    if not runs.run_shards(run, n, bs, compute, write, hint=hint, barrier_name="si_jax.sample.done", log=log):
        return
    run.remove_top_level_temps()
    outputs = storage.Outputs()
    if job.save_images:
        outputs.add(run.path / CONTACT_SHEET, pictures.png_bytes(_contact_sheet(run.path, n, cfg.img_resolution)))
    outputs.add_json(run.path / samples.MANIFEST,
                     _manifest(run.settings, cfg, space, shards, display_range, job.weights))
    outputs.commit()
    print(f"wrote {run.path}: {n} samples, z {cfg.z_dim}, w {cfg.w_dim}, styles {space.total} "
          f"({time.perf_counter() - t0:.1f}s)")
