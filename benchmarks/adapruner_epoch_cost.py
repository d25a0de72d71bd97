"""Cost: one epoch of a user's training loop with AdaPrunerMask (lazy and exact mask steps) against
the same loop without it, at 10^4, 10^5 and 10^6 samples.

The loop: a 32-64-2 MLP (SGD, momentum 0.9) on random 32-d vectors with random labels, batch 256,
torch on one thread; "plain" is the mean loss, the others call AdaPrunerMask.loss/step/end_epoch
(pruning phase, no warm-up) every batch and epoch: "lazy" the O(batch) step as installed with the
`fast` extra (numba: one compiled call a batch), "lazy_numpy" the same step without numba (numpy
calls), "exact" the O(N) step. The variants run interleaved, in an order rotated every repeat, in
one process (this machine's speed drifts over minutes and it is shared), so the ratios compare
epochs measured side by side; each ratio is of medians over the repeats."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from _common import write_results
from torch import nn

import adaprune.adapruner_lazy as lazy_module
from adaprune.adapruner_mask import AdaPrunerMask

VARIANTS = ("plain", "lazy", "lazy_numpy", "exact")


def epoch_seconds(variant: str, x: torch.Tensor, y: torch.Tensor, *, seed: int, batch: int) -> float:
    """Seconds for one epoch of `variant` (the model, optimiser and mask are built before the clock)."""
    n = len(y)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = None
    lazy_module._KERNELS = None if variant != "lazy_numpy" else False  # False: as without numba
    if variant != "plain":
        update = "lazy" if variant.startswith("lazy") else variant
        pruner = AdaPrunerMask(n, keep=0.7, warmup_epochs=0, epochs=2, max_extra_epochs=0, update=update)
    order = torch.randperm(n, generator=gen)
    start = time.perf_counter()
    for idx in order.split(batch):
        per_sample = F.cross_entropy(model(x[idx]), y[idx], reduction="none")
        loss = per_sample.mean() if pruner is None else pruner.loss(per_sample, idx)
        loss.backward()
        opt.step()
        if pruner is not None:
            pruner.step()
        opt.zero_grad()
    if pruner is not None:
        pruner.end_epoch()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--exact-repeats-at-1e6", type=int, default=0,
                        help="the exact step at 10^6 takes minutes an epoch: repeats for it there (0: not run)")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    torch.set_num_threads(1)
    if lazy_module.kernels() is None:
        print("numba is not installed: 'lazy' would be the numpy path; pip install 'adaprune[fast]'", file=sys.stderr)
        return 2
    rows = []
    for n in (int(v) for v in args.sizes.split(",")):
        gen = torch.Generator().manual_seed(n)
        x = torch.randn(n, 32, generator=gen)
        y = torch.randint(0, 2, (n,), generator=gen)
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for v in VARIANTS:  # untimed: allocator and thread pool warm-up
            epoch_seconds(v, x[:2048], y[:2048], seed=0, batch=args.batch)
        for rep in range(args.repeats):
            order = VARIANTS[rep % len(VARIANTS):] + VARIANTS[:rep % len(VARIANTS)]
            for v in order:
                if v == "exact" and n >= 10**6 and rep >= args.exact_repeats_at_1e6:
                    continue
                times[v].append(epoch_seconds(v, x, y, seed=rep, batch=args.batch))
                print(f"n={n} rep={rep} {v}: {times[v][-1]:.3f} s", file=sys.stderr)
        med = {v: statistics.median(t) if t else float("nan") for v, t in times.items()}
        rows.append({"n": n, "seconds": times, "median": med, "lazy_ratio": med["lazy"] / med["plain"],
                     "lazy_numpy_ratio": med["lazy_numpy"] / med["plain"], "exact_ratio": med["exact"] / med["plain"]})
    lines = [
        "## AdaPrunerMask: epoch time of a user loop against the same loop without it",
        "",
        f"32-64-2 MLP on random 32-d vectors, batch {args.batch}, torch threads 1; medians over "
        f"{args.repeats} interleaved repeats (the exact step at 10^6: {args.exact_repeats_at_1e6}; nan: not run). "
        "Done-when target: lazy at 10^6 at most 1.2x plain. `lazy`: with numba (the `fast` extra, in "
        "`make test`'s environment); `lazy (numpy)`: the same step where numba is not installed. The machine "
        "was shared with other jobs: read the ratios, not the seconds.",
        "",
        "| samples | plain s/epoch | lazy s/epoch | lazy (numpy) s/epoch | exact s/epoch | lazy / plain | "
        "lazy (numpy) / plain | exact / plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['n']:,} | {r['median']['plain']:.3f} | {r['median']['lazy']:.3f} | {r['median']['lazy_numpy']:.3f} | "
        f"{r['median']['exact']:.3f} | {r['lazy_ratio']:.2f} | {r['lazy_numpy_ratio']:.2f} | {r['exact_ratio']:.2f} |"
        for r in rows
    ]
    write_results("adapruner_epoch_cost", {"batch": args.batch, "repeats": args.repeats, "rows": rows},
                  "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
