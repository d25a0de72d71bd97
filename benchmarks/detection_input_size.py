"""What the detection input size costs: CenterNet's throughput at 64, 128 and 256 px.

Two numbers per size, both in images per second on one torch thread (the built-in models' default),
batches of 32 (detection's default): training (forward, per-image loss, backward, Adam step), and the
per-image loss pass every AdaPruner/AdaDeDup proxy makes (no gradient). Images are synthdet frames
letterboxed to each size (`load_data("synthdet:N", size=S)`; decoding is not timed: a file source
decodes each image once into its cache). The sizes are measured in turns (64, 128, 256, 64, ...) and
each reported value is the median over the turns, so load on a shared machine falls on every size
alike; ratios to 64 px are what carries over to another machine.

    python benchmarks/detection_input_size.py [--sizes 64,128,256] [--turns 3] [--images 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write_results

from adaprune.data import load_data
from adaprune.models.detector import CenterNet
from adaprune.tasks.detection import DEFAULT_BATCH, DetectionTask


def measure(task: DetectionTask, n_images: int, *, train: bool, seed: int = 0) -> float:
    """Images per second over `n_images` images (after one warm-up batch)."""
    model = CenterNet(task.data.num_classes)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    idx = torch.arange(n_images) % task.n
    batches = list(idx.split(DEFAULT_BATCH))
    batch_data = [task.batch_of(b) for b in [batches[0], *batches]]  # decoded before timing

    def step(batch) -> None:
        if train:
            model.train()
            loss = task.per_sample_loss(model, batch).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.no_grad():
                task.per_sample_loss(model, batch)

    step(batch_data[0])  # warm-up
    start = time.perf_counter()
    for batch in batch_data[1:]:
        step(batch)
    return n_images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--images", type=int, default=128, help="images timed per measurement")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(1)
    tasks = {s: DetectionTask(load_data("synthdet:200", size=s)) for s in sizes}
    train = {s: [] for s in sizes}
    loss = {s: [] for s in sizes}
    for turn in range(args.turns):
        for s in sizes:
            train[s].append(measure(tasks[s], args.images, train=True, seed=turn))
            loss[s].append(measure(tasks[s], args.images, train=False, seed=turn))
            print(f"turn {turn} {s} px: train {train[s][-1]:.1f} img/s, loss pass {loss[s][-1]:.1f} img/s", flush=True)
    base = sizes[0]
    rows = []
    for s in sizes:
        t, p = float(np.median(train[s])), float(np.median(loss[s]))
        rows.append({"size": s, "train_images_per_s": t, "loss_images_per_s": p,
                     "train_per_s_runs": train[s], "loss_per_s_runs": loss[s],
                     "train_cost_vs_base": float(np.median(train[base])) / t,
                     "loss_cost_vs_base": float(np.median(loss[base])) / p,
                     "pixels_vs_base": (s / base) ** 2})
    md = [
        "# CenterNet throughput by detection input size",
        "",
        f"One torch thread, batches of {DEFAULT_BATCH}, synthdet frames letterboxed to each size; median of "
        f"{args.turns} interleaved turns of {args.images} images each. The machine was shared with other jobs: "
        "read the cost ratios (time per image against the smallest size), not the absolute rates.",
        "",
        "| input size | train (images/s) | per-image loss pass (images/s) | train cost vs "
        f"{base} px | loss-pass cost vs {base} px | pixels vs {base} px |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(f"| {r['size']} | {r['train_images_per_s']:.1f} | {r['loss_images_per_s']:.1f} | "
                  f"{r['train_cost_vs_base']:.1f}x | {r['loss_cost_vs_base']:.1f}x | {r['pixels_vs_base']:.0f}x |")
    write_results("detection_input_size", {"sizes": sizes, "turns": args.turns, "images": args.images,
                                           "batch": DEFAULT_BATCH, "threads": 1, "rows": rows}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
