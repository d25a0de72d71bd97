"""Cost: AdaPruner's seconds per epoch divided by plain training's, same model, data and machine.

Plain training and AdaPruner's pruning phase (mask, scaled sigmoid, three loss terms, the mask's own
optimiser step) run alternately in one process, in many short rounds with the order flipped every
round (this machine's speed drifts by tens of percent over minutes); the ratio of medians is
reported, with the spread of the per-round ratios."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import torch
from _common import write_results

from adaprune.api import load_data
from adaprune.methods.adapruner import AdaPruner
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig, fit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="mnist1d,digits")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per repeat")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rows = []
    for name in args.datasets.split(","):
        task = ClassificationTask(data=load_data(name), train=TrainConfig())
        plain, ada = [], []
        # One untimed round of each first: thread pools and allocator warm up on the first calls.
        fit(task.new_model(0), task, seed=0, epochs=1, progress=False)
        AdaPruner(warmup_epochs=0, epochs=1, max_extra_epochs=0).train_mask(task, 0.7, seed=0, progress=False)
        for rep in range(args.repeats):
            # Alternate which goes first, so a slow drift of the machine hits both sides alike.
            order = ("plain", "ada") if rep % 2 == 0 else ("ada", "plain")
            for which in order:
                start = time.perf_counter()
                if which == "plain":
                    fit(task.new_model(rep), task, seed=rep, epochs=args.epochs, progress=False)
                    plain.append((time.perf_counter() - start) / args.epochs)
                else:
                    method = AdaPruner(warmup_epochs=0, epochs=args.epochs, max_extra_epochs=0)
                    method.train_mask(task, 0.7, seed=rep, progress=False)
                    ada.append((time.perf_counter() - start) / args.epochs)
        ratio = statistics.median(ada) / statistics.median(plain)
        round_ratios = sorted(a / p for a, p in zip(ada, plain, strict=True))
        q1, q3 = round_ratios[len(round_ratios) // 4], round_ratios[(3 * len(round_ratios)) // 4]
        rows.append({
            "dataset": name, "n_train": task.data.n, "model": "auto", "epochs_timed": args.epochs,
            "repeats": args.repeats, "plain_s_per_epoch": plain, "adapruner_s_per_epoch": ada,
            "plain_median": statistics.median(plain), "adapruner_median": statistics.median(ada), "ratio": ratio,
            "round_ratio_quartiles": [q1, q3],
        })
        print(f"{name}: plain {statistics.median(plain):.4f} s/epoch, adapruner {statistics.median(ada):.4f} "
              f"s/epoch, ratio {ratio:.3f}", file=sys.stderr)
    lines = [
        "## AdaPruner cost per epoch relative to plain training (target: at most 1.15)",
        "",
        f"torch threads: {torch.get_num_threads()}; medians over {args.repeats} alternating repeats of "
        f"{args.epochs} epochs; seeds 0..{args.repeats - 1}.",
        "",
        "| dataset | samples | plain s/epoch | AdaPruner s/epoch | ratio | per-round ratio, quartiles |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['dataset']} | {r['n_train']} | {r['plain_median']:.4f} | {r['adapruner_median']:.4f} | "
        f"{r['ratio']:.3f} | {r['round_ratio_quartiles'][0]:.2f} to {r['round_ratio_quartiles'][1]:.2f} |" for r in rows
    ]
    write_results("adapruner_cost", {"rows": rows, "target_ratio": 1.15}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
