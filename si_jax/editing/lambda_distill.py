"""Distilling per-image Λ* into the learned Λ predictor (issue 22: the alternative to amortised training).

    lam_star = si_targets(params, cfg, data, config)         # [N, S]: per-image SI's Λ* of every training image
    model, curve = train_distill(model, data.feats, lam_star, steps=400)   # regression of the predictor onto Λ*
    model, _, _ = lambda_model.train_amortised(...)           # optional: then the objective, from the distilled net

Targets (`TARGETS`, recorded in the model's metadata as training.target):
  'objective'          amortised: minimise the intervention's own objective (lambda_model.train_amortised)
  'distill'            regression onto Λ* only (no generator pass while training; the labels cost per-image SI)
  'distill+objective'  the distilled net as the start of amortised training (Λ* as a warm target)

The regression loss is the mean binary cross-entropy between the predicted Λ = sigmoid(logits) and Λ* ∈ [0, 1]
(soft labels), over every channel of every layer; its minimum over Λ is at Λ = Λ*.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from si_jax.editing import intervention, lambda_model
from si_jax.stylegan2.config import G2Config

TARGETS = ("objective", "distill", "distill+objective")


def si_targets(params, cfg: G2Config, data: lambda_model.TrainData, config, *, batch: int = 32,
               on_batch=None, loop: str = "auto") -> np.ndarray:
    """Per-image SI (`intervention.intervene` with `config` and `loop`) on every image of data, in batches of
    `batch`. loop 'auto' is resolved for the whole run, as bin/edit.py does (`intervention.resolve_loop` with the
    number of batches and the resolution: on CPU one program for a few batches of small images, the same Λ* within
    float tolerance). -> Λ* [N, S] float32 (layers concatenated). on_batch(done, total): progress.
    FloatingPointError from `intervene` on a non-finite loss."""
    loop = intervention.resolve_loop(loop, batches=-(-len(data) // batch), resolution=cfg.img_resolution)
    out = []
    for start in range(0, len(data), batch):
        st, dz, dn, _, _, mask, _ = data.take(np.arange(start, min(start + batch, len(data))))
        res = intervention.intervene(params, cfg, st, dz, dn, mask, config, loop=loop)
        out.append(np.concatenate([np.asarray(a) for a in res.lam], -1))
        if on_batch is not None:
            on_batch(start + len(mask), len(data))
    return np.concatenate(out).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _distill_step(net: lambda_model.LambdaNet, learning_rate: float):
    opt = optax.adam(learning_rate)

    def loss_fn(mparams, mean, std, feats, target):
        logits = net.apply({"params": mparams}, (feats - mean) / std)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target))

    def step(mparams, opt_state, mean, std, feats, target):
        value, grad = jax.value_and_grad(loss_fn)(mparams, mean, std, feats, target)
        updates, opt_state = opt.update(grad, opt_state, mparams)
        return optax.apply_updates(mparams, updates), opt_state, value

    return opt, jax.jit(step)


def train_distill(model: lambda_model.LambdaModel, feats, lam_star, *, steps: int, batch_size: int = 64,
                  learning_rate: float = 1e-3, seed: int = 0) -> tuple:
    """Adam on the model's weights for `steps` steps of regression onto lam_star [N, S] from raw features
    feats [N, F] (minibatches drawn by default_rng([seed, step])). -> (model, curve [steps] batch-mean BCE).
    FloatingPointError on a non-finite loss."""
    feats, lam_star = np.asarray(feats, np.float32), np.clip(np.asarray(lam_star, np.float32), 0.0, 1.0)
    if feats.shape[0] != lam_star.shape[0] or lam_star.shape[1] != sum(model.dims):
        raise ValueError(f"lam_star must be [{feats.shape[0]}, {sum(model.dims)}], got {lam_star.shape}")
    opt, step_fn = _distill_step(model.net, float(learning_rate))
    mparams, opt_state, curve, bsz = model.params, opt.init(model.params), [], min(batch_size, len(feats))
    for k in range(steps):
        idx = np.sort(np.random.default_rng([seed, k]).choice(len(feats), bsz, replace=False))
        mparams, opt_state, value = step_fn(mparams, opt_state, model.mean, model.std, feats[idx], lam_star[idx])
        curve.append(float(value))
        if not np.isfinite(curve[-1]):
            raise FloatingPointError(f"non-finite distillation loss at step {k}; try a smaller learning rate")
    return dataclasses.replace(model, params=mparams), np.asarray(curve, np.float32)
