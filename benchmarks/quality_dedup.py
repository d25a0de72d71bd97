"""Quality: SemDeDup, AdaDeDup and random on mnist1d and digits with planted near-duplicates.

For each dataset a share of the training set (10% by default) is replaced by planted near-duplicates:
copies of distinct training samples plus noise of 0.001 x the data's standard deviation, with the
original's label. Two measurements:

1. Finding the planted duplicates: prune exactly that share and count the removed samples that were
   planted duplicates. A planted pair (original, copy) is one redundancy: removing either member
   removes it, so "pairs resolved / removed" counts a pair once when exactly one of its members went.
   The strict "copy rows / removed" counts only the planted rows; random pruning's expected value
   is the share itself (and 2 s (1 - s) for the pair measure). Mean over the seeds.
2. Accuracy: adaprune.api.benchmark on the same planted training set: SemDeDup, AdaDeDup and
   random at 10/20/30% pruned, 3 seeds, a fresh model trained on each kept subset and tested on the
   untouched test split.

Embeddings: the methods' default encoder (pixels: flatten + PCA, offline). AdaDeDup's per-cluster
decisions at the first prune fraction are plotted for seed 0 (adadedup_clusters.png per dataset)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from _common import RESULTS, command_line

from adaprune.api import benchmark, build_method, load_data
from adaprune.data import Dataset
from adaprune.evaluate.benchmark import machine_info
from adaprune.io_utils import atomic_write_text
from adaprune.methods.adadedup import plot_cluster_rates
from adaprune.tables import jsonable
from adaprune.tasks import ClassificationTask
from adaprune.training.loop import TrainConfig

log = logging.getLogger("quality_dedup")
METHODS = ("semdedup", "adadedup", "random")


def plant(data: Dataset, share: float, seed: int) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Replace round(share * N) training samples by noisy copies of other, distinct samples.

    Returns the new dataset, the copy rows and their original rows."""
    rng = np.random.default_rng(seed)
    n = data.n
    n_dup = int(round(share * n))
    perm = rng.permutation(n)
    copies, originals = np.sort(perm[:n_dup]), perm[n_dup : 2 * n_dup]
    x = data.x.copy()
    y = data.y.copy()
    scale = float(data.x.std())
    x[copies] = data.x[originals] + 0.001 * scale * rng.standard_normal(x[copies].shape).astype(np.float32)
    y[copies] = data.y[originals]
    planted = Dataset(name=f"{data.name}+{share:.0%}dup", x=x, y=y, x_test=data.x_test, y_test=data.y_test,
                      class_names=data.class_names)
    return planted, copies, originals


def removal_quality(kept: np.ndarray, copies: np.ndarray, originals: np.ndarray, n: int) -> dict[str, float]:
    removed = np.ones(n, dtype=bool)
    removed[kept] = False
    n_removed = int(removed.sum())
    resolved = removed[copies] ^ removed[originals]  # exactly one member of the pair went
    return {
        "n_removed": n_removed,
        "pairs_resolved_over_removed": float(resolved.sum() / n_removed) if n_removed else 0.0,
        "copy_rows_over_removed": float(removed[copies].sum() / n_removed) if n_removed else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="mnist1d,digits")
    parser.add_argument("--share", type=float, default=0.1, help="planted near-duplicate share")
    parser.add_argument("--prune", default="0.1,0.2,0.3", help="prune fractions of the accuracy table")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    parser.add_argument("--plant-seed", type=int, default=0)
    parser.add_argument("--results-dir", default=str(RESULTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    prunes = [float(p) for p in args.prune.split(",")]
    seeds = list(range(args.seeds))
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload: dict = {"share": args.share, "seeds": seeds, "plant_seed": args.plant_seed, "datasets": {}}
    sections = []
    for name in args.datasets.split(","):
        planted, copies, originals = plant(load_data(name), args.share, args.plant_seed)
        task = ClassificationTask(data=planted, train=TrainConfig())
        n_keep = planted.n - int(round(args.share * planted.n))
        found: dict[str, list[dict]] = {m: [] for m in METHODS}
        for m in METHODS:
            method = build_method(m)
            for seed in seeds:
                kept = method.run(task, n_keep, seed=seed, progress=False).kept
                found[m].append(removal_quality(kept, copies, originals, planted.n))
        ds_dir = out_dir / "dedup_quality" / name
        ds_dir.mkdir(parents=True, exist_ok=True)
        ada = build_method("adadedup").run(task, planted.n - int(round(prunes[0] * planted.n)), seed=0,
                                           progress=False)
        plot_cluster_rates(jsonable(ada.details), ds_dir / "adadedup_clusters.png")
        result = benchmark(planted, list(METHODS), prunes, seeds=args.seeds, epochs=args.epochs, progress=False,
                           command=command_line())
        result.save(ds_dir)
        summary = {
            m: {k: float(np.mean([r[k] for r in found[m]])) for k in ("pairs_resolved_over_removed",
                                                                       "copy_rows_over_removed")}
            for m in METHODS
        }
        payload["datasets"][name] = {
            "n_train": planted.n, "n_planted": int(len(copies)), "finding": found, "finding_mean": summary,
            "random_expected": {"copy_rows_over_removed": args.share,
                                "pairs_resolved_over_removed": 2 * args.share * (1 - args.share)},
            "accuracy": result.to_dict(),
        }
        lines = [
            f"### {name} ({planted.n} training samples, {len(copies)} planted near-duplicates)",
            "",
            f"Pruning exactly the planted share ({args.share:.0%}), mean over seeds {seeds}:",
            "",
            "| method | pairs resolved / removed | planted copy rows / removed |",
            "|---|---|---|",
        ]
        for m in METHODS:
            lines.append(f"| {m} | {summary[m]['pairs_resolved_over_removed']:.3f} | "
                         f"{summary[m]['copy_rows_over_removed']:.3f} |")
        lines += [f"| random, expected | {2 * args.share * (1 - args.share):.3f} | {args.share:.3f} |", "",
                  result.to_markdown().split("\nCommand:")[0]]
        sections.append("\n".join(lines))
    payload = {"command": command_line(), "machine": machine_info(), **payload}
    atomic_write_text(out_dir / "dedup_quality.json", json.dumps(jsonable(payload), indent=2) + "\n")
    md = "## SemDeDup and AdaDeDup vs random with planted near-duplicates\n\n" + "\n\n".join(sections)
    md += f"\nCommand: `{payload['command']}`  \nMachine: {payload['machine']['summary']}\n"
    atomic_write_text(out_dir / "dedup_quality.md", md)
    log.info("wrote %s", out_dir / "dedup_quality.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
