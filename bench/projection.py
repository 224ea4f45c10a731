"""Projection measured on held-out toyfaces renders (README "Editing your own images").

    python bench/projection.py --out=/tmp/projbench [--num=256] [--num_steps=150] [--batch_size=32]
    python bench/projection.py --out=/tmp/projloss --num=64 --spaces=wplus --name=judge --batch1=0 \
        --project_flags="--lambda_judge=1"                      # another loss, the same images
    python bench/projection.py --out=/tmp/projloss --num=64 --spaces=wplus --name=vgg --batch1=0 --random_vgg16

1. renders `num` images of world seed HELDOUT_SEED (the generator was trained on seed 0) and saves them as 8-bit
   PNGs, the files a user would have;
2. runs `bin/project.py` on that folder (timed: time per image at --batch_size, all spaces);
3. times one space (W+) at batch 1 on a few images, after compilation;
4. reads codes.npz: PSNR / SSIM per space, and the judges' agreement between input and reconstruction (every
   attribute's sign kept, the share of images with all 6 kept, mean part IoU of the segmenter's parts present in
   the input); writes `projection_report.json` (`report_NAME.json` with --name) and prints a Markdown table.

--project_flags are added to bin/project.py's command (e.g. another loss); --name names its run folder
(default proj). --random_vgg16 writes a VGG16 state-dict file of torchvision's layout and channel counts with
RANDOM weights (`vgg16_random.pth`, by the project's own writer) and passes it as --vgg16: no real VGG16 weights
are on this machine, so that run measures the perceptual loss's cost and that it runs, not its benefit.
"""
import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
HELDOUT_SEED = 12


def render_folder(folder: pathlib.Path, num: int) -> None:
    from si_jax.evaluation import pictures
    from si_jax.world import renderer

    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, num, 64):
        idx = np.arange(start, min(start + 64, num))
        imgs = np.asarray(renderer.render_batch(HELDOUT_SEED, idx)["images"])
        u8 = np.clip((imgs + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        for i, im in zip(idx, u8):
            pictures.save_png(folder / f"face_{i:05d}.png", im)


VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def write_random_vgg16(path: pathlib.Path, seed: int = 0) -> None:
    """A torchvision vgg16 `features` state dict of the real channel counts, He-initialised random weights."""
    from si_jax import projection
    from weights_convert import writers

    rng = np.random.default_rng(seed)
    sd, prev = {}, 3
    for i, ch in zip(projection._vgg.CONV_INDICES, VGG16_CHANNELS):
        sd[f"features.{i}.weight"] = rng.normal(0, np.sqrt(2 / (9 * prev)), (ch, prev, 3, 3)).astype(np.float32)
        sd[f"features.{i}.bias"] = np.zeros(ch, np.float32)
        prev = ch
    writers.write_torch_state_dict(path, sd)


def judge_agreement(judges, target, recon) -> dict:
    from si_jax.world import judges as judges_lib
    from si_jax.world.factors import ATTRIBUTES, PARTS

    la = np.asarray(judges_lib.classify(judges.classifier, target)["logits"]) > 0
    lb = np.asarray(judges_lib.classify(judges.classifier, recon)["logits"]) > 0
    kept = (la == lb)
    pa, pb = judges.parts(target), judges.parts(recon)
    ious = []
    for k, part in enumerate(PARTS):
        a, b = pa == k, pb == k
        present = a.reshape(len(a), -1).any(1)
        inter = (a & b).reshape(len(a), -1).sum(1)
        union = (a | b).reshape(len(a), -1).sum(1)
        if present.any():
            ious.append(float((inter[present] / np.maximum(union[present], 1)).mean()))
    return {"attributes_kept": float(kept.mean()), "all_attributes_kept": float(kept.all(1).mean()),
            "attributes_kept_each": {a: float(kept[:, i].mean()) for i, a in enumerate(ATTRIBUTES)},
            "part_iou": float(np.mean(ious))}


def time_batch1(num_steps: int, images, spaces=("wplus",), reps: int = 3) -> dict:
    import jax
    import jax.numpy as jnp

    from si_jax import projection
    from si_jax.stylegan2 import loading

    params, cfg = loading.load_generator("builtin:toyfaces")
    stats = projection.code_stats(params, cfg)
    pc = projection.ProjectConfig(num_steps=num_steps)
    out, aux = {}, projection.ProjectAux()
    for space in spaces:
        x = jnp.asarray(images[:1])
        jax.block_until_ready(projection.project_batch(params, cfg, stats, aux, x, projection.image_keys(0, [0]), space,
                                                       pc).code)
        t0 = time.perf_counter()
        for i in range(reps):
            x = jnp.asarray(images[i + 1:i + 2])
            jax.block_until_ready(projection.project_batch(params, cfg, stats, aux, x, projection.image_keys(0, [i]),
                                                           space, pc).code)
        out[space] = (time.perf_counter() - t0) / reps
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--num_steps", type=int, default=150)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--spaces", default="w,wplus,s")
    ap.add_argument("--name", default="proj", help="run folder under --out (and report_NAME.json)")
    ap.add_argument("--project_flags", default="", help="more flags for bin/project.py (e.g. --lambda_judge=1)")
    ap.add_argument("--random_vgg16", action="store_true", help="--vgg16 with random weights (cost only)")
    ap.add_argument("--batch1", type=int, default=3, help="images timed at batch 1 (0: skip)")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    images_dir, proj_dir = out / "images", out / a.name
    if not images_dir.exists():
        render_folder(images_dir, a.num)
    extra = shlex.split(a.project_flags)
    if a.random_vgg16:
        write_random_vgg16(out / "vgg16_random.pth")
        extra.append(f"--vgg16={out / 'vgg16_random.pth'}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "bin/project.py"), f"--images={images_dir}", f"--output_dir={proj_dir}",
                    f"--num_steps={a.num_steps}", f"--batch_size={a.batch_size}", f"--spaces={a.spaces}", *extra],
                   check=True)
    wall = time.perf_counter() - t0
    from si_jax.world import judges as judges_lib

    judges = judges_lib.load_judges()
    man = json.loads((proj_dir / "projection.json").read_text())
    with np.load(proj_dir / "codes.npz") as d:
        target = d["target"]
        per_space = {s: {**man["reconstruction"][s], **judge_agreement(judges, target, d[f"recon_{s}"])}
                     for s in man["spaces"]}
    b1 = time_batch1(a.num_steps, target, reps=a.batch1) if a.batch1 > 0 else None
    report = {"num_images": int(len(target)), "heldout_seed": HELDOUT_SEED, "num_steps": a.num_steps,
              "batch_size": a.batch_size, "project_flags": extra, "project_wall_s_all_spaces": wall,
              "s_per_image_per_space_at_batch": wall / len(target) / len(man["spaces"]),
              "s_per_image_batch1": b1, "spaces": per_space,
              "cpu": os.cpu_count()}
    report_name = "projection_report.json" if a.name == "proj" else f"report_{a.name}.json"
    from si_jax import storage

    storage.write_atomic(out / report_name, json.dumps(report, indent=1).encode())
    print("| space | PSNR (dB) | SSIM | attributes kept | all 6 kept | part IoU |")
    print("|---|---|---|---|---|---|")
    for s, v in per_space.items():
        print(f"| {s} | {v['psnr_mean']:.2f} ± {v['psnr_std']:.2f} | {v['ssim_mean']:.3f} | "
              f"{v['attributes_kept']:.3f} | {v['all_attributes_kept']:.3f} | {v['part_iou']:.3f} |")
    print(json.dumps({k: v for k, v in report.items() if k != "spaces"}, indent=1))


if __name__ == "__main__":
    main()
