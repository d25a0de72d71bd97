"""What the detection input size costs: CenterNet's throughput at 64, 128 and 256 px.

Two numbers per size on one torch thread (the built-in models' default), batches of 32 (detection's
default): training (forward, per-image loss, backward, Adam step), and the per-image loss pass every
AdaPruner/AdaDeDup proxy makes (no gradient). Images are synthdet frames letterboxed to each size
(`load_data("synthdet:N", size=S)`; decoding is not timed: a file source decodes each image once
into its cache). Each is measured as images per CPU-second of this process (`time.process_time`),
which other jobs on a shared machine barely move, and as images per wall-clock second, which they
do. The sizes are measured in turns (64, 128, 256, 64, ...), each value the median over turns;
ratios to 64 px are what carries over to another machine.

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


def measure(task: DetectionTask, n_images: int, *, train: bool, seed: int = 0) -> tuple[float, float]:
    """Images per CPU-second and per wall-clock second over `n_images` images (after one warm-up batch)."""
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
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batch_data[1:]:
        step(batch)
    return n_images / (time.process_time() - cpu), n_images / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--images", type=int, default=128, help="images timed per measurement")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(1)
    tasks = {s: DetectionTask(load_data("synthdet:200", size=s)) for s in sizes}
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {(k, s): [] for k in ("train", "loss") for s in sizes}
    for turn in range(args.turns):
        for s in sizes:
            for kind in ("train", "loss"):
                runs[kind, s].append(measure(tasks[s], args.images, train=kind == "train", seed=turn))
            (tc, tw), (lc, lw) = runs["train", s][-1], runs["loss", s][-1]
            print(f"turn {turn} {s} px: train {tc:.1f} img/cpu-s ({tw:.1f} img/s), loss pass {lc:.1f} img/cpu-s "
                  f"({lw:.1f} img/s)", flush=True)

    def median(kind: str, s: int, clock: int) -> float:
        return float(np.median([r[clock] for r in runs[kind, s]]))

    base = sizes[0]
    rows = []
    for s in sizes:
        rows.append({
            "size": s, "pixels_vs_base": (s / base) ** 2,
            "train_images_per_cpu_s": median("train", s, 0), "train_images_per_wall_s": median("train", s, 1),
            "loss_images_per_cpu_s": median("loss", s, 0), "loss_images_per_wall_s": median("loss", s, 1),
            "train_cost_vs_base": median("train", base, 0) / median("train", s, 0),
            "loss_cost_vs_base": median("loss", base, 0) / median("loss", s, 0),
            "train_runs_cpu_wall": runs["train", s], "loss_runs_cpu_wall": runs["loss", s],
        })
    md = [
        "# CenterNet throughput by detection input size",
        "",
        f"One torch thread, batches of {DEFAULT_BATCH}, synthdet frames letterboxed to each size; median of "
        f"{args.turns} interleaved turns of {args.images} images each. Rates are images per CPU-second of the "
        "process (wall-clock images/s in brackets). The machine was shared with other jobs, which slows the "
        "wall clock far more than CPU time: read the cost ratios (CPU time per image against the smallest "
        "size), not the absolute rates.",
        "",
        "| input size | train (images/CPU-s) | per-image loss pass (images/CPU-s) | train cost vs "
        f"{base} px | loss-pass cost vs {base} px | pixels vs {base} px |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(f"| {r['size']} | {r['train_images_per_cpu_s']:.1f} ({r['train_images_per_wall_s']:.1f}) | "
                  f"{r['loss_images_per_cpu_s']:.1f} ({r['loss_images_per_wall_s']:.1f}) | "
                  f"{r['train_cost_vs_base']:.1f}x | {r['loss_cost_vs_base']:.1f}x | {r['pixels_vs_base']:.0f}x |")
    write_results("detection_input_size", {"sizes": sizes, "turns": args.turns, "images": args.images,
                                           "batch": DEFAULT_BATCH, "threads": 1, "rows": rows}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
