"""The projector's losses for ONE image (batched by vmap in `_project`): images [1, R, R, 3] in the raw range.

    pixel       mean squared error at full resolution
    multiscale  mean over the coarser scales R/2, R/4, ... down to MIN_SCALE px (2x2 average pooling) of their MSE
    vgg         `_vgg.perceptual_distance` (only with user-supplied VGG16 weights)
    judge       mean squared difference of the toyfaces attribute classifier's features (si_jax.world.judges)
    noise_reg   the noise buffers' auto-correlation at every scale (below): keeps optimised noise white
"""
from __future__ import annotations

import jax.numpy as jnp

from si_jax.projection import _vgg
from si_jax.world import judges as judges_lib

MIN_SCALE = 8


def downsample2(x):
    """[N, H, W, C] -> [N, H/2, W/2, C] by 2x2 averaging (H, W even)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def pixel_losses(img, target) -> tuple:
    """img, target [1, R, R, C] -> (full-resolution MSE, mean MSE over the coarser scales; 0 when R <= 8)."""
    full = jnp.mean(jnp.square(img - target))
    coarse = []
    a, b = img, target
    while a.shape[1] > MIN_SCALE and a.shape[1] % 2 == 0:
        a, b = downsample2(a), downsample2(b)
        coarse.append(jnp.mean(jnp.square(a - b)))
    return full, (sum(coarse) / len(coarse)) if coarse else jnp.float32(0.0)


def noise_regularizer(buffers) -> jnp.ndarray:
    """buffers: list of [R, R] -> Σ over buffers and scales (down to 8 px) of the squared mean products with the
    buffer shifted by one pixel along each axis (0 for white noise)."""
    total = jnp.float32(0.0)
    for buf in buffers:
        x = buf
        while True:
            total += jnp.square(jnp.mean(x * jnp.roll(x, 1, axis=0))) + jnp.square(jnp.mean(x * jnp.roll(x, 1, axis=1)))
            if x.shape[0] <= MIN_SCALE:
                break
            x = downsample2(x[None, :, :, None])[0, :, :, 0]
    return total


def normalize_noise(buffers) -> list:
    """Each buffer [R, R] shifted and scaled to mean 0, std 1."""
    return [(b - jnp.mean(b)) * jnp.reciprocal(jnp.sqrt(jnp.mean(jnp.square(b - jnp.mean(b)))) + 1e-8)
            for b in buffers]


def image_loss(img, target, hp, aux) -> tuple:
    """Weighted reconstruction loss of one image. img, target [1, R, R, 3]; hp: ProjectHParams (its lambda_*
    weights, traced); aux: ProjectAux (VGG16 layers, judge classifier params; a term runs when its entry is not
    None). -> (loss [], pixel MSE [])."""
    full, coarse = pixel_losses(img, target)
    loss = hp.lambda_pixel * full + hp.lambda_multiscale * coarse
    if aux.vgg is not None:
        loss += hp.lambda_vgg * _vgg.perceptual_distance(aux.vgg, img, target)[0]
    if aux.judge is not None:
        fi = judges_lib.classify(aux.judge, img)["features"]
        ft = judges_lib.classify(aux.judge, target)["features"]
        loss += hp.lambda_judge * jnp.mean(jnp.square(fi - ft))
    return loss, full
