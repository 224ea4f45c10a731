"""Measuring edits: the paper's Table 2 and analysis figures (Figs. 2, 5, 6).

Who owns what:
    comparison     the numbers per method and image (edit_metrics, compare_methods) and the Table 2 text
    figure_data    the numbers behind the figures: Fig. 5 interpolation strips, Fig. 2 channel/mask IoU
    figure_panels  drawing those figures (labelled tile grids, the Fig. 6 plot) from numpy arrays
    pictures       picture primitives everyone uses: raw output -> uint8, display range, grids, PNG files
    report         per-image rows (scores towards the target, flags) -> the runs' index.html and per_image.csv
The image metrics themselves (MSE, SSIM, PSNR, flip rate) are si_jax.metrics, shared with the editing objective.

May import: si_jax.editing and below.
"""
from si_jax.evaluation.comparison import compare_methods as compare_methods
from si_jax.evaluation.comparison import edit_metrics as edit_metrics
from si_jax.evaluation.comparison import table2 as table2
