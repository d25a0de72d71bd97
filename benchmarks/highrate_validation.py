"""Choosing AdaPruner's high-rate selection rule on a VALIDATION split (never the test split).

The validation split: 20% of each training set, stratified by class, drawn once with
`numpy.random.default_rng(VAL_SEED)`; AdaPruner's mask is trained on the other 80% and fresh models
trained on each kept subset are scored on the validation 20%. The test split is not loaded into any
task here. For every (data set, pruned fraction, seed) one mask is trained with the mask defaults
(the rules below only change how the learned mask becomes a kept set), then every rule's subset and
a random subset are trained with that seed.

Rules (how mask values m, higher = harder = keep, become the kept set):
  top            the n_keep highest m over all samples (the old default)
  class_top      per-class quotas in proportion to class sizes, the highest m within each class
  beta_gG_kK     per-class quotas, drawn without replacement with Beta weights over the within-class
                 rank of m, mode 1 - prune**G (hard at low rates, toward easy at high ones), a + b = K
  new_default    the rule chosen from the above and made AdaPruner's default: beta_g6_k20 with the mode
                 capped at 0.875 (min(0.875, 1 - prune**6)), so that at 50% pruned it is beta_g3_k20's
                 mode (the best there) and at 70% beta_g6_k20's (the best compromise there)

Also recorded for the collapse diagnosis: each class's kept share (its kept fraction over the overall
kept fraction) and the kept fraction of every decile of the global mask rank (decile 9 = highest m).

    python benchmarks/highrate_validation.py --dataset mnist1d:2000 --prune 0.7 --seeds 0,1
    python benchmarks/highrate_validation.py --report
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, command_line, write_results

from adaprune.adapruner_mask import mask_kept
from adaprune.data import load_data
from adaprune.data.dataset import Dataset
from adaprune.evaluate import train_and_test
from adaprune.methods.adapruner import AdaPruner
from adaprune.selection import Budget
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig

VAL_SEED = 20261203
VAL_FRACTION = 0.2
MODELS = {"digits": "cnn_small", "mnist1d": "cnn1d"}
def _beta(power: float, concentration: float, mode_max: float = 1.0) -> dict:
    return {"sampling": "beta", "beta_power": power, "beta_concentration": concentration,
            "beta_mode_max": mode_max, "class": True}


RULES: dict[str, dict] = {
    "beta_g2_k6": _beta(2.0, 6.0),
    "beta_g2_k12": _beta(2.0, 12.0),
    "beta_g1_k6": _beta(1.0, 6.0),
    "beta_g3_k12": _beta(3.0, 12.0),
    "beta_g4_k20": _beta(4.0, 20.0),
    "beta_g6_k20": _beta(6.0, 20.0),
    "beta_g3_k20": _beta(3.0, 20.0),
    "new_default": _beta(6.0, 20.0, 0.875),
    "top": {"sampling": "top", "class": False},
    "class_top": {"sampling": "top", "class": True},
}
OUT_DIR = RESULTS / "highrate_validation"
MASK_CACHE = Path(tempfile.gettempdir()) / "adaprune_highrate_masks"


def train_val_split(data: Dataset) -> Dataset:
    """The 80% training part as the training set and the 20% validation part as its 'test' split."""
    rng = np.random.default_rng(VAL_SEED)
    val = []
    for c in np.unique(data.y):
        members = np.flatnonzero(data.y == c)
        val.append(rng.choice(members, size=int(round(VAL_FRACTION * len(members))), replace=False))
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(data.n), val_idx)
    return Dataset(name=f"{data.name}-trainpart", x=data.x[train_idx], y=data.y[train_idx],
                   x_test=data.x[val_idx], y_test=data.y[val_idx])


def class_shares(kept: np.ndarray, y: np.ndarray) -> list[float]:
    overall = len(kept) / len(y)
    return [float(np.isin(np.flatnonzero(y == c), kept).mean() / overall) for c in np.unique(y)]


def rank_deciles(kept: np.ndarray, scores: np.ndarray) -> list[float]:
    """Kept fraction of each decile of the global rank of m (0 = lowest m, 9 = highest)."""
    order = np.lexsort((np.arange(len(scores)), scores))
    decile = np.empty(len(scores), dtype=np.int64)
    decile[order] = np.arange(len(scores)) * 10 // len(scores)
    is_kept = np.zeros(len(scores), dtype=bool)
    is_kept[kept] = True
    return [float(is_kept[decile == d].mean()) for d in range(10)]


def run(name: str, prune: float, seeds: list[int], epochs: int, rules: list[str]) -> None:
    data = train_val_split(load_data(name))
    model = MODELS.get(name.partition(":")[0], "auto")
    method_task = ClassificationTask(data=data, model=model, train=TrainConfig())
    eval_task = ClassificationTask(data=data, model=model, train=TrainConfig(epochs=epochs))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name.replace(':', '-')}_{prune:g}.json"
    rows: list[dict] = json.loads(path.read_text())["rows"] if path.is_file() else []
    out = {"dataset": name, "n_trainpart": data.n, "n_val": len(data.y_test), "model": model,
           "eval_epochs": epochs, "prune": prune, "val_seed": VAL_SEED, "rows": rows, "command": command_line()}
    done = {(r["rule"], r["seed"]) for r in rows}
    n_keep = Budget.from_args(prune=prune).count(data.n)
    for seed in seeds:
        if ("random", seed) not in done:
            kept = np.sort(np.random.default_rng(seed).permutation(data.n)[:n_keep])
            acc = train_and_test(eval_task, kept, seed=seed, progress=False).value
            rows.append({"rule": "random", "seed": seed, "val_accuracy": acc,
                         "class_shares": class_shares(kept, data.y)})
            path.write_text(json.dumps(out, indent=2) + "\n")
        todo = [r for r in rules if (r, seed) not in done]
        if not todo:
            continue
        start = time.perf_counter()
        cache = MASK_CACHE / f"{name.replace(':', '-')}_{prune:g}_{seed}.npy"
        if cache.is_file():  # the mask does not depend on the rule: train it once per (data, rate, seed)
            scores = np.load(cache)
        else:
            scores = AdaPruner().train_mask(method_task, n_keep / data.n, seed=seed, progress=False).scores()
            MASK_CACHE.mkdir(parents=True, exist_ok=True)
            np.save(cache, scores)
        mask_seconds = time.perf_counter() - start
        for rule in todo:
            spec = dict(RULES[rule])
            labels = data.y if spec.pop("class") else None
            kept = mask_kept(scores, n_keep, labels=labels, seed=seed, **spec)
            acc = train_and_test(eval_task, kept, seed=seed, progress=False).value
            rows.append({"rule": rule, "seed": seed, "val_accuracy": acc, "mask_seconds": mask_seconds,
                         "class_shares": class_shares(kept, data.y), "rank_deciles": rank_deciles(kept, scores)})
            logging.info("%s %g seed %d %s: %.4f", name, prune, seed, rule, acc)
            path.write_text(json.dumps(out, indent=2) + "\n")


def report() -> int:
    parts = [json.loads(p.read_text()) for p in sorted(OUT_DIR.glob("*.json"))]
    lines = ["## AdaPruner selection rules on a validation split (accuracy %, not the test split)", "",
             f"Validation: {VAL_FRACTION:.0%} of each training set, stratified, drawn with seed {VAL_SEED}; "
             "masks trained on the other 80%. Mean ± std over seeds; `min share` is the smallest class's kept "
             "fraction over the overall kept fraction; `top decile` the kept fraction of the 10% highest-m "
             "samples, `bottom decile` of the 10% lowest. The machine was shared.", ""]
    summary = {}
    for part in parts:
        seeds = sorted({r["seed"] for r in part["rows"]})
        lines += [f"### {part['dataset']} at {part['prune']:.0%} pruned ({part['n_trainpart']} train part, "
                  f"{part['n_val']} validation, seeds {seeds})", "",
                  "| rule | val accuracy | paired diff vs random | min share | top decile | bottom decile |",
                  "|---|---|---|---|---|---|"]
        rand = {r["seed"]: 100 * r["val_accuracy"] for r in part["rows"] if r["rule"] == "random"}
        for rule in ("random", *RULES):
            rs = [r for r in part["rows"] if r["rule"] == rule]
            if not rs:
                continue
            acc = np.array([100 * r["val_accuracy"] for r in rs])
            diff = np.array([100 * r["val_accuracy"] - rand[r["seed"]] for r in rs if r["seed"] in rand])
            share = np.mean([min(r["class_shares"]) for r in rs])
            dec = [r["rank_deciles"] for r in rs if "rank_deciles" in r]
            sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
            lines.append(f"| {rule} | {acc.mean():.2f} ± {sd:.2f} (n={len(acc)}) | {diff.mean():+.2f} | "
                         f"{share:.2f} | {np.mean([d[9] for d in dec]) if dec else float('nan'):.2f} | "
                         f"{np.mean([d[0] for d in dec]) if dec else float('nan'):.2f} |")
            summary.setdefault(f"{part['dataset']}@{part['prune']:g}", {})[rule] = {
                "mean": float(acc.mean()), "std": float(sd), "n": len(acc), "diff_vs_random": float(diff.mean()),
                "min_share": float(share), "deciles": np.mean(dec, axis=0).tolist() if dec else None}
        lines += ["", f"Run: `{part['command']}`", ""]
    write_results("highrate_validation", {"parts": parts, "summary": summary}, "\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist1d:2000")
    parser.add_argument("--prune", type=float, default=0.7)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated rule names")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    if args.report:
        return report()
    run(args.dataset, args.prune, [int(s) for s in args.seeds.split(",")], args.epochs, args.rules.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
