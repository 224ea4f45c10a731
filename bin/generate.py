"""Generate images (and their w and style codes) from latents, or synthesize straight from style codes.

    python bin/generate.py --weights=G.pkl --latents=Z.npz [--truncation_psi=1.0] [--noise_mode=const] --output=RES.npz
    python bin/generate.py --weights=G.safetensors --styles=S.npz --output=RES.npz

Z.npz holds `z` [N, z_dim]; S.npz holds `s` [N, S] (flat, forward layer order). RES.npz gets `w` [N, w_dim]
(latents only), `styles` [N, S] and `images` [N, H, W, C] float32 in the model's raw range. Nothing is written
unless every flag, input and output path checks out and every result is finite (a NaN / inf names the samples
and the likely cause); --batch_size is capped at N. Errors are one `error: ...` line (si_jax.engines.errors).
"""
from absl import flags

from si_jax.engines import errors, hosts, settings, weights

flags.DEFINE_string("weights", None, "Weights: .safetensors from convert_weights.py, a raw .pkl / .pt file, builtin:toyfaces or builtin:demo.")
flags.DEFINE_string("latents", None, "NPZ with `z` [N, z_dim].")
flags.DEFINE_string("styles", None, "NPZ with `s` [N, S] flat style codes (instead of --latents).")
flags.DEFINE_string("output", None, "Output NPZ path.")
flags.DEFINE_float("truncation_psi", 1.0, "Truncation towards the model's w_avg (latents only).")
flags.DEFINE_enum("noise_mode", "const", list(settings.NOISE_MODES), "Noise inputs.")
flags.DEFINE_integer("seed", 0, "PRNG seed for --noise_mode=random.")
flags.DEFINE_integer("batch_size", 16, "Images per device call.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
weights.define_numerics_flags(flags)
hosts.define_cache_flag(flags)
flags.mark_flags_as_required(["weights", "output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    from si_jax.engines import generate_run

    job = settings.generate_job(FLAGS)   # every flag checked, before jax starts
    hosts.setup_jax(FLAGS.compilation_cache)
    generate_run.run(job, FLAGS.output)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
