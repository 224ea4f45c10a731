"""Project your own images into the generator's W, W+ and S spaces (then edit them with bin/edit.py --codes).

    python bin/project.py --images=photos/ --output_dir=proj        # builtin:toyfaces, all three spaces
    python bin/project.py --images=photos/ --weights=G.safetensors --output_dir=proj \
        [--spaces=w,wplus,s] [--num_steps=300] [--noise=const|optimize] [--vgg16=vgg16.pth] [--lambda_judge=...]

Images: PNG / JPEG of any size and mode (RGBA composited over white, grayscale and 16-bit scaled, non-square
centre-cropped, then resized to the model resolution; every conversion is noted in projection.json). A file that
cannot be read is an error naming it (all such files in one line); nothing is created before every image is read.
Outputs in --output_dir: codes.npz (codes, styles, reconstructions, loss curves), images/*.png (input | W | W+ |
S), recon_grid.png, loss_curves.png, index.html + per_image.csv (PSNR / SSIM per image and space), projection.json
(written last). Re-running the same command resumes; every
file has the same bytes as in an uninterrupted run. Errors are one `error: ...` line (si_jax.engines.errors).
"""

from absl import flags

from si_jax import projection
from si_jax.engines import errors, hosts, weights

_D = projection.ProjectConfig()
flags.DEFINE_string("images", None, "Folder of PNG / JPEG images to project.")
flags.DEFINE_string("weights", "builtin:toyfaces", "Generator weights (.safetensors, .pkl, .pt or builtin:*).")
flags.DEFINE_string("output_dir", None, "Run folder (resumable).")
flags.DEFINE_string("spaces", ",".join(projection.SPACES), "Code spaces to project into: w, wplus, s.")
flags.DEFINE_integer("num_steps", _D.num_steps, "Optimisation steps per image and space.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Peak Adam learning rate.")
flags.DEFINE_float("lr_rampup", _D.lr_rampup, "Fraction of the steps over which the learning rate ramps up.")
flags.DEFINE_float("lr_rampdown", _D.lr_rampdown, "Fraction of the steps over which it ramps down (cosine) to 0.")
flags.DEFINE_float("code_noise", _D.code_noise, "Initial std of the noise added to the code (x its spread).")
flags.DEFINE_float("code_noise_ramp", _D.code_noise_ramp, "Fraction of the steps after which that noise is 0.")
flags.DEFINE_enum("noise", _D.noise, list(projection.NOISE_MODES), "const: hold the generator's noise buffers "
                  "(codes edit exactly as projected); optimize: per-image buffers with the noise regulariser.")
flags.DEFINE_float("noise_reg", _D.noise_reg, "Weight of the noise regulariser (--noise=optimize).")
flags.DEFINE_float("lambda_pixel", _D.lambda_pixel, "Weight of the full-resolution pixel MSE.")
flags.DEFINE_float("lambda_multiscale", _D.lambda_multiscale, "Weight of the coarser scales' mean MSE.")
flags.DEFINE_string("vgg16", None, "torchvision vgg16 state-dict file (torch.save(vgg16().state_dict())): adds "
                    "a perceptual loss.")
flags.DEFINE_float("lambda_vgg", None, "Weight of the VGG16 perceptual loss (default 1 with --vgg16).")
flags.DEFINE_float("lambda_judge", _D.lambda_judge, "Weight of the toyfaces judge's feature loss (toyfaces).")
flags.DEFINE_integer("batch_size", 8, "Images per shard and per device program (multiple of the devices).")
flags.DEFINE_integer("seed", 0, "Seed of the code noise (and optimised noise buffers) of image i.")
hosts.define_cache_flag(flags)
weights.define_numerics_flags(flags)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    from si_jax.engines import edit_cli, project_cli, settings

    job = settings.project_job(FLAGS)   # every flag checked, before jax starts
    edit_cli.configure_jax(FLAGS.compilation_cache, False)
    project_cli.run(job, FLAGS.output_dir)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
