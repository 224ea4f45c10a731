"""Projection: the user's own images -> codes in W, W+ and S that the generator reproduces, ready to edit.

    folder = load_image_folder('photos/', cfg.img_resolution)   # [N, R, R, 3] in [-1, 1], notes, bad files named
    stats = code_stats(params, cfg)                            # w_avg, w_std, s_std (start and noise scale)
    out = project_batch(params, cfg, stats, ProjectAux(), folder.images, image_keys(0, range(N)), 'wplus')
    out.code, out.image, out.loss                              # [N, num_ws, w_dim], reconstructions, loss curves

May import: si_jax.stylegan2, si_jax.world (the judges' features), weights_convert (VGG16 weights), the leaves.
"""
from si_jax.projection._codes import SPACE_NAMES as SPACE_NAMES
from si_jax.projection._codes import SPACES as SPACES
from si_jax.projection._codes import CodeStats as CodeStats
from si_jax.projection._codes import check_space as check_space
from si_jax.projection._codes import code_shape as code_shape
from si_jax.projection._codes import code_stats as code_stats
from si_jax.projection._codes import flat_styles_of_codes as flat_styles_of_codes
from si_jax.projection._codes import reference_w as reference_w
from si_jax.projection._codes import styles_of_codes as styles_of_codes
from si_jax.projection._images import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from si_jax.projection._images import ImageFolder as ImageFolder
from si_jax.projection._images import load_image_folder as load_image_folder
from si_jax.projection._images import read_image as read_image
from si_jax.projection._project import NOISE_MODES as NOISE_MODES
from si_jax.projection._project import ProjectAux as ProjectAux
from si_jax.projection._project import ProjectConfig as ProjectConfig
from si_jax.projection._project import ProjectHParams as ProjectHParams
from si_jax.projection._project import ProjectStatic as ProjectStatic
from si_jax.projection._project import Projection as Projection
from si_jax.projection._project import image_keys as image_keys
from si_jax.projection._project import project_batch as project_batch
from si_jax.projection._project import project_one as project_one
from si_jax.projection._vgg import load_vgg16 as load_vgg16
from si_jax.projection._vgg import perceptual_distance as perceptual_distance
