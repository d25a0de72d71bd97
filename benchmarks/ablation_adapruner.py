"""AdaPruner at high pruning rates: the old and the new default side by side with random, CCS and DUAL,
and the one-factor mask ablations (warm-up length, the mask's optimiser, the lambda rule).

Rows (issue 16):
  full data    every training sample
  random       a seeded uniform subset (np.random.default_rng(seed))
  ccs          CCS over EL2N with its defaults (Zheng et al. 2023), the base scored once per seed
  dual         DUAL with its defaults (Cho et al. 2025), the trace recorded once per seed
  default      the defaults (sampling="beta"): class quotas and a Beta draw over the mask's rank, with
               the scarcity check (a proxy's held-out accuracy on the training set under scarce_below:
               the easier, broader scarce_mode / scarce_concentration draw)
  beta_no_scarcity  the default before the scarcity check (rows measured then, renamed from default)
  old_default  the same trained mask, binarised as before issue 16 (the n_keep highest m, no quotas)
  pick         the same trained mask with sampling="pick" (opt-in): the rule among
               class_top, beta, beta_mid and class-stratified random whose subset trains the best proxy
               on a validation split carved from the training set; `pick_seconds` is its extra cost
  pick10       pick with proxies trained 10 epochs instead of the default pick_epochs=30
Mask variants (`--variants`), each changing one thing from the defaults (one factor at a time):
  warmup30     a fully trained warm-up (30 epochs, the evaluation's training length), as the public code
  mask_wd      weight decay 5e-4 on the mask (the public code puts the mask in the network's optimiser)
  lambda_const lambda = s, held constant
  public       warmup30 and mask_wd together (the public code's two choices)
  balance_class the default run's mask with per-class quotas and the n_keep highest m (no extra training)
The old and new defaults differ only in how the mask becomes a kept set, so one mask training serves both.
For every (data set, pruned fraction, seed) each method prunes with that seed and a fresh model of the same
small CNN is trained on the kept set with that seed (paired seeds); random subsets and the full data are
trained alike. Test accuracy is read once, after the last epoch; nothing is chosen on the test split (the
new default's settings were chosen on a validation split: benchmarks/highrate_validation.py).

Runs a data set (and pruning rates) per process (`--datasets digits --prune 0.5,0.7,0.9`), writing
results/ablation_adapruner/<name>_<rates>.json; `--report` merges those into
results/ablation_adapruner.{json,md}, with the paired difference to random and its 95% t-interval.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, code_revision, command_line, write_results
from scipy import stats

from adaprune.adapruner_mask import beta_mode, mask_kept
from adaprune.data import load_data
from adaprune.evaluate import train_and_test
from adaprune.evaluate.benchmark import machine_info
from adaprune.methods.adapruner import AdaPruner, draw_rule, holdout_accuracy, pick_rule
from adaprune.methods.ccs import CCS, ccs_select
from adaprune.methods.dual import DUAL, dual_beta_select, dual_scores
from adaprune.selection import Budget, rank_for_keep, select_top_k
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig

VARIANTS: dict[str, dict] = {
    "default": {},
    "warmup30": {"warmup_epochs": 30},
    "mask_wd": {"mask_weight_decay": 5e-4},
    "lambda_const": {"lambda_rule": "constant"},
    "public": {"warmup_epochs": 30, "mask_weight_decay": 5e-4},
}
# The binarisation before issue 16, applied to the default run's mask (no extra mask training).
OLD_DEFAULT = {"sampling": "top", "balance": "none"}
DERIVED = ("old_default", "balance_class", "pick", "pick10")
BASELINES = ("ccs", "dual")
ROW_ORDER = ("full data", "random", "ccs", "dual", "old_default", "beta_no_scarcity", "default", "pick", "pick10",
             "draw_every_rate",
             *list(VARIANTS)[1:], "balance_class")
LABELS = {"default": "adapruner (default: beta draw, scarcity check)",
          "beta_no_scarcity": "adapruner (beta draw, no scarcity check: the default before)",
          "old_default": "adapruner (old default)",
          "pick": "adapruner (pick)", "pick10": "adapruner (pick, 10-epoch proxies)",
          # rows of the default before beta_from (the draw at 30% pruned too), kept as measured
          "draw_every_rate": "adapruner (Beta draw below 50% too)"}
MODELS = {"digits": "cnn_small", "mnist1d": "cnn1d"}
OUT_DIR = RESULTS / "ablation_adapruner"
MASK_CACHE = Path(tempfile.gettempdir()) / "adaprune_ablation_masks"
# Parameters that only turn a trained mask into a kept set (the mask cache ignores them).
SELECTION_PARAMS = ("binarize", "balance", "sampling", "beta_power", "beta_mode_max", "beta_concentration",
                    "beta_from", "pick_epochs", "pick_draws", "pick_val_fraction", "scarce_below", "scarce_mode",
                    "scarce_concentration")


def min_class_share(kept: np.ndarray, y: np.ndarray) -> float:
    """The smallest ratio, over classes, of a class's kept fraction to the overall kept fraction."""
    overall = len(kept) / len(y)
    return float(min(np.isin(np.flatnonzero(y == c), kept).mean() / overall for c in np.unique(y)))


class BaselineScores:
    """CCS's base scores and DUAL's trace, computed once per seed (they do not depend on the rate);
    the kept sets follow CCS.run and DUAL.run exactly."""

    def __init__(self, task: ClassificationTask) -> None:
        self.task = task
        self.cache: dict[tuple[str, int], object] = {}

    def kept(self, name: str, n_keep: int, seed: int) -> np.ndarray:
        task = self.task
        if name == "ccs":
            ccs = CCS()
            base = ccs.base_method()
            if (name, seed) not in self.cache:
                self.cache[(name, seed)] = base.score_set(task, seed=seed, progress=False).scores
            hard_is_high = type(base).higher_is_hard
            beta = ccs.resolve_beta(n_keep, task.n, hard_is_high)
            kept, _ = ccs_select(self.cache[(name, seed)], n_keep, hard_is_high=hard_is_high, beta=beta,
                                 strata=ccs.strata, rng=np.random.default_rng([seed, 0xCC5]))
            return kept
        dual = DUAL()
        if (name, seed) not in self.cache:
            self.cache[(name, seed)] = dual.trace_probabilities(task, seed=seed, progress=False)
        p_true = self.cache[(name, seed)]
        scores = dual_scores(p_true, min(dual.window, dual.epochs))
        prune = 1.0 - n_keep / task.n
        if prune + 0.5 / task.n < dual.beta_from:
            return np.sort(rank_for_keep(scores, higher_is_keep=True)[:n_keep]).astype(np.int64)
        kept, _ = dual_beta_select(scores, p_true.mean(axis=0), n_keep, prune=prune, c_d=dual.c_d,
                                   rng=np.random.default_rng([seed, 0xD0A1]))
        return kept


def trained_mask(method: AdaPruner, task: ClassificationTask, name: str, n_keep: int, seed: int, *,
                 wait: bool = False) -> tuple[np.ndarray, dict]:
    """The trained mask's values and diagnostics, cached on disk by everything that trains it (the
    selection parameters only binarise it), so the old and new defaults share one training. `wait`:
    another process trains it; wait for its file instead of training it twice."""
    training = {k: v for k, v in method.params().items() if k not in SELECTION_PARAMS}
    key = hashlib.sha256(json.dumps([name, n_keep, seed, sorted(training.items())]).encode()).hexdigest()[:16]
    path = MASK_CACHE / f"{name.replace(':', '-')}_{n_keep}_{seed}_{key}.npz"
    while wait and not path.is_file():
        time.sleep(20)
    if path.is_file():
        cached = np.load(path)
        return cached["scores"], json.loads(str(cached["extra"]))
    start = time.perf_counter()
    pruner = method.train_mask(task, n_keep / task.n, seed=seed, progress=False)
    extra = {"method_seconds": time.perf_counter() - start, "mask_keep_fraction": pruner.history["r"][-1],
             "pruning_epochs_run": len(pruner.history["r"])}
    MASK_CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, scores=pruner.scores(), extra=json.dumps(extra))
    return pruner.scores(), extra


def run_dataset(
    name: str, prunes: list[float], seeds: list[int], variants: list[str], epochs: int, *, full: bool,
    random_rows: bool = True, part: str = "", wait_for_masks: bool = False,
) -> dict:
    """Rows go to results/ablation_adapruner/<name>_<prunes>.json as they come; rows already there are
    not run again (a stopped run resumes)."""
    data = load_data(name)
    model = MODELS.get(name.partition(":")[0], "auto")
    method_task = ClassificationTask(data=data, model=model, train=TrainConfig())
    eval_task = ClassificationTask(data=data, model=model, train=TrainConfig(epochs=epochs))
    path = OUT_DIR / f"{name.replace(':', '-')}_{'-'.join(f'{p:g}' for p in prunes)}{part}.json"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = json.loads(path.read_text())["rows"] if path.is_file() else []
    done = {(r["variant"], r["prune"], r["seed"]) for r in rows}
    out = {"dataset": data.name, "model": model, "n_train": data.n, "eval_epochs": epochs, "rows": rows,
           "command": command_line(), "machine": machine_info()["summary"], "revision": code_revision()}
    # A resumed file holds rows of earlier runs: each row names the code that made it.
    made_by = out["revision"]["commit"][:12] + (" (with uncommitted changes)" if out["revision"]["dirty"] else "")
    baselines = BaselineScores(method_task)
    holdout: dict[int, float] = {}  # the scarcity signal per seed (it does not depend on the rate)

    def record(row: dict) -> None:
        rows.append({**row, "commit": made_by})
        logging.info("%s", row)
        path.write_text(json.dumps(out, indent=2) + "\n")

    def evaluate(variant: str, prune: float, seed: int, kept: np.ndarray, **extra) -> None:
        acc = train_and_test(eval_task, kept, seed=seed, progress=False).value
        record({"variant": variant, "prune": prune, "seed": seed, "accuracy": acc,
                "min_class_kept_share": min_class_share(kept, data.y), **extra})

    for prune in prunes:
        n_keep = Budget.from_args(prune=prune).count(data.n)
        for seed in seeds:
            if random_rows and ("random", prune, seed) not in done:
                evaluate("random", prune, seed, np.sort(np.random.default_rng(seed).permutation(data.n)[:n_keep]))
            for variant in variants:
                if variant in BASELINES:
                    if (variant, prune, seed) not in done:
                        start = time.perf_counter()
                        kept = baselines.kept(variant, n_keep, seed)
                        evaluate(variant, prune, seed, kept, method_seconds=time.perf_counter() - start)
                    continue
                # "old_default" and "balance_class" binarise the default run's mask another way.
                trained = "default" if variant in DERIVED else variant
                method = AdaPruner(**VARIANTS[trained])
                if (variant, prune, seed) in done:
                    continue
                scores, extra = trained_mask(method, method_task, name, n_keep, seed, wait=wait_for_masks)
                if variant == "old_default":
                    old = {**method.params(), **OLD_DEFAULT}
                    kept = mask_kept(scores, n_keep, binarize=old["binarize"], sampling=old["sampling"], seed=seed)
                elif variant in ("pick", "pick10"):
                    start = time.perf_counter()
                    proxy_epochs = 10 if variant == "pick10" else method.pick_epochs
                    mode = beta_mode(n_keep / data.n, beta_power=method.beta_power, beta_mode_max=method.beta_mode_max)
                    rule, picked = pick_rule(method_task, scores, n_keep, seed=seed, epochs=proxy_epochs,
                                             draws=method.pick_draws, val_fraction=method.pick_val_fraction,
                                             beta_mode=mode, beta_concentration=method.beta_concentration)
                    kept = draw_rule(rule, scores, n_keep, data.y, seed=seed, beta_mode=mode,
                                     beta_concentration=method.beta_concentration)
                    extra = {**extra, "pick_seconds": time.perf_counter() - start, "pick_rule": rule,
                             "pick_val_accuracy": picked["val_accuracy"]}
                elif variant == "balance_class":
                    kept = select_top_k(scores, n_keep, higher_is_keep=True, strata=data.y)
                else:
                    labels = data.y if method.balance in ("class", "auto") else None
                    kept = mask_kept(scores, n_keep, binarize=method.binarize, sampling=method.sampling,
                                     beta_power=method.beta_power, beta_mode_max=method.beta_mode_max,
                                     beta_concentration=method.beta_concentration, beta_from=method.beta_from,
                                     balance=method.balance, labels=labels, seed=seed)
                    if method.checks_scarcity(method_task, n_keep):  # as AdaPruner.run
                        if seed not in holdout:
                            holdout[seed] = holdout_accuracy(method_task, seed=seed, epochs=method.pick_epochs,
                                                             val_fraction=method.pick_val_fraction)
                        kept, scarcity = method.scarcity_kept(kept, scores, n_keep, data.y, seed=seed,
                                                              accuracy=holdout[seed])
                        extra = {**extra, "scarcity": scarcity}
                evaluate(variant, prune, seed, kept, **extra)
    for seed in seeds if full else ():
        if ("full data", 0.0, seed) not in done:
            start = time.perf_counter()
            acc = train_and_test(eval_task, np.arange(data.n), seed=seed, progress=False).value
            record({"variant": "full data", "prune": 0.0, "seed": seed, "accuracy": acc,
                    "seconds": time.perf_counter() - start})
    return out


def paired_interval(diffs: np.ndarray) -> tuple[float, float]:
    """Half-width of the 95% t-interval of the mean paired difference (nan below two pairs)."""
    if len(diffs) < 2:
        return float(diffs.mean()) if len(diffs) else float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return float(diffs.mean()), float(half)


def report() -> int:
    merged: dict[str, dict] = {}
    for p in sorted(OUT_DIR.glob("*.json")):
        part = json.loads(p.read_text())
        merged.setdefault(part["dataset"], {**part, "rows": [], "commands": []})
        seen = {(r["variant"], r["prune"], r["seed"]) for r in merged[part["dataset"]]["rows"]}
        # A row run twice (two processes) counts once: the first file's.
        fresh = [r for r in part["rows"] if (r["variant"], r["prune"], r["seed"]) not in seen]
        merged[part["dataset"]]["rows"] += fresh
        merged[part["dataset"]]["commands"].append(part.get("command"))
    datasets = list(merged.values())
    lines = ["## AdaPruner at high pruning rates: test accuracy (%)", "",
             "Mean ± sample std over paired seeds (seed s prunes and trains every subset, and the full set); "
             "`vs random` is the mean paired difference to random with its 95% t-interval (a gap whose "
             "interval holds 0 is a tie). `adapruner (default: beta draw)` is the method's defaults (class "
             "quotas, a Beta draw over the mask's rank); `adapruner (pick)` the opt-in sampling='pick' (the rule "
             "picked on a validation split carved from the training set); `adapruner (old default)` "
             "the same trained mask "
             "binarised as before (the n_keep highest m). `min share` is the smallest class's kept fraction "
             "over the overall kept fraction (1.0: every class keeps its share). Test accuracy is read once, "
             "after the last epoch. The machine was shared with other jobs.", ""]
    summary: dict = {}
    for d in datasets:
        prunes = sorted({r["prune"] for r in d["rows"] if r["prune"] > 0})
        present = {r["variant"] for r in d["rows"]}
        variants = [v for v in ROW_ORDER if v in present]
        seeds = sorted({r["seed"] for r in d["rows"]})
        lines += [f"### {d['dataset']} ({d['n_train']} train, model {d['model']}, {d['eval_epochs']} epochs, "
                  f"seeds {seeds})", "",
                  "| method | " + " | ".join(f"{p:.0%} pruned | vs random | min share" for p in prunes) + " |",
                  "|---|" + "---|---|---|" * len(prunes)]
        summary[d["dataset"]] = {}
        for v in variants:
            cells = []
            for p in prunes:
                rs = [r for r in d["rows"] if r["variant"] == v and (r["prune"] == p or v == "full data")]
                rand = {r["seed"]: 100 * r["accuracy"] for r in d["rows"] if r["variant"] == "random"
                        and r["prune"] == p}
                accs = np.array([100 * r["accuracy"] for r in rs])
                diffs = np.array([100 * r["accuracy"] - rand[r["seed"]] for r in rs if r["seed"] in rand])
                share = [r["min_class_kept_share"] for r in rs if "min_class_kept_share" in r]
                if len(accs):
                    sd = accs.std(ddof=1) if len(accs) > 1 else 0.0
                    mean_diff, half = paired_interval(diffs)
                    cells.append(f"{accs.mean():.2f} ± {sd:.2f} (n={len(accs)})")
                    cells.append("" if v in ("random", "full data") else f"{mean_diff:+.2f} ± {half:.2f}")
                    summary[d["dataset"]].setdefault(v, {})[str(p)] = {
                        "mean": float(accs.mean()), "std": float(sd), "n": len(accs),
                        "diff_vs_random": mean_diff, "diff_ci95_half": half,
                        "min_class_share": float(np.mean(share)) if share else None}
                else:
                    cells += ["—", ""]
                cells.append(f"{np.mean(share):.2f}" if share and v != "full data" else "")
            lines.append(f"| {LABELS.get(v, v)} | " + " | ".join(cells) + " |")
        lines += ["", "Runs: " + "; ".join(f"`{c}`" for c in d["commands"] if c), ""]
    write_results("ablation_adapruner", {"datasets": datasets, "summary": summary}, "\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,mnist1d:2000,mnist1d")
    parser.add_argument("--prune", default="0.5,0.7,0.9")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--variants", default="old_default,default,ccs,dual",
                        help=f"any of {', '.join([*VARIANTS, *DERIVED, *BASELINES])}")
    parser.add_argument("--epochs", type=int, default=30, help="evaluation training epochs")
    parser.add_argument("--no-full", action="store_true", help="skip the full-data rows (another process runs them)")
    parser.add_argument("--no-random", action="store_true", help="skip the random rows (another process runs them)")
    parser.add_argument("--part", default="", help="suffix of this process's results file (two per data set)")
    parser.add_argument("--wait-for-masks", action="store_true",
                        help="wait for another process to train and cache each mask instead of training it")
    parser.add_argument("--report", action="store_true", help="merge the per-data-set results into the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    if args.report:
        return report()
    for name in args.datasets.split(","):
        run_dataset(name, [float(p) for p in args.prune.split(",")], [int(s) for s in args.seeds.split(",")],
                    args.variants.split(","), args.epochs, full=not args.no_full, random_rows=not args.no_random,
                    part=args.part, wait_for_masks=args.wait_for_masks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
