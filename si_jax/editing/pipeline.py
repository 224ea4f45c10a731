"""One batch of edits, every method on the same footing: what the binaries and the README example call.

    batch = prepare(params, cfg, z, directions)            # s = f(z), Δs_z, Δs_n for each image
    out = run_method(params, cfg, batch, 'intervention', mask)
    batch = prepare_from_codes(params, cfg, styles, w_ref, directions)   # projected codes (no z): see there

directions: {'s': Direction, 'z': Direction, 'w': Direction} of one attribute (see si_jax.editing.directions);
`condition_on`: Z-space Directions of other attributes, for the InterFaceGAN conditional baseline.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from si_jax.editing import edits, intervention
from si_jax.stylegan2 import programs
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace

METHODS = ("intervention", "z", "w", "interfacegan", "s")
CODE_METHODS = ("intervention", "w", "interfacegan", "s")   # the methods of a batch without z (prepare_from_codes)


@dataclasses.dataclass
class EditBatch:
    """z: [B, z_dim]; w: [B, w_dim]; styles, ds_z, ds_n: lists of [B, dim_l] (device arrays placed like the z or
    codes given to `prepare` / `prepare_from_codes`); alpha_z, beta: [B] (numpy).

    From projected codes (`prepare_from_codes`): z is None, w is the codes' reference w, and ds_z / alpha_z are
    the W-space edit and its step (the latent edit that the intervention localises)."""

    z: jax.Array
    w: jax.Array
    styles: list
    ds_z: list
    ds_n: list
    alpha_z: np.ndarray
    beta: np.ndarray

    @property
    def target_sign(self) -> np.ndarray:
        """[B] float32 ±1: the side of the attribute each image is edited towards (the sign of the latent step
        alpha_z: +1 adds the attribute, the classifiers' positive class; −1 removes it)."""
        return np.where(np.asarray(self.alpha_z) >= 0, 1.0, -1.0).astype(np.float32)


@dataclasses.dataclass
class EditOutput:
    """styles: edited styles (list of [B, dim_l]); image: [B, R, R, C]; lam: Λ* (intervention only) or None."""

    styles: list
    image: np.ndarray
    lam: list | None = None
    result: intervention.InterventionResult | None = None


def _need(directions: dict, space: str, method: str):
    if space not in directions:
        raise ValueError(f"method '{method}' needs a {space.upper()}-space direction; the direction file has "
                         f"{', '.join(sorted(directions)) or 'none'}")
    return directions[space]


def prepare(params, cfg: G2Config, z, directions: dict, *, truncation_psi: float = 1.0, target="flip",
            distance: float = 3.0, s_scale: float | None = None) -> EditBatch:
    """s = f(z), Δs_z (Z edit to the target distance) and Δs_n (S normal scaled to match Δs_z's score change).

    z: [B, z_dim], numpy or a jax.Array. Placement: every device array of the batch (z, w, styles, ds_z, ds_n) is
    placed like z: give z sharded over a mesh (`engines.runs.shard_batch`) and params replicated on it, and the
    whole batch is computed sharded, nothing gathered on one device (the SVM step lengths are computed on host).
    """
    z_host = np.asarray(z, np.float32)
    if z_host.ndim != 2 or z_host.shape[1] != cfg.z_dim:
        raise ValueError(f"latents must have shape [N, {cfg.z_dim}], got {z_host.shape}")
    if not np.all(np.isfinite(z_host)):
        raise ValueError("latents contain NaN or infinite values")
    dz, ds = _need(directions, "z", "intervention"), _need(directions, "s", "intervention")
    edits.check_dim(ds, cfg.style_dim, "S")
    space = StyleSpace.of(cfg)
    put = placed_like(z)
    z = put(z_host) if not isinstance(z, jax.Array) else z.astype(jnp.float32)
    w = programs.mapping_program(cfg, truncation_psi)(params, z)
    styles = programs.styles_program(cfg)(params, w)
    alpha = edits.step_lengths(dz, z_host, target, distance)
    ds_z = edits.delta_s_z(params, cfg, z, dz, alpha, truncation_psi)
    beta = (np.full(len(z_host), s_scale, np.float32) if s_scale is not None
            else edits.matched_scale(ds, np.asarray(space.concat(ds_z))))
    ds_n = [put(a) for a in space.split(edits.delta_s_n(ds, beta))]
    return EditBatch(z, w, styles, ds_z, ds_n, alpha, beta)


def placed_like(ref):
    """-> put(host array) placing it like `ref`: on ref's sharding when ref is a jax.Array (e.g. a batch sharded
    over a mesh: put(x [B, ...]) is split along its first axis the same way), else `jnp.asarray` (default device).
    """
    if isinstance(ref, jax.Array):
        return lambda x: jax.device_put(np.asarray(x), ref.sharding)
    return jnp.asarray


def prepare_from_codes(params, cfg: G2Config, styles, w_ref, directions: dict, *, target="flip",
                       distance: float = 3.0, s_scale: float | None = None) -> EditBatch:
    """An EditBatch for codes that have no z (images projected into W, W+ or S: si_jax.projection).

    styles: flat [B, S] or a list of [B, dim_l] (the codes' styles); w_ref: [B, w_dim], the w at which W-space
    distances are measured (projection.reference_w: the least-squares pre-image of the styles).
    The latent edit is the W-space one: Δs_z := Δs_w = A(w_ref + α·n_w) − A(w_ref), α from the W classifier's
    distance at w_ref (`target`, `distance` as in `prepare`). The affine layers are linear, so this is the same
    displacement as moving every layer's w of a W+ code by α·n_w. Δs_n is scaled to match it, as in `prepare`.
    Method 'z' has no meaning here (CODE_METHODS); 'interfacegan' conditions the W normal instead of the Z one.
    Placement as in `prepare`, by w_ref: give styles and w_ref sharded over a mesh and the batch stays sharded.
    """
    space = StyleSpace.of(cfg)
    put = placed_like(w_ref)
    if not isinstance(styles, (list, tuple)):
        flat = styles if isinstance(styles, jax.Array) else put(np.asarray(styles, np.float32))
        styles = programs.split_program(cfg)(flat)
    styles = [s.astype(jnp.float32) if isinstance(s, jax.Array) else put(np.asarray(s, np.float32)) for s in styles]
    w_host = np.asarray(w_ref, np.float32)
    if w_host.shape != (styles[0].shape[0], cfg.w_dim):
        raise ValueError(f"w_ref must have shape [{styles[0].shape[0]}, {cfg.w_dim}], got {w_host.shape}")
    if not all(np.all(np.isfinite(np.asarray(s))) for s in styles) or not np.all(np.isfinite(w_host)):
        raise ValueError("codes contain NaN or infinite values")
    dw, ds = _need(directions, "w", "intervention"), _need(directions, "s", "intervention")
    edits.check_dim(ds, cfg.style_dim, "S")
    w_ref = w_ref.astype(jnp.float32) if isinstance(w_ref, jax.Array) else put(w_host)
    alpha = edits.step_lengths(dw, w_host, target, distance)
    ds_w = edits.delta_s_w(params, cfg, w_ref, dw, alpha)
    beta = (np.full(len(w_host), s_scale, np.float32) if s_scale is not None
            else edits.matched_scale(ds, np.asarray(space.concat(ds_w))))
    ds_n = [put(a) for a in space.split(edits.delta_s_n(ds, beta))]
    return EditBatch(None, w_ref, styles, ds_w, ds_n, alpha, beta)


def baseline_delta(params, cfg: G2Config, batch: EditBatch, method: str, directions: dict, *, target="flip",
                   distance: float = 3.0, condition_on=()) -> list:
    """Δs of a baseline: 'z' (Δs_z), 's' (Δs_n, i.e. Λ = 1), 'w' (W-space edit to the W classifier's target),
    'interfacegan' (Z edit along the normal made orthogonal to the `condition_on` attributes' Z normals)."""
    if method == "z":
        if batch.z is None:
            raise ValueError("method 'z' needs z latents; projected codes have none (their latent edit is the "
                             "W-space one: use method 'w')")
        return batch.ds_z
    if method == "s":
        return batch.ds_n
    if method == "w":
        dw = _need(directions, "w", method)
        edits.check_dim(dw, cfg.w_dim, "W")
        return edits.delta_s_w(params, cfg, batch.w, dw, edits.step_lengths(dw, batch.w, target, distance))
    if method == "interfacegan":
        from si_jax.editing.directions import conditional_direction

        if batch.z is None:
            return _conditional_w_delta(params, cfg, batch, directions, target, distance, condition_on)
        dz = _need(directions, "z", method)
        if not condition_on:
            raise ValueError("method 'interfacegan' needs Z directions of other attributes to condition on")
        normal = conditional_direction(dz.normal, [d.normal for d in condition_on]).astype(np.float32)
        alpha = edits.step_lengths(dz, batch.z, target, distance, along=normal)
        cond = dataclasses.replace(dz, normal=normal)
        return edits.delta_s_z(params, cfg, batch.z, cond, alpha)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def _conditional_w_delta(params, cfg, batch: EditBatch, directions: dict, target, distance, condition_on) -> list:
    """InterFaceGAN's conditional edit for codes without z: the W normal made orthogonal to the `condition_on`
    attributes' W normals (Directions of dimension w_dim), stepped from batch.w."""
    from si_jax.editing.directions import conditional_direction

    dw = _need(directions, "w", "interfacegan")
    if not condition_on:
        raise ValueError("method 'interfacegan' needs W directions of other attributes to condition on")
    for d in condition_on:
        edits.check_dim(d, cfg.w_dim, "W")
    normal = conditional_direction(dw.normal, [d.normal for d in condition_on]).astype(np.float32)
    alpha = edits.step_lengths(dw, batch.w, target, distance, along=normal)
    return edits.delta_s_w(params, cfg, batch.w, dataclasses.replace(dw, normal=normal), alpha)


def run_method(params, cfg: G2Config, batch: EditBatch, method: str, mask=None, directions: dict | None = None,
               config: intervention.InterventionConfig = intervention.InterventionConfig(), *, target: str = "flip",
               distance: float = 3.0, condition_on=(), return_layer_images: bool = False, on_layer=None,
               on_compiled=None, loop: str = "auto") -> EditOutput:
    """Edit the batch with one method. mask [B, R, R] is needed by 'intervention' only (return_layer_images,
    on_layer, on_compiled and loop go to `intervention.intervene`); the baselines read directions, target,
    distance and condition_on (`baseline_delta`)."""
    if method == "intervention":
        if mask is None:
            raise ValueError("method 'intervention' needs a mask")
        res = intervention.intervene(params, cfg, batch.styles, batch.ds_z, batch.ds_n, mask, config,
                                     return_layer_images=return_layer_images, on_layer=on_layer,
                                     on_compiled=on_compiled, loop=loop)
        return EditOutput(res.styles, res.image, res.lam, res)
    delta = baseline_delta(params, cfg, batch, method, directions or {}, target=target, distance=distance,
                           condition_on=condition_on)
    styles = [s + d for s, d in zip(batch.styles, delta)]
    return EditOutput(styles, np.asarray(programs.synth_program(cfg)(params, styles)))
