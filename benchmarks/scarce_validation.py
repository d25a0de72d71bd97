"""Issue 16, MNIST-1D 2000: does a broader or easier Beta draw beat random where data is scarce?
On a VALIDATION split only (never the test split), with more paired seeds than highrate_validation.

The split is highrate_validation's: 20% of each training set, stratified, drawn once with seed
VAL_SEED; the mask is trained on the other 80% with AdaPruner's mask defaults, one mask per (data
set, rate, seed), and every rule's subset and the random subsets are trained with that seed (paired).
Rules (how mask values m, higher = harder = keep, become the kept set; all with class quotas except
`random`):
  random         a seeded uniform subset (as the test ablation's random row)
  class_random   class-stratified uniform: the limit of a Beta of concentration 2 (no use of m)
  default        the current default draw: mode min(0.875, 1 - prune**6), concentration 20
  default_k6     the same mode, concentration 6 (a broader band: nearer class_random)
  mid_k20        mode 0.5 (the middle of each class's rank of m), concentration 20
  mid_k6         mode 0.5, concentration 6
  easy_k20       mode 0.25 (toward the easy end: Sorscher et al. 2022's advice for scarce data)
  scarcity       AdaPruner's scarcity rule: mid_k6 where the held-out accuracy of a proxy trained on
                 the training part (`--signal`, adaprune.methods.adapruner.holdout_accuracy) is under
                 scarce_below, the default draw otherwise; its rows are those rules' rows
The report gives each rule's mean paired difference to random and to the default with 95%
t-intervals.

    python benchmarks/scarce_validation.py --dataset mnist1d:2000 --prune 0.7 --seeds 0,1,2,3,4,5
    python benchmarks/scarce_validation.py --report
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
from highrate_validation import MODELS, VAL_FRACTION, VAL_SEED, class_shares, rank_deciles, train_val_split
from scipy import stats

from adaprune.adapruner_mask import mask_kept
from adaprune.data import load_data
from adaprune.evaluate import train_and_test
from adaprune.methods.adapruner import AdaPruner, holdout_accuracy
from adaprune.selection import Budget, select_top_k
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig


def _beta(mode: float | None, concentration: float) -> dict:
    # mode None: the default's rate-dependent mode; a fixed mode: beta_mode_max with beta_power large
    # enough that 1 - prune**power exceeds it at every rate here (min(mode, ...) = mode).
    return {"sampling": "beta", "beta_power": 6.0 if mode is None else 60.0,
            "beta_mode_max": 0.875 if mode is None else mode, "beta_concentration": concentration}


RULES: dict[str, dict | None] = {
    "class_random": None,
    "default": _beta(None, 20.0),
    "default_k6": _beta(None, 6.0),
    "mid_k20": _beta(0.5, 20.0),
    "mid_k6": _beta(0.5, 6.0),
    "easy_k20": _beta(0.25, 20.0),
}
OUT_DIR = RESULTS / "scarce_validation"


def run(name: str, prune: float, seeds: list[int], epochs: int, rules: list[str]) -> None:
    data = train_val_split(load_data(name))
    model = MODELS.get(name.partition(":")[0], "auto")
    method_task = ClassificationTask(data=data, model=model, train=TrainConfig())
    eval_task = ClassificationTask(data=data, model=model, train=TrainConfig(epochs=epochs))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name.replace(':', '-')}_{prune:g}.json"
    rows: list[dict] = json.loads(path.read_text())["rows"] if path.is_file() else []
    out = {"dataset": name, "n_trainpart": data.n, "n_val": len(data.y_test), "model": model,
           "eval_epochs": epochs, "prune": prune, "val_seed": VAL_SEED, "rows": rows, "commands": []}
    if path.is_file():
        out["commands"] = json.loads(path.read_text()).get("commands", [])
    out["commands"].append(command_line())
    done = {(r["rule"], r["seed"]) for r in rows}
    n_keep = Budget.from_args(prune=prune).count(data.n)
    unknown = [r for r in rules if r != "random" and r not in RULES]
    if unknown:
        raise SystemExit(f"unknown rules {unknown}; known: random, {', '.join(RULES)}")

    def evaluate(rule: str, seed: int, kept: np.ndarray, **extra) -> None:
        acc = train_and_test(eval_task, kept, seed=seed, progress=False).value
        rows.append({"rule": rule, "seed": seed, "val_accuracy": acc, "class_shares": class_shares(kept, data.y),
                     **extra})
        logging.info("%s %g seed %d %s: %.4f", name, prune, seed, rule, acc)
        path.write_text(json.dumps(out, indent=2) + "\n")

    for seed in seeds:
        if ("random", seed) not in done:
            evaluate("random", seed, np.sort(np.random.default_rng(seed).permutation(data.n)[:n_keep]))
        if ("class_random", seed) not in done and "class_random" in rules:
            rng = np.random.default_rng([seed, 0xADA])
            evaluate("class_random", seed, select_top_k(rng.random(data.n), n_keep, higher_is_keep=True,
                                                        strata=data.y))
        todo = [r for r in rules if (r, seed) not in done and RULES.get(r) is not None]
        if not todo:
            continue
        start = time.perf_counter()
        scores = AdaPruner().train_mask(method_task, n_keep / data.n, seed=seed, progress=False).scores()
        mask_seconds = time.perf_counter() - start
        for rule in todo:
            kept = mask_kept(scores, n_keep, labels=data.y, seed=seed, **RULES[rule])
            evaluate(rule, seed, kept, mask_seconds=mask_seconds, rank_deciles=rank_deciles(kept, scores))


def signal(name: str, seeds: list[int]) -> None:
    """The scarcity signal AdaPruner's default measures, on the training part (what the method sees):
    held-out accuracy of a proxy trained on the rest of it (it does not depend on the pruning rate)."""
    data = train_val_split(load_data(name))
    task = ClassificationTask(data=data, model=MODELS.get(name.partition(":")[0], "auto"), train=TrainConfig())
    method = AdaPruner()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / "signal.json"
    out = json.loads(path.read_text()) if path.is_file() else {"rows": [], "commands": []}
    out["commands"].append(command_line())
    for seed in seeds:
        if any(r["dataset"] == name and r["seed"] == seed for r in out["rows"]):
            continue
        acc = holdout_accuracy(task, seed=seed, epochs=method.pick_epochs, val_fraction=method.pick_val_fraction)
        out["rows"].append({"dataset": name, "seed": seed, "holdout_accuracy": acc})
        logging.info("%s seed %d held-out accuracy %.4f", name, seed, acc)
        path.write_text(json.dumps(out, indent=2) + "\n")


def interval(d: np.ndarray) -> str:
    if len(d) < 2:
        return f"{d.mean():+.2f}" if len(d) else ""
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return f"{d.mean():+.2f} ± {half:.2f}"


def report() -> int:
    parts = [json.loads(p.read_text()) for p in sorted(OUT_DIR.glob("*.json")) if p.name != "signal.json"]
    sig_path = OUT_DIR / "signal.json"
    sig = json.loads(sig_path.read_text()) if sig_path.is_file() else {"rows": [], "commands": []}
    below = AdaPruner().scarce_below
    signal_of = {(r["dataset"], r["seed"]): r["holdout_accuracy"] for r in sig["rows"]}
    lines = ["## AdaPruner's draw where data is scarce: validation accuracy (%, not the test split)", "",
             f"Validation: {VAL_FRACTION:.0%} of each training set, stratified, drawn with seed {VAL_SEED} "
             "(benchmarks/highrate_validation.py's split); masks trained on the other 80%. Mean ± sample std "
             "over paired seeds; the differences are paired means with their 95% t-interval. `min share`: "
             "the smallest class's kept fraction over the overall kept fraction; `top decile`/`bottom decile`: "
             "the kept fraction of the 10% highest/lowest m. The machine was shared with other jobs.", ""]
    summary: dict = {}
    for part in parts:
        seeds = sorted({r["seed"] for r in part["rows"]})
        lines += [f"### {part['dataset']} at {part['prune']:.0%} pruned ({part['n_trainpart']} train part, "
                  f"{part['n_val']} validation, seeds {seeds})", "",
                  "| rule | val accuracy | vs random | vs default | min share | top decile | bottom decile |",
                  "|---|---|---|---|---|---|---|"]
        by = {}
        for r in part["rows"]:
            by.setdefault(r["rule"], {})[r["seed"]] = 100 * r["val_accuracy"]
        # The scarcity rule (AdaPruner's default now): mid_k6 where the seed's held-out accuracy is under
        # scarce_below, the default draw otherwise (the same kept sets as those rows: same draw, same seed).
        scarce_rows = []
        for r in part["rows"]:
            s_acc = signal_of.get((part["dataset"], r["seed"]))
            if s_acc is not None and r["rule"] == ("mid_k6" if s_acc < below else "default"):
                scarce_rows.append({**r, "rule": "scarcity"})
        part = {**part, "rows": part["rows"] + scarce_rows}
        for rule in ("random", *RULES, "scarcity"):
            rs = [r for r in part["rows"] if r["rule"] == rule]
            if not rs:
                continue
            acc = np.array([100 * r["val_accuracy"] for r in rs])
            vs = {}
            for ref in ("random", "default"):
                vs[ref] = np.array([100 * r["val_accuracy"] - by[ref][r["seed"]] for r in rs
                                    if r["seed"] in by.get(ref, {})])
            dec = [r["rank_deciles"] for r in rs if "rank_deciles" in r]
            sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
            top = f"{np.mean([d[9] for d in dec]):.2f}" if dec else ""
            bottom = f"{np.mean([d[0] for d in dec]):.2f}" if dec else ""
            lines.append(f"| {rule} | {acc.mean():.2f} ± {sd:.2f} (n={len(acc)}) | "
                         f"{'' if rule == 'random' else interval(vs['random'])} | "
                         f"{'' if rule == 'default' else interval(vs['default'])} | "
                         f"{np.mean([min(r['class_shares']) for r in rs]):.2f} | {top} | {bottom} |")
            summary.setdefault(f"{part['dataset']}@{part['prune']:g}", {})[rule] = {
                "mean": float(acc.mean()), "std": float(sd), "n": len(acc),
                "diff_vs_random": float(vs["random"].mean()) if len(vs["random"]) else None,
                "diff_vs_default": float(vs["default"].mean()) if len(vs["default"]) else None}
        lines += ["", "Runs: " + "; ".join(f"`{c}`" for c in part["commands"]), ""]
    if sig["rows"]:
        lines += [f"### The scarcity signal (held-out accuracy of a proxy on the training part; scarce below "
                  f"{below:g})", "", "| data set | held-out accuracy (mean, min, max) | seeds |", "|---|---|---|"]
        for name in sorted({r["dataset"] for r in sig["rows"]}):
            accs = np.array([100 * r["holdout_accuracy"] for r in sig["rows"] if r["dataset"] == name])
            seeds = sorted(r["seed"] for r in sig["rows"] if r["dataset"] == name)
            lines.append(f"| {name} | {accs.mean():.2f} ({accs.min():.2f}, {accs.max():.2f}) | {seeds} |")
        lines += ["", "Runs: " + "; ".join(f"`{c}`" for c in sig["commands"]), ""]
    write_results("scarce_validation", {"parts": parts, "signal": sig, "summary": summary}, "\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist1d:2000")
    parser.add_argument("--prune", type=float, default=0.7)
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated rule names")
    parser.add_argument("--signal", action="store_true", help="measure the scarcity signal per seed")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    if args.report:
        return report()
    if args.signal:
        signal(args.dataset, [int(s) for s in args.seeds.split(",")])
        return 0
    run(args.dataset, args.prune, [int(s) for s in args.seeds.split(",")], args.epochs, args.rules.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
