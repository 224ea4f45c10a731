"""Drawing the paper's analysis figures (PIL only): labelled tile grids for Figs. 2, 5 and 6(a), a line plot for 6(b).

Every function takes numpy arrays (images NHWC in the generator's raw range, shown over pictures.display_range of
the inputs; masks [B, R, R]) and returns a uint8 [H, W, 3] picture, with a caption where it has one, ready for
pictures.save_png. The numbers they show come from si_jax.evaluation.figure_data and intervention.intervene.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from si_jax.evaluation import pictures
from si_jax.evaluation.figure_data import FIG2_UPSAMPLING, iou_upper_bound


def _display_size(res: int) -> int:
    return res * pictures.upscale_for_viewing(res) if res < 128 else min(res, 256)


def _tile(img_u8: np.ndarray, size: int, smooth: bool = False) -> np.ndarray:
    if img_u8.shape[0] == size:
        return img_u8
    pil = Image.fromarray(np.ascontiguousarray(img_u8))
    return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR if smooth and size < img_u8.shape[0]
                                 else Image.Resampling.NEAREST))


def _tiles(images, lo, hi, size) -> list:
    return [_tile(pictures.to_uint8(x, lo, hi)[..., :3] if x.shape[-1] >= 3 else
                  np.repeat(pictures.to_uint8(x, lo, hi), 3, -1), size, smooth=True) for x in np.asarray(images)]


def _outline(tile: np.ndarray, mask, colour=(255, 40, 40)) -> np.ndarray:
    """Draw the mask boundary (resized to the tile) in `colour`."""
    size = tile.shape[0]
    m = _tile((np.asarray(mask) > 0.5).astype(np.uint8) * 255, size) > 127
    edge = np.zeros_like(m)
    edge[1:] |= m[1:] != m[:-1]
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    out = tile.copy()
    out[edge] = colour
    return out


def _diff_tile(a, b, scale, size) -> np.ndarray:
    """|a − b| averaged over channels, 0..scale -> black..white."""
    d = np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)), axis=-1) / max(scale, 1e-12)
    g = (np.clip(d, 0, 1) * 255 + 0.5).astype(np.uint8)
    return _tile(np.repeat(g[..., None], 3, -1), size)


def labelled_grid(rows, col_labels=(), row_labels=(), pad: int = 2) -> np.ndarray:
    """pictures.grid plus a band of column labels on top and row labels on the left (PIL default font)."""
    body = pictures.grid(rows, pad=pad)
    tile_h, tile_w = rows[0][0].shape[:2]
    top = 14 * max([1] + [str(s).count("\n") + 1 for s in col_labels]) + 2 if col_labels else 0
    left = 6 * max([0] + [len(str(s)) for s in row_labels]) + 8 if row_labels else 0
    img = Image.new("RGB", (body.shape[1] + left, body.shape[0] + top), "white")
    img.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(img)
    for j, text in enumerate(col_labels):
        draw.multiline_text((left + pad + j * (tile_w + pad) + 2, 2), str(text), fill="black", spacing=3)
    for i, text in enumerate(row_labels):
        draw.text((3, top + pad + i * (tile_h + pad) + tile_h // 2 - 5), str(text), fill="black")
    return np.asarray(img)


def fig5_image(strip, img0, mask, coeffs, mse) -> tuple:
    """Fig. 5 picture: per sample two rows, the strip (input first) and |image − input| (mask outlined).
    strip [K, B, R, R, C], img0 [B, R, R, C], mask [B, R, R], mse [K, B] -> (uint8 image, caption)."""
    strip, img0 = np.asarray(strip), np.asarray(img0)
    lo, hi = pictures.display_range(img0)
    size = _display_size(img0.shape[1])
    scale = float(np.percentile(np.mean(np.abs(strip - img0[None]), -1), 99.5)) or 1.0
    rows, labels = [], []
    for b in range(img0.shape[0]):
        imgs = _tiles(np.concatenate([img0[b:b + 1], strip[:, b]]), lo, hi, size)
        rows.append([_outline(imgs[0], mask[b])] + imgs[1:])
        blank = np.full_like(imgs[0], 255)
        rows.append([blank] + [_outline(_diff_tile(strip[k, b], img0[b], scale, size), mask[b])
                               for k in range(len(coeffs))])
        labels += [f"#{b}", "|diff|"]
    cols = ["input"] + [f"c={c:g}\nMSE {np.mean(mse[k]):.3g}" for k, c in enumerate(coeffs)]
    caption = ("Fig. 5: lam* fixed, s(c) = s + (1 - lam*) ds_z + c lam* ds_n (c=1: the Style Intervention result).\n"
               "Rows: image, then |image - input| (white = %.3g); red: mask. MSE: outside-mask MSE vs input, mean "
               "over samples." % scale)
    return labelled_grid(rows, cols, labels), caption


def _layer_columns(num_layers: int, max_cols: int) -> list:
    """Layer indices to show: all when they fit, else evenly spaced, always including the last."""
    if num_layers <= max_cols:
        return list(range(num_layers))
    idx = np.unique(np.round(np.linspace(0, num_layers - 1, max_cols)).astype(int))
    return sorted(set(idx.tolist()) | {num_layers - 1})


def fig6_layers_image(layer_images, img_z, img0, mask, layer_names, pix_error, max_layer_cols: int = 12,
                      latent: str = "Z edit") -> tuple:
    """Fig. 6(a): rows = images, columns = the latent edit (`latent`: 'Z edit', or 'W edit' for projected codes),
    result after layer 1..L (subsampled to `max_layer_cols`, the last always kept), input (mask outlined).
    layer_images [L, B, R, R, C]; img_z, img0 [B, R, R, C]; pix_error [L + 1, B]. -> (uint8 image, caption)."""
    layer_images = np.asarray(layer_images)
    lo, hi = pictures.display_range(img0)
    size = _display_size(img0.shape[1])
    cols = _layer_columns(layer_images.shape[0], max_layer_cols)
    rows = []
    for b in range(img0.shape[0]):
        seq = np.concatenate([img_z[b:b + 1], layer_images[cols, b], img0[b:b + 1]])
        tiles = _tiles(seq, lo, hi, size)
        tiles[-1] = _outline(tiles[-1], mask[b])
        rows.append(tiles)
    mean = np.mean(pix_error, axis=1)
    labels = [f"{latent}\n{mean[0]:.3g}"] + [f"{i + 1}:{layer_names[i]}\n{mean[i + 1]:.3g}" for i in cols] + ["input"]
    caption = (f"Fig. 6: result after optimising each style layer (columns; {len(cols)} of {layer_images.shape[0]} "
               "layers shown), mean outside-mask MSE under each label")
    return labelled_grid(rows, labels, [f"#{b}" for b in range(img0.shape[0])]), caption


def fig6_mse_plot(pix_error, max_lines: int = 3, latent: str = "Z edit") -> np.ndarray:
    """Fig. 6(b): outside-mask MSE after each layer (x: 0 = the latent edit, i = after layer i, ticks under the
    axis); mean over images plus the first `max_lines` images. pix_error [L + 1, B] -> uint8 image."""
    pix = np.asarray(pix_error, np.float64)
    series = {"mean": pix.mean(axis=1)}
    for b in range(min(max_lines, pix.shape[1]) if pix.shape[1] > 1 else 0):
        series[f"image {b}"] = pix[:, b]
    layers = pix.shape[0] - 1
    step = -(-layers // 10) or 1
    ticks = [(0, latent.split()[0])] + [(i, str(i)) for i in range(step, layers + 1, step)]
    return pictures.line_plot(series, width=480, height=270, x_ticks=ticks,
                              title=f"outside-mask MSE after style layer i (i = 0: the {latent})")


def fig2_image(images, mask, binary, channels, ious, layer_name, max_rows: int = 6) -> tuple:
    """Fig. 2 picture: rows = images; columns: image (mask outlined), mask, the binarised top-5 % map of each chosen
    channel (white: map ∩ mask, cyan: map only, red: mask only), per-image IoU written on the tile.
    binary [B, R, R, C] bool; channels [k]; ious [B, C]. -> (uint8 image, caption)."""
    images = np.asarray(images)
    lo, hi = pictures.display_range(images)
    size = _display_size(images.shape[1])
    rows = []
    for b in range(min(max_rows, images.shape[0])):
        m = np.asarray(mask[b]) > 0.5
        row = [_outline(_tiles(images[b:b + 1], lo, hi, size)[0], m),
               _tile(np.repeat((m[..., None] * 255).astype(np.uint8), 3, -1), size)]
        for c in channels:
            a = binary[b, ..., c]
            rgb = np.zeros(a.shape + (3,), np.uint8)
            rgb[a & m] = (255, 255, 255)
            rgb[a & ~m] = (0, 200, 220)
            rgb[~a & m] = (170, 30, 30)
            pil = Image.fromarray(_tile(rgb, size))
            ImageDraw.Draw(pil).text((3, 2), f"{ious[b, c]:.2f}", fill=(255, 230, 0))
            row.append(np.asarray(pil))
        rows.append(row)
    mean = ious.mean(axis=0)
    cols = ["image", "mask"] + [f"ch {c}\nIoU {mean[c]:.2f}" for c in channels]
    frac = np.mean(binary[..., channels[0]]) if len(channels) else 0.0
    caption = (f"Fig. 2: layer {layer_name}, top-{100 * frac:.0f}% locations of each channel's activation "
               f"({FIG2_UPSAMPLING} upsampled) vs mask; white: overlap, cyan: map only,\nred: mask only; per-image "
               f"IoU in yellow, mean under the label (highest possible mean IoU here: "
               f"{float(np.mean(iou_upper_bound(binary, mask, channels[0]))) if len(channels) else 0:.2f})")
    return labelled_grid(rows, cols, [f"#{b}" for b in range(len(rows))]), caption


# ------------------------------------------------------------------------------------------------- methods side by side

def methods_image(inputs, edits: dict, masks, row_labels=(), col_names: dict | None = None) -> np.ndarray:
    """One row per image: the input (mask outlined), then each method's edit. inputs [B, R, R, C]; edits
    {method: [B, R, R, C]} (columns in dict order); masks [B, R, R]; col_names {method: label}. -> uint8 picture.
    Every row is shown over the display range of ALL inputs, so the methods are compared on the same scale."""
    inputs = np.asarray(inputs)
    lo, hi = pictures.display_range(inputs)
    size = _display_size(inputs.shape[1])
    rows = []
    for b in range(len(inputs)):
        tiles = _tiles(np.stack([inputs[b]] + [np.asarray(v)[b] for v in edits.values()]), lo, hi, size)
        rows.append([_outline(tiles[0], masks[b])] + tiles[1:])
    names = col_names or {}
    return labelled_grid(rows, ["input"] + [names.get(m, m) for m in edits], row_labels)
