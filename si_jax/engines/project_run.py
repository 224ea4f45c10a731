"""Projection of a folder of images into W, W+ and S: the engine behind `bin/project.py`, and its output folder.

Folder layout (a `si_jax.engines.runs.RunDir`; re-running the same command resumes):

    run.json                 the settings (generator fingerprint, projector settings, the images' digest)
    shards/shard_XXXXX.npz   images [k·B, (k+1)·B): `index` [n], `target` [n, R, R, 3], and per code space SP
                             (w, wplus, s): `code_SP` [n, *code_shape], `styles_SP` [n, S] (flat),
                             `recon_SP` [n, R, R, 3], `loss_SP` / `mse_SP` [n, num_steps] (curves),
                             `psnr_SP` / `ssim_SP` [n]; with --noise=optimize `noise_SP_L` [n, R_l, R_l]
    images/XXXXXX.png        image i: input | reconstruction in each space (8-bit, [-1, 1])
    codes.npz                when every shard exists: all shards' arrays concatenated, plus `names` [N]
    recon_grid.png, loss_curves.png   the first images (rows: input, then each space) and the mean loss curves
    index.html, per_image.csv         per image: PSNR / SSIM in each space, sortable, low PSNR flagged
                                      (evaluation.report)
    projection.json          written last, with the others: format header, generator id, image names and the
                             conversion notes of each, the settings, mean PSNR / SSIM / final MSE per space.
                             The folder is complete iff it is there; `load_codes` reads it (bin/edit.py --codes).

Every file is a function of the settings and the images (each image's randomness comes from its index), so a
killed and resumed run writes the same bytes. Nothing is written for a shard whose arrays are not all finite.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from si_jax import metrics, projection, storage
from si_jax.editing import batches
from si_jax.engines import checks, errors, hosts, runs
from si_jax.evaluation import pictures, report

FORMAT, VERSION = "si_jax.projection", 1
MANIFEST, CODES = "projection.json", "codes.npz"
GRID_IMAGES = 8
DATA_RANGE = 2.0   # PSNR / SSIM range of images in [-1, 1]


@dataclasses.dataclass(frozen=True)
class ProjectSettings:
    """Everything (besides the generator, the images and the optional loss networks) that fixes the outputs."""

    projector: projection.ProjectConfig = dataclasses.field(default_factory=projection.ProjectConfig)
    spaces: tuple = projection.SPACES
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self):
        """UsageError naming the first bad setting (checked before anything is loaded or created)."""
        req, pc = checks.require, self.projector
        req(len(self.spaces) > 0 and all(s in projection.SPACES for s in self.spaces)
            and len(set(self.spaces)) == len(self.spaces), "spaces", ",".join(self.spaces),
            f"must be distinct names from {', '.join(projection.SPACES)}")
        for name, value in (("batch_size", self.batch_size), ("num_steps", pc.num_steps)):
            req(checks.is_int(value) and value >= 1, name, value, "must be an integer >= 1")
        req(checks.is_int(self.seed) and self.seed >= 0, "seed", self.seed, "must be an integer >= 0")
        req(pc.noise in projection.NOISE_MODES, "noise", pc.noise, f"must be one of {', '.join(projection.NOISE_MODES)}")
        floats = {f.name: getattr(pc, f.name) for f in dataclasses.fields(pc) if f.name not in ("num_steps", "noise")}
        checks.check_finite_flags(**floats)
        for name, value in floats.items():
            req(value >= 0, name, value, "must be >= 0")
        req(pc.learning_rate > 0, "learning_rate", pc.learning_rate, "must be > 0")
        for name in ("lr_rampup", "lr_rampdown", "code_noise_ramp"):
            req(getattr(pc, name) <= 1, name, getattr(pc, name), "must be in [0, 1] (a fraction of the steps)")
        req(pc.lambda_pixel + pc.lambda_multiscale + pc.lambda_vgg + pc.lambda_judge > 0, "lambda_pixel",
            pc.lambda_pixel, "and every other loss weight are 0: nothing to optimise")

    def hint(self) -> str:
        pc = self.projector
        return errors.likely_cause(learning_rate=pc.learning_rate, noise_reg=pc.noise_reg, code_noise=pc.code_noise)

    def to_json(self) -> dict:
        return {"projector": dataclasses.asdict(self.projector), "spaces": list(self.spaces),
                "batch_size": self.batch_size, "seed": self.seed}


def project_shard(params, cfg, stats, aux, targets, positions, st: ProjectSettings, mesh) -> dict:
    """Project one padded batch. targets [B, R, R, 3], positions [B] (image indices) -> per-image arrays."""
    keys = projection.image_keys(st.seed, positions)
    t, k = jnp.asarray(targets), keys
    if mesh.devices.size > 1:
        t, k = runs.shard_batch((t, k), mesh)
    out = {"target": np.asarray(targets, np.float32)}
    for space in st.spaces:
        res = projection.project_batch(params, cfg, stats, aux, t, k, space, st.projector)
        recon = np.asarray(res.image, np.float32)
        out.update({f"code_{space}": np.asarray(res.code, np.float32),
                    f"styles_{space}": projection.flat_styles_of_codes(params, cfg, np.asarray(res.code), space),
                    f"recon_{space}": recon, f"loss_{space}": np.asarray(res.loss, np.float32),
                    f"mse_{space}": np.asarray(res.pixel_mse, np.float32),
                    f"psnr_{space}": np.asarray(metrics.psnr(recon, targets, data_range=DATA_RANGE), np.float32),
                    f"ssim_{space}": np.asarray(metrics.ssim(recon, targets, data_range=DATA_RANGE), np.float32)})
        if st.projector.noise == "optimize":
            out.update({f"noise_{space}_{i}": np.asarray(b, np.float32) for i, b in enumerate(res.noise)})
    return out


def _write_shard(run: runs.RunDir, k: int, positions, arrays: dict, spaces) -> None:
    """Shard k's PNGs, then its shard file (on the writer thread, `runs.ShardWriter`)."""
    run.create()
    (run.path / "images").mkdir(exist_ok=True)
    for row, i in enumerate(positions):
        _save_png(run, i, arrays, row, spaces)
    run.write_shard(k, index=positions, **arrays)


def _save_png(run: runs.RunDir, i: int, arrays: dict, row: int, spaces) -> None:
    tiles = [pictures.to_uint8(arrays["target"][row])] + [pictures.to_uint8(arrays[f"recon_{s}"][row]) for s in spaces]
    pictures.save_png(run.path / "images" / f"{int(i):06d}.png",
                      pictures.grid([tiles], scale=pictures.upscale_for_viewing(tiles[0].shape[0])))


def run_projection(run: runs.RunDir, params, cfg, folder: projection.ImageFolder, st: ProjectSettings,
                   aux: projection.ProjectAux, meta: dict, log=print) -> dict:
    """Project every image of `folder` into `run`, skipping finished shards; -> the manifest once all exist.
    aux: the loss terms' networks (VGG16 layers, judge classifier params; None leaves a term out); meta: JSON-able
    facts for the manifest (generator id, weights). None on processes other than 0 (one process projects:
    bin/project.py)."""
    mesh = runs.local_mesh()
    n = len(folder.images)
    bsz = runs.fit_batch_size(st.batch_size, n, mesh)
    if bsz != st.batch_size:
        raise ValueError(f"--batch_size={st.batch_size} must be capped at {bsz} for {n} images (runs.fit_batch_size)")
    num_shards = -(-n // bsz)
    stats = projection.code_stats(params, cfg)
    if run.pending(num_shards):
        log(f"compiling one projection program per space ({', '.join(st.spaces)}) with the first batch "
            f"({hosts.compile_note()})")

    def compute(k, positions):
        return project_shard(params, cfg, stats, aux, batches.pad_batch(folder.images[positions], bsz).array,
                             batches.pad_batch(positions, bsz).array, st, mesh)

    if not runs.run_shards(run, n, bsz, compute, functools.partial(_write_shard, run, spaces=st.spaces),
                           hint=st.hint(), barrier_name="si_jax.project.done", log=log,
                           heartbeat=lambda pos: f"projecting images {pos[0]}-{pos[-1]} ({st.projector.num_steps} "
                           f"steps in each of {len(st.spaces)} spaces)"):
        return None
    return finish(run, num_shards, folder, st, meta)


def finish(run: runs.RunDir, num_shards: int, folder: projection.ImageFolder, st: ProjectSettings,
           meta: dict) -> dict:
    """codes.npz, recon_grid.png, loss_curves.png and projection.json, written together (deterministic)."""
    allv = run.read_all(num_shards)
    outputs = storage.Outputs()
    outputs.add(run.path / CODES, storage.npz_bytes(names=np.asarray(folder.names), **allv))
    m = min(GRID_IMAGES, len(allv["index"]))
    rows = [[pictures.to_uint8(x) for x in allv[key][:m]] for key in ["target"] + [f"recon_{s}" for s in st.spaces]]
    names = ", ".join(projection.SPACE_NAMES[s] for s in st.spaces)
    outputs.add(run.path / "recon_grid.png", pictures.png_bytes(
        pictures.grid(rows, scale=pictures.upscale_for_viewing(allv["target"].shape[1])),
        caption=f"rows: input, then the reconstruction in {names}"))
    curves = {projection.SPACE_NAMES[s]: np.log10(np.maximum(allv[f"loss_{s}"].mean(axis=0), 1e-12))
              for s in st.spaces}
    outputs.add(run.path / "loss_curves.png", pictures.png_bytes(pictures.line_plot(
        curves, title="log10 mean projection loss per step")))
    per_space = {s: {"psnr_mean": float(allv[f"psnr_{s}"].mean()), "psnr_std": float(allv[f"psnr_{s}"].std()),
                     "ssim_mean": float(allv[f"ssim_{s}"].mean()),
                     "final_mse_mean": float(allv[f"mse_{s}"][:, -1].mean())} for s in st.spaces}
    manifest = {"format": FORMAT, "version": VERSION, **meta, "num_images": len(allv["index"]),
                "resolution": int(allv["target"].shape[1]), "spaces": list(st.spaces),
                "noise": st.projector.noise, "images": [{"name": nm, "notes": nt} for nm, nt in
                                                        zip(folder.names, folder.notes)],
                "ignored_files": folder.ignored, "reconstruction": per_space, "settings": run.settings}
    errors.finite_numbers_or_error(per_space, "projection summary", st.hint())
    rows, columns = report.projection_rows(folder.names, [f"images/{int(i):06d}.png" for i in allv["index"]],
                                           {s: allv[f"psnr_{s}"] for s in st.spaces},
                                           {s: allv[f"ssim_{s}"] for s in st.spaces})
    outputs.add_text(run.path / "index.html", report.render_html(
        f"projection of {len(rows)} images into {names}", rows, columns,
        summary={f"{projection.SPACE_NAMES[s]} {k}": v for s, d in per_space.items() for k, v in d.items()},
        notes=[f"picture: input | reconstruction in {names}", "PSNR / SSIM of the reconstruction vs the input"]))
    outputs.add_text(run.path / "per_image.csv", report.render_csv(rows, columns))
    outputs.add_json(run.path / MANIFEST, manifest)
    run.remove_top_level_temps()
    outputs.commit()
    return manifest


def describe(manifest: dict) -> str:
    return "\n".join(f"  {projection.SPACE_NAMES[s]:>2}: PSNR {v['psnr_mean']:.2f} ± {v['psnr_std']:.2f} dB, "
                     f"SSIM {v['ssim_mean']:.3f}" for s, v in manifest["reconstruction"].items())


def note_lines(folder: projection.ImageFolder) -> list:
    """One line per kind of conversion with the number of images it applied to (what the user is told)."""
    counts: dict = {}
    for notes in folder.notes:
        for note in notes:
            key = note.split(" ")[0] if note.startswith(("resized", "centre-cropped")) else note
            counts[key] = counts.get(key, 0) + 1
    lines = [f"note: {c} image{'s' if c > 1 else ''}: {k}" + (" (to the model resolution; see projection.json)"
                                                              if k in ("resized", "centre-cropped") else "")
             for k, c in counts.items()]
    if folder.ignored:
        lines.append(f"note: {len(folder.ignored)} file(s) that are not PNG / JPEG ignored (first: {folder.ignored[0]})")
    return lines


# ------------------------------------------------------------------------------------------------ reading

def load_codes(path, space: str, generator_id: str | None = None) -> dict:
    """A finished projection folder -> {'names' [N], 'target' [N, R, R, 3], 'code' [N, *code_shape],
    'styles' [N, S], 'recon' [N, R, R, 3], 'manifest'} for one code space. ValueError naming the folder when it
    is unfinished, damaged, of another generator (`generator_id`) or lacks `space`."""
    path = pathlib.Path(path)
    projection.check_space(space)
    if not path.is_dir():
        raise FileNotFoundError(f"--codes {path}: folder not found (give the --output_dir of bin/project.py)")
    man_path = path / MANIFEST
    if not man_path.is_file():
        raise ValueError(f"--codes {path} has no {MANIFEST}: not a finished bin/project.py folder (re-run its "
                         "command to finish it)")
    try:
        manifest = json.loads(man_path.read_text())
    except ValueError as e:
        raise ValueError(f"{man_path} is damaged ({e})") from None
    storage.check_format_header(manifest, man_path, "projection folder", FORMAT, VERSION)
    fix = "the file is damaged: delete it and re-run bin/project.py's command"
    storage.check_fields(manifest, man_path, fix, spaces="list", generator_id="text")
    if not all(isinstance(s, str) for s in manifest["spaces"]):
        raise ValueError(f"{man_path}: 'spaces' is {manifest['spaces']!r}, expected a list of names; {fix}")
    if generator_id is not None and manifest.get("generator_id") != generator_id:
        raise ValueError(f"--codes {path} was projected with generator {manifest.get('generator_id')}, but the "
                         f"weights are generator {generator_id}; edit with the same weights")
    if space not in manifest["spaces"]:
        raise ValueError(f"--codes {path} holds the spaces {', '.join(manifest['spaces'])}, not {space!r}; pick one "
                         "with --space")
    try:
        with np.load(path / CODES, allow_pickle=False) as d:
            out = {"names": d["names"], "target": d["target"], "code": d[f"code_{space}"],
                   "styles": d[f"styles_{space}"], "recon": d[f"recon_{space}"]}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path / CODES} is missing or damaged ({e}); delete {MANIFEST} and re-run "
                         "bin/project.py's command") from None
    _check_code_arrays(out, path / CODES, space)
    for key in ("target", "code", "styles", "recon"):
        if not np.all(np.isfinite(out[key])):
            raise ValueError(f"{path / CODES}: {key}_{space} holds NaN or infinite values")
    out["manifest"] = manifest
    return out


def _check_code_arrays(out: dict, where, space: str) -> None:
    """The arrays of one space of codes.npz agree: names [N], target and recon [N, R, R, 3], code and styles [N, ...]
    (ValueError naming the file and the first disagreement)."""
    fix = f"delete {MANIFEST} and re-run bin/project.py's command"
    names, target = out["names"], out["target"]
    if names.ndim != 1 or target.ndim != 4 or target.shape[1] != target.shape[2] or target.shape[3] != 3:
        raise ValueError(f"{where}: names {names.shape} / target {target.shape} are not [N] / [N, R, R, 3]; {fix}")
    n = len(names)
    for key in ("target", "code", "styles", "recon"):
        if len(out[key]) != n:
            raise ValueError(f"{where}: {key}{'' if key == 'target' else '_' + space} has {len(out[key])} rows for "
                             f"{n} names; {fix}")
    if out["recon"].shape != target.shape:
        raise ValueError(f"{where}: recon_{space} {out['recon'].shape} differs from target {target.shape}; {fix}")
    if out["styles"].ndim != 2:
        raise ValueError(f"{where}: styles_{space} has shape {out['styles'].shape}, expected [N, S]; {fix}")


def describe_devices() -> str:
    return f"{jax.local_device_count()} local device(s)"
