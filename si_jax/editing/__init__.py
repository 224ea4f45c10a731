"""Editing in style space: the method of the paper (Sec. 3) on one batch of images.

    directions   linear SVMs in Z / W / S (Table 1), InterFaceGAN's conditional direction; code-free files
    edits        Δs_z, Δs_w, Δs_n and their step lengths
    intervention Style Intervention: per-image Λ, layer by layer with optax Adam in lax.scan (Eq. 8-11)
    masks        component masks: boxes/ellipses, files, the label-free auto mask
    pipeline     one batch, every method on the same footing (prepare -> run_method)
    batches      fixed-size padded batches (one compiled program per size)

May import: si_jax.stylegan2, si_jax.storage, si_jax.metrics.
"""
from si_jax.editing.directions import Direction as Direction
from si_jax.editing.directions import fit_direction as fit_direction
from si_jax.editing.directions import load_directions as load_directions
from si_jax.editing.directions import save_directions as save_directions
from si_jax.editing.intervention import InterventionConfig as InterventionConfig
from si_jax.editing.intervention import InterventionResult as InterventionResult
from si_jax.editing.intervention import apply_lambda as apply_lambda
from si_jax.editing.intervention import intervene as intervene
from si_jax.editing.pipeline import EditBatch as EditBatch
from si_jax.editing.pipeline import EditOutput as EditOutput
from si_jax.editing.pipeline import prepare as prepare
from si_jax.editing.pipeline import run_method as run_method
