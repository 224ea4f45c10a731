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

import numpy as np

from weights_convert import canonical, names, torch_storage
from weights_convert.common import as_array, describe, fir_kernel, format_guard, is_filter, read_bytes
from weights_convert.errors import WeightsFormatError, one_line
from weights_convert.names import Rule

WHAT = "rosinality checkpoint"
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_PREFIX = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickle of the legacy magic number
RESAMPLE = [1, 3, 3, 1]


# --- the name table (reader and writer, `writers.rosinality_tensors`): names as in the file, 'g_ema.' in front
# of the generator's state dict, 'latent_avg' beside it.

def _filter_buffer(kernel):
    """The [1,3,3,1] upsampling filter of rosinality (gain 4): made on writing, checked on reading."""
    if kernel is None:
        return fir_kernel(RESAMPLE, gain=4).astype(np.float32)
    if not is_filter(kernel, RESAMPLE, gain=4):
        raise names.BadTensor(f"does not match the resample filter {RESAMPLE} (unsupported FIR filter)")
    return kernel


def _strength(s):
    if s.size != 1:
        raise names.BadTensor(f"has shape {s.shape}, expected [1]")
    return s.reshape(())


_MOD = [Rule("{p}.affine.weight", "g_ema.{src}.conv.modulation.weight"),
        Rule("{p}.affine.bias", "g_ema.{src}.conv.modulation.bias")]
TABLE = {
    "w_avg": [Rule("mapping.w_avg", "latent_avg", lambda w: w.reshape(-1))],
    "fc": [Rule("mapping.fc{i}.weight", "g_ema.style.{j}.weight"),
           Rule("mapping.fc{i}.bias", "g_ema.style.{j}.bias")],
    "const": [Rule("synthesis.b4.const", "g_ema.input.input", names.lead1(3), names.add_lead1)],
    "conv": [Rule("{p}.weight", "g_ema.{src}.conv.weight", names.lead1(4), names.add_lead1),
             Rule(None, "g_ema.{src}.conv.blur.kernel", _filter_buffer, _filter_buffer, when="up"), *_MOD,
             Rule("{p}.noise_strength", "g_ema.{src}.noise.weight", _strength, lambda s: names.f32(s).reshape(1)),
             Rule("{p}.bias", "g_ema.{src}.activate.bias")],
    "torgb": [Rule("{p}.bias", "g_ema.{src}.bias", lambda b: b.reshape(-1),
                   lambda b: names.f32(b).reshape(1, -1, 1, 1)),
              Rule(None, "g_ema.{src}.upsample.kernel", _filter_buffer, _filter_buffer, when="up"),
              Rule("{p}.weight", "g_ema.{src}.conv.weight", names.lead1(4), names.add_lead1), *_MOD],
    "noise": [Rule("{p}.noise_const", "g_ema.noises.noise_{j}", names.squeeze_noise, names.unsqueeze_noise)],
}


def layers(layout: names.Layout) -> list:
    """The layers of a rosinality generator in state-dict order (R = 2^(k+3)): style.{i+1}, input, conv1, to_rgb1,
    then convs.{2k} / convs.{2k+1} (b{R}.conv0 / conv1), to_rgbs.{k}, noises.noise_{j}; latent_avg last."""
    res = layout.resolutions
    out = [("fc", {"i": i, "j": i + 1}) for i in range(layout.mapping_layers)] + [("const", {})]
    out += [("conv", {"src": "conv1", "p": "synthesis.b4.conv1"}),
            ("torgb", {"src": "to_rgb1", "p": "synthesis.b4.torgb"})]
    for k, r in enumerate(res[1:]):
        out += [("conv", {"src": f"convs.{2 * k}", "p": f"synthesis.b{r}.conv0", "up": True}),
                ("conv", {"src": f"convs.{2 * k + 1}", "p": f"synthesis.b{r}.conv1"})]
    out += [("torgb", {"src": f"to_rgbs.{k}", "p": f"synthesis.b{r}.torgb", "up": True})
            for k, r in enumerate(res[1:])]
    out += [("noise", {"j": j, "p": f"synthesis.b{r}.{n}"}) for j, (r, n) in enumerate(layout.conv_layers())]
    return out + [("w_avg", {})]


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
    tensors = {f"g_ema.{k}": as_array(v, f"g_ema.{k}", source) for k, v in obj["g_ema"].items()}
    tensors["latent_avg"] = as_array(obj["latent_avg"], "latent_avg", source)
    n_map = 0
    while f"g_ema.style.{n_map + 1}.weight" in tensors:
        n_map += 1
    if n_map == 0:
        raise WeightsFormatError(f"{source}: {WHAT} has no mapping layers 'g_ema.style.1.weight'")
    n_rgb = sum(1 for k in tensors if re.fullmatch(r"g_ema\.to_rgbs\.\d+\.conv\.weight", k))
    if f"g_ema.convs.{2 * n_rgb}.conv.weight" in tensors:
        raise WeightsFormatError(f"{source}: g_ema has more convs than to_rgbs (unexpected architecture)")
    res_list = tuple(2 ** (k + 2) for k in range(n_rgb + 1))
    try:
        params, used = names.to_canonical(TABLE, layers(names.Layout(n_map, res_list, res_list)), tensors,
                                          missing=lambda name: f"{WHAT} has no tensor {name!r}")
    except names.BadTensor as e:
        raise WeightsFormatError(one_line(f"{source}: {e}")) from None
    unused = sorted(set(tensors) - used)
    if unused:
        raise WeightsFormatError(f"{source}: {WHAT} has unexpected tensor {unused[0]!r}"
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
