"""si_jax.training: training a StyleGAN2 (G + the resnet D of si_jax.stylegan2.discriminator) the NVlabs way.

    state        TrainConfig (static hyper-parameters), TrainState (the evolving pytree), NVlabs init, the Adam
                 optimizers with equalized-lr gains and lazy-regularisation correction, G_ema decay
    losses       run_G / run_D and the four phase losses Gmain, Greg (path length), Dmain, Dreg (R1)
    steps        train_step: one iteration (all phases) as one jitted pure function per (do_pl, do_r1)
    data         datasets as pure functions of the step, evaluated inside the step (toyfaces world, blobs)
    checkpoint   atomic checkpoint folders (safetensors + meta.json), restore, G_ema export

May import: si_jax.stylegan2, si_jax.world, si_jax.storage, si_jax.metrics, weights_convert. The loop with
files, progress and pictures is si_jax.engines.train_run (bin/train.py).
"""
from si_jax.training import checkpoint as checkpoint
from si_jax.training.checkpoint import export_generator as export_generator
from si_jax.training.data import Blobs as Blobs
from si_jax.training.data import Constant as Constant
from si_jax.training.data import ToyFaces as ToyFaces
from si_jax.training.data import make_dataset as make_dataset
from si_jax.training.losses import Dmain as Dmain
from si_jax.training.losses import Dreg as Dreg
from si_jax.training.losses import Gmain as Gmain
from si_jax.training.losses import Greg as Greg
from si_jax.training.losses import r1_penalty as r1_penalty
from si_jax.training.losses import run_D as run_D
from si_jax.training.losses import run_G as run_G
from si_jax.training.state import TrainConfig as TrainConfig
from si_jax.training.state import TrainState as TrainState
from si_jax.training.state import auto_ema_kimg as auto_ema_kimg
from si_jax.training.state import auto_gamma as auto_gamma
from si_jax.training.state import init_state as init_state
from si_jax.training.state import with_w_avg as with_w_avg
from si_jax.training.steps import ema_images as ema_images
from si_jax.training.steps import replicate as replicate
from si_jax.training.steps import train_step as train_step
