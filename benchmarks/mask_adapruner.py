"""Where AdaPruner's learned mask settles: the fraction with w > 0.5 at the end of training against
the target keep fraction, whether |r - c_r| <= epsilon was reached, and the pruning epochs run."""

from __future__ import annotations

import argparse
import logging
import sys

from _common import write_results

from adaprune.api import prune


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="mnist1d,digits")
    parser.add_argument("--prune", default="0.1,0.2,0.3,0.5")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rows = []
    for name in args.datasets.split(","):
        for p in (float(v) for v in args.prune.split(",")):
            for seed in range(args.seeds):
                sel = prune(name, "adapruner", prune=p, seed=seed, progress=False)
                rows.append({
                    "dataset": name, "prune": p, "seed": seed, "target_keep": sel.requested_keep,
                    "mask_keep_fraction": sel.details["mask_keep_fraction"], "converged": sel.details["converged"],
                    "pruning_epochs_run": sel.details["pruning_epochs_run"], "n_kept": sel.n_kept,
                })
                print(rows[-1], file=sys.stderr)
    lines = [
        "## AdaPruner: where the mask settles (default parameters)",
        "",
        "r = fraction of samples with w > 0.5 after the last pruning epoch; the kept set itself is always "
        "exactly round(c_r * N) (binarize='budget').",
        "",
        "| dataset | pruned | target keep c_r | r (mean over seeds) | reached epsilon | pruning epochs |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["dataset"], r["prune"]) for r in rows}, key=lambda k: (args.datasets.index(k[0]), k[1]))
    for ds, p in keys:
        group = [r for r in rows if r["dataset"] == ds and r["prune"] == p]
        mean_r = sum(r["mask_keep_fraction"] for r in group) / len(group)
        conv = sum(r["converged"] for r in group)
        epochs = sorted({r["pruning_epochs_run"] for r in group})
        lines.append(f"| {ds} | {p:.0%} | {1 - p:.2f} | {mean_r:.3f} | {conv}/{len(group)} | "
                     f"{', '.join(map(str, epochs))} |")
    write_results("adapruner_mask", {"seeds": list(range(args.seeds)), "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
