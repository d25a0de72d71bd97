"""Every registered method side by side: test accuracy after pruning mnist1d and digits at
10/20/30/50% with 3 seeds (seed s prunes and trains), mean and std, full data and random included.

Scoring methods are scored once per seed and selected at every fraction; methods that own their
keep decision run once per fraction. Also reports, per method, at which fractions its mean is
below random's."""

from __future__ import annotations

import argparse
import logging
import sys

from _common import RESULTS, command_line, write_results

from adaprune.api import benchmark
from adaprune.registry import list_methods


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="mnist1d,digits")
    parser.add_argument("--methods", default="all", help="comma-separated, or 'all' registered methods")
    parser.add_argument("--prune", default="0.1,0.2,0.3,0.5")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    parser.add_argument("--stem", default="compare_methods")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    methods = [m.name for m in list_methods()] if args.methods == "all" else args.methods.split(",")
    if "random" in methods:  # random first, the reference every row is read against
        methods = ["random"] + [m for m in methods if m != "random"]
    prunes = [float(p) for p in args.prune.split(",")]
    payload = {"seeds": list(range(args.seeds)), "methods": methods, "datasets": {}}
    sections = []
    for name in args.datasets.split(","):
        result = benchmark(name, methods, prunes, seeds=args.seeds, epochs=args.epochs, progress=False,
                           command=command_line())
        result.save(RESULTS / args.stem / name)
        payload["datasets"][name] = result.to_dict()
        losses = []
        for m in methods:
            if m == "random":
                continue
            below = [p for p in prunes if result.cell(m, p)[0] < result.cell("random", p)[0]]
            if below:
                losses.append(f"- {m}: below random at {', '.join(f'{p:.0%}' for p in below)} pruned")
        seconds = {m: max(r.prune_seconds for r in result.runs if r.method == m) for m in methods}
        sections.append(
            f"### {name}\n\n" + result.to_markdown().split("\nCommand:")[0]
            + "\nMean accuracy below random's (same fraction, same seeds):\n\n"
            + ("\n".join(losses) if losses else "- none") + "\n\n"
            + "Longest pruning time per method (s): "
            + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items()) + "\n"
        )
    write_results(args.stem, payload, "## Pruning methods compared: test accuracy\n\n" + "\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
