"""What bin/evaluate.py writes besides Table 2's numbers (evaluate_cli computes them): the per-image page rows, the
Figs. 2, 5 and 6, and all outputs written together (storage.Outputs). The paper suite draws Figs. 5 and 6 with
`fig5_and_fig6` too.
"""
from __future__ import annotations

import pathlib

import numpy as np

from si_jax import storage
from si_jax.engines import errors
from si_jax.evaluation import comparison, figure_data, figure_panels, pictures, report
from si_jax.stylegan2 import programs


PAGE_COLUMNS = (report.EDIT_COLUMNS[:1] + (("method", "method", None),) + report.EDIT_COLUMNS[1:]
                + (("ssim_outside", "SSIM outside", 3),))


def page_rows(results: dict, names=None) -> list:
    """compare_methods' results -> evaluation.report rows, one per method (not the unedited reconstruction) and
    image; thumbnails (input | edit | mask) of the kept images as data URIs."""
    kept, sign, rows = results["kept"], results["target_sign"], []
    lo_hi = pictures.display_range(kept["input"])
    for m, v in results["methods"].items():
        if m in comparison.UNRANKED_ROWS:
            continue
        n = len(v["mse_outside"])
        thumbs = [None] * n
        for i in range(len(kept["input"]) if m in kept["images"] else 0):
            tiles = [pictures.to_uint8(x, *lo_hi) for x in (kept["input"][i], kept["images"][m][i])]
            thumbs[i] = report.thumbnail_uri(pictures.grid(
                [tiles + [pictures.mask_overlay(tiles[-1], kept["mask"][i])]], scale=pictures.upscale_for_viewing(
                    tiles[0].shape[0])))
        judge = {"judge_before": v["judge_before"], "judge_after": v["judge_after"]} if "judge_before" in v else {}
        rows += report.edit_rows(np.arange(n), sign, v["s_score_before"], v["s_score_after"], v["mse_outside"],
                                 names=None if names is None else [str(x) for x in names], thumbs=thumbs,
                                 extra={"ssim_outside": v["ssim_outside"]}, method=comparison.METHOD_NAMES.get(m, m),
                                 **judge)
    return rows


def fig5_and_fig6(params, cfg, kept: dict, coeffs, pngs: dict, extra: dict, log, latent: str = "Z edit") -> None:
    """Figs. 5 and 6 of the kept images (compare_methods' 'kept', with Λ*) into pngs {name: (image, caption)} and
    extra {name: JSON-able}. latent: the name of the latent edit the intervention localises ('W edit' for codes)."""
    keep = len(kept["input"])
    names = [l.name for l in cfg.layers]
    strip = figure_data.interpolation_strip(params, cfg, kept["styles"], kept["ds_z"], kept["ds_n"], kept["lam"],
                                              coeffs)
    mse = figure_data.strip_outside_mse(strip, kept["input"], kept["mask"])
    errors.finite_or_error("Fig. 5 outside-mask MSE", mse.T, errors.likely_cause(coeffs=max(map(abs, coeffs))))
    pngs["fig5_interpolation.png"] = figure_panels.fig5_image(strip, kept["input"], kept["mask"], coeffs, mse)
    extra["fig5_interpolation.json"] = {
        "definition": "s(c) = s + (1 - lam*) * ds_z + c * lam* * ds_n; c = 1 is the Style Intervention result",
        "coeffs": list(coeffs), "mse_outside_mean": mse.mean(axis=1).tolist(),
        "mse_outside_per_image": mse.T.tolist(), "z_edit_mse_outside_mean": float(kept["pix_error"][0].mean())}
    log("Fig. 5 outside-mask MSE along the strip (mean over %d samples; %s: %.4g): %s" % (
        keep, latent, kept["pix_error"][0].mean(), ", ".join(f"c={c:g}: {v:.4g}" for c, v in
                                                     zip(coeffs, mse.mean(axis=1)))))
    img_z = kept["images"]["z"] if "z" in kept["images"] else np.asarray(programs.synth_program(cfg)(
        params, [s + d for s, d in zip(kept["styles"], kept["ds_z"])]))
    pngs["fig6_layers.png"] = figure_panels.fig6_layers_image(kept["layer_images"], img_z, kept["input"],
                                                              kept["mask"], names, kept["pix_error"], latent=latent)
    pngs["fig6_mse.png"] = (figure_panels.fig6_mse_plot(kept["pix_error"], latent=latent), None)
    extra["fig6_mse.json"] = {"layers": [latent] + names, "mse_outside_mean": kept["pix_error"].mean(1).tolist(),
                              "mse_outside_per_image": kept["pix_error"].T.tolist()}


def fig2(inp, job, kept: dict, pngs: dict, extra: dict, log) -> None:
    """Fig. 2 (channel maps of layer inp.fig_layer vs the masks of the kept images) into pngs and extra. inp:
    evaluate_cli.EvalInputs; job: its EvalJob (top_frac, top_channels, batch_size)."""
    names = [l.name for l in inp.cfg.layers]
    iou, binary = figure_data.channel_ious(inp.params, inp.cfg, kept["styles"], kept["mask"], inp.fig_layer,
                                             job.top_frac, job.batch_size)
    mean = iou.mean(axis=0)
    best = [int(c) for c in np.argsort(-mean, kind="stable")[:job.top_channels]]
    pngs["fig2_channels.png"] = figure_panels.fig2_image(kept["input"], kept["mask"], binary, best, iou,
                                                         names[inp.fig_layer])
    upper = float(np.mean(figure_data.iou_upper_bound(binary, kept["mask"], best[0])))
    extra["fig2_iou.json"] = {"layer": inp.fig_layer, "layer_name": names[inp.fig_layer], "top_frac": job.top_frac,
                              "upsampling": figure_data.FIG2_UPSAMPLING, "num_images": int(iou.shape[0]),
                              "num_channels": int(iou.shape[1]), "iou_upper_bound_mean": upper,
                              "channels": [{"channel": c, "mean_iou": float(mean[c]),
                                            "per_image_iou": iou[:, c].tolist()} for c in best]}
    log(f"Fig. 2 ({names[inp.fig_layer]}): best channels by mean IoU with the mask: "
        + ", ".join(f"{c} ({mean[c]:.3f})" for c in best))


def write_outputs(out: pathlib.Path, markdown: str, table: dict, pngs: dict, extra: dict, log,
                   texts=None) -> None:
    """Encode everything, then create `out` and write table2.md / table2.json, the JSON files, the PNGs and
    `texts` ({name: str}: the page and CSV) together (storage.Outputs: all or none, mode 0644); log the table."""
    outputs = storage.Outputs()
    outputs.add_text(out / "table2.md", markdown + "\n")
    outputs.add_json(out / "table2.json", table)
    for name, text in (texts or {}).items():
        outputs.add_text(out / name, text)
    for name, obj in extra.items():
        outputs.add_json(out / name, obj)
    for name, (img, caption) in pngs.items():
        outputs.add(out / name, pictures.png_bytes(img, caption=caption))
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        outputs.commit()
    except BaseException:
        if created:
            out.rmdir()
        raise
    log("")
    log(markdown)
    log("")
    log(f"outputs in {out}: table2.md, table2.json, " + ", ".join(sorted([*pngs, *extra, *(texts or ())])))
