"""What --precision changes in results and time, on the shipped toyfaces generator (eyeglasses edit).

    python bench/precision.py [--precisions=fp32,tf32,bf16] [--num_images=32] [--benchmarks_file=BENCHMARKS.md]

Synthesis: `--num_images` images (latents of seed 0) at each precision; max abs difference and PSNR against fp32
(range [-1, 1], peak-to-peak 2), and the warm time of one batch (median of --repeats). Style Intervention: the demo
setting of bin/edit.py (judge-labelled eyeglasses directions fitted at fp32, masks = the segmenter's glasses region
in the fp32 input or its Z edit, default InterventionConfig), with the same styles, Δs_z, Δs_n and masks at every
precision, so that only the computation of the loop differs: Λ* mean / max abs difference from fp32, the final
outside-mask MSE against the fp32 input (mean over images), the judge's eyeglasses flip rate, the edited image's
PSNR against fp32's, and the cold (incl. compiling the layer programs) and warm run time, wall clock and this
process's CPU time (less sensitive than wall time to other load on a shared machine). Prints a Markdown
section; --benchmarks_file appends it. On CPU bf16 is emulated (slower than fp32) and tf32 is fp32.
"""
import datetime
import os
import pathlib
import statistics
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_list("precisions", ["fp32", "tf32", "bf16"], "Precisions to compare (fp32 is the reference).")
flags.DEFINE_integer("num_images", 32, "Images synthesised and edited.")
flags.DEFINE_integer("repeats", 3, "Timed synthesis calls (median) after one warm-up.")
flags.DEFINE_integer("steps_per_layer", None, "Adam steps per layer (default: InterventionConfig's).")
flags.DEFINE_string("benchmarks_file", None, "Append the section to this Markdown file.")
FLAGS = flags.FLAGS

ATTRIBUTE, PART = "eyeglasses", "glasses"


def psnr(a, b) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2) over the whole batch."""
    import numpy as np
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def timed(fn, repeats):
    """(first call seconds, median of `repeats` further calls); blocks on the results."""
    import jax
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first, times = time.perf_counter() - t0, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return out, first, statistics.median(times) if times else first


def main(argv):
    del argv
    import jax
    import numpy as np

    from si_jax import metrics
    from si_jax.editing import intervention, pipeline
    from si_jax.attributes import toyfaces
    from si_jax.engines import demo, samples
    from si_jax.stylegan2 import programs

    if "fp32" not in FLAGS.precisions:
        raise app.UsageError("--precisions must include fp32 (the reference)")
    canonical, cfg, params, dirs, _, judges = demo.demo_setup(ATTRIBUTE, log=print)
    z = samples.latents(0, range(FLAGS.num_images), cfg.z_dim)
    batch = pipeline.prepare(params, cfg, z, dirs)
    synth = programs.synth_program(cfg)
    img0 = np.asarray(synth(params, batch.styles))
    img_z = np.asarray(synth(params, [s + d for s, d in zip(batch.styles, batch.ds_z)]))
    mask = toyfaces.part_masks(judges, PART, img0, img_z)
    config = intervention.InterventionConfig() if FLAGS.steps_per_layer is None else \
        intervention.InterventionConfig(steps_per_layer=FLAGS.steps_per_layer)
    before = judges.score(ATTRIBUTE, img0) > 0
    synth_rows, edit_rows, ref = [], [], {}
    for p in FLAGS.precisions:
        cfg_p = cfg.with_numerics(precision=p)
        program = programs.synth_program(cfg_p)
        img, _, t_synth = timed(lambda: program(params, batch.styles), FLAGS.repeats)
        img = np.asarray(img)
        ref.setdefault("img", img)
        synth_rows.append([p, cfg_p.numerics.bf16_resolution(cfg.img_resolution, cfg.num_fp16_res) or "-",
                           f"{np.abs(img - ref['img']).max():.2e}", f"{psnr(img, ref['img']):.1f}",
                           f"{t_synth * 1e3:.1f}"])
        print(f"{p}: synthesis of {len(z)} images {t_synth * 1e3:.1f} ms, max abs diff vs fp32 "
              f"{np.abs(img - ref['img']).max():.2e}", flush=True)
        run = lambda: intervention.intervene(params, cfg_p, batch.styles, batch.ds_z, batch.ds_n, mask, config)  # noqa: E731
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        res = run()
        warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
        lam = np.concatenate([np.asarray(lam_l) for lam_l in res.lam], axis=1)
        ref.setdefault("lam", lam)
        ref.setdefault("edit", res.image)
        outside = np.asarray(metrics.outside_mask_mse(res.image, img0, mask))
        flips = float(np.mean((judges.score(ATTRIBUTE, res.image) > 0) != before))
        dlam = np.abs(lam - ref["lam"])
        edit_rows.append([p, f"{dlam.mean():.2e} / {dlam.max():.2e}", f"{outside.mean():.3e}", f"{flips:.2f}",
                          f"{psnr(res.image, ref['edit']):.1f}", f"{cold:.0f} / {cold_cpu:.0f}",
                          f"{warm:.1f} / {warm_cpu:.1f}", f"{warm_cpu / len(z):.3f}"])
        print(f"{p}: intervention cold {cold:.1f} s (CPU {cold_cpu:.1f}), warm {warm:.1f} s (CPU {warm_cpu:.1f}); mean |ΔΛ*| {dlam.mean():.2e}, outside MSE "
              f"{outside.mean():.3e}, flips {flips:.2f}", flush=True)
    table = lambda h, rows: "\n".join(["| " + " | ".join(h) + " |", "|" + "---|" * len(h)] + [  # noqa: E731
        "| " + " | ".join(str(c) for c in r) + " |" for r in rows]) + "\n"
    section = (
        f"## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d} precision effect on results "
        f"(bench/precision.py, {jax.default_backend()}, jax {jax.__version__})\n\n"
        f"builtin:toyfaces (32 px, {len(cfg.layers)} style layers), {len(z)} images of seed 0; the '{ATTRIBUTE}' "
        f"demo edit with {config.steps_per_layer} steps/layer. Same styles, Δs_z, Δs_n and masks (from fp32) at "
        f"every precision. Command: `python {' '.join(sys.argv)}`.\n\n"
        + table(["precision", "bf16 from px", "image max abs diff vs fp32", "PSNR vs fp32 dB",
                 f"synthesis ms / {len(z)} images (warm)"], synth_rows) + "\n"
        + table(["precision", "Λ* mean / max abs diff vs fp32", "outside-mask MSE vs fp32 input", "judge flip rate",
                 "edited image PSNR vs fp32 dB", "cold run s (wall / CPU)", "warm run s (wall / CPU)",
                 "warm CPU s/image"], edit_rows))
    print("\n" + section, flush=True)
    if FLAGS.benchmarks_file:
        from si_jax import storage

        path = pathlib.Path(FLAGS.benchmarks_file)  # appended to by rewriting it whole, atomically
        storage.write_atomic(path, (path.read_bytes() if path.exists() else b"") + ("\n" + section).encode())


if __name__ == "__main__":
    app.run(main)
