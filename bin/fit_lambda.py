"""Train a per-image Λ predictor (issue 22): edits in one synthesis per image with `bin/edit.py --lambda_model`.

    python bin/fit_lambda.py                       # demo: builtin:toyfaces, --attribute (eyeglasses), part masks
    python bin/fit_lambda.py --weights=G.safetensors --direction=DIR.npz --mask=auto --output_dir=O \
        [--num_train=256 --steps=200 --batch_size=32 --learning_rate=3e-3] [--objective=keep_edit|paper]
        [--target=objective|distill|distill+objective --distill_steps=400]

Trains by minimising the intervention's own objective (--target=objective, the default) or by distilling per-image
SI's Λ* (--target=distill: labels every training image with per-image SI first; distill+objective: then the
objective) over --num_train samples of --seed (default 6000: disjoint from the edit demo's seed 0 and the
directions' samples) and reports on --num_heldout samples of --heldout_seed. RESULTS.md compares the targets.
Outputs in --output_dir: lambda_model.safetensors, loss_curve.png, heldout.json; a checkpoint while training, so
re-running the same command resumes. Errors are one `error: ...` line (si_jax.engines.errors).
"""
from absl import flags

from si_jax.editing import intervention, lambda_distill
from si_jax.engines import errors, hosts, tool_settings
from si_jax.engines import fit_lambda_run as fr

_S, _C = fr.FitSettings(), intervention.InterventionConfig()
flags.DEFINE_string("weights", None, "Generator weights (.safetensors, .pkl, .pt). Omit with --direction for the demo.")
flags.DEFINE_string("direction", None, "Direction file from bin/fit_direction.py (s, z, w normals).")
flags.DEFINE_string("attribute", None, "Demo only: the toyfaces attribute (default eyeglasses).")
flags.DEFINE_string("mask", None, "auto | box:x0,y0,x1,y1 | ellipse:cx,cy,rx,ry | part:NAME (toyfaces segmenter). "
                    "Default: auto (demo: the attribute's part). Use the same as bin/edit.py.")
flags.DEFINE_string("output_dir", None, f"Output folder (default for the demo: {fr.DEMO_DIR}).")
flags.DEFINE_bool("overwrite", False, "Replace a finished lambda_model.safetensors in --output_dir.")
flags.DEFINE_integer("num_train", _S.num_train, "Training samples.")
flags.DEFINE_integer("num_heldout", _S.num_heldout, "Held-out samples for the report.")
flags.DEFINE_integer("steps", _S.steps, "Adam steps on the predictor.")
flags.DEFINE_integer("batch_size", _S.batch_size, "Images per training step.")
flags.DEFINE_float("learning_rate", _S.learning_rate, "Adam learning rate of the predictor's weights.")
flags.DEFINE_string("target", _S.target, f"{' | '.join(lambda_distill.TARGETS)}: what the predictor is trained "
                    "on: the objective, or per-image SI's Λ* (distill; costs per-image SI on every training image).")
flags.DEFINE_integer("distill_steps", _S.distill_steps, "--target=distill*: Adam steps of regression onto Λ*.")
flags.DEFINE_integer("seed", _S.seed, "Latent seed of the training samples.")
flags.DEFINE_integer("heldout_seed", _S.heldout_seed, "Latent seed of the held-out samples.")
flags.DEFINE_enum("objective", "keep_edit", list(intervention.OBJECTIVES), "The intervention objective to learn "
                  "(as bin/edit.py --objective).")
flags.DEFINE_float("lambda_inside", _C.lambda_inside, "keep_edit only: weight of the inside-mask term.")
flags.DEFINE_float("lambda_attr", _C.lambda_attr, "Weight of the cosine attribute term.")
flags.DEFINE_float("lambda_norm", _C.lambda_norm, "Weight of ‖Λ‖₂.")
hosts.define_cache_flag(flags)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    from si_jax.engines import edit_cli

    job = tool_settings.lambda_job(FLAGS)   # every flag checked, before jax starts
    edit_cli.configure_jax(FLAGS.compilation_cache, False)
    fr.run(job, FLAGS.output_dir, log=lambda msg: print(msg, flush=True))


if __name__ == "__main__":
    errors.run_app(main)
