"""Flax NNX face of the generator. It holds the params pytree and calls the pure functions of
`si_jax.stylegan2.network`: one implementation of the math, two ways to use it.

    gen = StyleGAN2.from_file('ffhq.pkl')          # or StyleGAN2(params, cfg); numerics=Numerics(precision='bf16')
    img = gen(z, truncation_psi=0.7)                # [N, R, R, 3]
    s = gen.styles(gen.mapping(z)); img = gen.synthesize(s)
"""
from __future__ import annotations

from flax import nnx

from si_jax.stylegan2 import network
from si_jax.stylegan2.config import G2Config
from si_jax.stylegan2.style_space import StyleSpace


class StyleGAN2(nnx.Module):
    """StyleGAN2 generator. Mapping params, constant input and per-layer params are `nnx.Param`s."""

    def __init__(self, params: dict, cfg: G2Config):
        self.cfg = cfg
        self.mapping_params = nnx.Param(params["mapping"])
        self.const = nnx.Param(params["const"])
        self.layer_params = nnx.Param(params["layers"])

    @classmethod
    def from_file(cls, path, numerics=None) -> "StyleGAN2":
        """Load a weights file; `numerics` (a Numerics: precision, conv algorithms) replaces the default fp32."""
        from si_jax.stylegan2.loading import load_generator

        params, cfg = load_generator(path)
        return cls(params, cfg if numerics is None else cfg.with_numerics(numerics))

    @property
    def params(self) -> dict:
        """The pytree the functional API takes."""
        return {"mapping": self.mapping_params.get_value(), "const": self.const.get_value(), "layers": self.layer_params.get_value()}

    @property
    def style_space(self) -> StyleSpace:
        return StyleSpace.of(self.cfg)

    def mapping(self, z, truncation_psi: float = 1.0):
        """z: [N, z_dim] -> w: [N, w_dim]."""
        return network.mapping(self.params, self.cfg, z, truncation_psi)

    def styles(self, w):
        """w: [N, w_dim] or [N, num_ws, w_dim] -> list of per-layer styles [N, dim_l]."""
        return network.styles_from_w(self.params, self.cfg, w)

    def synthesize(self, styles, noise_mode: str = "const", key=None):
        """styles: list of [N, dim_l] (or flat [N, S]) -> image [N, R, R, C]."""
        if not isinstance(styles, (list, tuple)):
            styles = self.style_space.split(styles)
        return network.synthesize(self.params, self.cfg, styles, noise_mode, key)

    def __call__(self, z, truncation_psi: float = 1.0, noise_mode: str = "const", key=None):
        """z: [N, z_dim] -> image [N, R, R, C]."""
        return network.generate(self.params, self.cfg, z, truncation_psi, noise_mode, key)[2]
