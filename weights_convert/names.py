"""Name tables: one per weight format, which its reader and its writer both expand (the idea of NVlabs' legacy.py:
a declarative list of names and conversions instead of a reader and a writer that each spell the names).

A format is a table {layer kind: [Rule, ...]} and a function `layers(layout) -> [(kind, fields), ...]` that lists
the generator's layers in the format's file order. Expanding each rule's templates with its layer's fields gives,
per tensor, the canonical name, the format's name and the two conversions (`read`: format -> canonical, `write`:
canonical -> format), so the two directions cannot disagree on a name or a layout.

>>> table = {"fc": [Rule("mapping.fc{i}.weight", "Dense{i}/weight", read=transpose, write=transpose)]}
>>> layers = [("fc", {"i": 0}), ("fc", {"i": 1})]
>>> [(canon, src) for canon, src, _ in expand(table, layers)]
[('mapping.fc0.weight', 'Dense0/weight'), ('mapping.fc1.weight', 'Dense1/weight')]
>>> params = {"mapping.fc0.weight": np.ones((2, 3)), "mapping.fc1.weight": np.zeros((2, 2))}
>>> tensors = from_canonical(table, layers, params)
>>> tensors["Dense0/weight"].shape, tensors["Dense0/weight"].dtype
((3, 2), dtype('float32'))
>>> back, used = to_canonical(table, layers, tensors, missing=lambda name: f"no {name}")
>>> all(np.array_equal(back[k], params[k]) for k in params), sorted(used)
(True, ['Dense0/weight', 'Dense1/weight'])
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from weights_convert import canonical


class BadTensor(ValueError):
    """Raised by a rule's `read` for a tensor of the wrong form; the message continues '<source>: <name> '."""


def same(a):
    return a


def f32(a) -> np.ndarray:
    """-> C-contiguous float32 array (the default `write`)."""
    return np.ascontiguousarray(a, np.float32)


def transpose(a) -> np.ndarray:
    """[out, in] <-> [in, out] (dense layers; its own inverse)."""
    return f32(np.asarray(a).T)


def lead1(ndim: int) -> Callable:
    """A `read` that drops a leading axis of length 1 from an array of rank ndim + 1 (its `write` is `add_lead1`)."""

    def read(a):
        if a.ndim != ndim + 1 or a.shape[0] != 1:
            raise BadTensor(f"has shape {a.shape}, expected a leading 1 and {ndim} more dimensions")
        return a[0]

    return read


def add_lead1(a) -> np.ndarray:
    return f32(np.asarray(a)[None])


def squeeze_noise(n) -> np.ndarray:
    """A noise input [1, 1, R, R] (or [R, R]) -> noise_const [R, R]; `unsqueeze_noise` is its inverse."""
    return n.reshape(n.shape[-2:]) if n.ndim == 4 else n


def unsqueeze_noise(n) -> np.ndarray:
    return f32(np.asarray(n)[None, None])


class Rule(NamedTuple):
    """One tensor of a layer. canonical / source: str.format templates over the layer's fields; canonical None
    marks a format-only tensor (a filter buffer, TF's `lod`): made by `write(None)` on writing, checked by
    `read` when present on reading, never part of the canonical params. when: a field name; the rule applies only
    to layers whose field is true (e.g. 'noise', 'up')."""

    canonical: str | None
    source: str
    read: Callable = same
    write: Callable = f32
    when: str | None = None


class Layout(NamedTuple):
    """What a generator file holds, in no format's names: mapping layers, block resolutions (4 first), the
    resolutions that have a toRGB layer and a resnet skip, noise inputs, a label embedding."""

    mapping_layers: int
    resolutions: tuple
    torgb: tuple
    skip: tuple = ()
    use_noise: bool = True
    embed: bool = False

    @classmethod
    def of(cls, params: dict, config: dict) -> "Layout":
        """The layout of validated canonical params.

        >>> cfg = canonical.make_config(source_format="nvlabs", z_dim=4, w_dim=4, c_dim=0, img_resolution=8,
        ...                             img_channels=3, mapping_layers=2, channels={4: 8, 8: 4}, architecture="orig")
        >>> Layout.of(canonical.expected_shapes(cfg), cfg)
        Layout(mapping_layers=2, resolutions=(4, 8), torgb=(8,), skip=(), use_noise=True, embed=False)
        """
        res = canonical.block_resolutions(config)
        return cls(int(config["mapping_layers"]), tuple(res),
                   tuple(r for r in res if f"synthesis.b{r}.torgb.weight" in params),
                   tuple(r for r in res if f"synthesis.b{r}.skip.weight" in params),
                   bool(config["use_noise"]), "mapping.embed.weight" in params)

    @staticmethod
    def convs_at(res: int) -> tuple:
        """The conv layers of block `res`: ('conv1',) at 4x4, else ('conv0', 'conv1') (conv0 upsamples)."""
        return ("conv1",) if res == 4 else ("conv0", "conv1")

    def conv_layers(self) -> list:
        """[(resolution, 'conv0' | 'conv1')] in forward order (the order of the noise inputs)."""
        return [(r, name) for r in self.resolutions for name in self.convs_at(r)]


def expand(table: dict, layers) -> list:
    """-> [(canonical name or None, source name, rule)] in the order of `layers`, then of each kind's rules."""
    out = []
    for kind, fields in layers:
        for rule in table[kind]:
            if rule.when is None or fields.get(rule.when):
                out.append((None if rule.canonical is None else rule.canonical.format(**fields),
                            rule.source.format(**fields), rule))
    return out


def to_canonical(table: dict, layers, tensors: dict, missing: Callable) -> tuple:
    """Format tensors {source name: array} -> (canonical params, set of source names the table used).

    A required tensor that is absent raises BadTensor(missing(name)); a rule's `read` may raise BadTensor (its
    message gets the name in front). Format-only tensors are checked when present.
    """
    params, used = {}, set()
    for canon, src, rule in expand(table, layers):
        if src not in tensors:
            if canon is None:
                continue
            raise BadTensor(missing(src))
        try:
            value = rule.read(tensors[src])
        except BadTensor as e:
            raise BadTensor(f"{src} {e}") from None
        used.add(src)
        if canon is not None:
            params[canon] = value
    return params, used


def from_canonical(table: dict, layers, params: dict) -> dict:
    """Canonical params -> format tensors {source name: value}, in the format's order."""
    return {src: rule.write(None if canon is None else params[canon]) for canon, src, rule in expand(table, layers)}
