"""Parity: AdaPruner's kept set with the lazy (O(batch)) mask step against the exact (O(N)) one on
MNIST-1D, default parameters otherwise.

Per pruning fraction and seed s: the overlap |kept_lazy & kept_exact| / |kept|, next to the overlap
of the exact step's sets for seeds s and s + 1 (how much the kept set moves with the seed alone),
and the test accuracy of a fresh model trained (seed s) on each kept set."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys

from _common import write_results

from adaprune.api import evaluate, prune


def overlap(a, b) -> float:
    return len(set(a.tolist()) & set(b.tolist())) / len(a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--prune", default="0.3,0.7")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    parser.add_argument("--stem", default=None, help="results file stem (default adapruner_lazy_parity_<dataset>)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rows = []
    for p in (float(v) for v in args.prune.split(",")):
        sels = {(u, s): prune(args.dataset, "adapruner", prune=p, seed=s, params={"update": u}, progress=False)
                for u in ("exact", "lazy") for s in range(args.seeds + 1)}
        for s in range(args.seeds):
            acc = {u: evaluate(args.dataset, sels[(u, s)], seeds=[s], epochs=args.epochs, include_full=False,
                               progress=False).subset[0] for u in ("exact", "lazy")}
            rows.append({
                "prune": p, "seed": s,
                "overlap_lazy_exact": overlap(sels[("lazy", s)].kept, sels[("exact", s)].kept),
                "overlap_exact_next_seed": overlap(sels[("exact", s)].kept, sels[("exact", s + 1)].kept),
                "accuracy_exact": acc["exact"], "accuracy_lazy": acc["lazy"],
            })
            print(rows[-1], file=sys.stderr)
    lines = [
        f"## AdaPruner on {args.dataset}: lazy mask step against the exact one (default parameters)",
        "",
        f"Seeds 0..{args.seeds - 1}; test accuracy after {args.epochs} epochs on each kept set (same seed).",
        "",
        "| pruned | overlap lazy vs exact | overlap exact seed s vs s+1 | accuracy exact | accuracy lazy |",
        "|---|---|---|---|---|",
    ]
    for p in sorted({r["prune"] for r in rows}):
        group = [r for r in rows if r["prune"] == p]

        def stat(key: str, group=group) -> str:
            vals = [r[key] for r in group]
            return f"{statistics.mean(vals):.3f} +- {statistics.stdev(vals):.3f}" if len(vals) > 1 else f"{vals[0]:.3f}"

        lines.append(f"| {p:.0%} | {stat('overlap_lazy_exact')} | {stat('overlap_exact_next_seed')} | "
                     f"{stat('accuracy_exact')} | {stat('accuracy_lazy')} |")
    stem = args.stem or f"adapruner_lazy_parity_{args.dataset}"
    write_results(stem, {"seeds": list(range(args.seeds)), "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
