"""si_jax.world: a procedural world of aligned toy faces ("toyfaces") with exact labels and part masks.

Factors (binary attributes tied to one part each, continuous nuisance factors) are sampled deterministically
from (seed, index); the renderer turns them into RGB images and exact segmentations at any resolution.
    factors, shapes, renderer   the world: sampling, SDF shapes, compositing (jax only, nothing else of si_jax)
    judges, judge_training      the independent judges (Flax CNNs) trained on renders, and their evaluation
May import: si_jax.storage (file fingerprints). Nothing above it: the world knows no generator.
"""
from si_jax.world.factors import ATTRIBUTE_PART as ATTRIBUTE_PART
from si_jax.world.factors import ATTRIBUTES as ATTRIBUTES
from si_jax.world.factors import CORRELATED_PAIRS as CORRELATED_PAIRS
from si_jax.world.factors import NUISANCE as NUISANCE
from si_jax.world.factors import NUISANCE_RANGE as NUISANCE_RANGE
from si_jax.world.factors import PARTS as PARTS
from si_jax.world.factors import attributes_of as attributes_of
from si_jax.world.factors import nuisance_of as nuisance_of
from si_jax.world.factors import sample_factors as sample_factors
from si_jax.world.factors import with_attribute as with_attribute
from si_jax.world.renderer import LAYERS as LAYERS
from si_jax.world.renderer import render as render
from si_jax.world.renderer import render_batch as render_batch
from si_jax.world.renderer import render_parts as render_parts
