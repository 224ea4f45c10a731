"""Original TensorFlow StyleGAN2 pickles `(G, D, Gs)`, read without TensorFlow.

Each element is a `dnnlib.tflib.network.Network` (NEWOBJ + BUILD) whose state is {version, name, static_kwargs,
components, build_module_src, build_func_name, variables=[(name, value)]}. `Gs` is read: its own variables
`dlatent_avg` (and `lod`), components 'mapping' (`Dense{i}/weight` [in,out], `/bias`) and 'synthesis'
(`noise{k}` [1,1,R,R], `4x4/Const/const` [1,C,4,4], per layer `weight` [kh,kw,I,O], `mod_weight` [w_dim,I],
`mod_bias` (= affine bias - 1), `noise_strength`, `bias`). `build_module_src` is dropped unread.

TF -> canonical: conv `w.transpose(3,2,0,1)`, and `Conv0_up` additionally `w[::-1, ::-1]` first; dense and
mod_weight transposed; mod_bias + 1; const[0]; noise{k}[0,0] = noise_const of the k-th conv in forward order.
"""
from __future__ import annotations

import re

import numpy as np

from weights_convert import canonical, names, safe_pickle
from weights_convert.common import as_array, describe, format_guard, number, read_bytes
from weights_convert.errors import WeightsFormatError, one_line
from weights_convert.names import Rule

WHAT = "TensorFlow StyleGAN2 pickle"


class TFNetwork:
    """Inert stand-in for dnnlib.tflib.network.Network: `__setstate__` keeps the state minus build_module_src."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise ValueError("dnnlib.tflib.network.Network called with arguments")
        self.state = None

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise ValueError("Network state is not a dict")
        self.state = {k: v for k, v in state.items() if k != "build_module_src"}

    def __repr__(self):
        name = self.state.get("name") if isinstance(self.state, dict) else None
        return f"<TF Network {name}>"


# --- the name table (reader and writer, `writers.write_tf_pkl`): TF names carry their network, 'Gs/...',
# 'G_mapping/...' or 'G_synthesis/...'; conv weights are [kh, kw, I, O] (Conv0_up flipped), dense ones [in, out].

def _conv(w, flip=False):
    if w.ndim != 4:
        raise names.BadTensor(f"has shape {w.shape}, expected [3,3,I,O]")
    return (w[::-1, ::-1] if flip else w).transpose(3, 2, 0, 1)


def _const(c):
    if c.ndim != 4 or c.shape[0] != 1:
        raise names.BadTensor(f"has shape {c.shape}, expected [1,C,4,4]")
    return c[0]


def _to_hwio(w):
    return names.f32(w.transpose(2, 3, 1, 0))


_MOD = [Rule("{p}.affine.weight", "G_synthesis/{t}/mod_weight", names.transpose, names.transpose),
        Rule("{p}.affine.bias", "G_synthesis/{t}/mod_bias", lambda b: b + np.float32(1),
             lambda b: names.f32(b - np.float32(1)))]
_CONV_TAIL = _MOD + [Rule("{p}.noise_strength", "G_synthesis/{t}/noise_strength", lambda s: s.reshape(()),
                          np.float32, when="noise"),
                     Rule("{p}.bias", "G_synthesis/{t}/bias")]
TABLE = {
    "gs": [Rule(None, "Gs/lod", write=lambda _: np.float32(0)), Rule("mapping.w_avg", "Gs/dlatent_avg")],
    "fc": [Rule("mapping.fc{i}.weight", "G_mapping/Dense{i}/weight", names.transpose, names.transpose),
           Rule("mapping.fc{i}.bias", "G_mapping/Dense{i}/bias")],
    "embed": [Rule("mapping.embed.weight", "G_mapping/LabelEmbed/weight", names.transpose, names.transpose),
              Rule("mapping.embed.bias", "G_mapping/LabelEmbed/bias")],
    "noise": [Rule("{p}.noise_const", "G_synthesis/noise{k}", names.squeeze_noise, names.unsqueeze_noise)],
    "const": [Rule("synthesis.b4.const", "G_synthesis/4x4/Const/const", _const, names.add_lead1)],
    "conv": [Rule("{p}.weight", "G_synthesis/{t}/weight", _conv, _to_hwio)] + _CONV_TAIL,
    "conv_up": [Rule("{p}.weight", "G_synthesis/{t}/weight", lambda w: _conv(w, flip=True),
                     lambda w: _to_hwio(w)[::-1, ::-1])] + _CONV_TAIL,
    "torgb": [Rule("{p}.weight", "G_synthesis/{t}/weight", lambda w: w.transpose(3, 2, 0, 1), _to_hwio)] + _MOD
             + [Rule("{p}.bias", "G_synthesis/{t}/bias")],
    "skip": [Rule("synthesis.b{r}.skip.weight", "G_synthesis/{r}x{r}/Skip/weight",
                  lambda w: w[::-1, ::-1].transpose(3, 2, 0, 1), lambda w: _to_hwio(w)[::-1, ::-1])],
}


def layers(layout: names.Layout) -> list:
    """The layers of a TF generator in its variable order: Gs's own, mapping, then synthesis (noise inputs,
    const, per resolution its convs, toRGB, skip)."""
    out = [("gs", {})] + [("fc", {"i": i}) for i in range(layout.mapping_layers)]
    out += [("embed", {})] if layout.embed else []
    out += [("noise", {"k": k, "p": f"synthesis.b{r}.{n}"}) for k, (r, n) in enumerate(layout.conv_layers())
            if layout.use_noise]
    out.append(("const", {}))
    for r in layout.resolutions:
        for name in layout.convs_at(r):
            tf_name = "Conv" if r == 4 else {"conv0": "Conv0_up", "conv1": "Conv1"}[name]
            out.append(("conv_up" if name == "conv0" else "conv",
                        {"p": f"synthesis.b{r}.{name}", "t": f"{r}x{r}/{tf_name}", "noise": layout.use_noise}))
        if r in layout.torgb:
            out.append(("torgb", {"p": f"synthesis.b{r}.torgb", "t": f"{r}x{r}/ToRGB"}))
        if r in layout.skip:
            out.append(("skip", {"r": r}))
    return out


def _missing(name: str) -> str:
    label, var = name.split("/", 1)
    return f"{label} has no variable {var!r}"


ALLOWED_GLOBALS = {**safe_pickle.NUMPY_GLOBALS, ("dnnlib.tflib.network", "Network"): TFNetwork}


def read_tf_pkl(path) -> tuple:
    """TF StyleGAN2 pickle -> (canonical params, config) of `Gs`."""
    data, source = read_bytes(path)
    obj, _ = safe_pickle.restricted_loads(data, ALLOWED_GLOBALS, source, WHAT)
    return from_networks(obj, source)


def is_tf_networks(obj) -> bool:
    return isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetwork) for n in obj)


def _variables(net, label, source) -> dict:
    st = net.state if isinstance(net, TFNetwork) else None
    if not isinstance(st, dict) or not isinstance(st.get("variables"), (list, tuple)):
        raise WeightsFormatError(f"{source}: TF network {label} has no variable list")
    out = {}
    for item in st["variables"]:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str):
            raise WeightsFormatError(f"{source}: TF network {label} has a malformed variable entry")
        if item[0] in out:
            raise WeightsFormatError(f"{source}: TF network {label} defines variable {item[0]!r} twice")
        out[item[0]] = as_array(item[1], f"{label}/{item[0]}", source)
    return out


@format_guard(WHAT)
def from_networks(obj, source) -> tuple:
    """The unpickled (G, D, Gs) tuple -> (canonical params, config) of Gs."""
    if not is_tf_networks(obj):
        raise WeightsFormatError(one_line(f"{source}: not a {WHAT} (top-level object is {describe(obj)}, "
                                          "expected a tuple (G, D, Gs) of dnnlib.tflib.network.Network)"))
    gs = obj[2]
    comps = gs.state.get("components") or {}
    if not isinstance(comps, dict) or not all(isinstance(comps.get(k), TFNetwork) for k in ("mapping", "synthesis")):
        raise WeightsFormatError(f"{source}: Gs has no 'mapping' and 'synthesis' components")
    own = _variables(gs, "Gs", source)
    mvars = _variables(comps["mapping"], "G_mapping", source)
    svars = _variables(comps["synthesis"], "G_synthesis", source)
    kw = dict(gs.state.get("static_kwargs") or {})

    if "LabelConcat/weight" in mvars:
        raise WeightsFormatError(f"{source}: conditional TF mapping with LabelConcat is not supported")
    res_list = sorted({int(m.group(1)) for k in svars for m in [re.match(r"(\d+)x\1/", k)] if m})
    n_map = 0
    while f"Dense{n_map}/weight" in mvars:
        n_map += 1
    layout = names.Layout(n_map, tuple(res_list),
                          tuple(r for r in res_list if f"{r}x{r}/ToRGB/weight" in svars),
                          tuple(r for r in res_list if f"{r}x{r}/Skip/weight" in svars),
                          any(k.endswith("/noise_strength") for k in svars), "LabelEmbed/weight" in mvars)
    tensors = {f"{label}/{k}": v for label, table in (("Gs", own), ("G_mapping", mvars), ("G_synthesis", svars))
               for k, v in table.items()}
    try:
        params, _ = names.to_canonical(TABLE, layers(layout), tensors, missing=_missing)
    except names.BadTensor as e:
        raise WeightsFormatError(one_line(f"{source}: {e}")) from None
    config = _config(kw, params, svars, res_list, n_map, source)
    return canonical.validate(params, config, source)


def _config(kw, params, svars, res_list, n_map, source) -> dict:
    def bad(msg):
        raise WeightsFormatError(one_line(f"{source}: Gs {msg}"))

    if not res_list or res_list[0] != 4:
        bad("synthesis has no 4x4 block")
    res = res_list[-1]
    torgb = params.get(f"synthesis.b{res}.torgb.weight")
    if torgb is None:
        bad(f"synthesis has no {res}x{res}/ToRGB")
    channels = {4: params["synthesis.b4.const"].shape[0]}
    for r in res_list[1:]:
        channels[r] = params[f"synthesis.b{r}.conv1.weight"].shape[0]

    def kwarg(name, default, kind=int):
        return number(kw.get(name, default), name, source, kind)

    derived = {"resolution": res, "num_channels": torgb.shape[0], "dlatent_size": params["mapping.w_avg"].shape[0],
               "mapping_layers": n_map}
    for k, v in derived.items():
        if k in kw and kwarg(k, v) != v:
            bad(f"static_kwargs {k} = {kw[k]} but the variables imply {v}")
    if n_map != kwarg("mapping_layers", 8):
        bad(f"has {n_map} mapping layers, static_kwargs imply {kwarg('mapping_layers', 8)}")
    base, decay = kwarg("fmap_base", 16 << 10), kwarg("fmap_decay", 1.0, float)
    fmin, fmax = kwarg("fmap_min", 1), kwarg("fmap_max", 512)
    rule = {r: int(np.clip(int(base / (2.0 ** ((int(np.log2(r)) - 1) * decay))), fmin, fmax)) for r in channels}
    if rule != channels:
        bad(f"channels {channels} do not match fmap_base={base}, fmap_max={fmax} ({rule})")
    clamp = kw.get("conv_clamp")
    resample = kw.get("resample_kernel", [1, 3, 3, 1])
    if not isinstance(resample, (list, tuple)) or not resample:
        bad(f"resample_kernel {resample!r} is not a list of taps")
    use_noise = any(k.endswith(".noise_const") for k in params)
    if not use_noise and any(re.fullmatch(r"noise\d+", k) for k in svars):
        bad("has noise inputs but no noise_strength variables")
    return canonical.make_config(
        source_format="tf", z_dim=kwarg("latent_size", 512), w_dim=derived["dlatent_size"],
        c_dim=kwarg("label_size", 0), img_resolution=res, img_channels=derived["num_channels"],
        mapping_layers=n_map, mapping_lr_multiplier=kwarg("mapping_lrmul", 0.01, float), channels=channels,
        architecture=str(kw.get("architecture", "skip")),
        conv_clamp=None if clamp is None else number(clamp, "conv_clamp", source),
        resample_filter=[number(t, "resample_kernel tap", source) for t in resample],
        num_fp16_res=kwarg("num_fp16_res", 0), use_noise=use_noise)
