"""Training and held-out evaluation of the toyfaces judges (si_jax.world.judges) on rendered images.

Every batch is rendered on the fly from (seed, step): batch k of the training stream is images
[k·B, (k+1)·B) of world `seed`; held-out evaluation uses another seed, so no test image was seen in training.
Augmentation (noise, blur) makes the judges robust to the small artefacts of generated images.

    params, log = train(Classifier(), 'classifier', seed=1, steps=3000)
    report = evaluate(load_judges(), seed=99, num=4096)   # accuracy per attribute, nuisance MAE, IoU per part
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from si_jax.world import judges as J
from si_jax.world.factors import ATTRIBUTES, NUISANCE, PARTS
from si_jax.world.renderer import render_batch

CIRCULAR = tuple(n == "bg_hue" for n in NUISANCE)  # hue wraps around at 1


def nuisance_difference(a, b) -> jax.Array:
    """a − b for nuisance vectors [..., K], circular where the factor is (bg_hue: in (−0.5, 0.5])."""
    d = jnp.asarray(a) - jnp.asarray(b)
    circ = jnp.asarray(CIRCULAR)
    return jnp.where(circ, (d + 0.5) % 1.0 - 0.5, d)


def augment(key, images) -> jax.Array:
    """Per image: Gaussian noise of std U(0, 0.06) and, with probability 1/2, a [1, 2, 1] blur. [N,R,R,3]."""
    k1, k2, k3 = jax.random.split(key, 3)
    n = images.shape[0]
    pad = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    blur = sum(wy * wx * pad[:, 1 + dy:1 + dy + images.shape[1], 1 + dx:1 + dx + images.shape[2]]
               for dy, wy in ((-1, .25), (0, .5), (1, .25)) for dx, wx in ((-1, .25), (0, .5), (1, .25)))
    use_blur = jax.random.bernoulli(k1, 0.5, (n, 1, 1, 1))
    x = jnp.where(use_blur, blur, images)
    return x + jax.random.uniform(k2, (n, 1, 1, 1), maxval=0.06) * jax.random.normal(k3, images.shape)


def _loss(kind, module, params, batch, key):
    x = augment(key, batch["images"])
    if kind == "classifier":
        out = module.apply({"params": params}, x)
        bce = optax.sigmoid_binary_cross_entropy(out["logits"], batch["attributes"].astype(jnp.float32)).mean()
        mse = jnp.mean(jnp.square(nuisance_difference(out["nuisance"], batch["nuisance"])))
        return bce + 4.0 * mse, {"bce": bce, "nuisance_mse": mse}
    logits = module.apply({"params": params}, x)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["seg"]).mean()
    return ce, {"ce": ce}


def train(module, kind: str, *, seed: int = 1, steps: int = 3000, batch: int = 64, lr: float = 2e-3,
          init_seed: int = 0, log=print) -> tuple:
    """Train one judge ('classifier' | 'segmenter') on the render stream of world `seed`. -> (params, history)."""
    params = J.init_params(module, init_seed)
    opt = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.adamw(optax.warmup_cosine_decay_schedule(0.0, lr, min(200, steps // 10), steps),
                                  weight_decay=1e-4))
    state = opt.init(params)

    @jax.jit
    def step(params, state, k):
        data = render_batch(seed, k * batch + jnp.arange(batch), J.INPUT_RES)
        (loss, aux), grads = jax.value_and_grad(functools.partial(_loss, kind, module), has_aux=True)(
            params, data, jax.random.fold_in(jax.random.PRNGKey(init_seed + 1), k))
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss, aux

    history, start = [], time.perf_counter()
    for k in range(steps):
        params, state, loss, aux = step(params, state, k)
        if k % 250 == 0 or k == steps - 1:
            if not np.isfinite(float(loss)):
                raise FloatingPointError(f"{kind} training diverged at step {k} (loss {float(loss)})")
            rec = {"step": k, "loss": float(loss), **{a: float(v) for a, v in aux.items()},
                   "sec": round(time.perf_counter() - start, 1)}
            history.append(rec)
            log(f"  {kind} step {k}/{steps}  loss {rec['loss']:.4f}  {rec['sec']:.0f}s")
    return params, history


def evaluate(judges: "J.Judges", *, seed: int = 99, num: int = 4096, batch: int = 256) -> dict:
    """Held-out accuracy per attribute, MAE per nuisance factor and IoU per part on fresh renders of `seed`."""
    correct = np.zeros(len(ATTRIBUTES))
    abs_err = np.zeros(len(NUISANCE))
    inter, union = np.zeros(len(PARTS)), np.zeros(len(PARTS))
    for start in range(0, num, batch):
        data = render_batch(seed, np.arange(start, min(start + batch, num)), J.INPUT_RES)
        out = J.classify(judges.classifier, data["images"])
        correct += np.asarray((out["logits"] > 0) == data["attributes"]).sum(0)
        abs_err += np.abs(np.asarray(nuisance_difference(out["nuisance"], data["nuisance"]))).sum(0)
        pred, true = judges.parts(data["images"]), np.asarray(data["seg"])
        for p in range(len(PARTS)):
            inter[p] += np.sum((pred == p) & (true == p))
            union[p] += np.sum((pred == p) | (true == p))
    return {"num_images": num, "seed": seed,
            "attribute_accuracy": dict(zip(ATTRIBUTES, (correct / num).round(4).tolist())),
            "nuisance_mae": dict(zip(NUISANCE, (abs_err / num).round(4).tolist())),
            "part_iou": dict(zip(PARTS, (inter / np.maximum(union, 1)).round(4).tolist()))}


def train_judges(out_dir, *, classifier_steps: int, segmenter_steps: int, batch: int = 64, seed: int = 1,
                 eval_seed: int = 99, eval_num: int = 4096, command: str = "", log=print,
                 overwrite: bool = False) -> dict:
    """Train both judges, evaluate them on held-out renders, write the two safetensors files. -> report dict.

    Each file's metadata records the command, the training settings, its fingerprint and the held-out report.
    Before training: out_dir must be an existing writable folder, and the two files must not exist unless
    `overwrite` (the shipped judges in si_jax/data are replaced only on request).
    """
    import errno
    import os
    import pathlib

    out_dir = pathlib.Path(out_dir)
    if classifier_steps <= 0 or segmenter_steps <= 0 or batch <= 0 or eval_num <= 0:
        raise ValueError("steps, batch and eval_num must be positive")
    if seed == eval_seed:
        raise ValueError("the evaluation seed must differ from the training seed (held-out images)")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--output_dir {out_dir} is a file, not a folder; give a folder")
    if not out_dir.is_dir():
        raise FileNotFoundError(f"--output_dir {out_dir} does not exist; create it first")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "no permission", str(out_dir))
    for name in (J.CLASSIFIER_FILE, J.SEGMENTER_FILE):
        if (out_dir / name).exists() and not overwrite:
            raise FileExistsError(f"{out_dir / name} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    cls, cls_hist = train(J.Classifier(), "classifier", seed=seed, steps=classifier_steps, batch=batch, log=log)
    seg, seg_hist = train(J.Segmenter(), "segmenter", seed=seed, steps=segmenter_steps, batch=batch, log=log)
    report = evaluate(J.Judges(cls, seg), seed=eval_seed, num=eval_num)
    report["train_seconds"] = round(time.perf_counter() - start, 1)
    settings = {"seed": seed, "batch": batch, "classifier_steps": classifier_steps,
                "segmenter_steps": segmenter_steps}
    for name, params, hist in (("classifier", cls, cls_hist), ("segmenter", seg, seg_hist)):
        J.save_params(out_dir / (J.CLASSIFIER_FILE if name == "classifier" else J.SEGMENTER_FILE), params,
                      {"kind": name, "command": command, "settings": settings, "heldout": report,
                       "history": hist[-3:]})
    return report
