"""Writers: canonical (params, config) -> a file in each real format, without torch or TensorFlow.

Used by the round-trip tests, and usable to export canonical weights for the reference code bases:
* `write_nvlabs_pkl`: snapshot dict {training_set_kwargs, G, D, G_ema, augment_pipe}; G and G_ema are
  `torch_utils.persistence._reconstruct_persistent_obj(meta)` trees (module_src is a placeholder, so stock
  loaders need the source supplied, e.g. through `persistence.import_hook`); tensors are
  `torch._utils._rebuild_tensor_v2` over `torch.storage._load_from_bytes` legacy streams; D is None.
* `write_tf_pkl`: tuple (G, D, Gs) of `dnnlib.tflib.network.Network` (NEWOBJ + BUILD) with the TF variable
  names and layouts (G is Gs; D is an empty 'D_stylegan2' network).
* `write_rosinality_pt`: torch zip `{'g_ema': OrderedDict, 'latent_avg'}` (or a legacy stream, `legacy=True`).

The pickles name the real globals (`torch._utils._rebuild_tensor_v2`, ...) through local stand-ins: a
subclass of the pure-Python `pickle._Pickler` writes GLOBAL/STACK_GLOBAL opcodes for them without importing
the modules they name.
"""
from __future__ import annotations

import collections
import io
import math
import pathlib
import pickle
import struct
import types
import zipfile

import numpy as np

from weights_convert import canonical, files, names, rosinality, tf, torch_storage
from weights_convert.common import fir_kernel

PLACEHOLDER_SRC = "# source omitted (written by si_jax weights_convert)\n"


# --- stand-ins that pickle under the real global names ----------------------------------------------------

def _rebuild_tensor_v2(*args):  # pickled as torch._utils._rebuild_tensor_v2
    raise RuntimeError("stand-in only")


def _rebuild_parameter(*args):  # pickled as torch._utils._rebuild_parameter
    raise RuntimeError("stand-in only")


def _load_from_bytes(*args):  # pickled as torch.storage._load_from_bytes
    raise RuntimeError("stand-in only")


def _reconstruct_persistent_obj(*args):  # pickled as torch_utils.persistence._reconstruct_persistent_obj
    raise RuntimeError("stand-in only")


class _EasyDict(dict):
    """Pickled as dnnlib.util.EasyDict (REDUCE with no args, then SETITEMS)."""

    def __reduce__(self):
        return _EasyDict, (), None, None, iter(self.items())


class _FloatStorage:  # pickled as torch.FloatStorage
    pass


class _TFNetwork:
    """Pickled as dnnlib.tflib.network.Network: NEWOBJ + BUILD(state)."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state


_GLOBAL_NAMES = {
    id(_rebuild_tensor_v2): ("torch._utils", "_rebuild_tensor_v2"),
    id(_rebuild_parameter): ("torch._utils", "_rebuild_parameter"),
    id(_load_from_bytes): ("torch.storage", "_load_from_bytes"),
    id(_reconstruct_persistent_obj): ("torch_utils.persistence", "_reconstruct_persistent_obj"),
    id(_EasyDict): ("dnnlib.util", "EasyDict"),
    id(_FloatStorage): ("torch", "FloatStorage"),
    id(_TFNetwork): ("dnnlib.tflib.network", "Network"),
    # NumPy 2 pickles name numpy._core; write the NumPy 1.x names that released pickles use (both load).
    id(np.zeros(0).__reduce__()[0]): ("numpy.core.multiarray", "_reconstruct"),
    id(np.float32(0).__reduce__()[0]): ("numpy.core.multiarray", "scalar"),
}


class _Tensor:
    """A tensor to write: `param` wraps it in _rebuild_parameter; its storage is `storage` (a _Storage)."""

    def __init__(self, array, storage, param):
        self.array, self.storage, self.param = array, storage, param


class _Storage:
    def __init__(self, array, key):
        self.array, self.key = np.ascontiguousarray(array, "<f4").reshape(-1), key


class _Persistent:
    def __init__(self, class_name, state):
        self.meta = {"type": "class", "version": 6, "module_src": PLACEHOLDER_SRC, "class_name": class_name,
                     "state": state}


class _OutPickler(pickle._Pickler):
    """Pure-Python pickler: stand-ins -> real global names; tensors/storages/persistent objects -> reduce calls.

    `storage_mode`: 'bytes' (storages inline via _load_from_bytes), 'pid' (persistent ids of torch zip files),
    'legacy_pid' (persistent ids of legacy torch.save streams, with a trailing view_metadata None).
    """

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = lambda self, obj: self.save_global(obj)
    dispatch[types.BuiltinFunctionType] = lambda self, obj: self.save_global(obj)

    def __init__(self, file, protocol, storage_mode="bytes", storages=None):
        super().__init__(file, protocol)
        self.storage_mode = storage_mode
        self.storages = storages if storages is not None else {}

    def save_global(self, obj, name=None):
        ref = _GLOBAL_NAMES.get(id(obj))
        if ref is None:
            return super().save_global(obj, name)
        module, qualname = ref
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
        self.memoize(obj)

    def persistent_id(self, obj):
        if isinstance(obj, _Storage) and self.storage_mode != "bytes":
            self.storages.setdefault(obj.key, obj)
            pid = ("storage", _FloatStorage, obj.key, "cpu", obj.array.size)
            return pid + (None,) if self.storage_mode == "legacy_pid" else pid
        return None

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            arr = obj.array
            stride = tuple(s // arr.itemsize for s in arr.strides) if arr.ndim else ()
            inner = (_rebuild_tensor_v2, (obj.storage, 0, tuple(arr.shape), stride, False,
                                          collections.OrderedDict()))
            if obj.param:
                return _rebuild_parameter, (_Tensor(arr, obj.storage, False), False, collections.OrderedDict())
            return inner
        if isinstance(obj, _Storage) and self.storage_mode == "bytes":
            return _load_from_bytes, (legacy_stream(obj),)
        if isinstance(obj, _Persistent):
            return _reconstruct_persistent_obj, (obj.meta,)
        return NotImplemented


def legacy_stream(obj) -> bytes:
    """A legacy (non-zip) torch.save stream of `obj` (a _Storage, or any tree of _Tensors)."""
    buf = io.BytesIO()
    for header in (torch_storage.LEGACY_MAGIC, torch_storage.LEGACY_PROTOCOL,
                   {"protocol_version": torch_storage.LEGACY_PROTOCOL, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 8}}):
        _OutPickler(buf, 2).dump(header)
    storages = {}
    _OutPickler(buf, 2, storage_mode="legacy_pid", storages=storages).dump(obj)
    keys = list(storages)
    _OutPickler(buf, 2).dump(keys)
    for k in keys:
        buf.write(struct.pack("<q", storages[k].array.size))
        buf.write(storages[k].array.tobytes())
    return buf.getvalue()


def _checked(params, config):
    params, config = canonical.validate(params, config, "<params to write>")
    return params, config, {int(r): c for r, c in config["channels"].items()}


def _channel_rule(config, ch):
    """(channel_base, channel_max) with min(base // res, max) == channels; ValueError if there is none."""
    cmax = max(ch.values())
    below = [r for r in ch if ch[r] < cmax]
    base = ch[min(below)] * min(below) if below else cmax * config["img_resolution"]
    if any(min(base // r, cmax) != c for r, c in ch.items()):
        raise ValueError(f"channels {ch} do not follow the min(channel_base // res, channel_max) rule")
    return base, cmax


# --- NVlabs -------------------------------------------------------------------------------------------------

def write_nvlabs_pkl(path, params, config) -> None:
    """Canonical -> NVlabs snapshot pickle (protocol 4). Only G_ema/G are meaningful; D is None."""
    params, config, ch = _checked(params, config)
    base, cmax = _channel_rule(config, ch)
    counter = iter(range(1 << 30))
    fir = fir_kernel(config["resample_filter"]).astype(np.float32)

    def tensor(arr, param=True):
        arr = np.ascontiguousarray(arr, np.float32)
        return _Tensor(arr, _Storage(arr, str(next(counter))), param)

    def module(class_name, params_=None, buffers=None, modules=None, **attrs):
        state = {"training": False, "_parameters": {k: (None if v is None else tensor(v)) for k, v in
                                                    (params_ or {}).items()},
                 "_buffers": {k: tensor(v, False) for k, v in (buffers or {}).items()},
                 "_modules": modules or {}}
        state.update(attrs)
        return _Persistent(class_name, state)

    def fc(prefix, activation, lr, bias_init=0):
        w = params[f"{prefix}.weight"]
        return module("FullyConnectedLayer", {"weight": w, "bias": params[f"{prefix}.bias"]},
                      activation=activation, weight_gain=np.float64(lr / math.sqrt(w.shape[1])), bias_gain=lr,
                      _init_kwargs=_EasyDict(activation=activation, lr_multiplier=lr, bias_init=bias_init))

    lr, w_dim, res_list = config["mapping_lr_multiplier"], config["w_dim"], canonical.block_resolutions(config)
    mods = {}
    if "mapping.embed.weight" in params:
        mods["embed"] = fc("mapping.embed", "linear", 1.0)
    for i in range(config["mapping_layers"]):
        mods[f"fc{i}"] = fc(f"mapping.fc{i}", "lrelu", lr)
    mapping = module("MappingNetwork", buffers={"w_avg": params["mapping.w_avg"]}, modules=mods,
                     z_dim=config["z_dim"], c_dim=config["c_dim"], w_dim=w_dim, num_ws=config["num_ws"],
                     num_layers=config["mapping_layers"], w_avg_beta=0.995)
    blocks = {}
    for res in res_list:
        b, sub = f"synthesis.b{res}", {}
        for name in (["conv1"] if res == 4 else ["conv0", "conv1"]):
            p = f"{b}.{name}"
            noise = config["use_noise"]
            sub[name] = module(
                "SynthesisLayer",
                {"weight": params[f"{p}.weight"], **({"noise_strength": params[f"{p}.noise_strength"]}
                                                     if noise else {}), "bias": params[f"{p}.bias"]},
                {"resample_filter": fir, **({"noise_const": params[f"{p}.noise_const"]} if noise else {})},
                {"affine": fc(f"{p}.affine", "linear", 1.0, bias_init=1)},
                resolution=res, up=2 if name == "conv0" else 1, use_noise=noise, activation="lrelu",
                conv_clamp=config["conv_clamp"], padding=1, act_gain=np.float64(math.sqrt(2)))
        if f"{b}.torgb.weight" in params:
            w = params[f"{b}.torgb.weight"]
            sub["torgb"] = module("ToRGBLayer", {"weight": w, "bias": params[f"{b}.torgb.bias"]},
                                  modules={"affine": fc(f"{b}.torgb.affine", "linear", 1.0, bias_init=1)},
                                  conv_clamp=config["conv_clamp"], weight_gain=np.float64(1 / math.sqrt(w.shape[1])))
        if f"{b}.skip.weight" in params:
            sub["skip"] = module("Conv2dLayer", {"weight": params[f"{b}.skip.weight"], "bias": None},
                                 {"resample_filter": fir}, activation="linear", up=2, down=1)
        blocks[f"b{res}"] = module(
            "SynthesisBlock", {"const": params[f"{b}.const"]} if res == 4 else {}, {"resample_filter": fir},
            sub, in_channels=0 if res == 4 else ch[res // 2], w_dim=w_dim, resolution=res,
            img_channels=config["img_channels"], is_last=res == res_list[-1], architecture=config["architecture"],
            use_fp16=False, num_conv=1 if res == 4 else 2, num_torgb=1 if "torgb" in sub else 0)
    synthesis = module("SynthesisNetwork", modules=blocks, w_dim=w_dim, img_resolution=config["img_resolution"],
                       img_resolution_log2=int(math.log2(config["img_resolution"])),
                       img_channels=config["img_channels"], block_resolutions=res_list, num_ws=config["num_ws"])
    synthesis_kwargs = _EasyDict(channel_base=base, channel_max=cmax, num_fp16_res=config["num_fp16_res"],
                                 conv_clamp=config["conv_clamp"], architecture=config["architecture"],
                                 resample_filter=list(config["resample_filter"]))
    if not config["use_noise"]:
        synthesis_kwargs["use_noise"] = False
    mapping_kwargs = _EasyDict(num_layers=config["mapping_layers"])
    if lr != 0.01:
        mapping_kwargs["lr_multiplier"] = lr
    keys = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    g = module("Generator", modules={"mapping": mapping, "synthesis": synthesis},
               **{k: config[k] for k in keys}, num_ws=config["num_ws"], _init_args=(),
               _init_kwargs=_EasyDict(z_dim=config["z_dim"], w_dim=w_dim, mapping_kwargs=mapping_kwargs,
                                      synthesis_kwargs=synthesis_kwargs, c_dim=config["c_dim"],
                                      img_resolution=config["img_resolution"],
                                      img_channels=config["img_channels"]))
    snapshot = {"training_set_kwargs": None, "G": g, "D": None, "G_ema": g, "augment_pipe": None}
    files.write_stream_atomic(path, lambda f: _OutPickler(f, 4).dump(snapshot))


# --- TF -----------------------------------------------------------------------------------------------------

def write_tf_pkl(path, params, config) -> None:
    """Canonical -> TF StyleGAN2 pickle `(G, D, Gs)` (protocol 4). Needs c_dim 0 and use_noise."""
    params, config, ch = _checked(params, config)
    if config["c_dim"] or not config["use_noise"]:
        raise ValueError("the TF writer supports unconditional generators with noise inputs only")
    base, cmax = _channel_rule(config, ch)
    if base % 2:
        raise ValueError(f"channel_base {base} is odd; TF fmap_base = channel_base / 2")
    kw = {"num_channels": config["img_channels"], "resolution": config["img_resolution"], "label_size": 0,
          "latent_size": config["z_dim"], "dlatent_size": config["w_dim"],
          "mapping_fmaps": params["mapping.fc0.weight"].shape[0], "fmap_base": base // 2, "fmap_max": cmax}
    if config["mapping_layers"] != 8:
        kw["mapping_layers"] = config["mapping_layers"]
    if config["mapping_lr_multiplier"] != 0.01:
        kw["mapping_lrmul"] = config["mapping_lr_multiplier"]
    if config["architecture"] != "skip":
        kw["architecture"] = config["architecture"]
    if list(config["resample_filter"]) != [1, 3, 3, 1]:
        kw["resample_kernel"] = list(config["resample_filter"])
    if config["conv_clamp"] is not None or config["num_fp16_res"]:
        kw.update(conv_clamp=config["conv_clamp"], num_fp16_res=config["num_fp16_res"])
    tensors = names.from_canonical(tf.TABLE, tf.layers(names.Layout.of(params, config)), params)
    variables = {"Gs": [], "G_mapping": [], "G_synthesis": []}
    for name, value in tensors.items():
        label, var = name.split("/", 1)
        variables[label].append((var, value))

    def net(name, func, variables, static_kwargs, components=None):
        return _TFNetwork({"version": 4, "name": name, "static_kwargs": dict(static_kwargs),
                           "components": components or {}, "build_module_src": PLACEHOLDER_SRC,
                           "build_func_name": func, "variables": variables})

    synthesis = net("G_synthesis", "G_synthesis_stylegan2", variables["G_synthesis"], kw)
    mapping = net("G_mapping", "G_mapping", variables["G_mapping"], {"dlatent_broadcast": config["num_ws"], **kw})
    gs = net("Gs", "G_main", variables["Gs"], kw, {"synthesis": synthesis, "mapping": mapping})
    d = net("D", "D_stylegan2", [], {"num_channels": config["img_channels"],
                                     "resolution": config["img_resolution"], "label_size": 0})
    files.write_stream_atomic(path, lambda f: _OutPickler(f, 4).dump((gs, d, gs)))


# --- rosinality ---------------------------------------------------------------------------------------------

def rosinality_tensors(params, config) -> dict:
    """Canonical -> the tensors of a rosinality checkpoint (`rosinality.TABLE` names: 'g_ema.<state dict name>' in
    rosinality's order, then 'latent_avg'), float32."""
    params, config, _ = _checked(params, config)
    if (config["c_dim"] or config["architecture"] != "skip" or not config["use_noise"]
            or config["mapping_lr_multiplier"] != 0.01 or list(config["resample_filter"]) != rosinality.RESAMPLE):
        raise ValueError("rosinality checkpoints hold unconditional 'skip' generators with noise, mapping lr 0.01 "
                         "and the [1,3,3,1] filter only")
    return names.from_canonical(rosinality.TABLE, rosinality.layers(names.Layout.of(params, config)), params)


def write_rosinality_pt(path, params, config, *, legacy=False) -> None:
    """Canonical -> rosinality checkpoint {'g_ema': OrderedDict, 'latent_avg'}: torch zip (default, as
    `torch.save` >= 1.6 writes it, entries stored uncompressed) or a legacy torch.save stream."""
    counter = iter(range(1 << 30))

    def tensor(arr):
        return _Tensor(arr, _Storage(arr, str(next(counter))), False)

    tensors = rosinality_tensors(params, config)
    obj = {"g_ema": collections.OrderedDict((k[len("g_ema."):], tensor(v)) for k, v in tensors.items()
                                            if k.startswith("g_ema.")),
           "latent_avg": tensor(tensors["latent_avg"])}
    if legacy:
        files.write_stream_atomic(path, lambda f: f.write(legacy_stream(obj)))
        return
    _write_torch_zip(path, obj)


def write_torch_state_dict(path, state_dict: dict) -> None:
    """{name: float32 array} -> a torch zip file as `torch.save(module.state_dict(), path)` writes it (an
    OrderedDict of tensors), e.g. a small torchvision-layout VGG16 for tests (si_jax.projection reads it back)."""
    counter = iter(range(1 << 30))
    obj = collections.OrderedDict()
    for k, v in state_dict.items():
        arr = np.ascontiguousarray(v, np.float32)
        obj[k] = _Tensor(arr, _Storage(arr, str(next(counter))), False)
    _write_torch_zip(path, obj)


def _write_torch_zip(path, obj) -> None:
    """The zip format of torch.save >= 1.6 (entries stored uncompressed), written atomically."""
    buf, storages = io.BytesIO(), {}
    _OutPickler(buf, 2, storage_mode="pid", storages=storages).dump(obj)
    prefix = pathlib.Path(path).name.split(".")[0] or "archive"

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(f"{prefix}/data.pkl", buf.getvalue())
            zf.writestr(f"{prefix}/byteorder", "little")
            for key, st in storages.items():
                zf.writestr(f"{prefix}/data/{key}", st.array.tobytes())
            zf.writestr(f"{prefix}/version", "3\n")

    files.write_stream_atomic(path, write)
