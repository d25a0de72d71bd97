"""Which encoder should image sources get by default? pixels, centred and contrastive, side by side on
held-out copies: time, and copies found.

Two held-out sets, neither used to design the encoders:
- digits "frames" (benchmarks/_moved.py): sklearn's real digits at 16 x 16 plus 25% moved copies (a
  shift of up to 2 px, a change of light, sensor noise), drawn with `--seed` (7: the centred encoder
  was looked at on seed 5, the contrastive one designed on seed 0);
- photo patches, a folder of PNG files read back through `folder:`: 32 x 32 colour crops on a 16 px
  grid of scikit-learn's two sample photographs, plus `--share` copies, each a crop 1 or 2 px off
  an original's position (new content enters at the border, as a camera move makes it), with a
  change of light and sensor noise.
For each encoder: its wall and CPU seconds (fit + encode), the share of copies whose cosine nearest
neighbour is of their own group, and SemDeDup (default parameters) pruning exactly the surplus:
the share of the surplus resolved and of groups lost; random pruning at that budget for reference.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import write_results
from _moved import KINDS, digits_with_moved_copies
from encoders_moved import encoder_rows

from adaprune.data import Dataset, load_data
from adaprune.tasks import make_task

log = logging.getLogger("encoder_default")


def photo_patches(folder: Path, share: float, seed: int, *, side: int = 32, stride: int = 16) -> np.ndarray:
    """Write originals and copies as PNG files (names shuffled); returns the group of each file in
    sorted-name order (how `folder:` lists them)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    origins = []
    for p, photo in enumerate(load_sample_images().images):
        h, w = photo.shape[:2]
        for top in range(2, h - side - 2, stride):
            for left in range(2, w - side - 2, stride):
                origins.append((p, top, left))
    n0 = len(origins)
    n_copies = int(round(share * n0 / (1 - share)))
    photos = load_sample_images().images
    groups = list(range(n0))
    for g in rng.integers(0, n0, n_copies):
        p, top, left = origins[g]
        dy, dx = rng.integers(-2, 3, 2)
        while dy == 0 and dx == 0:
            dy, dx = rng.integers(-2, 3, 2)
        origins.append((p, top + int(dy), left + int(dx)))
        groups.append(int(g))
    order = rng.permutation(len(origins))
    group_of_file = np.empty(len(origins), dtype=np.int64)
    for rank, i in enumerate(order):
        p, top, left = origins[i]
        crop = photos[p][top : top + side, left : left + side].astype(np.float64)
        if i >= n0:  # a copy: light and noise as well as the move
            crop = crop * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10) + rng.normal(0, 4, crop.shape)
        Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).save(folder / f"{rank:05d}.png")
        group_of_file[rank] = groups[i]
    return group_of_file


def run(data: Dataset, group: np.ndarray, encoders: list[str], seed: int) -> dict[str, dict[str, float]]:
    counts = np.bincount(group)
    copies = np.flatnonzero(counts[group] > 1)  # every member of a group with copies
    return encoder_rows(make_task(data), group, copies, encoders, seed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", default="pixels,centred,contrastive")
    parser.add_argument("--share", type=float, default=0.1, help="share of the photo folder's files that are copies")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    encoders = args.encoders.split(",")
    x, y, group = digits_with_moved_copies(599, args.seed, **KINDS["frames"])
    tables = {"digits frames (1797 + 599 copies)": run(Dataset(name="digits+frames", x=x, y=y), group,
                                                       encoders, args.seed)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "patches"
        folder.mkdir()
        group = photo_patches(folder, args.share, args.seed)
        data = load_data(f"folder:{folder}")
        n_groups = len(np.unique(group))
        tables[f"photo patches, folder: ({n_groups} + {len(group) - n_groups} copies)"] = run(
            data, group, encoders, args.seed)
    load_after = os.getloadavg()[0]
    lines = ["## Default encoder for image sources: time and copies found on held-out copies", "",
             f"Seed {args.seed}; SemDeDup (default clusters) prunes exactly the surplus; encoder time is fit + "
             "encode on 1 torch thread.", ""]
    for name, rows in tables.items():
        lines += [f"**{name}**", "",
                  "| encoder | copies whose nearest neighbour is their own group | surplus resolved | groups lost | "
                  "encoder time: wall / CPU (s) |", "|---|---|---|---|---|"]
        for spec, r in rows.items():
            nn = f"{r['nearest_is_source']:.3f}" if "nearest_is_source" in r else "-"
            sec = f"{r['seconds']:.1f} / {r['cpu_seconds']:.1f}" if "seconds" in r else "-"
            lines.append(f"| {spec} | {nn} | {r['resolved']:.3f} | {r['groups_lost']:.3f} | {sec} |")
        lines.append("")
    lines += [f"Load average before: {load_before:.1f}, after: {load_after:.1f} (2 cores)."]
    write_results("encoder_default", {"seed": args.seed, "share": args.share, "tables": tables,
                                      "load_before": load_before, "load_after": load_after}, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
