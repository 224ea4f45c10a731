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
from absl import flags

from si_jax.engines import errors, hosts, weights

flags.DEFINE_string("weights", None, "Weights: .safetensors, a raw .pkl / .pt file, builtin:toyfaces or builtin:demo.")
flags.DEFINE_integer("num_samples", None, "Number of samples N.")
flags.DEFINE_integer("seed", 0, "Seed (>= 0): z[i] = default_rng([seed, i]).standard_normal(z_dim).")
flags.DEFINE_string("output_dir", None, "Run folder (created; resumed when it holds the same run).")
flags.DEFINE_float("truncation_psi", 1.0, "Truncation towards the model's w_avg.")
flags.DEFINE_integer("batch_size", 16, "Samples per device call and per shard file (a multiple of the device count).")
flags.DEFINE_bool("save_images", False, "Also synthesize and write images/XXXXXX.png and contact_sheet.png.")
hosts.define_host_flags(flags)
weights.define_numerics_flags(flags)
hosts.define_cache_flag(flags)
flags.mark_flags_as_required(["weights", "num_samples", "output_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    errors.run_guarded(_run)


def _run():
    from si_jax.engines import sample_run, settings

    job = settings.sample_job(FLAGS)   # every flag checked, before jax starts
    hosts.setup_jax(FLAGS.compilation_cache)
    hosts.start_hosts(FLAGS.multihost, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    sample_run.run(job, FLAGS.output_dir)


if __name__ == "__main__":
    from si_jax.engines.errors import run_app

    run_app(main)
