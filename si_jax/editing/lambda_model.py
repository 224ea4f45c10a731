"""A learned per-image Λ: one synthesis per edit instead of (steps + 1) × L generator passes (issue 22).

    model = init_model(cfg, feats)                                  # feats: features(...) of the training images
    model, curve = train_amortised(params, cfg, model, data, config, steps=150)   # the intervention's own loss
    lam = predict(model, styles, ds_z, ds_n, mask)                  # list of [B, dim_l] in [0, 1]
    out = edit_predicted(params, cfg, model, batch, mask, config, refine_steps=0)
    save_model(path, model, meta); model = load_model(path, expect=identity(...))

Features of one image (`features`): its styles s, Δs_z and Δs_n (flat, [S] each) and its mask averaged over a
MASK_GRID × MASK_GRID grid; standardised with the training set's mean / std (stored in the model). Network: an
MLP (`LambdaNet`) whose last layer starts at zero, plus one learned bias per channel:
Λ = sigmoid(bias + MLP(x)). At initialisation it is therefore one shared Λ (0.5 everywhere), and training can only
add per-image structure to it.

Training (`train_amortised`): Adam on the network's weights, minimising the batch mean of the intervention's own
objective (`intervention.objective` with every layer's Λ predicted, all layers jointly: one compiled program) over
many images. Refinement (`refine`): per-image projected Adam from the predicted Λ, K steps per layer, coarse to
fine: `intervention.intervene` started at the prediction, whose best-iterate rule keeps the refined loss never
above the predicted one.

The file (`save_model`): safetensors of the weights and the feature normalisation, JSON metadata (`meta`):
generator fingerprint, direction digest, mask source, objective and its settings, training images. `load_model`
with `expect` refuses a model made for another generator, direction or objective (one line naming both).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from si_jax import storage
from si_jax.editing import intervention, loops
from si_jax.stylegan2.config import G2Config

FILE_FORMAT, FILE_VERSION = "si_jax.lambda_model", 1
MASK_GRID = 8
HIDDEN = (256, 256)
OBJECTIVE_FIELDS = ("pixel_loss", "lambda_inside", "lambda_attr", "lambda_norm")   # what the model was trained on


class LambdaNet(nn.Module):
    """x [B, F] (standardised features) -> Λ logits [B, S]: MLP with a zero-initialised last layer + per-channel
    bias."""

    style_dim: int
    hidden: tuple = HIDDEN

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.gelu(nn.Dense(h)(x))
        out = nn.Dense(self.style_dim, kernel_init=nn.initializers.zeros)(x)
        return out + self.param("channel_bias", nn.initializers.zeros, (self.style_dim,))


@dataclasses.dataclass
class LambdaModel:
    """params: LambdaNet's; mean, std: [F] feature normalisation; dims: the generator's layer dims; meta: the
    file's JSON metadata (see module docstring)."""

    params: dict
    mean: np.ndarray
    std: np.ndarray
    dims: tuple
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def net(self) -> LambdaNet:
        return LambdaNet(sum(self.dims), tuple(self.meta.get("hidden", HIDDEN)))


# ------------------------------------------------------------------------------------------------ features

def mask_grid(mask, grid: int = MASK_GRID):
    """mask [B, R, R] -> [B, grid²]: the fraction of each grid cell inside the mask (R a multiple of grid)."""
    b, r = mask.shape[0], mask.shape[-1]
    k = max(r // grid, 1)
    m = jnp.asarray(mask, jnp.float32).reshape(b, r // k, k, r // k, k).mean((2, 4))
    return m.reshape(b, -1)


def features(styles, ds_z, ds_n, mask):
    """Raw features [B, 3S + MASK_GRID²]: s, Δs_z, Δs_n (lists of [B, dim_l]) and the mask grid ([B, R, R])."""
    return jnp.concatenate([*styles, *ds_z, *ds_n, mask_grid(mask)], axis=-1)


def init_model(cfg: G2Config, feats, seed: int = 0, hidden: tuple = HIDDEN) -> LambdaModel:
    """A fresh model for this generator, normalised by the training features feats [N, F] (Λ = 0.5 everywhere)."""
    feats = np.asarray(feats, np.float32)
    dims = tuple(layer.dim for layer in cfg.layers)
    net = LambdaNet(sum(dims), tuple(hidden))
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, feats.shape[1])))["params"]
    std = feats.std(0)
    return LambdaModel(params, feats.mean(0), np.where(std > 1e-6, std, 1.0).astype(np.float32), dims,
                       {"hidden": list(hidden)})


def _lam_flat(net, params, mean, std, feats):
    return jax.nn.sigmoid(net.apply({"params": params}, (feats - mean) / std))


def split(flat, dims) -> list:
    """[B, S] -> list of [B, dim_l]."""
    return jnp.split(flat, np.cumsum(dims)[:-1], axis=-1)


@functools.lru_cache(maxsize=None)
def _predict_program(net: LambdaNet):
    return jax.jit(lambda params, mean, std, feats: _lam_flat(net, params, mean, std, feats))


def predict(model: LambdaModel, styles, ds_z, ds_n, mask) -> list:
    """Λ for a batch: styles, ds_z, ds_n lists of [B, dim_l], mask [B, R, R] -> list of [B, dim_l] in [0, 1]."""
    flat = _predict_program(model.net)(model.params, model.mean, model.std, features(styles, ds_z, ds_n, mask))
    return split(flat, model.dims)


# ------------------------------------------------------------------------------------------------ objective

def losses(params, cfg: G2Config, lam, styles, ds_z, ds_n, img0, img_z, mask, config) -> np.ndarray:
    """[B] the intervention objective of `config` at Λ = lam (e.g. predicted, or zeros: the Z edit)."""
    return np.asarray(loops.loss_program(cfg)(params, styles, ds_z, ds_n, lam, img0, img_z, mask,
                                              intervention.hyper_parameters(config))[0])


@dataclasses.dataclass
class TrainData:
    """The training images of one (generator, direction, mask source): styles, ds_z, ds_n lists of [N, dim_l];
    img0, img_z [N, R, R, C] (h(s), h(s + Δs_z)); mask [N, R, R]; feats [N, F] (raw `features`)."""

    styles: list
    ds_z: list
    ds_n: list
    img0: np.ndarray
    img_z: np.ndarray
    mask: np.ndarray
    feats: np.ndarray

    def take(self, idx) -> tuple:
        cut = lambda lst: [a[idx] for a in lst]  # noqa: E731
        return cut(self.styles), cut(self.ds_z), cut(self.ds_n), self.img0[idx], self.img_z[idx], self.mask[idx], \
            self.feats[idx]

    def __len__(self):
        return len(self.feats)


@functools.lru_cache(maxsize=None)
def _train_step(cfg: G2Config, net: LambdaNet, learning_rate: float):
    opt = optax.adam(learning_rate)

    def loss_fn(mparams, gparams, mean, std, styles, ds_z, ds_n, img0, img_z, mask, feats, hp):
        lam = split(_lam_flat(net, mparams, mean, std, feats), [s.shape[-1] for s in styles])
        return jnp.mean(loops.loss_program(cfg)(gparams, styles, ds_z, ds_n, lam, img0, img_z, mask, hp)[0])

    def step(mparams, opt_state, gparams, mean, std, batch, hp):
        value, grad = jax.value_and_grad(loss_fn)(mparams, gparams, mean, std, *batch, hp)
        updates, opt_state = opt.update(grad, opt_state, mparams)
        return optax.apply_updates(mparams, updates), opt_state, value

    return opt, jax.jit(step)


def train_amortised(params, cfg: G2Config, model: LambdaModel, data: TrainData, config, *, steps: int,
                    batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0, start: int = 0,
                    opt_state=None, curve=(), on_step=None) -> tuple:
    """Adam on the model's weights for `steps` steps (resuming at step `start` with `opt_state` and `curve`),
    minibatches of `batch_size` training images drawn from `data` by default_rng([seed, step]).
    on_step(step, loss, model, opt_state, curve): called after every step (progress, checkpoints).
    -> (model with trained params, opt_state, curve [steps] batch-mean loss per step). FloatingPointError on a
    non-finite loss."""
    opt, step_fn = _train_step(cfg, model.net, float(learning_rate))
    opt_state = opt.init(model.params) if opt_state is None else opt_state
    hp = intervention.hyper_parameters(config)
    mparams, curve, bsz = model.params, list(curve), min(batch_size, len(data))
    for k in range(start, steps):
        idx = np.sort(np.random.default_rng([seed, k]).choice(len(data), bsz, replace=False))
        mparams, opt_state, value = step_fn(mparams, opt_state, params, model.mean, model.std, data.take(idx), hp)
        value = float(value)
        if not np.isfinite(value):
            raise FloatingPointError(f"non-finite training loss at step {k}; try a smaller learning rate")
        curve.append(value)
        model = dataclasses.replace(model, params=mparams)
        if on_step is not None:
            on_step(k, value, model, opt_state, curve)
    return dataclasses.replace(model, params=mparams), opt_state, np.asarray(curve, np.float32)


# ------------------------------------------------------------------------------------------------ editing

def refine(params, cfg: G2Config, styles, ds_z, ds_n, mask, lam, config, steps: int, loop: str = "auto") -> list:
    """Per-image Adam from lam (list of [B, dim_l]), `steps` steps per layer coarse to fine, the other layers held
    at their current Λ (refined below, predicted above): `intervention.intervene` started at lam, so its loop
    forms and their speed are the edit's. -> refined Λ, list of [B, dim_l], its loss never above lam's."""
    config = dataclasses.replace(config, steps_per_layer=steps)
    return intervention.intervene(params, cfg, styles, ds_z, ds_n, mask, config, loop=loop, lam_start=lam).lam


def edit_predicted(params, cfg: G2Config, model: LambdaModel, batch, mask, config, refine_steps: int = 0):
    """Edit an EditBatch with the predicted Λ (refine_steps = 0: one synthesis) or with `refine` from it.
    -> pipeline.EditOutput (styles, image, lam)."""
    from si_jax.editing import pipeline

    lam = predict(model, batch.styles, batch.ds_z, batch.ds_n, mask)
    if refine_steps > 0:
        lam = refine(params, cfg, batch.styles, batch.ds_z, batch.ds_n, mask, lam, config, refine_steps)
    styles, image = intervention.apply_lambda(params, cfg, batch.styles, batch.ds_z, batch.ds_n, lam)
    return pipeline.EditOutput(styles, image, lam)


# ------------------------------------------------------------------------------------------------ identity, file

def direction_digest(dirs: dict) -> str:
    """Content hash of the S / Z / W directions that make Δs_z and Δs_n (normals, standardisation, weights and
    intercepts): the same for a direction file and the demo's fitted directions with equal values."""
    arrays = {}
    for key in sorted(dirs):
        d = dirs[key]
        arrays.update({f"{key}/{f}": getattr(d, f) for f in ("normal", "mean", "scale", "coef")})
        arrays[f"{key}/intercept"] = np.array([d.intercept])
    return storage.fingerprint(arrays)


def objective_of(config) -> dict:
    """The objective's settings a model is tied to (a model trained for one objective predicts its optimum)."""
    return {k: getattr(config, k) for k in OBJECTIVE_FIELDS}


def identity(generator_id: str, dirs: dict, config) -> dict:
    """What a model must match to be used: {'generator_id', 'direction_digest', 'objective'}."""
    return {"generator_id": generator_id, "direction_digest": direction_digest(dirs), "objective": objective_of(config)}


def check_identity(meta: dict, expect: dict, where) -> None:
    """ValueError (one line) naming the first of generator, direction, objective that differs."""
    names = {"generator_id": ("generator", "--weights"), "direction_digest": ("direction", "--direction"),
             "objective": ("objective", "--objective / --lambda_inside")}
    for key, (what, flag) in names.items():
        have, want = meta.get(key), expect[key]
        if key == "objective" and isinstance(have, dict):
            have = {k: have.get(k) for k in want}
        if have != want:
            raise ValueError(f"{where} was trained for another {what} ({_short(have)}, this run's {flag} gives "
                             f"{_short(want)}); fit one for it with bin/fit_lambda.py")


def _short(v) -> str:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)


def model_bytes(model: LambdaModel) -> bytes:
    """The safetensors file of a model: weights 'net/...', 'feature_mean', 'feature_std'; metadata 'si_jax'
    (JSON: format, version, dims, and model.meta)."""
    from safetensors.numpy import save

    tensors = {f"net/{k}": v.astype(np.float32) for k, v in storage.flat_dict(jax.device_get(model.params)).items()}
    tensors.update(feature_mean=np.asarray(model.mean, np.float32), feature_std=np.asarray(model.std, np.float32))
    header = {**model.meta, "format": FILE_FORMAT, "version": FILE_VERSION, "dims": list(model.dims)}
    return save(tensors, metadata={"si_jax": json.dumps(header)})


def save_model(path, model: LambdaModel) -> None:
    storage.write_atomic(path, model_bytes(model))


def load_model(path, expect: dict | None = None) -> LambdaModel:
    """A file of `save_model` -> LambdaModel (never runs code from it). expect: `identity(...)` of the run; a
    model for another generator, direction or objective is refused (ValueError, one line)."""
    from safetensors import SafetensorError, safe_open

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--lambda_model {path}: file not found")
    try:
        with safe_open(os.fspath(path), "numpy") as f:
            header = json.loads((f.metadata() or {}).get("si_jax", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable si_jax lambda model: {str(e).splitlines()[0]}") from None
    storage.check_format_header(header, path, "lambda model", FILE_FORMAT, FILE_VERSION)
    if expect is not None:
        check_identity(header, expect, path)
    tree = storage.nested_dict({k[4:]: jnp.asarray(v) for k, v in tensors.items() if k.startswith("net/")})
    if "feature_mean" not in tensors or "feature_std" not in tensors or not tree:
        raise ValueError(f"{path}: lambda model is incomplete (no weights or feature normalisation)")
    dims = tuple(int(d) for d in header["dims"])
    meta = {k: v for k, v in header.items() if k not in ("format", "version", "dims")}
    model = LambdaModel(tree, tensors["feature_mean"], tensors["feature_std"], dims, meta)
    if not all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree_util.tree_leaves(tree)):
        raise ValueError(f"{path}: lambda model weights contain NaN or inf")
    return model
