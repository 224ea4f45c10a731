"""Generator configuration and the style-layer layout it implies.

`G2Config` is a frozen (hashable) dataclass, so it can be a static argument of `jax.jit`. It is built from the
canonical config dict that `weights_convert` writes (`G2Config.from_dict`) or for a random model
(`G2Config.make`, e.g. config-f 1024: 26 style layers, 9088 style values). Its `numerics` field (conv algorithms
and precision, si_jax.stylegan2.numerics) says how the network is computed, not what it is: it is part of the jit
key but not of `to_dict` (saved configs and fingerprints are the same for every numerics).
"""
from __future__ import annotations

import dataclasses
import functools
import math

from si_jax.stylegan2.numerics import Numerics

SUPPORTED_ARCHITECTURES = ("skip", "orig")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One style layer of the synthesis network, in forward order.

    kind: 'conv' (modulated 3x3 conv, demodulated, noise, bias + lrelu) or 'torgb' (modulated 1x1 conv, no demod).
    name: NVlabs module name, e.g. 'b8.conv0', 'b8.torgb'.  res: output resolution of the layer.
    in_ch/out_ch: channels; the style of the layer has `in_ch` values.  up: 2x upsampling conv (each block's conv0).
    w_index: which of the num_ws w vectors feeds its affine layer.  conv_index: index among conv layers (noise), -1.
    offset: position of its first style value in the flat style vector.
    """

    name: str
    kind: str
    res: int
    in_ch: int
    out_ch: int
    up: bool
    w_index: int
    conv_index: int
    offset: int

    @property
    def dim(self) -> int:
        return self.in_ch


@dataclasses.dataclass(frozen=True)
class G2Config:
    """Everything about a StyleGAN2 generator that changes its output.

    channels: ((res, channels), ...) for res = 4, 8, ..., img_resolution.
    resample_filter: 1-D taps of the separable FIR used for up-sampling ([1,3,3,1] in all released models).
    conv_clamp: NVlabs activation clamp (None = off); applied after bias+act of every conv and toRGB layer.
    num_fp16_res: NVlabs' number of highest resolutions trained in fp16; picks the bfloat16 layers of
    precision 'bf16' (`Numerics.bf16_resolution`).
    numerics: how to compute (conv algorithms, precision; `with_numerics`). Compared and hashed, so part of every
    program's cache key; left out of `to_dict` / ignored by `from_dict`.
    """

    z_dim: int
    w_dim: int
    img_resolution: int
    channels: tuple
    img_channels: int = 3
    c_dim: int = 0
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    architecture: str = "skip"
    conv_clamp: float | None = None
    resample_filter: tuple = (1.0, 3.0, 3.0, 1.0)
    use_noise: bool = True
    num_fp16_res: int = 0
    source_format: str = "random"
    numerics: Numerics = Numerics()

    def __post_init__(self):
        res = self.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")
        want = tuple(2**i for i in range(2, int(math.log2(res)) + 1))
        got = tuple(r for r, _ in self.channels)
        if got != want:
            raise ValueError(f"channels must list resolutions {want}, got {got}")
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"synthesis architecture '{self.architecture}' is not supported (supported: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)}); released StyleGAN2 generators use 'skip'")
        if self.c_dim:
            raise ValueError(f"conditional generators (c_dim={self.c_dim}) are not supported; si_jax edits "
                             "unconditional StyleGAN2 models")
        if not isinstance(self.numerics, Numerics):
            raise TypeError(f"numerics must be a Numerics, got {type(self.numerics).__name__}")
        low = self.numerics.bf16_from_res
        if low is not None and low > res:
            raise ValueError(f"bf16_from_res={low} is above the generator's {res} px: no layer would run in bfloat16")

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def make(cls, img_resolution=1024, channel_base=32768, channel_max=512, z_dim=512, w_dim=512, **kw):
        """NVlabs channel rule: channels(res) = min(channel_base // res, channel_max). Defaults = config-f 1024."""
        res = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = tuple((r, min(channel_base // r, channel_max)) for r in res)
        return cls(z_dim=z_dim, w_dim=w_dim, img_resolution=img_resolution, channels=channels, **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "G2Config":
        """From the canonical config dict of `weights_convert` (unknown keys are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"numerics"}
        kw = {k: v for k, v in d.items() if k in fields}
        kw["channels"] = tuple(sorted((int(r), int(c)) for r, c in dict(d["channels"]).items()))
        kw["resample_filter"] = tuple(float(t) for t in d.get("resample_filter", (1, 3, 3, 1)))
        if kw.get("conv_clamp") is not None:
            kw["conv_clamp"] = float(kw["conv_clamp"])
        return cls(**kw)

    def to_dict(self) -> dict:
        """The canonical config dict (what weights files store): every field but `numerics`, plus num_ws."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "numerics"}
        d["channels"] = {str(r): c for r, c in self.channels}
        d["resample_filter"] = list(self.resample_filter)
        d["num_ws"] = self.num_ws
        return d

    def with_numerics(self, numerics: Numerics | None = None, **fields) -> "G2Config":
        """This config computed another way: `numerics` as given, or the current one with `fields` replaced
        (e.g. precision='bf16', conv3x3='direct')."""
        numerics = numerics if numerics is not None else dataclasses.replace(self.numerics, **fields)
        return dataclasses.replace(self, numerics=numerics)

    def layer_dtype(self, res: int) -> str:
        """'bfloat16' for synthesis layers of resolution `res` that precision 'bf16' computes in bfloat16, else
        'float32'."""
        low = self.numerics.bf16_resolution(self.img_resolution, self.num_fp16_res)
        return "bfloat16" if low is not None and res >= low else "float32"

    # --- derived layout -----------------------------------------------------------------------------------
    @property
    def channel_dict(self) -> dict:
        return dict(self.channels)

    @functools.cached_property
    def layers(self) -> tuple:
        """All style layers in forward order (b4.conv1, b4.torgb, b8.conv0, b8.conv1, b8.torgb, ...)."""
        ch = self.channel_dict
        out, w_idx, conv_idx, offset = [], 0, 0, 0
        for res, _ in self.channels:
            last = res == self.img_resolution
            convs = [("conv1", ch[res], ch[res], False)] if res == 4 else [
                ("conv0", ch[res // 2], ch[res], True), ("conv1", ch[res], ch[res], False)]
            for name, cin, cout, up in convs:
                out.append(LayerSpec(f"b{res}.{name}", "conv", res, cin, cout, up, w_idx, conv_idx, offset))
                w_idx, conv_idx, offset = w_idx + 1, conv_idx + 1, offset + cin
            if last or self.architecture == "skip":
                out.append(LayerSpec(f"b{res}.torgb", "torgb", res, ch[res], self.img_channels, False,
                                     w_idx, -1, offset))
                offset += ch[res]
        return tuple(out)

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network consumes (NVlabs num_ws)."""
        return max(layer.w_index for layer in self.layers) + 1

    @property
    def style_dim(self) -> int:
        """Total number of style values (9088 for config-f 1024)."""
        return sum(layer.dim for layer in self.layers)

    @property
    def conv_layers(self) -> tuple:
        return tuple(layer for layer in self.layers if layer.kind == "conv")
