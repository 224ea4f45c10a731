"""The style space S as a first-class object: names, dims, offsets; flat <-> per-layer conversion."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from si_jax.stylegan2.config import G2Config


@dataclasses.dataclass(frozen=True)
class StyleSpace:
    """Layout of the flat style vector s (forward layer order, toRGB layers included).

    names: ('b4.conv1', 'b4.torgb', ...); kinds: 'conv'/'torgb'; resolutions; dims; offsets (start of each layer).
    """

    names: tuple
    kinds: tuple
    resolutions: tuple
    dims: tuple
    offsets: tuple
    w_index: tuple

    @classmethod
    def of(cls, cfg: G2Config) -> "StyleSpace":
        ls = cfg.layers
        return cls(tuple(l.name for l in ls), tuple(l.kind for l in ls), tuple(l.res for l in ls),
                   tuple(l.dim for l in ls), tuple(l.offset for l in ls), tuple(l.w_index for l in ls))

    @property
    def num_layers(self) -> int:
        return len(self.dims)

    @property
    def total(self) -> int:
        return sum(self.dims)

    def layer_index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no style layer named {name!r}; layers are {', '.join(self.names)}") from None

    def split(self, flat) -> list:
        """flat: [..., total] -> list over layers of [..., dim_l] (numpy or jax, as given)."""
        if flat.shape[-1] != self.total:
            raise ValueError(f"flat style code has {flat.shape[-1]} values, this generator has {self.total}")
        return [flat[..., o:o + d] for o, d in zip(self.offsets, self.dims)]

    def concat(self, styles) -> "jnp.ndarray":
        """list over layers of [..., dim_l] -> [..., total]."""
        if len(styles) != self.num_layers or any(s.shape[-1] != d for s, d in zip(styles, self.dims)):
            raise ValueError(f"expected {self.num_layers} style layers with dims {self.dims}, got "
                             f"{[s.shape[-1] for s in styles]}")
        lib = np if all(isinstance(s, np.ndarray) for s in styles) else jnp
        return lib.concatenate(list(styles), axis=-1)

    def layer_of_channel(self, index: int) -> tuple:
        """Flat index -> (layer index, channel within the layer)."""
        if not 0 <= index < self.total:
            raise IndexError(f"style index {index} out of range [0, {self.total})")
        layer = int(np.searchsorted(np.asarray(self.offsets), index, side="right") - 1)
        return layer, index - self.offsets[layer]
