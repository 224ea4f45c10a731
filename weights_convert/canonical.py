"""The canonical form every reader returns, its validation, and safetensors I/O.

params: flat dict[str, np.ndarray float32, C-contiguous], NVlabs `G_ema` state-dict names and layouts:
    mapping.fc{i}.weight [out,in], mapping.fc{i}.bias [out] (stored, unscaled), mapping.w_avg [w_dim],
    (c_dim > 0, if the file has it) mapping.embed.weight [E,c_dim], mapping.embed.bias [E],
    synthesis.b4.const [C4,4,4],
    synthesis.b{R}.conv0 (R > 4, upsampling), synthesis.b{R}.conv1:
        .weight [O,I,3,3], .bias [O], .affine.weight [I,w_dim], .affine.bias [I],
        (use_noise) .noise_strength [] and .noise_const [R,R],
    synthesis.b{R}.torgb ('skip': every block, else only the last):
        .weight [img_channels,I,1,1], .bias [img_channels], .affine.weight [I,w_dim], .affine.bias [I],
    ('resnet' only) synthesis.b{R}.skip.weight [O,I,1,1] for R > 4.
config: JSON-able dict with exactly CONFIG_KEYS (see `make_config`).
"""
from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from weights_convert import files
from weights_convert.errors import WeightsFormatError, one_line

CONFIG_KEYS = ("source_format", "z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "mapping_layers",
               "mapping_lr_multiplier", "channels", "architecture", "conv_clamp", "resample_filter",
               "num_fp16_res", "use_noise", "num_ws")
SOURCE_FORMATS = ("nvlabs", "tf", "rosinality")
ARCHITECTURES = ("orig", "skip", "resnet")
FORMAT_VERSION = "1"
METADATA_KEY = "si_jax_config"


def make_config(*, source_format, z_dim, w_dim, c_dim, img_resolution, img_channels, mapping_layers, channels,
                mapping_lr_multiplier=0.01, architecture="skip", conv_clamp=None, resample_filter=(1, 3, 3, 1),
                num_fp16_res=0, use_noise=True, num_ws=None) -> dict:
    """The canonical config dict (plain JSON types, keys in CONFIG_KEYS order). num_ws defaults to 2*log2(res)-2."""
    res_log2 = int(round(math.log2(img_resolution))) if img_resolution > 0 else 0
    return {
        "source_format": str(source_format),
        "z_dim": int(z_dim), "w_dim": int(w_dim), "c_dim": int(c_dim),
        "img_resolution": int(img_resolution), "img_channels": int(img_channels),
        "mapping_layers": int(mapping_layers), "mapping_lr_multiplier": float(mapping_lr_multiplier),
        "channels": {str(int(r)): int(c) for r, c in sorted(channels.items(), key=lambda rc: int(rc[0]))},
        "architecture": str(architecture),
        "conv_clamp": None if conv_clamp is None else float(conv_clamp),
        "resample_filter": [float(v) if float(v) != int(float(v)) else int(float(v)) for v in resample_filter],
        "num_fp16_res": int(num_fp16_res), "use_noise": bool(use_noise),
        "num_ws": int(2 * res_log2 - 2 if num_ws is None else num_ws),
    }


def block_resolutions(config) -> list:
    return [2 ** i for i in range(2, int(round(math.log2(config["img_resolution"]))) + 1)]


def expected_shapes(config) -> dict:
    """name -> shape of every synthesis tensor and of mapping.w_avg (mapping fc/embed are checked as a chain)."""
    ch = {int(r): c for r, c in config["channels"].items()}
    w_dim, img_ch, arch = config["w_dim"], config["img_channels"], config["architecture"]
    out = {"mapping.w_avg": (w_dim,), "synthesis.b4.const": (ch[4], 4, 4)}
    res_list = block_resolutions(config)
    for res in res_list:
        b = f"synthesis.b{res}"
        convs = [("conv1", ch[4], ch[4])] if res == 4 else [("conv0", ch[res // 2], ch[res]),
                                                           ("conv1", ch[res], ch[res])]
        for name, cin, cout in convs:
            out.update({f"{b}.{name}.weight": (cout, cin, 3, 3), f"{b}.{name}.bias": (cout,),
                        f"{b}.{name}.affine.weight": (cin, w_dim), f"{b}.{name}.affine.bias": (cin,)})
            if config["use_noise"]:
                out.update({f"{b}.{name}.noise_strength": (), f"{b}.{name}.noise_const": (res, res)})
        if arch == "skip" or res == res_list[-1]:
            out.update({f"{b}.torgb.weight": (img_ch, ch[res], 1, 1), f"{b}.torgb.bias": (img_ch,),
                        f"{b}.torgb.affine.weight": (ch[res], w_dim), f"{b}.torgb.affine.bias": (ch[res],)})
        if arch == "resnet" and res > 4:
            out[f"{b}.skip.weight"] = (ch[res], ch[res // 2], 1, 1)
    return out


def _check_config(config, source):
    def bad(msg):
        raise WeightsFormatError(one_line(f"{source}: {msg}"))

    if not isinstance(config, dict) or set(config) != set(CONFIG_KEYS):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        bad(f"config must have exactly the keys {list(CONFIG_KEYS)}, got {got}")
    if config["source_format"] not in SOURCE_FORMATS:
        bad(f"unknown source_format {config['source_format']!r}")
    res = config["img_resolution"]
    if not isinstance(res, int) or res < 4 or res & (res - 1):
        bad(f"img_resolution {res!r} is not a power of two >= 4")
    for key in ("z_dim", "w_dim", "img_channels", "mapping_layers", "num_ws"):
        if not isinstance(config[key], int) or config[key] < 1:
            bad(f"config {key} = {config[key]!r} is not a positive integer")
    if not isinstance(config["c_dim"], int) or config["c_dim"] < 0:
        bad(f"config c_dim = {config['c_dim']!r} is not a non-negative integer")
    want = [str(r) for r in block_resolutions(config)]
    chans = config["channels"]
    if not isinstance(chans, dict) or sorted(chans, key=int) != want or not all(
            isinstance(c, int) and c > 0 for c in chans.values()):
        bad(f"config channels {chans!r} must map each of {want} to a positive int")
    if config["architecture"] not in ARCHITECTURES:
        bad(f"unknown synthesis architecture {config['architecture']!r}")
    if config["num_ws"] != 2 * int(math.log2(res)) - 2:
        bad(f"num_ws {config['num_ws']} does not match resolution {res} (expected {2 * int(math.log2(res)) - 2})")


def validate(params: dict, config: dict, source) -> tuple:
    """Check that `params` is exactly the canonical tensor set for `config` -> (float32 C-contiguous params, config).

    Raises WeightsFormatError naming `source` and the first problem (missing/unexpected tensor, wrong shape,
    non-finite values, inconsistent config).
    """
    _check_config(config, source)

    def bad(msg):
        raise WeightsFormatError(one_line(f"{source}: {msg}"))

    out = {}
    for name, arr in params.items():
        if not isinstance(arr, np.ndarray) or not (np.issubdtype(arr.dtype, np.floating)
                                                   or np.issubdtype(arr.dtype, np.integer)):
            bad(f"tensor {name!r} is not a numeric array")
        arr = np.ascontiguousarray(arr, dtype=np.float32) if arr.ndim else np.asarray(arr, np.float32).copy()
        if not np.all(np.isfinite(arr)):
            bad(f"tensor {name!r} contains NaN or infinite values")
        out[name] = arr

    want = expected_shapes(config)
    n = config["mapping_layers"]
    mapping = {f"mapping.fc{i}.{p}" for i in range(n) for p in ("weight", "bias")}
    embed = {"mapping.embed.weight", "mapping.embed.bias"}
    for name in list(want) + sorted(mapping):
        if name not in out:
            bad(f"missing tensor {name!r}")
    extra = sorted(set(out) - set(want) - mapping - (embed if config["c_dim"] > 0 else set()))
    if extra:
        bad(f"unexpected tensor {extra[0]!r}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    for name, shape in want.items():
        if out[name].shape != shape:
            bad(f"tensor {name!r} has shape {out[name].shape}, expected {shape}")

    # Mapping: a chain z (+ embedded c) -> ... -> w_dim.
    fan_in = config["z_dim"]
    if config["c_dim"] > 0 and "mapping.embed.weight" in out:
        ew, eb = out["mapping.embed.weight"], out.get("mapping.embed.bias")
        if ew.ndim != 2 or ew.shape[1] != config["c_dim"] or eb is None or eb.shape != (ew.shape[0],):
            bad(f"mapping.embed has shapes {ew.shape}/{None if eb is None else eb.shape}, "
                f"expected [E,{config['c_dim']}]/[E]")
        fan_in += ew.shape[0]
    for i in range(n):
        w, b = out[f"mapping.fc{i}.weight"], out[f"mapping.fc{i}.bias"]
        fan_out = config["w_dim"] if i == n - 1 else (w.shape[0] if w.ndim == 2 else -1)
        if w.shape != (fan_out, fan_in) or b.shape != (fan_out,):
            bad(f"tensor 'mapping.fc{i}.weight' has shape {w.shape} (bias {b.shape}), "
                f"expected ({fan_out}, {fan_in}) ({fan_out},)")
        fan_in = fan_out
    return out, dict(config)


def count_parameters(params: dict) -> int:
    """Trainable parameters: all canonical tensors except the buffers mapping.w_avg and *.noise_const."""
    return int(sum(a.size for k, a in params.items() if k != "mapping.w_avg" and not k.endswith(".noise_const")))


def style_dim(config) -> int:
    """Total number of style values (sum over the conv and toRGB affine outputs).

    >>> cfg = make_config(source_format="nvlabs", z_dim=4, w_dim=4, c_dim=0, img_resolution=8, img_channels=3,
    ...                   mapping_layers=2, channels={4: 8, 8: 4})
    >>> cfg["num_ws"], style_dim(cfg)   # b4.conv1 8, b4.torgb 8, b8.conv0 8, b8.conv1 4, b8.torgb 4
    (4, 32)
    """
    return sum(shape[0] for name, shape in expected_shapes(config).items() if name.endswith(".affine.bias"))


# --- safetensors ------------------------------------------------------------------------------------------

def save_safetensors(path, params: dict, config: dict) -> None:
    """Write params + config (JSON in metadata['si_jax_config'], metadata['format_version'] = '1') atomically:
    `files.write_atomic` with fsync (temp file `.NAME.tmpPID` in the same folder, mode 0644, rename). Validates
    first; nothing is written on error (a kill can leave the temp file: `remove_temp_files` deletes it)."""
    from safetensors.numpy import save

    path = pathlib.Path(path)
    params, config = validate(params, config, path)
    blob = save(params, metadata={METADATA_KEY: json.dumps(config, sort_keys=False),
                                  "format_version": FORMAT_VERSION})
    files.write_atomic(path, blob, fsync=True)


def remove_temp_files(path) -> None:
    """Delete the temp files a killed `save_safetensors(path, ...)` left next to `path` (`.NAME.tmpPID`, and
    `.NAME.*.tmp` from versions before files.write_atomic)."""
    path = pathlib.Path(path)
    for pattern in (f".{path.name}.tmp*", f".{path.name}.*.tmp"):
        for tmp in path.parent.glob(pattern):
            tmp.unlink(missing_ok=True)


def load_safetensors(path) -> tuple:
    """Read a file written by `save_safetensors` -> (params, config). No code can run: safetensors is data only."""
    from safetensors import SafetensorError, safe_open

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            params = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsFormatError(one_line(f"{path}: not a readable safetensors file ({e})")) from None
    if meta.get("format_version") != FORMAT_VERSION or METADATA_KEY not in meta:
        raise WeightsFormatError(f"{path}: safetensors file has no si_jax config (format_version "
                                 f"{meta.get('format_version')!r}); convert it with bin/convert_weights.py")
    try:
        config = json.loads(meta[METADATA_KEY])
    except ValueError as e:
        raise WeightsFormatError(one_line(f"{path}: corrupt si_jax config in safetensors metadata ({e})")) from None
    return validate(params, config, path)
