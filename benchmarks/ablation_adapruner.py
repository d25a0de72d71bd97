"""Ablation of AdaPruner at high pruning rates: warm-up length, the mask's optimiser, the lambda rule.

Each variant changes one thing from the defaults (one factor at a time):
  default      warm-up 5 epochs, mask SGD momentum 0.9 without weight decay, lambda = s * |r - c_r|
  warmup30     a fully trained warm-up (30 epochs, the evaluation's training length), as the public code
  mask_wd      weight decay 5e-4 on the mask (the public code puts the mask in the network's optimiser)
  lambda_const lambda = s, held constant
  public       warmup30 and mask_wd together (the public code's two choices)
  balance_class the default run's mask binarised with per-class quotas (no extra training)
For every (data set, pruned fraction, seed) AdaPruner prunes with that seed and a fresh model of the same
small CNN is trained on the kept set with that seed; random subsets and the full data are trained alike.
Test accuracy is read once, after the last epoch; nothing is chosen on the test split.

Runs a data set (and a pruning rate) per process (`--datasets digits --prune 0.7`), writing
results/ablation_adapruner/<name>_<rates>.json; `--report` merges those into
results/ablation_adapruner.{json,md}. MNIST-1D is run at 2000 training samples (`mnist1d:2000`) to fit
the time we had on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np
import torch
from _common import RESULTS, command_line, write_results

from adaprune.data import load_data
from adaprune.evaluate import train_and_test
from adaprune.methods.adapruner import AdaPruner
from adaprune.selection import Budget, select_top_k
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig

VARIANTS: dict[str, dict] = {
    "default": {},
    "warmup30": {"warmup_epochs": 30},
    "mask_wd": {"mask_weight_decay": 5e-4},
    "lambda_const": {"lambda_rule": "constant"},
    "public": {"warmup_epochs": 30, "mask_weight_decay": 5e-4},
}
# Variants that only binarise the default run's mask differently (no extra mask training).
DERIVED = {"balance_class": "default"}
MODELS = {"digits": "cnn_small", "mnist1d": "cnn1d"}
OUT_DIR = RESULTS / "ablation_adapruner"


def min_class_share(kept: np.ndarray, y: np.ndarray) -> float:
    """The smallest ratio, over classes, of a class's kept fraction to the overall kept fraction."""
    overall = len(kept) / len(y)
    return float(min(np.isin(np.flatnonzero(y == c), kept).mean() / overall for c in np.unique(y)))


def run_dataset(
    name: str, prunes: list[float], seeds: list[int], variants: list[str], epochs: int, *, full: bool
) -> dict:
    """Rows go to results/ablation_adapruner/<name>_<prunes>.json as they come; rows already there are
    not run again (a stopped run resumes)."""
    data = load_data(name)
    model = MODELS.get(name.partition(":")[0], "auto")
    method_task = ClassificationTask(data=data, model=model, train=TrainConfig())
    eval_task = ClassificationTask(data=data, model=model, train=TrainConfig(epochs=epochs))
    path = OUT_DIR / f"{name.replace(':', '-')}_{'-'.join(f'{p:g}' for p in prunes)}.json"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = json.loads(path.read_text())["rows"] if path.is_file() else []
    done = {(r["variant"], r["prune"], r["seed"]) for r in rows}
    out = {"dataset": data.name, "model": model, "n_train": data.n, "eval_epochs": epochs, "rows": rows,
           "command": command_line()}

    def record(row: dict) -> None:
        rows.append(row)
        logging.info("%s", row)
        path.write_text(json.dumps(out, indent=2) + "\n")

    for seed in seeds if full else ():
        if ("full data", 0.0, seed) in done:
            continue
        start = time.perf_counter()
        acc = train_and_test(eval_task, np.arange(data.n), seed=seed, progress=False).value
        record({"variant": "full data", "prune": 0.0, "seed": seed, "accuracy": acc,
                "seconds": time.perf_counter() - start})
    for prune in prunes:
        n_keep = Budget.from_args(prune=prune).count(data.n)
        for seed in seeds:
            kept = np.sort(np.random.default_rng(seed).permutation(data.n)[:n_keep])
            if ("random", prune, seed) not in done:
                acc = train_and_test(eval_task, kept, seed=seed, progress=False).value
                record({"variant": "random", "prune": prune, "seed": seed, "accuracy": acc})
            for variant in variants:
                if (variant, prune, seed) in done:
                    continue
                start = time.perf_counter()
                result = AdaPruner(**VARIANTS[variant]).run(method_task, n_keep, seed=seed, progress=False)
                method_seconds = time.perf_counter() - start
                kept_sets = {variant: result.kept}
                if variant == "default":
                    kept_sets["balance_class"] = select_top_k(result.scores, n_keep, higher_is_keep=True,
                                                              strata=data.y)
                for name, kept in kept_sets.items():
                    acc = train_and_test(eval_task, kept, seed=seed, progress=False).value
                    record({"variant": name, "prune": prune, "seed": seed, "accuracy": acc,
                            "method_seconds": method_seconds,
                            "mask_keep_fraction": result.details["mask_keep_fraction"],
                            "pruning_epochs_run": result.details["pruning_epochs_run"],
                            "min_class_kept_share": min_class_share(kept, data.y)})
    return out


def report() -> int:
    merged: dict[str, dict] = {}
    for p in sorted(OUT_DIR.glob("*.json")):
        part = json.loads(p.read_text())
        merged.setdefault(part["dataset"], {**part, "rows": [], "commands": []})
        merged[part["dataset"]]["rows"] += part["rows"]
        merged[part["dataset"]]["commands"].append(part.get("command"))
    datasets = list(merged.values())
    lines = ["## AdaPruner ablation at high pruning rates: test accuracy (%)", "",
             "Mean ± sample std over seeds; each variant changes one thing from the defaults (see the script's "
             "docstring). `mask r` is the mask's own kept fraction (m > 0) at the end (the budget "
             "binarisation keeps exactly the target either way); `min share` is the smallest class's kept "
             "fraction over the overall kept fraction (1.0: every class keeps its share). Test accuracy is "
             "read once, after the last epoch. The machine was shared with other jobs.", ""]
    summary: dict = {}
    for d in datasets:
        prunes = sorted({r["prune"] for r in d["rows"] if r["prune"] > 0})
        present = {r["variant"] for r in d["rows"]}
        variants = [v for v in ("full data", "random", *VARIANTS, *DERIVED) if v in present]
        seeds = sorted({r["seed"] for r in d["rows"]})
        lines += [f"### {d['dataset']} ({d['n_train']} train, model {d['model']}, {d['eval_epochs']} epochs, "
                  f"seeds {seeds})", "",
                  "| variant | " + " | ".join(f"{p:.0%} pruned | mask r | min share" for p in prunes) + " |",
                  "|---|" + "---|---|---|" * len(prunes)]
        summary[d["dataset"]] = {}
        for v in variants:
            cells = []
            for p in prunes:
                rs = [r for r in d["rows"] if r["variant"] == v and (r["prune"] == p or v == "full data")]
                accs = np.array([100 * r["accuracy"] for r in rs])
                mask = [r["mask_keep_fraction"] for r in rs if "mask_keep_fraction" in r]
                share = [r["min_class_kept_share"] for r in rs if "min_class_kept_share" in r]
                if len(accs):
                    sd = accs.std(ddof=1) if len(accs) > 1 else 0.0
                    cells.append(f"{accs.mean():.2f} ± {sd:.2f} (n={len(accs)})")
                    summary[d["dataset"]].setdefault(v, {})[str(p)] = {
                        "mean": float(accs.mean()), "std": float(sd), "n": len(accs),
                        "mask_keep_fraction": float(np.mean(mask)) if mask else None,
                        "min_class_share": float(np.mean(share)) if share else None}
                else:
                    cells.append("—")
                cells.append(f"{np.mean(mask):.3f}" if mask else "")
                cells.append(f"{np.mean(share):.2f}" if share else "")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines += ["", "Runs: " + "; ".join(f"`{c}`" for c in d["commands"] if c), ""]
    write_results("ablation_adapruner", {"datasets": datasets, "summary": summary}, "\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,mnist1d")
    parser.add_argument("--prune", default="0.5,0.7")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    parser.add_argument("--no-full", action="store_true", help="skip the full-data rows (another process runs them)")
    parser.add_argument("--report", action="store_true", help="merge the per-data-set results into the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    if args.report:
        return report()
    for name in args.datasets.split(","):
        run_dataset(name, [float(p) for p in args.prune.split(",")], list(range(args.seeds)),
                    args.variants.split(","), args.epochs, full=not args.no_full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
