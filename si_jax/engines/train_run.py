"""The training loop behind `bin/train.py`: settings -> a work folder with checkpoints, metrics, grids and G_ema.

    from si_jax.engines import train_run
    train_run.train(train_run.TrainSettings(resolution=32, kimg=500), workdir)

Work folder (default ~/.cache/si_jax/train/<name>):
    settings.json             the settings that fix the trained model (a resumed run must match them)
    checkpoints/ckpt_<step>/  the newest 2 checkpoints (si_jax.training.checkpoint; written atomically)
    G_ema.safetensors         G_ema + w_avg as a canonical generator (si_jax.load_generator reads it), at every
                              checkpoint and at the end
    metrics.jsonl             one JSON object per log interval: kimg, step, sec, losses, r1, pl, timing
    grid_<kimg>.png           G_ema on 64 fixed z (8 x 8, constant noise, upscaled for viewing, its kimg written
                              above), every grid_kimg (`grid_name`: 3 decimals of kimg when grid_kimg is not whole)

Re-running the same command resumes from the newest checkpoint and gives the same final state as an
uninterrupted run (every step is a pure function of the state, the settings and the step number). Only `kimg`
and the cadences (grid_kimg, checkpoint_kimg, log_every_s) may change between runs; anything else is refused
with a one-line diff. A new run creates its folder only after its first step gave finite losses; a non-finite
loss stops the run (FloatingPointError naming step and loss) before anything more is written; Ctrl-C or a kill
leaves the last checkpoint intact, and a damaged newest checkpoint is named and the previous one resumed.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time

import jax
import numpy as np
import weights_convert
from jax.sharding import Mesh

from si_jax import storage
from si_jax.engines import train_programs
from si_jax.engines.errors import UsageError
from si_jax.evaluation import pictures
from si_jax.stylegan2 import autotune
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.discriminator import DConfig
from si_jax.training import checkpoint, steps
from si_jax.training import data as data_lib
from si_jax.training import state as state_lib

SETTINGS_FILE, METRICS_FILE, GEMA_FILE, CKPT_DIR = "settings.json", "metrics.jsonl", "G_ema.safetensors", "checkpoints"
RESUMABLE = ("kimg", "grid_kimg", "checkpoint_kimg", "log_every_s")  # may change between runs of one model
GRID_SIDE = 8
INT_FIELDS = ("data_seed", "resolution", "channel_base", "channel_max", "z_dim", "w_dim", "mapping_layers", "batch",
              "g_reg_interval", "d_reg_interval", "mbstd_group", "seed")
AUTO_FIELDS = ("gamma", "ema_kimg")  # None = NVlabs 'auto'


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a training run. None = the NVlabs 'auto' value (see `effective`).

    Defaults: the shipping toyfaces generator (32 px, 64 channels at every resolution, z = w = 64 dims, 4 mapping
    layers, batch 32).
    """

    name: str = "toyfaces32"
    data: str = "toyfaces"          # 'toyfaces' (si_jax.world) | 'blobs'
    data_seed: int = 0
    resolution: int = 32
    channel_base: int = 2048
    channel_max: int = 64
    z_dim: int = 64
    w_dim: int = 64
    mapping_layers: int = 4
    batch: int = 32
    kimg: float = 1000.0
    lr: float = 0.0025
    gamma: float | None = None      # R1 weight; auto 0.0002·res²/batch
    ema_kimg: float | None = None   # G_ema half-life; auto batch·10/32
    ema_rampup: float = 0.05        # 0 = no ramp-up
    pl_weight: float = 2.0          # 0 disables the path-length regulariser
    mixing_prob: float = 0.9
    g_reg_interval: int = 4
    d_reg_interval: int = 16
    mbstd_group: int = 4
    seed: int = 0
    grid_kimg: float = 50.0
    checkpoint_kimg: float = 20.0
    log_every_s: float = 10.0

    def check(self, num_devices: int = 1) -> None:
        """UsageError naming the first bad setting (before anything is created)."""
        def bad(field, why):
            raise UsageError(f"--{field}={getattr(self, field)!r} {why}")

        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("name", "data"):
                if not isinstance(v, str) or not v:
                    bad(f.name, "must be a non-empty string")
            elif v is None and f.name in AUTO_FIELDS:
                continue
            elif f.name in INT_FIELDS:
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    bad(f.name, "must be an integer")
            elif isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v):
                bad(f.name, "must be a finite number")
        if "/" in self.name or self.name.startswith("."):
            bad("name", "must be a plain folder name")
        if self.data not in data_lib.DATASETS:
            bad("data", f"must be one of {', '.join(data_lib.DATASETS)}")
        r = self.resolution
        if r < 8 or r > 1024 or r & (r - 1):
            bad("resolution", "must be a power of two in [8, 1024]")
        for f in ("channel_base", "channel_max", "z_dim", "w_dim", "mapping_layers", "batch", "g_reg_interval",
                  "d_reg_interval", "mbstd_group"):
            if getattr(self, f) < 1:
                bad(f, "must be >= 1")
        if min(self.channel_base // r, self.channel_max) < 1:
            bad("channel_base", f"gives no channels at {r} px (channels = min(channel_base // res, channel_max))")
        for f in ("kimg", "lr", "grid_kimg", "checkpoint_kimg", "log_every_s"):
            if getattr(self, f) <= 0:
                bad(f, "must be > 0")
        if self.ema_kimg is not None and self.ema_kimg <= 0:
            bad("ema_kimg", "must be > 0")
        for f in ("gamma", "ema_rampup", "pl_weight", "seed", "data_seed"):
            if getattr(self, f) is not None and getattr(self, f) < 0:
                bad(f, "must be >= 0")
        if not 0 <= self.mixing_prob <= 1:
            bad("mixing_prob", "must be in [0, 1]")
        if self.batch % num_devices:
            bad("batch", f"must be a multiple of the {num_devices} local devices")
        group = min(self.mbstd_group, self.batch)
        if self.batch % group:
            bad("batch", f"must be a multiple of the minibatch-stddev group {group}")
        if self.pl_weight > 0 and (self.batch % 2 or (self.batch // 2) % num_devices):
            bad("batch", f"must be even, and half of it a multiple of the {num_devices} devices, for the "
                         "path-length batch (batch / 2); or pass --pl_weight=0")

    @property
    def effective(self) -> dict:
        """The 'auto' values resolved: {'gamma': ..., 'ema_kimg': ...}."""
        return {"gamma": state_lib.auto_gamma(self.resolution, self.batch) if self.gamma is None else self.gamma,
                "ema_kimg": state_lib.auto_ema_kimg(self.batch) if self.ema_kimg is None else self.ema_kimg}

    def train_config(self) -> state_lib.TrainConfig:
        g = G2Config.make(self.resolution, self.channel_base, self.channel_max, self.z_dim, self.w_dim,
                          mapping_layers=self.mapping_layers, source_format="nvlabs")
        d = DConfig.make(self.resolution, self.channel_base, self.channel_max, mbstd_group=self.mbstd_group)
        eff = self.effective
        return state_lib.TrainConfig(
            g=g, d=d, batch=self.batch, r1_gamma=float(eff["gamma"]), ema_kimg=float(eff["ema_kimg"]),
            seed=self.seed, lr=self.lr, pl_weight=self.pl_weight, style_mixing_prob=self.mixing_prob,
            g_reg_interval=self.g_reg_interval, d_reg_interval=self.d_reg_interval,
            ema_rampup=self.ema_rampup if self.ema_rampup > 0 else None)

    def steps_for(self, kimg: float) -> int:
        """Iterations that cover `kimg` thousand images (at least 1)."""
        return max(1, math.ceil(round(kimg * 1000 / self.batch, 6)))


# A tiny model of the whole recipe (toyfaces data, every regulariser, G_ema, grids, checkpoints) for people in a
# hurry and for the tests: `bin/train.py --config=smoke`. Two step programs (both regularisers on the same
# iterations) instead of three.
SMOKE = TrainSettings(name="smoke", resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16,
                      mapping_layers=2, batch=8, kimg=1.0, g_reg_interval=4, d_reg_interval=4, grid_kimg=0.5,
                      checkpoint_kimg=0.5, log_every_s=5.0)
CONFIGS = {"default": TrainSettings(), "smoke": SMOKE}


def default_workdir(name: str) -> pathlib.Path:
    return pathlib.Path.home() / ".cache" / "si_jax" / "train" / name


def _check_workdir(workdir: pathlib.Path, record: dict) -> bool:
    """Check that the folder is new / empty (-> True) or holds the same run (RESUMABLE keys may differ; -> False).
    Creates and writes nothing (see `_write_settings`)."""
    path = workdir / SETTINGS_FILE
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is a file; choose a folder")
    if path.is_file():
        fix = "delete it (or the whole --workdir) to start again"
        try:
            old = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"{path} is damaged ({e}); {fix}") from None
        if not isinstance(old, dict):
            raise UsageError(f"{path} holds {type(old).__name__} {str(old)[:40]}, not the settings of a run; {fix}")
        diff = sorted(k for k in set(old) | set(record) if k not in RESUMABLE and old.get(k) != record.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {record.get(k)!r}" for k in diff[:4])
            raise UsageError(f"{workdir} holds a training run with other settings ({shown}); use another "
                             "--workdir or --name, or delete it")
        return False
    if workdir.exists() and any(workdir.iterdir()):
        raise UsageError(f"{workdir} is not empty and holds no si_jax training run; choose another --workdir")
    return True


def _write_settings(workdir: pathlib.Path, record: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    storage.write_atomic(workdir / SETTINGS_FILE, json.dumps(record, indent=1, sort_keys=True).encode())


def _restore_latest(ckpt_dir: pathlib.Path, template, stream):
    """-> (state, meta, path) of the newest INTACT checkpoint (a damaged newer one is named, with the advice to
    delete it), or (template, None, None) when there is none. ValueError when every checkpoint is damaged."""
    damaged = []
    for path in reversed(checkpoint.all_checkpoints(ckpt_dir)):
        try:
            state, meta = checkpoint.restore(path, template)
        except ValueError as e:
            damaged.append(e)
            continue
        for e in damaged:
            print(f"note: {e}; resuming from the previous checkpoint {path}; delete the damaged folder", file=stream,
                  flush=True)
        return state, meta, path
    if damaged:
        raise ValueError(f"{damaged[0]}; no intact checkpoint is left: delete {ckpt_dir} (or the whole --workdir) "
                         "to start again")
    return template, None, None


def _truncate_metrics(path: pathlib.Path, step: int) -> None:
    """Drop metrics lines written after `step` by a run that was killed before its next checkpoint."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            pass  # a half-written last line
    storage.write_atomic(path, "".join(f"{line}\n" for line in keep).encode())


def _grid_image(state, cfg: G2Config, z) -> np.ndarray:
    """The G_ema images of z as a GRID_SIDE² grid (uint8, upscaled for viewing)."""
    img = pictures.to_uint8(np.asarray(steps.ema_program(cfg)(state.g_ema, state.w_avg, cfg, z)))
    rows = [list(img[i * GRID_SIDE:(i + 1) * GRID_SIDE]) for i in range(GRID_SIDE)]
    return pictures.grid(rows, scale=pictures.upscale_for_viewing(cfg.img_resolution))


def grid_name(settings: TrainSettings, kimg: float) -> str:
    """grid_<kimg>.png: whole kimg (grid_000050.png), or with 3 decimals when --grid_kimg is not a whole number
    (grid_000000.250.png), so that no grid overwrites another."""
    if float(settings.grid_kimg).is_integer():
        return f"grid_{int(kimg):06d}.png"
    return f"grid_{kimg:010.3f}.png"


def grid_latents(settings: TrainSettings) -> jax.Array:
    """The fixed z [64, z_dim] of the progress grids."""
    return jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(settings.seed), 777), (GRID_SIDE**2,
                                                                                          settings.z_dim))


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def train(settings: TrainSettings, workdir=None, *, data=None, on_step=None, stream=None,
          conv_library: str = "auto") -> dict:
    """Train (or resume) the run `settings` in `workdir` until settings.kimg; -> summary dict.

    conv_library: the XLA:CPU conv library of the step and grid programs (Numerics.conv_library; 'auto': XLA's
    default, not measured: on the default of one host device per core each device already runs its own convs).
    Like the host devices it changes the values only to float32 rounding, so it is not part of the run's settings:
    a run may resume with another.
    data: a dataset object overriding settings.data (frozen, with `images(step, batch)`; see
    si_jax.training.data), for tests and custom data. on_step(step): called after every iteration (tests use it
    to interrupt a run). stream: where progress lines go (stderr).
    """
    stream = stream or sys.stderr
    if jax.process_count() > 1:
        raise UsageError("multi-host training is not supported; run on one host")
    devices = jax.local_devices()
    settings.check(len(devices))
    tc = settings.train_config()
    if conv_library != "auto":
        tc = dataclasses.replace(tc, g=tc.g.with_numerics(conv_library=conv_library))   # checked by Numerics
    dataset = data if data is not None else data_lib.make_dataset(settings.data, settings.data_seed,
                                                                 settings.resolution)
    mesh = Mesh(np.asarray(devices), ("data",)) if len(devices) > 1 else None
    workdir = pathlib.Path(workdir) if workdir is not None else default_workdir(settings.name)
    record = {**dataclasses.asdict(settings), "effective": settings.effective}
    if data is not None:
        record["data"] = repr(data)
    fresh = _check_workdir(workdir, record)   # a new run creates its folder after its first good step

    ckpt_dir, metrics_path = workdir / CKPT_DIR, workdir / METRICS_FILE
    state, prev_sec, last = None, 0.0, None   # a resume restores its checkpoint into the shapes (no init work)
    if not fresh:
        checkpoint.remove_temporary(ckpt_dir)
        weights_convert.remove_temp_files(workdir / GEMA_FILE)   # left by a kill during an export
        state, meta, last = _restore_latest(ckpt_dir, jax.eval_shape(lambda: state_lib.init_state(tc)), stream)
        if last is not None:
            prev_sec = float(meta.get("sec", 0.0))
            print(f"resuming from {last} (step {meta['step']}, {meta['kimg']:.3f} kimg)", file=stream, flush=True)
        _write_settings(workdir, record)   # the resumable keys (kimg, cadences) may have changed
    state = state if last is not None else state_lib.init_state(tc)
    step = int(state.step)
    _truncate_metrics(metrics_path, step)
    state = steps.replicate(state, mesh)

    total = settings.steps_for(settings.kimg)
    grid_every, ckpt_every = settings.steps_for(settings.grid_kimg), settings.steps_for(settings.checkpoint_kimg)
    z_grid, cfg = grid_latents(settings), tc.g
    kimg_of = lambda s: s * settings.batch / 1000  # noqa: E731

    def save(state, step, sec) -> pathlib.Path:
        meta = {"kimg": kimg_of(step), "data_position": step * settings.batch, "sec": sec, "settings": record}
        path = checkpoint.save(ckpt_dir, state, meta)
        checkpoint.export_generator(workdir / GEMA_FILE, state.g_ema, state.w_avg, cfg)
        return path

    def grid(state, step, image=None):
        image = _grid_image(state, cfg, z_grid) if image is None else image
        pictures.save_png(workdir / grid_name(settings, kimg_of(step)), image,
                          caption=f"G_ema after {kimg_of(step):g} kimg")

    print(f"training on {len(devices)} {jax.default_backend()} device(s)" + (
        f", each batch of {settings.batch} split over them" if mesh else ""), file=stream, flush=True)
    background = train_programs.compile_steps(state, tc, dataset, mesh, range(step, total), z_grid, stream,
                                              grid_first=fresh or last is None)
    # the initial grid: now when resuming a run without a checkpoint; for a new run after its first good step
    # (computed now: the step donates the state's buffers)
    initial = _grid_image(state, cfg, z_grid) if fresh else None
    if last is None and not fresh:
        grid(state, step)
    t_start = t_log = time.perf_counter()   # after compiling: the rate and the ETA are training alone
    acc, n_acc, step_log, first_step = {}, 0, step, step
    last_ckpt = last

    def log(step, now):
        nonlocal acc, n_acc, step_log, t_log
        n = step - step_log
        if n == 0:
            return
        dt = now - t_log
        mean = {k: v / c for k, (v, c) in acc.items()}
        kimg_s = n * settings.batch / 1000 / dt
        entry = {"kimg": kimg_of(step), "step": step, "sec": prev_sec + now - t_start,
                 "losses": {k: v for k, v in mean.items() if k not in ("r1", "pl", "pl_mean")},
                 "r1": mean.get("r1"), "pl": mean.get("pl"), "pl_mean": mean.get("pl_mean"),
                 "timing": {"steps": n, "sec_per_step": dt / n, "kimg_per_s": kimg_s, "img_per_s": 1000 * kimg_s}}
        storage.append_lines(metrics_path, [storage.json_line(entry)])
        eta = (total - step) * dt / n
        losses = "  ".join(f"{k} {v:.4g}" for k, v in sorted(mean.items()))
        print(f"kimg {kimg_of(step):.2f}/{kimg_of(total):.2f}  step {step}  {kimg_s:.3f} kimg/s  "
              f"ETA {_fmt_time(eta)}  {losses}", file=stream, flush=True)
        acc, n_acc, step_log, t_log = {}, 0, step, now

    try:
        while step < total:
            do_pl, do_r1 = tc.reg_flags(step)
            grid_next = step % grid_every == grid_every - 1 or step == total - 1
            waited = background.wait(do_pl, do_r1) + (background.wait() if grid_next else 0.0)
            t_wait = time.perf_counter()
            with autotune.exclusive():   # no conv measured in the background beside the step (autotune.exclusive)
                waited += time.perf_counter() - t_wait
                state, metrics = steps.step_program(tc)(state, tc, dataset, mesh, do_pl=do_pl, do_r1=do_r1)
                metrics = jax.device_get(metrics)
            t_start, t_log = t_start + waited, t_log + waited   # compiling or measuring: not training time
            for k, v in metrics.items():
                if not math.isfinite(float(v)):
                    where = f"the last checkpoint {last_ckpt} is intact" if last_ckpt else "no checkpoint written"
                    raise FloatingPointError(f"non-finite loss at step {step}: {k} = {float(v)}; stopping ({where})")
                s, c = acc.get(k, (0.0, 0))
                acc[k] = (s + float(v), c + 1)
            if fresh:   # the first step went well: now the folder, its settings and the initial grid
                _write_settings(workdir, record)
                grid(None, step, initial)
                fresh, initial = False, None
            step += 1
            if on_step is not None:
                on_step(step)
            now = time.perf_counter()
            if now - t_log >= settings.log_every_s or step == total or step_log == first_step:   # 1st: at once
                log(step, now)
            if step % grid_every == 0 or step == total:
                grid(state, step)
            if step % ckpt_every == 0 or step == total:
                last_ckpt = save(state, step, prev_sec + time.perf_counter() - t_start)
    except KeyboardInterrupt:
        background.cancel()
        print(f"interrupted at step {step}; re-run the same command to resume from "
              f"{last_ckpt or 'the start'}", file=stream, flush=True)
        raise
    except BaseException:
        background.cancel()   # no further programs for a run that has stopped
        raise
    background.finish()
    if last_ckpt is None or checkpoint.read_meta(last_ckpt)["step"] != step:  # resumed at the end already
        last_ckpt = save(state, step, prev_sec + time.perf_counter() - t_start)
    return {"workdir": str(workdir), "step": step, "kimg": kimg_of(step), "checkpoint": str(last_ckpt),
            "G_ema": str(workdir / GEMA_FILE), "state": state}
