"""The NVlabs StyleGAN2 'resnet' discriminator D as pure functions (NHWC, float32).

    D(x) = out(fc(conv(mbstd(blocks(fromrgb(x))))))   x: [N, R, R, 3] -> logits [N]

Per block (res R -> R/2): y = skip(x)·√½ (1x1, down 2, no bias); x = conv1(conv0(x))·√½ (3x3; conv1 down 2);
x = x + y. Every conv/fc layer is NVlabs' equalized-lr layer: weights are stored N(0, 1) and multiplied by
1/√fan_in when run, biases start at 0, lrelu(0.2)·√2. Down-sampling is NVlabs conv2d_resample(down=2): the
[1,3,3,1] FIR blur (padding 2 for 3x3, 1 for 1x1), then a stride-2 conv (`convgrad.down2`, whose gradients keep
R1's double backward off XLA:CPU's slow window-dilated convs). No conv clamp (float32 throughout).

Two choices that differ from the NVlabs code but not in what D can learn: the epilogue fc flattens the 4x4 map
in NHWC order (NVlabs: NCHW), and the minibatch-stddev groups are CONTIGUOUS runs of `mbstd_group` samples
(NVlabs groups samples i ≡ j mod N/G). The batch is i.i.d., so both are the same statistic; contiguous groups stay
inside one device's share of a batch split over devices, so data parallelism needs no communication in D.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from si_jax.stylegan2 import convgrad, ops

SQRT_HALF = math.sqrt(0.5)


@dataclasses.dataclass(frozen=True)
class DConfig:
    """Everything about D that changes its output (frozen: a jit static argument).

    channels: ((res, channels), ...) for res = 4, 8, ..., img_resolution (the block at res R maps
    channels[R] -> channels[R/2]; the epilogue runs at 4x4 on channels[4]).
    """

    img_resolution: int
    channels: tuple
    img_channels: int = 3
    mbstd_group: int = 4
    mbstd_channels: int = 1
    resample_filter: tuple = (1.0, 3.0, 3.0, 1.0)

    def __post_init__(self):
        res = self.img_resolution
        if res < 8 or res & (res - 1):
            raise ValueError(f"discriminator img_resolution must be a power of two >= 8, got {res}")
        want = tuple(2**i for i in range(2, int(math.log2(res)) + 1))
        if tuple(r for r, _ in self.channels) != want:
            raise ValueError(f"discriminator channels must list resolutions {want}, got {self.channels}")
        c4 = dict(self.channels)[4]
        if self.mbstd_group < 1 or self.mbstd_channels < 1 or c4 % self.mbstd_channels:
            raise ValueError(f"mbstd_group ({self.mbstd_group}) and mbstd_channels ({self.mbstd_channels}) must "
                             f"be >= 1, and mbstd_channels must divide the 4x4 channels ({c4})")

    @classmethod
    def make(cls, img_resolution: int, channel_base: int = 32768, channel_max: int = 512, **kw) -> DConfig:
        """NVlabs channel rule: channels(res) = min(channel_base // res, channel_max)."""
        res = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        return cls(img_resolution, tuple((r, min(channel_base // r, channel_max)) for r in res), **kw)

    @property
    def block_resolutions(self) -> tuple:
        """Resolutions of the blocks, top first: (R, R/2, ..., 8)."""
        return tuple(r for r, _ in reversed(self.channels) if r > 4)


def _layer(key, k: int, cin: int, cout: int, bias: bool = True) -> dict:
    p = {"w": jax.random.normal(key, (k, k, cin, cout), jnp.float32)}
    if bias:
        p["b"] = jnp.zeros((cout,), jnp.float32)
    return p


def init_discriminator(key: jax.Array, dcfg: DConfig) -> dict:
    """NVlabs init: stored weights N(0, 1) (HWIO; fc [in, out]), biases 0.

    Returns {'fromrgb': {w [1,1,3,C_R], b}, 'blocks': [{'conv0', 'conv1', 'skip'} per res R..8],
             'epilogue': {'conv': {w [3,3,C4+F,C4], b}, 'fc': {w [16·C4, C4], b}, 'out': {w [C4, 1], b [1]}}}.

    >>> p = jax.eval_shape(lambda: init_discriminator(jax.random.PRNGKey(0), DConfig.make(8, 256, 16)))  # no compile
    >>> p['blocks'][0]['conv1']['w'].shape
    (3, 3, 16, 16)
    """
    ch = dict(dcfg.channels)
    keys = iter(jax.random.split(key, 3 * len(dcfg.block_resolutions) + 4))
    top = dcfg.img_resolution
    blocks = [{"conv0": _layer(next(keys), 3, ch[r], ch[r]), "conv1": _layer(next(keys), 3, ch[r], ch[r // 2]),
               "skip": _layer(next(keys), 1, ch[r], ch[r // 2], bias=False)} for r in dcfg.block_resolutions]
    c4 = ch[4]
    epilogue = {"conv": _layer(next(keys), 3, c4 + dcfg.mbstd_channels, c4),
                "fc": {"w": jax.random.normal(next(keys), (16 * c4, c4)), "b": jnp.zeros((c4,))},
                "out": {"w": jax.random.normal(next(keys), (c4, 1)), "b": jnp.zeros((1,))}}
    return {"fromrgb": _layer(next(keys), 1, dcfg.img_channels, ch[top]), "blocks": blocks, "epilogue": epilogue}


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def blur(x: jax.Array, resample_filter: tuple, pad: tuple) -> jax.Array:
    """`ops.fir_filter_2d` (padding pad = (lo, hi)) whose gradient is again a shifted-add FIR.

    Its adjoint is the FIR with the reversed taps and padding (L−1−lo, L−1−hi). Measured (jax 0.10.2, 2-core CPU,
    [32, 32, 32, 64], forward + backward): autodiff's slice transposes 37 ms (pad 2) / 39 ms (pad 1), this 11 / 6 ms.
    """
    return ops.fir_filter_2d(x, resample_filter, pad=pad)


def _blur_fwd(x, resample_filter, pad):
    return blur(x, resample_filter, pad), None


def _blur_bwd(resample_filter, pad, _, g):
    taps = len(resample_filter)
    return (blur(g, tuple(reversed(resample_filter)), (taps - 1 - pad[0], taps - 1 - pad[1])),)


blur.defvjp(_blur_fwd, _blur_bwd)


def _conv(p: dict, x: jax.Array, dcfg: DConfig, *, down: bool = False, act: bool = True,
          gain: float = 1.0) -> jax.Array:
    """Equalized-lr conv (NVlabs Conv2dLayer). x: [N, H, W, I] -> [N, H', W', O] (H' = H/2 when down)."""
    k = p["w"].shape[0]
    w = p["w"] * (1.0 / math.sqrt(k * k * p["w"].shape[2]))
    if not down:
        y = ops.conv_2d(x, w)
    elif k == 1:  # blur (pad 1), keep every 2nd pixel, then the 1x1 conv
        y = blur(x, dcfg.resample_filter, (1, 1))[:, ::2, ::2] @ w[0, 0]
    else:  # blur (pad 2), then a stride-2 valid conv
        y = convgrad.down2(blur(x, dcfg.resample_filter, (2, 2)), w)
    if "b" in p or act:   # NVlabs' D: every conv with an activation has a bias; the skip conv has neither
        y = ops.bias_act(y, p["b"] if "b" in p else jnp.zeros((), y.dtype), act="lrelu" if act else "linear")
    return y * gain if gain != 1.0 else y


def _fc(p: dict, x: jax.Array, act: bool) -> jax.Array:
    y = x @ (p["w"] * (1.0 / math.sqrt(p["w"].shape[0])))
    return ops.bias_act(y, p["b"], act="lrelu" if act else "linear")


def minibatch_stddev(x: jax.Array, group: int, channels: int) -> jax.Array:
    """Append the mean stddev over groups of `group` consecutive samples as `channels` extra feature maps.

    x: [N, H, W, C] (N a multiple of min(group, N)) -> [N, H, W, C + channels].
    """
    n, h, w, c = x.shape
    g = min(group, n)
    if n % g:
        raise ValueError(f"batch {n} is not a multiple of the minibatch-stddev group {g}")
    y = x.reshape(n // g, g, h, w, channels, c // channels)
    y = jnp.sqrt(jnp.var(y, axis=1) + 1e-8)          # [n/g, H, W, F, c/F]
    y = jnp.mean(y, axis=(1, 2, 4))                    # [n/g, F]
    y = jnp.broadcast_to(y[:, None, None, None, :], (n // g, g, h, w, channels)).reshape(n, h, w, channels)
    return jnp.concatenate([x, y], axis=-1)


def discriminate(params: dict, dcfg: DConfig, images: jax.Array) -> jax.Array:
    """Logits D(images). images: [N, R, R, img_channels] in [-1, 1] -> [N] (real > fake after training).

    >>> dcfg = DConfig.make(8, 256, 16)
    >>> p = jax.eval_shape(lambda: init_discriminator(jax.random.PRNGKey(0), dcfg))   # shapes only: no compile
    >>> jax.eval_shape(lambda p: discriminate(p, dcfg, jnp.zeros((4, 8, 8, 3))), p).shape
    (4,)
    """
    x = _conv(params["fromrgb"], images.astype(jnp.float32), dcfg)
    for bp in params["blocks"]:
        y = _conv(bp["skip"], x, dcfg, down=True, act=False, gain=SQRT_HALF)
        x = _conv(bp["conv1"], _conv(bp["conv0"], x, dcfg), dcfg, down=True, gain=SQRT_HALF)
        x = x + y
    ep = params["epilogue"]
    x = minibatch_stddev(x, dcfg.mbstd_group, dcfg.mbstd_channels)
    x = _conv(ep["conv"], x, dcfg)
    x = _fc(ep["fc"], x.reshape(x.shape[0], -1), act=True)
    return _fc(ep["out"], x, act=False)[:, 0]
