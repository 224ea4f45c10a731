"""Sample latents from a generator and store z, w and style codes (and optionally images) in a resumable run folder.

    python bin/sample.py --weights=G.safetensors --num_samples=10000 --seed=0 --output_dir=runs/g_10k \
        [--truncation_psi=1.0] [--batch_size=16] [--save_images] [--multihost]

Layout and the latent rule: see `si_jax.engines.samples` (read it back with its `load_samples`). Shard k holds
samples [k·B, (k+1)·B) with B = --batch_size, so the batch size is part of the settings; z[i] itself depends only
on (seed, i). Re-running the same command resumes (finished shards are skipped, the result is identical to an
uninterrupted run); other settings into the same folder are refused. Images use constant noise (noise_mode=const).

Devices: each batch is split over this process's devices (--batch_size must be a multiple of their number).
Hosts (--multihost [--coordinator_address=HOST:PORT --num_processes=P --process_id=p]): jax.distributed; a
multi-process launch (srun, mpirun, a TPU pod) without --multihost is refused. Process p computes shards p, p+P,
... into the SAME folder (a shared filesystem is assumed); each writes run.json (the same bytes) with its first
shard. After a final barrier process 0 checks that every shard exists and writes the contact sheet and
manifest.json; the PNG display range is process 0's (from shard 0).

Nothing is created before the flags, the weights and shard 0 were checked (shard 0 is computed first: its images
fix the PNG display range, so resumed runs write the same bytes); a NaN or inf in any result is an error naming
the samples, with nothing written for them. --batch_size is capped at the number of samples.
"""
import sys

from absl import flags

from si_jax.engines import cli

flags.DEFINE_string("weights", None, "Weights: .safetensors, a raw .pkl / .pt file, builtin:toyfaces or builtin:demo.")
flags.DEFINE_integer("num_samples", None, "Number of samples N.")
flags.DEFINE_integer("seed", 0, "Seed (>= 0): z[i] = default_rng([seed, i]).standard_normal(z_dim).")
flags.DEFINE_string("output_dir", None, "Run folder (created; resumed when it holds the same run).")
flags.DEFINE_float("truncation_psi", 1.0, "Truncation towards the model's w_avg.")
flags.DEFINE_integer("batch_size", 16, "Samples per device call and per shard file (a multiple of the device count).")
flags.DEFINE_bool("save_images", False, "Also synthesize and write images/XXXXXX.png and contact_sheet.png.")
cli.define_host_flags(flags)
cli.define_numerics_flags(flags)
cli.define_cache_flag(flags)
flags.mark_flags_as_required(["weights", "num_samples", "output_dir"])
FLAGS = flags.FLAGS

CONTACT_SHEET = "contact_sheet.png"
CONTACT_MAX, CONTACT_COLS = 64, 8
NOISE_MODE = "const"


def main(argv):
    del argv
    cli.run_guarded(_run)


def _check_flags():
    cli.require(FLAGS.num_samples >= 1, "num_samples", FLAGS.num_samples, "must be >= 1")
    cli.require(FLAGS.batch_size >= 1, "batch_size", FLAGS.batch_size, "must be >= 1")
    cli.require(FLAGS.seed >= 0, "seed", FLAGS.seed, "must be >= 0")
    cli.check_finite_flags(truncation_psi=FLAGS.truncation_psi)


def _make_generate(cfg, space, with_images: bool):
    """Jitted z [B, z_dim] -> (w [B, w_dim], flat styles [B, S], images [B, R, R, C] or None)."""
    import jax

    import si_jax

    def fn(params, z):
        w = si_jax.mapping(params, cfg, z, FLAGS.truncation_psi)
        styles = si_jax.styles_from_w(params, cfg, w)
        img = si_jax.synthesize(params, cfg, styles, NOISE_MODE) if with_images else None
        return w, space.concat(styles), img

    return jax.jit(fn)


def _contact_sheet(folder, num_samples: int, resolution: int):
    import numpy as np
    from PIL import Image

    from si_jax.engines import samples
    from si_jax.evaluation import pictures

    tiles = [np.asarray(Image.open(folder / samples.image_file(i)).convert("RGB"))
             for i in range(min(num_samples, CONTACT_MAX))]
    rows = [tiles[r:r + CONTACT_COLS] for r in range(0, len(tiles), CONTACT_COLS)]
    return pictures.grid(rows, scale=pictures.upscale_for_viewing(resolution))


def _manifest(settings, cfg, space, shards, display_range) -> dict:
    from si_jax.engines import samples

    layers = [{"name": n, "kind": k, "resolution": r, "dim": d, "offset": o}
              for n, k, r, d, o in zip(space.names, space.kinds, space.resolutions, space.dims, space.offsets)]
    return {
        "format": samples.FORMAT, "version": samples.VERSION, "settings": settings,
        "generator_id": settings["generator_id"], "weights": str(FLAGS.weights),
        "num_samples": settings["num_samples"], "num_shards": len(shards), "shard_size": settings["batch_size"],
        "seed": settings["seed"], "truncation_psi": settings["truncation_psi"], "z_rule": samples.Z_RULE,
        "z_dim": cfg.z_dim, "w_dim": cfg.w_dim, "style_dim": space.total, "style_layers": layers,
        "img_resolution": cfg.img_resolution, "img_channels": cfg.img_channels, "noise_mode": NOISE_MODE,
        "shards": [{"file": samples.shard_file(k), "start": s, "count": n} for k, (s, n) in enumerate(shards)],
        "images": None if display_range is None else {
            "dir": "images", "pattern": "{index:06d}.png", "display_range": list(display_range),
            "contact_sheet": CONTACT_SHEET},
    }


def _run():
    import time

    import jax

    cli.setup_jax(FLAGS.compilation_cache)
    cli.start_hosts(FLAGS.multihost, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)   # first
    import numpy as np

    import si_jax
    from si_jax import storage
    from si_jax.editing import batches
    from si_jax.engines import runs, samples
    from si_jax.evaluation import pictures

    _check_flags()
    numerics = cli.numerics_of(FLAGS)
    lead = jax.process_index() == 0
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if lead else (lambda msg: None)
    t0 = time.perf_counter()
    cli.check_output_dir(FLAGS.output_dir, inputs=[FLAGS.weights])
    canonical, cfg = cli.load_weights(FLAGS.weights, numerics)
    params = si_jax.to_jax_params(canonical, cfg)
    space = si_jax.StyleSpace.of(cfg)
    mesh = runs.local_mesh()
    n = FLAGS.num_samples
    bs = runs.fit_batch_size(FLAGS.batch_size, n, mesh)
    settings = {"generator_id": si_jax.fingerprint(canonical), "num_samples": n, "seed": FLAGS.seed,
                "truncation_psi": FLAGS.truncation_psi, "batch_size": bs, "save_images": FLAGS.save_images,
                "noise_mode": NOISE_MODE, **cli.numerics_settings(numerics)}
    run = runs.RunDir(FLAGS.output_dir, settings)   # checks only: created with the first finished shard
    shards = samples.shard_ranges(n, bs)
    mine = runs.my_shards(len(shards))
    todo = run.pending(len(shards))
    log(f"{n} samples in {len(shards)} shards of {bs}; {jax.process_count()} process(es), {mesh.devices.size} "
        f"local device(s); generator {settings['generator_id']}")
    if bs < FLAGS.batch_size:
        log(f"note: --batch_size={FLAGS.batch_size} capped at {bs} (the number of samples)")
    if len(todo) < len(mine):
        log(f"resuming: {len(mine) - len(todo)} of this process's {len(mine)} shards already done")
    run.remove_stale_temps(todo, bs)

    generate = _make_generate(cfg, space, FLAGS.save_images)
    params = runs.replicate(params, mesh)
    hint = cli.likely_cause(truncation_psi=FLAGS.truncation_psi)

    def compute(k):
        """Shard k -> (index, z, w, styles, images or None), every array checked finite."""
        start, count = shards[k]
        index = np.arange(start, start + count, dtype=np.int64)
        z = samples.latents(FLAGS.seed, index, cfg.z_dim)
        w, s, img = generate(params, runs.shard_batch(batches.pad_batch(z, bs).array, mesh))
        got = {"w": w, "styles": s, "images": img}
        got = {key: None if v is None else np.asarray(v)[:count] for key, v in got.items()}
        cli.check_finite(got, hint, index)
        return index, z, got["w"], got["styles"], got["images"]

    log(f"compiling the sampling program with the first shard ({cli.compile_note()})")
    display_range = None
    if FLAGS.save_images:   # one range for the whole run, from shard 0 (deterministic whatever is resumed)
        display_range = runs.from_process_0(pictures.display_range(compute(0)[4]))
    work = sum(shards[k][1] for k in todo)
    for k in (cli.progress(todo, work, bs, "images") if lead else todo):
        index, z, w, s, img = compute(k)
        if img is not None:   # images first: a shard file on disk means its images are there too
            run.create()
            (run.path / "images").mkdir(exist_ok=True)
            for i, im in zip(index, pictures.to_uint8(img, *display_range)):
                pictures.save_png(run.path / samples.image_file(int(i)), im)
        run.write_shard(k, index=index, z=z, w=w, styles=s)

    runs.barrier("si_jax.sample.done")
    if not lead:
        return
    missing = [k for k in range(len(shards)) if not run.is_done(k)]
    if missing:
        raise ValueError(f"{len(missing)} of {len(shards)} shards are missing after the run (first: "
                         f"{samples.shard_file(missing[0])}); do all processes write to the same --output_dir?")
    run.remove_top_level_temps()
    outputs = storage.Outputs()
    if FLAGS.save_images:
        outputs.add(run.path / CONTACT_SHEET, pictures.png_bytes(_contact_sheet(run.path, n, cfg.img_resolution)))
    outputs.add_json(run.path / samples.MANIFEST, _manifest(run.settings, cfg, space, shards, display_range))
    outputs.commit()
    print(f"wrote {run.path}: {n} samples, z {cfg.z_dim}, w {cfg.w_dim}, styles {space.total} "
          f"({time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    from si_jax.engines.cli import run_app

    run_app(main)
