"""Train a StyleGAN2 generator on the toyfaces world (NVlabs recipe; resumable work folder).

    python bin/train.py                                   # the shipping 32 px generator, ~/.cache/si_jax/train/toyfaces32
    python bin/train.py --kimg=50 --workdir=/tmp/run      # shorter; re-run the same command to resume
    python bin/train.py --config=smoke --workdir=/tmp/smoke   # a tiny model end to end (TRAINING.md: timing)
Then use it like any generator: si_jax.load_generator('<workdir>/G_ema.safetensors'), or --weights=... of the
other binaries.

Every flag is a field of `si_jax.engines.train_run.TrainSettings` (its docstring and module docstring describe the
work folder, resuming and the outputs); --config picks the values of the flags not given (train_run.CONFIGS).
"""
import dataclasses

from absl import flags

from si_jax.engines import errors, hosts, train_run

HELP = {
    "name": "Run name; the default work folder is ~/.cache/si_jax/train/<name>.",
    "data": "Training images: 'toyfaces' (si_jax.world) or 'blobs'.",
    "data_seed": "Seed of the training world.",
    "resolution": "Image resolution (power of two, >= 8).",
    "channel_base": "Channels at res r: min(channel_base // r, channel_max) (G and D).",
    "channel_max": "Maximum channels per layer.",
    "z_dim": "Latent z dimensions.",
    "w_dim": "Intermediate w dimensions.",
    "mapping_layers": "Mapping network depth.",
    "batch": "Images per iteration (a multiple of the local device count).",
    "kimg": "Train until this many thousand real images have been shown.",
    "lr": "Adam learning rate of G and D.",
    "gamma": "R1 weight (default: NVlabs auto 0.0002 * res^2 / batch).",
    "ema_kimg": "G_ema half-life in kimg (default: NVlabs auto batch * 10 / 32).",
    "ema_rampup": "G_ema ramp-up (half-life <= images seen * rampup); 0 disables.",
    "pl_weight": "Path-length regulariser weight; 0 disables it.",
    "mixing_prob": "Style-mixing probability.",
    "g_reg_interval": "Path-length regularisation every this many iterations (lazy).",
    "d_reg_interval": "R1 regularisation every this many iterations (lazy).",
    "mbstd_group": "Minibatch-stddev group size.",
    "seed": "Seed of the initialisation, latents and noise.",
    "grid_kimg": "Write grid_<kimg>.png of G_ema every this many kimg.",
    "checkpoint_kimg": "Checkpoint and export G_ema.safetensors every this many kimg.",
    "log_every_s": "Progress line and metrics.jsonl entry every this many seconds.",
}
DEFINE = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
TYPES = {"int": int, "float": float, "str": str, "float | None": float}
for _f in dataclasses.fields(train_run.TrainSettings):
    DEFINE[TYPES[_f.type]](_f.name, _f.default, HELP[_f.name] + " Default: --config's value.")
flags.DEFINE_enum("config", "default", list(train_run.CONFIGS), "Values of the flags not given: default (the "
                  "shipped 32 px generator) or smoke (16 px, 16 channels, batch 8, 1 kimg: the whole recipe, mostly "
                  "compiling; train_run.SMOKE).")
flags.DEFINE_string("host_devices", "auto", "XLA CPU devices each batch is split over (data-parallel, the same step "
                    "up to summation order): 'auto' = the largest divisor of --batch up to this machine's cores "
                    "(hosts.host_devices); 1 = one device, as the shipped generator was trained.")
flags.DEFINE_enum("conv_library", "auto", ["auto", "ynn", "eigen"], "XLA:CPU conv library of the training step: "
                  "'auto' = XLA's default (YNNPACK, one thread per conv: no loss with one device per core); 'eigen' "
                  "uses every core per conv (plain step on a 2-core AMD EPYC (avx512f): 1.30x on one device, "
                  "--host_devices=1; 0.99x on two).")
hosts.define_cache_flag(flags)
flags.DEFINE_string("workdir", None, "Work folder (default ~/.cache/si_jax/train/<name>); resumed when it holds "
                                     "the same run.")
FLAGS = flags.FLAGS


def _run():
    base = train_run.CONFIGS[FLAGS.config]
    settings = train_run.TrainSettings(**{f.name: FLAGS[f.name].value if FLAGS[f.name].present else
                                          getattr(base, f.name) for f in dataclasses.fields(train_run.TrainSettings)})
    if isinstance(settings.batch, int) and settings.batch >= 1:   # a bad batch is named by settings.check
        hosts.use_host_devices(hosts.host_devices(FLAGS.host_devices, settings.batch))
    hosts.setup_jax(FLAGS.compilation_cache)
    out = train_run.train(settings, FLAGS.workdir, conv_library=FLAGS.conv_library)
    print(f"done: {out['kimg']:.2f} kimg, step {out['step']}; generator {out['G_ema']}")


def main(argv):
    del argv
    try:
        errors.run_guarded(_run)
    except KeyboardInterrupt:
        raise SystemExit(130)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
