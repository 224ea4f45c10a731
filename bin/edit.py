"""Style Intervention batch editing (paper Sec. 3.2) or a baseline, resumable, on all local devices.

    python bin/edit.py                        # demo: built-in toyfaces generator + judges (README: timing)
    python bin/edit.py --weights=G.safetensors --direction=DIR.npz --output_dir=O \
        [--samples=D | --num_samples=N --seed=S] [--masks=PATH | --mask=auto | --mask=box:x0,y0,x1,y1] \
        [--method=intervention|z|w|interfacegan|s] [--batch_size=8] [--steps_per_layer] [--learning_rate] ...
    python bin/edit.py --codes=PROJ --output_dir=O [--space=wplus|w|s]   # images projected by bin/project.py
    python bin/edit.py ... --lambda_model=O/lambda_model.safetensors [--refine_steps=K]   # bin/fit_lambda.py's Λ

Outputs in --output_dir: shards/*.npz (edited styles, Λ*, outside-mask MSE, S scores), images/*.png
(input | output | mask), grid.png, summary.json, index.html (every image, sortable, failures flagged) and
per_image.csv. Re-running the same command resumes, and every file it writes has
the same bytes as in an uninterrupted run. Nothing is created before every flag and input is checked (and shard
0's input images are finite); a shard with a NaN / inf result is an error naming its samples and the likely setting.
--batch_size is capped at the number of images. With --samples, the samples' generator id must match --weights
and their truncation_psi is used. --precision=fp32|tf32|bf16 (--bf16_from_res), --conv3x3, --upconv: how the
generator computes (si_jax.stylegan2.numerics); --loop: how Λ's Adam steps run (auto: one program for all layers on
short runs). Errors are one `error: ...` line (si_jax.engines.errors).
"""
from absl import flags

from si_jax.editing import intervention, pipeline
from si_jax.engines import edit_run, errors, flag_settings, hosts, settings, weights

_D = edit_run.EditSettings()
flags.DEFINE_string("weights", None, "Generator weights (.safetensors, .pkl, .pt). Omit with --direction for the demo.")
flags.DEFINE_string("direction", None, "Direction file from bin/fit_direction.py (s, z, w normals).")
flags.DEFINE_string("output_dir", None, "Run folder (default for the demo: si_jax_demo, or si_jax_demo_<attribute> "
                    "for another --attribute).")
flags.DEFINE_string("samples", None, "Folder from bin/sample.py: edit those samples.")
flags.DEFINE_string("codes", None, "Folder from bin/project.py: edit those projected images (methods intervention, "
                    "w, s, interfacegan; the latent edit is the W-space one, codes have no z).")
flags.DEFINE_enum("space", None, ["w", "wplus", "s"], "With --codes: which projection to edit (default wplus).")
flags.DEFINE_integer("num_samples", None, "Without --samples / --codes: edit this many samples of --seed "
                     "(default 16).")
flags.DEFINE_integer("seed", None, "Without --samples / --codes: latents z[i] = default_rng([seed, i]) (default 0).")
flags.DEFINE_enum("method", _D.method, list(pipeline.METHODS), "Edit method.")
flags.DEFINE_float("s_scale", None, "Fixed length of Δs_n (default: match the Z edit's S-score change).")
flags.DEFINE_float("truncation_psi", None, "Truncation of the edited samples' w (default 1; with --samples: the "
                  "samples' own, which any value given must match).")
flags.DEFINE_integer("batch_size", _D.batch_size, "Images per shard and per device program (multiple of devices).")
flag_settings.define_intervention_flags(flags)
flag_settings.define_mask_flags(flags, "edit")
flags.DEFINE_enum("loop", _D.loop, ["auto", "scan", "steps", "one"], "How Λ's Adam steps run: scan (a lax.scan per "
                  "layer), steps (a program per layer, one call per step: CPU), one (one program for all layers: "
                  "fastest to compile, slower per step); auto: one for runs of at most "
                  f"{intervention.ONE_PROGRAM_MAX_BATCHES} batches on CPU, else steps (CPU) / scan (si_jax.editing."
                  "intervention.resolve_loop).")
hosts.define_cache_flag(flags)
flags.DEFINE_string("lambda_model", None, "A Λ predictor from bin/fit_lambda.py (same generator, direction and "
                    "objective): edit with its Λ in one synthesis per image, no per-image optimisation.")
flags.DEFINE_integer("refine_steps", 0, "With --lambda_model: per-image Adam steps per layer starting from the "
                     "predicted Λ (0: the prediction as it is).")
hosts.define_host_flags(flags)
weights.define_numerics_flags(flags)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    from si_jax.engines import edit_cli

    job = settings.edit_job(FLAGS)   # every flag checked, before jax starts
    edit_cli.configure_jax(FLAGS.compilation_cache, FLAGS.multihost, FLAGS)
    edit_cli.run(job, FLAGS.output_dir)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
