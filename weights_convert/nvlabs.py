"""NVlabs PyTorch network pickles (stylegan2-ada-pytorch / stylegan3 snapshots), read without torch.

The file is a dict {training_set_kwargs, G, D, G_ema, augment_pipe}. Each network is pickled as
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, meta = {type, version, module_src, class_name,
state}; `state` is the torch.nn.Module `__dict__`. Only `_parameters`, `_buffers` and `_modules` (recursively)
plus the recorded `_init_kwargs` are read; `module_src` is never looked at. Tensors: `_rebuild_tensor_v2` /
`_rebuild_parameter` over `torch.storage._load_from_bytes` storages (see torch_storage.py).
"""
from __future__ import annotations

import collections
import math

from weights_convert import canonical, safe_pickle, torch_storage
from weights_convert.common import as_array, check_filter, describe, format_guard, number, read_bytes
from weights_convert.errors import WeightsFormatError, one_line

WHAT = "NVlabs network pickle"


class PersistentObject:
    """Inert stand-in for an NVlabs persistent-class instance: keeps `class_name` and `state`, drops the source."""

    def __init__(self, meta=None):
        if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
            raise ValueError("bad torch_utils.persistence meta (expected type 'class' and a state dict)")
        self.class_name = str(meta.get("class_name", "?"))
        self.version = meta.get("version")
        self.state = meta["state"]

    def __repr__(self):
        return f"<persistent {self.class_name}>"


def _reconstruct_persistent_obj(meta):
    """Stand-in for torch_utils.persistence._reconstruct_persistent_obj: never touches meta['module_src']."""
    return PersistentObject(meta)


def allowed_globals(source: str) -> dict:
    """The allow-list of NVlabs pickles: global (module, name) -> inert stand-in."""
    return {
        **safe_pickle.NUMPY_GLOBALS,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("dnnlib.util", "EasyDict"): dict,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("torch._utils", "_rebuild_tensor_v2"): torch_storage.rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch_storage.rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): torch_storage.load_from_bytes_for(source),
    }


def read_nvlabs_pkl(path) -> tuple:
    """NVlabs snapshot pickle -> (canonical params, config) of `G_ema`."""
    data, source = read_bytes(path)
    obj, _ = safe_pickle.restricted_loads(data, allowed_globals(source), source, WHAT)
    return from_snapshot(obj, source)


def _module_tensors(module, prefix, out, source, depth=0):
    """Walk a PersistentObject tree like `Module.state_dict()`: name -> np.ndarray."""
    if depth > 32:
        raise WeightsFormatError(f"{source}: module tree nested too deeply")
    if not isinstance(module, PersistentObject):
        raise WeightsFormatError(one_line(f"{source}: module {prefix.rstrip('.') or 'G_ema'!r} is "
                                          f"{describe(module)}, expected an NVlabs persistent module"))
    st = module.state
    for group in ("_parameters", "_buffers", "_modules"):
        if not isinstance(st.get(group, {}), dict):
            raise WeightsFormatError(f"{source}: {prefix or 'G_ema.'}{group} is not a dict")
    for group in ("_parameters", "_buffers"):
        for name, value in st.get(group, {}).items():
            if value is not None:
                out[prefix + name] = as_array(value, prefix + name, source)
    for name, sub in st.get("_modules", {}).items():
        if sub is not None:
            _module_tensors(sub, f"{prefix}{name}.", out, source, depth + 1)


def _kwargs(module, key=None) -> dict:
    kw = module.state.get("_init_kwargs") or {}
    kw = kw if isinstance(kw, dict) else {}
    if key is not None:
        kw = kw.get(key) or {}
    return kw if isinstance(kw, dict) else {}


def _submodule(module, *path):
    for name in path:
        if not isinstance(module, PersistentObject):
            return None
        module = (module.state.get("_modules") or {}).get(name)
    return module if isinstance(module, PersistentObject) else None


@format_guard(WHAT)
def from_snapshot(obj, source) -> tuple:
    """The unpickled snapshot dict -> (canonical params, config) of G_ema."""
    if not isinstance(obj, dict) or "G_ema" not in obj:
        raise WeightsFormatError(one_line(f"{source}: not an {WHAT} (top-level object is {describe(obj)}, "
                                          "expected a dict with 'G_ema')"))
    g = obj["G_ema"]
    tensors = {}
    _module_tensors(g, "", tensors, source)
    filters = {k: v for k, v in tensors.items() if k.endswith("resample_filter")}
    params = {k: v for k, v in tensors.items() if not k.endswith("resample_filter")}
    for name in [k for k, v in params.items() if k.endswith(".noise_strength") and v.shape == (1,)]:
        params[name] = params[name].reshape(())  # a few exporters store the scalar as [1]

    config = _config(g, params, source)
    for name, buf in filters.items():
        check_filter(buf, config["resample_filter"], name, source)
    return canonical.validate(params, config, source)


def _config(g, params, source) -> dict:
    def bad(msg):
        raise WeightsFormatError(one_line(f"{source}: G_ema {msg}"))

    kw = _kwargs(g)
    mkw, skw = dict(kw.get("mapping_kwargs") or {}), dict(kw.get("synthesis_kwargs") or {})
    if "synthesis.b4.const" not in params:
        bad("has no 'synthesis.b4.const' (not a StyleGAN2 generator)")
    blocks = sorted(int(k.split(".")[1][1:]) for k in params if k.startswith("synthesis.b")
                    and k.split(".")[1][1:].isdigit() and k.endswith(".conv1.weight"))
    if not blocks:
        bad("has no synthesis conv layers")
    res = blocks[-1]
    channels = {4: params["synthesis.b4.const"].shape[0]}
    for r in blocks:
        channels[r] = params[f"synthesis.b{r}.conv1.weight"].shape[0]
    torgb = params.get(f"synthesis.b{res}.torgb.weight")
    if torgb is None:
        bad(f"has no 'synthesis.b{res}.torgb.weight'")
    mapping_layers = sum(1 for k in params if k.startswith("mapping.fc") and k.endswith(".weight"))
    w_avg = params.get("mapping.w_avg")
    if w_avg is None:
        bad("has no 'mapping.w_avg'")

    attrs = {k: g.state.get(k, kw.get(k)) for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    for k, v in attrs.items():
        if v is None:
            bad(f"does not record {k}")
        attrs[k] = number(v, k, source, int)
    derived = {"w_dim": w_avg.shape[0], "img_resolution": res, "img_channels": torgb.shape[0]}
    for k, v in derived.items():
        if attrs[k] != v:
            bad(f"records {k} = {attrs[k]} but its tensors imply {v}")
    if "num_layers" in mkw and number(mkw["num_layers"], "mapping num_layers", source, int) != mapping_layers:
        bad(f"mapping_kwargs.num_layers = {mkw['num_layers']} but the file has {mapping_layers} fc layers")

    base = number(skw.get("channel_base", 32768), "channel_base", source, int)
    cmax = number(skw.get("channel_max", 512), "channel_max", source, int)
    rule = {r: min(base // r, cmax) for r in channels}
    if rule != channels:
        bad(f"channels {channels} do not match channel_base={base}, channel_max={cmax} ({rule})")

    lr = number(mkw.get("lr_multiplier", 0.01), "mapping lr_multiplier", source)
    fc0 = _submodule(g, "mapping", "fc0")
    if fc0 is not None and fc0.state.get("bias_gain") is not None:
        gain = number(fc0.state["bias_gain"], "mapping.fc0 bias_gain", source)
        if not math.isclose(gain, lr, rel_tol=1e-6):
            bad(f"mapping.fc0 bias_gain {gain} does not match lr_multiplier {lr}")

    use_noise = skw.get("use_noise", True)
    has_noise = any(k.endswith(".noise_const") for k in params)
    if bool(use_noise) != has_noise:
        bad(f"synthesis_kwargs.use_noise = {use_noise} but noise buffers are {'present' if has_noise else 'absent'}")
    clamp = skw.get("conv_clamp")
    resample = skw.get("resample_filter", [1, 3, 3, 1])
    if not isinstance(resample, (list, tuple)) or not resample:
        bad(f"resample_filter {resample!r} is not a list of taps")
    arch = str(skw.get("architecture", "skip"))
    b4 = _submodule(g, "synthesis", "b4")
    if b4 is not None and b4.state.get("architecture", arch) != arch:
        bad(f"block b4 has architecture {b4.state['architecture']!r}, synthesis_kwargs say {arch!r}")
    num_ws = g.state.get("num_ws")
    config = canonical.make_config(
        source_format="nvlabs", **attrs, mapping_layers=mapping_layers, mapping_lr_multiplier=lr,
        channels=channels, architecture=arch,
        conv_clamp=None if clamp is None else number(clamp, "conv_clamp", source),
        resample_filter=[number(t, "resample_filter tap", source) for t in resample],
        num_fp16_res=number(skw.get("num_fp16_res", 0), "num_fp16_res", source, int), use_noise=has_noise)
    if num_ws is not None and number(num_ws, "num_ws", source, int) != config["num_ws"]:
        bad(f"records num_ws = {num_ws}, expected {config['num_ws']} for resolution {res}")
    return config
