"""rosinality/stylegan2-pytorch checkpoints `{'g_ema': state_dict, 'latent_avg': [w_dim], ...}`, without torch.

The file is a torch zip (`<name>/data.pkl` + `<name>/data/<key>`, see torch_storage.py); a legacy (pre-1.6,
non-zip) `torch.save` stream is accepted too. Everything is inferred from the tensors: resolution from the
`to_rgbs.{k}` count, w_dim from the modulation weights, mapping layers from `style.{i}` (style.0 is PixelNorm),
channels from the conv weights. Mapping lr multiplier 0.01 (rosinality's `lr_mlp` default; not stored).

rosinality -> canonical (R = 2^(k+3)):
    style.{i+1}.weight/bias                  -> mapping.fc{i}.weight/bias
    latent_avg                               -> mapping.w_avg
    input.input [1,C,4,4]                    -> synthesis.b4.const [C,4,4]
    conv1 | convs.{2k} | convs.{2k+1}        -> synthesis.b4.conv1 | b{R}.conv0 | b{R}.conv1:
        .conv.weight [1,O,I,3,3] -> .weight [O,I,3,3]; .activate.bias -> .bias; .noise.weight [1] -> .noise_strength [];
        .conv.modulation.weight/bias -> .affine.weight/bias
    noises.noise_{j} [1,1,R,R]               -> noise_const of the j-th conv layer in forward order
    to_rgb1 | to_rgbs.{k}                    -> synthesis.b4.torgb | b{R}.torgb:
        .conv.weight [1,3,I,1,1] -> .weight [3,I,1,1]; .bias [1,3,1,1] -> .bias [3]; .conv.modulation -> .affine
    *.blur.kernel, *.upsample.kernel         -> checked against the [1,3,3,1] filter, then dropped
"""
from __future__ import annotations

import re

from weights_convert import canonical, torch_storage
from weights_convert.common import as_array, check_filter, describe, format_guard, read_bytes
from weights_convert.errors import WeightsFormatError, one_line

WHAT = "rosinality checkpoint"
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_PREFIX = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickle of the legacy magic number
RESAMPLE = [1, 3, 3, 1]


def read_rosinality_pt(path) -> tuple:
    """rosinality checkpoint (.pt) -> (canonical params, config) of `g_ema`."""
    data, source = read_bytes(path)
    if data.startswith(ZIP_MAGIC):
        obj = torch_storage.read_torch_zip(path, source)
    elif data.startswith(LEGACY_PREFIX):
        obj = torch_storage.parse_legacy_stream(data, source, "legacy torch.save file")
    else:
        raise WeightsFormatError(f"{source}: not a torch checkpoint (neither a torch zip nor a legacy torch.save "
                                 f"stream; starts with {data[:8]!r})")
    return from_checkpoint(obj, source)


@format_guard(WHAT)
def from_checkpoint(obj, source) -> tuple:
    """The loaded checkpoint dict -> (canonical params, config)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("g_ema"), dict):
        raise WeightsFormatError(one_line(f"{source}: not a {WHAT} (top-level object is {describe(obj)}, "
                                          "expected a dict with 'g_ema')"))
    if "latent_avg" not in obj:
        raise WeightsFormatError(f"{source}: {WHAT} has no 'latent_avg' (checkpoints written by rosinality's "
                                 "train.py lack it; use one written by convert_weight.py or add it)")
    sd = {str(k): as_array(v, f"g_ema.{k}", source) for k, v in obj["g_ema"].items()}

    used = set()

    def get(name):
        if name not in sd:
            raise WeightsFormatError(f"{source}: {WHAT} has no tensor 'g_ema.{name}'")
        used.add(name)
        return sd[name]

    def squeeze_lead(arr, name, ndim):
        if arr.ndim != ndim + 1 or arr.shape[0] != 1:
            raise WeightsFormatError(f"{source}: g_ema.{name} has shape {arr.shape}, expected a leading 1 and "
                                     f"{ndim} more dimensions")
        return arr[0]

    params = {"mapping.w_avg": as_array(obj["latent_avg"], "latent_avg", source).reshape(-1)}
    n_map = 0
    while f"style.{n_map + 1}.weight" in sd:
        params[f"mapping.fc{n_map}.weight"] = get(f"style.{n_map + 1}.weight")
        params[f"mapping.fc{n_map}.bias"] = get(f"style.{n_map + 1}.bias")
        n_map += 1
    if n_map == 0:
        raise WeightsFormatError(f"{source}: {WHAT} has no mapping layers 'g_ema.style.1.weight'")
    params["synthesis.b4.const"] = squeeze_lead(get("input.input"), "input.input", 3)

    n_rgb = sum(1 for k in sd if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
    res_list = [2 ** (k + 2) for k in range(n_rgb + 1)]
    convs = [("conv1", "synthesis.b4.conv1")]
    rgbs = [("to_rgb1", "synthesis.b4.torgb")]
    for k in range(n_rgb):
        r = 2 ** (k + 3)
        convs += [(f"convs.{2 * k}", f"synthesis.b{r}.conv0"), (f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1")]
        rgbs.append((f"to_rgbs.{k}", f"synthesis.b{r}.torgb"))
    if f"convs.{2 * n_rgb}.conv.weight" in sd:
        raise WeightsFormatError(f"{source}: g_ema has more convs than to_rgbs (unexpected architecture)")
    for j, (src, dst) in enumerate(convs):
        params[f"{dst}.weight"] = squeeze_lead(get(f"{src}.conv.weight"), f"{src}.conv.weight", 4)
        params[f"{dst}.bias"] = get(f"{src}.activate.bias")
        params[f"{dst}.affine.weight"] = get(f"{src}.conv.modulation.weight")
        params[f"{dst}.affine.bias"] = get(f"{src}.conv.modulation.bias")
        strength = get(f"{src}.noise.weight")
        if strength.size != 1:
            raise WeightsFormatError(f"{source}: g_ema.{src}.noise.weight has shape {strength.shape}, expected [1]")
        params[f"{dst}.noise_strength"] = strength.reshape(())
        noise = get(f"noises.noise_{j}")
        params[f"{dst}.noise_const"] = noise.reshape(noise.shape[-2:]) if noise.ndim == 4 else noise
    for src, dst in rgbs:
        params[f"{dst}.weight"] = squeeze_lead(get(f"{src}.conv.weight"), f"{src}.conv.weight", 4)
        params[f"{dst}.bias"] = get(f"{src}.bias").reshape(-1)
        params[f"{dst}.affine.weight"] = get(f"{src}.conv.modulation.weight")
        params[f"{dst}.affine.bias"] = get(f"{src}.conv.modulation.bias")
    for name, kernel in sd.items():
        if name.endswith(".blur.kernel") or name.endswith(".upsample.kernel"):
            check_filter(kernel, RESAMPLE, f"g_ema.{name}", source, gain=4.0)
            used.add(name)
    unused = sorted(set(sd) - used)
    if unused:
        raise WeightsFormatError(f"{source}: {WHAT} has unexpected tensor 'g_ema.{unused[0]}'"
                                 + (f" (and {len(unused) - 1} more)" if len(unused) > 1 else ""))

    channels = {4: params["synthesis.b4.const"].shape[0]}
    for r in res_list[1:]:
        channels[r] = params[f"synthesis.b{r}.conv1.weight"].shape[0]
    w_dim = params["synthesis.b4.conv1.affine.weight"].shape[1]
    config = canonical.make_config(
        source_format="rosinality", z_dim=params["mapping.fc0.weight"].shape[1], w_dim=w_dim, c_dim=0,
        img_resolution=res_list[-1], img_channels=params["synthesis.b4.torgb.weight"].shape[0],
        mapping_layers=n_map, mapping_lr_multiplier=0.01, channels=channels, architecture="skip",
        conv_clamp=None, resample_filter=RESAMPLE, num_fp16_res=0, use_noise=True)
    return canonical.validate(params, config, source)
