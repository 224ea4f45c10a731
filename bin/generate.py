"""Generate images (and their w and style codes) from latents, or synthesize straight from style codes.

    python bin/generate.py --weights=G.pkl --latents=Z.npz [--truncation_psi=1.0] [--noise_mode=const] --output=RES.npz
    python bin/generate.py --weights=G.safetensors --styles=S.npz --output=RES.npz

Z.npz holds `z` [N, z_dim]; S.npz holds `s` [N, S] (flat, forward layer order). RES.npz gets `w` [N, w_dim]
(latents only), `styles` [N, S] and `images` [N, H, W, C] float32 in the model's raw range. Nothing is written
unless every flag, input and output path checks out and every result is finite (a NaN / inf names the samples
and the likely cause); --batch_size is capped at N. Errors are one `error: ...` line (si_jax.engines.cli).
"""
import sys

from absl import flags

from si_jax.engines import cli

flags.DEFINE_string("weights", None, "Weights: .safetensors from convert_weights.py, a raw .pkl / .pt file, builtin:toyfaces or builtin:demo.")
flags.DEFINE_string("latents", None, "NPZ with `z` [N, z_dim].")
flags.DEFINE_string("styles", None, "NPZ with `s` [N, S] flat style codes (instead of --latents).")
flags.DEFINE_string("output", None, "Output NPZ path.")
flags.DEFINE_float("truncation_psi", 1.0, "Truncation towards the model's w_avg (latents only).")
flags.DEFINE_enum("noise_mode", "const", ["const", "random", "none"], "Noise inputs.")
flags.DEFINE_integer("seed", 0, "PRNG seed for --noise_mode=random.")
flags.DEFINE_integer("batch_size", 16, "Images per device call.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
cli.define_numerics_flags(flags)
cli.define_cache_flag(flags)
flags.mark_flags_as_required(["weights", "output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cli.run_guarded(_run)


def _run():
    cli.setup_jax(FLAGS.compilation_cache)
    import jax
    import numpy as np

    import si_jax
    from si_jax import storage
    from si_jax.editing import batches

    if (FLAGS.latents is None) == (FLAGS.styles is None):
        raise cli.UsageError("give exactly one of --latents or --styles")
    cli.require(FLAGS.batch_size >= 1, "batch_size", FLAGS.batch_size, "must be >= 1")
    numerics = cli.numerics_of(FLAGS)
    cli.check_finite_flags(truncation_psi=FLAGS.truncation_psi)
    cli.check_input_files(latents=FLAGS.latents, styles=FLAGS.styles)
    cli.check_output_free(FLAGS.output, FLAGS.overwrite, inputs=[FLAGS.weights, FLAGS.latents, FLAGS.styles])
    canonical, cfg = cli.load_weights(FLAGS.weights, numerics)
    params = si_jax.to_jax_params(canonical, cfg)
    space = si_jax.StyleSpace.of(cfg)
    if FLAGS.latents:
        inputs = storage.load_npz_array(FLAGS.latents, "z", ndim=2, last_dim=cfg.z_dim)
        fn = jax.jit(lambda p, z, k: si_jax.generate(p, cfg, z, FLAGS.truncation_psi, FLAGS.noise_mode, k))
        hint = cli.likely_cause(truncation_psi=FLAGS.truncation_psi)
    else:
        inputs = storage.load_npz_array(FLAGS.styles, "s", ndim=2, last_dim=space.total)
        fn = jax.jit(lambda p, s, k: (None, space.split(s), si_jax.synthesize(p, cfg, space.split(s),
                                                                                FLAGS.noise_mode, k)))
        hint = f"style codes in {FLAGS.styles} too large for the generator"
    bs = cli.note_batch_size(min(FLAGS.batch_size, len(inputs)))   # never pad a few inputs up to a huge batch
    key = jax.random.PRNGKey(FLAGS.seed)
    print(f"compiling the generator program with the first batch ({cli.compile_note()})", file=sys.stderr, flush=True)
    parts = {"w": [], "styles": [], "images": []}
    for start in cli.progress(range(0, len(inputs), bs), len(inputs), bs, "images"):
        chunk = batches.pad_batch(inputs[start:start + bs], bs)
        w, s, img = fn(params, chunk.array, jax.random.fold_in(key, start))
        got = {"w": w, "styles": space.concat(s), "images": img}
        for name, value in got.items():
            if value is not None:
                parts[name].append(cli.finite_or_error(name, np.asarray(value)[:chunk.valid], hint,
                                                       index=np.arange(start, start + chunk.valid)))
    out = {name: np.concatenate(v) for name, v in parts.items() if v}
    storage.save_npz_atomic(FLAGS.output, **out)
    print(f"wrote {FLAGS.output}: {len(out['images'])} images {out['images'].shape[1:]}, styles {space.total}")


if __name__ == "__main__":
    from si_jax.engines.cli import run_app

    run_app(main)
