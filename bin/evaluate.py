"""Compare edit methods on the same samples and masks (paper Table 2) and draw the analysis figures (Figs. 2, 5, 6).

    python bin/evaluate.py                         # demo: builtin:toyfaces, eyeglasses, judges + segmenter masks
    python bin/evaluate.py --weights=G.safetensors --direction=DIR.npz --output_dir=O \
        [--num_samples=8 --seed=0] [--masks=PATH | --mask=auto | --mask=box:x0,y0,x1,y1] \
        [--methods=intervention,z,w,interfacegan,s] [--condition_on=OTHER.npz ...] [--fig_layer=b64.conv1]
    python bin/evaluate.py --codes=PROJ --output_dir=O [--space=wplus|w|s] [--methods=w,interfacegan,s,intervention]
        # images projected by bin/project.py (demo directions, or --weights + --direction as above)

Outputs in --output_dir: table2.md / table2.json (mean ± std per method: outside-mask MSE, SSIM, PSNR, S-score
change, flip rate; the demo adds the toyfaces judges' columns), fig5_interpolation.png/.json
(Λ* fixed, coefficient of Δs_n varied), fig6_layers.png, fig6_mse.png/.json (result and outside-mask MSE after
each layer), fig2_channels.png + fig2_iou.json (feature maps vs mask IoU), index.html + per_image.csv (a row per
method and image, sortable, failures flagged), and evaluations.jsonl (the table's statistics, a line per row and
evaluator; appended, so evaluations into one folder with --overwrite accumulate). Nothing is written on bad
input. --evaluators=outside_mse,ssim,... picks the table's columns (default: all that apply).
With --codes the table compares each edit with the original input image (and, in one column, with the
reconstruction the intervention's L_pix uses) and adds the row 'reconstruction' (the codes unedited).
"""

from absl import flags

from si_jax.engines import errors, evaluate_cli, flag_settings, hosts, settings, weights
from si_jax.evaluation import evaluators

flags.DEFINE_string("weights", None, "Generator weights (.safetensors, .pkl, .pt). Omit with --direction for the demo.")
flags.DEFINE_string("direction", None, "Direction file from bin/fit_direction.py (s, z, w normals).")
flags.DEFINE_string("output_dir", None, "Output folder (default for the demo: si_jax_eval_demo).")
flags.DEFINE_bool("overwrite", False, "Write into a non-empty --output_dir.")
flags.DEFINE_integer("num_samples", None, "Number of samples (latents z[i] = default_rng([seed, i])). Default: "
                     f"{evaluate_cli.DEFAULT_NUM_SAMPLES}; not with --codes.")
flags.DEFINE_integer("seed", None, f"Latent seed. Default: {evaluate_cli.DEFAULT_SEED}; not with --codes.")
flags.DEFINE_string("codes", None, "Folder from bin/project.py: evaluate those projected images (methods "
                    "intervention, w, s, interfacegan; the latent edit is the W-space one, codes have no z).")
flags.DEFINE_enum("space", None, ["w", "wplus", "s"], "With --codes: which projection to edit (default wplus).")
flags.DEFINE_string("methods", None, "Comma-separated methods to compare (rows of the table, in this order). "
                    "Default: z,w,interfacegan,s,intervention (with --codes: without z).")
flags.DEFINE_float("truncation_psi", None, "Truncation of the samples' w. Default: "
                   f"{evaluate_cli.DEFAULT_TRUNCATION_PSI:g}; not with --codes.")
flag_settings.define_intervention_flags(flags)
flag_settings.define_mask_flags(flags, "evaluate")
flags.DEFINE_integer("batch_size", 8, "Images per device program.")
flags.DEFINE_string("coeffs", ",".join(f"{c:g}" for c in evaluate_cli.DEFAULT_COEFFS),
                    "Fig. 5: coefficients c of Λ*·Δs_n (c = 1: the intervention result).")
flags.DEFINE_integer("fig_images", 4, "The first samples, shown in the figures; Fig. 2's IoU is averaged over them.")
flags.DEFINE_string("fig_layer", "", "Fig. 2: conv layer, index or name (e.g. b16.conv1). Default: the last conv "
                    "layer at resolution min(R/2, 64).")
flags.DEFINE_float("top_frac", 0.05, "Fig. 2: fraction of locations kept when binarising a feature map.")
flags.DEFINE_integer("top_channels", 5, "Fig. 2: number of best channels shown.")
hosts.define_cache_flag(flags)
flags.DEFINE_string("evaluators", None, "Comma-separated Table 2 columns, by evaluator, in this order: "
                    f"{', '.join(evaluators.DEFAULT)} (classifier and fd: the Python API and the paper suite). "
                    "Default: every one that applies. Also appended to --output_dir/evaluations.jsonl.")
flags.DEFINE_string("lambda_model", None, "A Λ predictor from bin/fit_lambda.py (same generator, direction and "
                    "objective): adds the row 'predicted' (its Λ, one synthesis per image).")
weights.define_numerics_flags(flags)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    from si_jax.engines import edit_cli

    job = settings.eval_job(FLAGS)   # every flag checked, before jax starts
    edit_cli.configure_jax(FLAGS.compilation_cache, False)
    evaluate_cli.run(job, FLAGS.output_dir, log=lambda msg: print(msg, flush=True))


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
