"""Quality and cost of AdaDeDup where redundancy differs between regions (the setting it was made for).

Training set: the digits training split (8 x 8) where the classes 0-4 are heavily over-sampled (every
original plus `--copies` moved near-copies: a shift of up to one pixel, a rotation of up to 10
degrees, a change of light, sensor noise; benchmarks/_moved.py) and the classes 5-9 are rare
(`--rare` of their originals, no copies). The test split is untouched. At each prune fraction and
seed: adadedup (feedback on, defaults), adadedup with z=0 (the gaps taken at face value: no
shrinkage toward zero, to show what the noise guard does), adadedup with feedback=False (the
density step alone, SemDeDup's selection exactly), semdedup, random; plus full data. Every method
sees the pixels (the default encoder) and no group ids. A fresh model (`--model`, `--epochs` epochs, initialised from
the seed) is trained on each kept subset; the method and the evaluation use the same seed.

Reported: test accuracy mean +- std over seeds, and the reduction of degradation against random,
1 - (acc_full - acc_method) / (acc_full - acc_random), computed per seed then averaged; plus what the
selections did (share of surplus copies removed, rare samples kept). A selection identical to one
already trained for the same seed is not retrained (its accuracy is the same by construction).
Cost, one run at the largest prune fraction: adadedup's time against semdedup's and against one
full training of the evaluation model.
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
from _moved import move

from adaprune.api import load_data
from adaprune.data import Dataset
from adaprune.evaluate.harness import train_and_test
from adaprune.methods.adadedup import AdaDeDup
from adaprune.methods.random import RandomPruning
from adaprune.methods.semdedup import SemDeDup
from adaprune.tasks import ClassificationTask
from adaprune.training.loop import TrainConfig

log = logging.getLogger("quality_adadedup")
VARIANTS = ("adadedup", "adadedup (z=0: no shrinkage)", "adadedup (feedback off)", "semdedup", "random")


def redundant_and_rare(copies: int, rare: float, seed: int) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The training set described above; returns it, each row's source original and a rare mask."""
    base = load_data("digits")
    rng = np.random.default_rng(seed)
    x0 = base.x[:, 0]  # (N, 8, 8) in [0, 1]
    heavy = base.y < 5
    rare_rows = np.flatnonzero(~heavy)
    rare_rows = np.sort(rng.choice(rare_rows, int(round(rare * len(rare_rows))), replace=False))
    originals = np.concatenate([np.flatnonzero(heavy), rare_rows])
    sources = np.repeat(np.flatnonzero(heavy), copies)
    x = np.concatenate([x0[originals], np.stack([move(x0[s], rng) for s in sources])]).astype(np.float32)
    y = np.concatenate([base.y[originals], base.y[sources]]).astype(np.int64)
    source = np.concatenate([originals, sources])
    data = Dataset(name=f"digits, classes 0-4 x{copies + 1} moved copies, 5-9 at {rare:.0%}",
                   x=x[:, None], y=y, x_test=base.x_test, y_test=base.y_test, class_names=base.class_names)
    return data, source, ~np.isin(y, np.arange(5))


def build(variant: str):
    if variant == "adadedup":
        return AdaDeDup()
    if variant == "adadedup (z=0: no shrinkage)":
        return AdaDeDup(z=0.0)
    if variant == "adadedup (feedback off)":
        return AdaDeDup(feedback=False)
    if variant == "semdedup":
        return SemDeDup()
    return RandomPruning()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prune", default="0.2,0.3,0.5")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="evaluation training epochs")
    parser.add_argument("--model", default="mlp", help="evaluation and proxy model (small, for a shared CPU)")
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--rare", type=float, default=0.3)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--stem", default="adadedup_quality")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    prunes = [float(p) for p in args.prune.split(",")]
    seeds = list(range(args.seeds))
    data, source, rare = redundant_and_rare(args.copies, args.rare, args.data_seed)
    n_groups = len(np.unique(source))
    surplus = data.n - n_groups
    method_task = ClassificationTask(data=data, model=args.model, train=TrainConfig())
    eval_task = ClassificationTask(data=data, model=args.model, train=TrainConfig(epochs=args.epochs))
    acc: dict[str, dict[float, list[float]]] = {v: {p: [] for p in prunes} for v in VARIANTS}
    sel: dict[str, dict[float, list[dict]]] = {v: {p: [] for p in prunes} for v in VARIANTS}
    full: list[float] = []
    for seed in seeds:
        t0 = time.perf_counter()
        full.append(train_and_test(eval_task, None, seed=seed, progress=False).value)
        full_time = time.perf_counter() - t0
        for p in prunes:
            n_keep = data.n - int(round(p * data.n))
            trained: dict[bytes, float] = {}
            for v in VARIANTS:
                t0 = time.perf_counter()
                res = build(v).run(method_task, n_keep, seed=seed, progress=False)
                seconds = time.perf_counter() - t0
                key = res.kept.tobytes()
                if key not in trained:
                    trained[key] = train_and_test(eval_task, res.kept, seed=seed, progress=False).value
                acc[v][p].append(trained[key])
                kept_per_group = np.bincount(np.unique(source, return_inverse=True)[1][res.kept], minlength=n_groups)
                rounds = res.details.get("rounds", []) if isinstance(res.details, dict) else []
                sel[v][p].append({
                    "seconds": seconds, "full_training_seconds": full_time,
                    "surplus_removed": float(1 - np.maximum(kept_per_group - 1, 0).sum() / surplus),
                    "rare_kept": float(rare[res.kept].sum() / rare.sum()),
                    "samples_moved": int(sum(r["samples_moved"] for r in rounds)),
                })
                log.info("seed %d prune %.0f%% %s: acc %.4f (%.1fs)", seed, 100 * p, v, acc[v][p][-1], seconds)
    full_arr = np.asarray(full)
    payload_methods: dict[str, dict] = {}
    for v in VARIANTS:
        payload_methods[v] = {}
        for p in prunes:
            a = np.asarray(acc[v][p])
            rnd = np.asarray(acc["random"][p])
            gap = full_arr - rnd
            rod = np.where(np.abs(gap) > 1e-12, 1 - (full_arr - a) / np.where(np.abs(gap) > 1e-12, gap, 1), np.nan)
            payload_methods[v][str(p)] = {
                "accuracy": a.tolist(), "reduction_of_degradation": rod.tolist(), "selection": sel[v][p],
            }
    lines = [
        f"### {data.name}: {data.n} training samples ({surplus} surplus moved copies in {n_groups} groups, "
        f"{int(rare.sum())} rare), {len(data.y_test)} test",
        "",
        f"Test accuracy (%), mean ± std over seeds {seeds}; model {eval_task.model}, {args.epochs} epochs. "
        f"Full data: {100 * full_arr.mean():.2f} ± {100 * full_arr.std():.2f}.",
        "",
        "| method | " + " | ".join(f"{p:.0%} pruned" for p in prunes) + " |",
        "|---|" + "---|" * len(prunes),
    ]
    for v in VARIANTS:
        cells = [f"{100 * np.mean(acc[v][p]):.2f} ± {100 * np.std(acc[v][p]):.2f}" for p in prunes]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "Reduction of degradation against random, 1 - (full - method) / (full - random), per seed, "
              "mean ± std (nan where random equals full):", "",
              "| method | " + " | ".join(f"{p:.0%} pruned" for p in prunes) + " |", "|---|" + "---|" * len(prunes)]
    for v in VARIANTS[:-1]:
        cells = []
        for p in prunes:
            r = np.asarray(payload_methods[v][str(p)]["reduction_of_degradation"], dtype=float)
            cells.append(f"{np.nanmean(r):.2f} ± {np.nanstd(r):.2f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "The same from the mean accuracies, 1 - (mean full - mean method) / (mean full - mean random) "
              "(steadier where random is close to full on some seeds):", "",
              "| method | " + " | ".join(f"{p:.0%} pruned" for p in prunes) + " |", "|---|" + "---|" * len(prunes)]
    for v in VARIANTS[:-1]:
        cells = []
        for p in prunes:
            m_full, m_rnd, m_v = full_arr.mean(), np.mean(acc["random"][p]), np.mean(acc[v][p])
            cells.append(f"{1 - (m_full - m_v) / (m_full - m_rnd):.2f}" if abs(m_full - m_rnd) > 1e-12 else "nan")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "What the selections did (mean over seeds): surplus copies removed / rare samples kept "
              "/ samples the feedback moved:", "",
              "| method | " + " | ".join(f"{p:.0%} pruned" for p in prunes) + " |", "|---|" + "---|" * len(prunes)]
    for v in VARIANTS:
        cells = []
        for p in prunes:
            s = sel[v][p]
            removed, rare_kept = np.mean([r["surplus_removed"] for r in s]), np.mean([r["rare_kept"] for r in s])
            cells.append(f"{removed:.3f} / {rare_kept:.3f} / {np.mean([r['samples_moved'] for r in s]):.0f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    p_cost = prunes[-1]
    ada_s = sel["adadedup"][p_cost][0]["seconds"]
    sem_s = sel["semdedup"][p_cost][0]["seconds"]
    fts = sel["adadedup"][p_cost][0]["full_training_seconds"]
    lines += ["", f"Cost, seed 0 at {p_cost:.0%} pruned, one run: adadedup {ada_s:.1f} s = {ada_s / sem_s:.1f} x "
              f"semdedup ({sem_s:.2f} s) = {ada_s / fts:.2f} x one full training of the evaluation model "
              f"({fts:.1f} s, {args.epochs} epochs). The machine was shared with other jobs."]
    payload = {
        "seeds": seeds, "prunes": prunes, "epochs": args.epochs, "model": args.model, "copies": args.copies,
        "rare": args.rare,
        "data_seed": args.data_seed, "n_train": data.n, "surplus": surplus, "groups": n_groups,
        "full_accuracy": full, "methods": payload_methods,
        "cost": {"adadedup_seconds": ada_s, "semdedup_seconds": sem_s, "full_training_seconds": fts},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = write_results(args.stem, json.loads(json.dumps(payload, default=float)),
                                       "## AdaDeDup where redundancy differs between regions\n\n" + "\n".join(lines))
    log.info("wrote %s and %s", json_path, md_path)
    print(command_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
