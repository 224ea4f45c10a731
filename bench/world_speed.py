"""Toyfaces render throughput (images/s, jit-compiled, after warm-up; median of >= 5 timed calls), and contact sheets.

    python bench/world_speed.py                      # prints throughput at 32 px (batch 64, 256) and 64 px
    python bench/world_speed.py --sheet /tmp/toyfaces_sheet.png --sheet32 /tmp/toyfaces_sheet32.png
Sheets: 64 faces (8 x 8, seed 0) above their segmentations, colour-coded by PARTS; the 32 px one is upscaled x4.
"""
import argparse
import statistics
import time

import jax
import numpy as np
from PIL import Image

from si_jax import storage, world

PART_COLOURS = np.array([(40, 40, 40), (230, 180, 140), (120, 60, 20), (60, 120, 255), (255, 255, 0),
                         (220, 30, 60), (30, 200, 80)], np.uint8)  # PARTS order


def throughput(batch, resolution, min_seconds=1.0):
    """Images/s: median over >= 5 timed calls (and >= min_seconds of them) after compile + one warm-up call."""
    f = world.sample_factors(0, np.arange(batch))
    jax.block_until_ready(world.render(f, resolution))  # compile + warm-up
    times = []
    while len(times) < 5 or sum(times) < min_seconds:
        t0 = time.perf_counter()
        jax.block_until_ready(world.render(f, resolution))
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def sheet(path, resolution, upscale=1, n=64, cols=8):
    r = world.render_batch(0, np.arange(n), resolution)
    img = ((np.asarray(r['images']) + 1) * 127.5).round().astype(np.uint8)
    seg = PART_COLOURS[np.asarray(r['seg'])]

    def grid(a):
        a = a.reshape(n // cols, cols, resolution, resolution, 3).transpose(0, 2, 1, 3, 4)
        return a.reshape(n // cols * resolution, cols * resolution, 3)
    both = np.concatenate([grid(img), np.full((4, cols * resolution, 3), 255, np.uint8), grid(seg)], 0)
    big = Image.fromarray(both).resize((both.shape[1] * upscale, both.shape[0] * upscale), Image.NEAREST)
    storage.write_atomic(path, lambda tmp: big.save(tmp, format="PNG"))
    print(f"wrote {path}; attributes of the first 8 ({', '.join(world.ATTRIBUTES)}):")
    print(np.asarray(r['attributes'][:8]).astype(int))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--sheet', help='64 px contact sheet path')
    p.add_argument('--sheet32', help='32 px contact sheet path (upscaled x4)')
    args = p.parse_args()
    if args.sheet or args.sheet32:
        if args.sheet:
            sheet(args.sheet, 64)
        if args.sheet32:
            sheet(args.sheet32, 32, upscale=4)
        return
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {jax.local_device_count()} device(s)")
    for batch, resolution in ((64, 32), (256, 32), (64, 64), (256, 64)):
        print(f"{resolution:4d} px  batch {batch:4d}: {throughput(batch, resolution):9.0f} images/s")


if __name__ == '__main__':
    main()
