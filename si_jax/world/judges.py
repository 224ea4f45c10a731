"""Independent judges of toyfaces images: an attribute/identity classifier and a part segmenter (small Flax CNNs).

They play the roles of Face++ (attributes and identity) and the face parser in the paper, but are trained on
rendered images with exact labels (si_jax.world.judge_training), so what they say about an edit is ground truth
up to their measured error, and they know nothing of the generator or its style space.

    judges = load_judges()                             # the shipped ones (si_jax/data), or load_judges(cls, seg)
    out = classify(judges.classifier, images)          # images [N, R, R, 3] in [-1, 1]
    out['logits'] [N, A], out['nuisance'] [N, K], out['features'] [N, F]    (A = ATTRIBUTES, K = NUISANCE)
    seg_logits = segment(judges.segmenter, images)     # [N, R, R, P]  (P = PARTS)
    judges.score('smile', images) -> [N]               # the named interface: logit of one attribute

Images of another resolution are resized (area / bilinear) to the judges' 32 px input; segmentations come back at
the input's resolution.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from si_jax import storage
from si_jax.world.factors import ATTRIBUTES, NUISANCE, PARTS

INPUT_RES = 32
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
CLASSIFIER_FILE, SEGMENTER_FILE = "toyfaces_classifier.safetensors", "toyfaces_segmenter.safetensors"


def _block(x, ch, name, stride=1):
    x = nn.Conv(ch, (3, 3), strides=stride, name=f"{name}a")(x)
    x = nn.GroupNorm(num_groups=8, name=f"{name}n")(x)
    return nn.Conv(ch, (3, 3), name=f"{name}b")(nn.gelu(x))


class Classifier(nn.Module):
    """[N, 32, 32, 3] -> logits [N, A], nuisance [N, K] (in NUISANCE_RANGE units), features [N, F]."""

    width: int = 32

    @nn.compact
    def __call__(self, x):
        for i, mult in enumerate((1, 2, 4)):
            x = nn.gelu(_block(x, self.width * mult, f"c{i}", stride=1 if i == 0 else 2))
        f = nn.gelu(nn.Dense(4 * self.width, name="fc")(jnp.concatenate([x.mean((1, 2)), x.max((1, 2))], -1)))
        return {"logits": nn.Dense(len(ATTRIBUTES), name="attr")(f),
                "nuisance": nn.Dense(len(NUISANCE), name="nuis")(f), "features": f}


class Segmenter(nn.Module):
    """[N, 32, 32, 3] -> part logits [N, 32, 32, P]: a two-level U-Net."""

    width: int = 24

    @nn.compact
    def __call__(self, x):
        e0 = nn.gelu(_block(x, self.width, "e0"))                               # 32 px
        e1 = nn.gelu(_block(e0, 2 * self.width, "e1", stride=2))                # 16 px
        e2 = nn.gelu(_block(e1, 4 * self.width, "e2", stride=2))                # 8 px
        up = lambda t: jax.image.resize(t, (t.shape[0], 2 * t.shape[1], 2 * t.shape[2], t.shape[3]), "nearest")
        d1 = nn.gelu(_block(jnp.concatenate([up(e2), e1], -1), 2 * self.width, "d1"))
        d0 = nn.gelu(_block(jnp.concatenate([up(d1), e0], -1), self.width, "d0"))
        return nn.Conv(len(PARTS), (1, 1), name="out")(d0)


def to_input(images) -> jax.Array:
    """Any [N, H, W, 3] (float, model range ~[-1, 1]) -> [N, 32, 32, 3] float32, clipped to [-1.5, 1.5]."""
    x = jnp.clip(jnp.asarray(images, jnp.float32), -1.5, 1.5)
    if x.shape[1:3] != (INPUT_RES, INPUT_RES):
        x = jax.image.resize(x, (x.shape[0], INPUT_RES, INPUT_RES, x.shape[3]), "linear", antialias=True)
    return x


def classify(params, images, compiler_options=None) -> dict:
    """Classifier outputs for images [N, H, W, 3]: logits [N, A], nuisance [N, K], features [N, F].
    compiler_options: XLA's for the program (None: its defaults), e.g. what a higher stage measured faster for the
    batch (`Judges.with_options_for`)."""
    return _jitted(_classify, _hashable(compiler_options))(params, images)


def segment(params, images, compiler_options=None) -> jax.Array:
    """Part logits [N, H, W, P] for images [N, H, W, 3] (resized back to the input's resolution); compiler_options as
    `classify`."""
    return _jitted(_segment, _hashable(compiler_options))(params, images)


def _classify(params, images) -> dict:
    return Classifier().apply({"params": params}, to_input(images))


def _segment(params, images) -> jax.Array:
    logits = Segmenter().apply({"params": params}, to_input(images))
    n, h, w = images.shape[:3]
    return logits if (h, w) == logits.shape[1:3] else jax.image.resize(logits, (n, h, w, logits.shape[3]), "linear")


def _hashable(options) -> tuple:
    return tuple(sorted((options or {}).items()))


@functools.lru_cache(maxsize=None)
def _jitted(fn, options: tuple):
    return jax.jit(fn, compiler_options=dict(options) or None)


def init_params(module: nn.Module, seed: int) -> dict:
    return module.init(jax.random.PRNGKey(seed), jnp.zeros((1, INPUT_RES, INPUT_RES, 3)))["params"]


def fingerprint(params) -> str:
    """Content hash of a judge's weights (the one recorded in its file's metadata)."""
    return storage.fingerprint(storage.flat_dict(params))


def save_params(path, params, meta: dict) -> None:
    """params pytree -> safetensors (keys 'a/b/c'), metadata (JSON strings, + 'fingerprint'); atomic."""
    import json

    from safetensors.numpy import save_file
    flat = {k: np.asarray(v) for k, v in storage.flat_dict(params).items()}
    meta = {k: json.dumps(v) for k, v in {**meta, "fingerprint": fingerprint(params)}.items()}
    storage.write_atomic(path, lambda tmp: save_file(flat, str(tmp), metadata=meta))


def load_params(path) -> tuple:
    """safetensors file of save_params -> (params pytree of jnp arrays, metadata dict)."""
    import json

    from safetensors import safe_open
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"judge weights not found: {path}")
    with safe_open(str(path), "numpy") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
        tree = storage.nested_dict({key: jnp.asarray(f.get_tensor(key)) for key in f.keys()})
    return tree, meta


@dataclasses.dataclass(frozen=True)
class Judges:
    """The two judges, loaded. `score(name, images)` is the named attribute interface the evaluators call."""

    classifier: dict
    segmenter: dict
    meta: dict = dataclasses.field(default_factory=dict)
    options_for: Callable | None = None   # (name, fn, params, images) -> XLA compiler options or None

    def with_options_for(self, options_for) -> "Judges":
        """A copy that compiles each batch's programs with options_for(name, fn, params, images) ('judge_classify' /
        'judge_segment', `classify` / `segment`): e.g. stylegan2.conv_library.batch_options, the XLA:CPU conv library
        measured faster for the batch (this stage may not import that one's)."""
        return dataclasses.replace(self, options_for=options_for)

    def outputs(self, images) -> dict:
        """`classify`'s outputs for images [N, H, W, 3], compiled with this copy's options."""
        return classify(self.classifier, images, self._options("judge_classify", classify, self.classifier, images))

    def _options(self, name, fn, params, images):
        return self.options_for(name, fn, params, images) if self.options_for is not None else None

    def score(self, attribute: str, images) -> np.ndarray:
        """[N] logit of `attribute` (> 0: present)."""
        if attribute not in ATTRIBUTES:
            raise KeyError(f"unknown toyfaces attribute {attribute!r}; expected one of {', '.join(ATTRIBUTES)}")
        return np.asarray(self.outputs(images)["logits"][:, ATTRIBUTES.index(attribute)])

    def placed(self, put) -> "Judges":
        """A copy whose classifier and segmenter params are put(tree) (e.g. replicated over a device mesh)."""
        return dataclasses.replace(self, classifier=put(self.classifier), segmenter=put(self.segmenter))

    def parts(self, images) -> np.ndarray:
        """[N, H, W] int32 part ids (PARTS order)."""
        options = self._options("judge_segment", segment, self.segmenter, images)
        return np.asarray(jnp.argmax(segment(self.segmenter, images, options), -1), np.int32)

    def part_mask(self, part: str, images) -> np.ndarray:
        """[N, H, W] float32, 1 where the segmenter sees `part`."""
        return (self.parts(images) == PARTS.index(part)).astype(np.float32)


def load_judges(classifier_path=None, segmenter_path=None) -> Judges:
    """The shipped judges (si_jax/data) or the given files."""
    cls, meta_c = load_params(classifier_path or DATA / CLASSIFIER_FILE)
    seg, meta_s = load_params(segmenter_path or DATA / SEGMENTER_FILE)
    return Judges(cls, seg, {"classifier": meta_c, "segmenter": meta_s})
