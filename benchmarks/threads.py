"""Seconds per training epoch of the built-in models with 1 and 2 torch threads, back to back.

Every repeat times one epoch with 1 thread and one with 2, alternating which goes first, on the same
model and data; medians over the repeats and the 2-thread / 1-thread ratio per case. Wall time is
what a user waits; CPU time shows what the second thread costs the other jobs on the machine.
Inputs are random (timing does not depend on the values) in the shapes of the data sets named."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from _common import write_results

from adaprune.data import Dataset
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig
from adaprune.training.loop import fit

# (model, data set whose shape is used, sample shape, training samples)
CASES = [
    ("mlp", "digits (64 features)", (64,), 1347),
    ("mlp", "wine (13 features)", (13,), 133),
    ("cnn1d", "mnist1d", (1, 40), 4000),
    ("cnn_small", "digits", (1, 8, 8), 1347),
    ("cnn", "digits", (1, 8, 8), 1347),
]


def time_epoch(task: ClassificationTask, threads: int, seed: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    model = task.new_model(seed)
    wall, cpu = time.perf_counter(), time.process_time()
    fit(model, task, seed=seed, epochs=1, progress=False)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for model, data_name, shape, n in CASES:
        x = rng.random((n, *shape), dtype=np.float32)
        y = rng.integers(0, 10, n)
        task = ClassificationTask(data=Dataset(name=data_name, x=x, y=y), model=model, train=TrainConfig())
        time_epoch(task, 1, 0)  # warm the allocator and kernels once
        times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for r in range(args.repeats):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            for threads in order:
                times[threads].append(time_epoch(task, threads, r))
        med = {t: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for t, v in times.items()}
        row = {"model": model, "data": data_name, "shape": list(shape), "n": n,
               "wall_1": med[1][0], "wall_2": med[2][0], "cpu_1": med[1][1], "cpu_2": med[2][1],
               "ratio_wall": med[2][0] / med[1][0],
               "all_wall_1": [w for w, _ in times[1]], "all_wall_2": [w for w, _ in times[2]]}
        rows.append(row)
        print(f"{model:9s} {data_name:22s} 1 thread {med[1][0]:.3f} s  2 threads {med[2][0]:.3f} s "
              f"(x{row['ratio_wall']:.2f})", file=sys.stderr)
    torch.set_num_threads(1)
    lines = ["## Seconds per training epoch: 1 vs 2 torch threads", "",
             f"Median over {args.repeats} back-to-back repeats (order alternating), batch 128, Adam. "
             "ratio = 2-thread wall time / 1-thread wall time (> 1: the second thread slows training). "
             f"Load average when it finished: {os.getloadavg()[0]:.1f} on 2 cores (other jobs' share of the "
             "machine decides whether the second thread helps).", "",
             "| model | data | samples | 1 thread: wall s (CPU s) | 2 threads: wall s (CPU s) | ratio |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['data']} | {r['n']} | {r['wall_1']:.3f} ({r['cpu_1']:.3f}) | "
                     f"{r['wall_2']:.3f} ({r['cpu_2']:.3f}) | {r['ratio_wall']:.2f} |")
    write_results("threads", {"repeats": args.repeats, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
