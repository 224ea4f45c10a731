"""The attributes the shipped generators are edited for: how their samples are labelled, their directions fitted
and their edits masked. World knowledge wired to a generator, so it sits above both (si_jax.world knows no
generator; si_jax.editing knows no world).

    toyfaces    builtin:toyfaces and the judges of si_jax.world: classifier-labelled S / Z / W directions
                (fit_directions, sample_codes, fit_three), segmenter part masks (part_masks, part:NAME specs), which
                generator the judges can judge (generator_id, judged_attribute)
    synthetic   builtin:demo's synthetic attribute (a colour box: labels, mask, directions) for the fast tests

May import: si_jax.editing, si_jax.world, si_jax.stylegan2 and the leaves. Its modules are imported by name.
"""
