"""Detection with power: random, SemDeDup, AdaDeDup (feedback on and off) and AdaPruner on synthtraffic,
paired over seeds, with 95% intervals of the paired differences.

synthtraffic (adaprune.data.synthtraffic) is built the way AdaDeDup's premise describes a driving log:
easy frames under changing light (far apart in pixels, few objects), a fixed camera over a crowded
junction (near-copies in pixels, new small objects every frame, the rare classes), parked and cruise
scenes. The detector (CenterNet) trains with a cosine learning-rate decay, long enough that the
full-data mAP's spread over seeds is small (chosen with `--tune` on the validation scenes, never on
the test scenes).

Paired: for every seed s, the full set and every method's kept subset train a detector from the same
initialisation (seed s) with the same batch-order generator (seed s); each method prunes with seed s.
Reported per method and prune fraction: mAP@[.5:.95] and mAP@.5 (pycocotools, test scenes) mean ± std;
the paired difference to random and to SemDeDup, mean with a 95% t interval over seeds; the share of
each scene kind's frames it removes; the reduction of degradation against random,
1 - (full - method) / (full - random), from the paired means; and its pruning time over one full
training of the detector in the same worker process (a ratio; the machine is shared).

Jobs go to `--workers` processes (one torch thread each); every finished job is one JSON line in
benchmarks/results/detection_powered_runs_<config>.jsonl, so a run resumes and methods can be added
later (`--methods adadedup,adadedup_nofb`) without rerunning the rest. A subset whose kept indices equal
one already trained for that seed (AdaDeDup without feedback is SemDeDup) reuses that training.

    python benchmarks/detection_powered.py --tune --tune-epochs 12,20 --seeds 100,101,102
    python benchmarks/detection_powered.py [--n 800] [--epochs 20] [--width 16] [--seeds 0,1,2,3,4]
    python benchmarks/detection_powered.py --report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, write_results
from detection import cached_pixel_embedding

PRUNES = (0.2, 0.3, 0.5)
# adadedup_nofb is AdaDeDup with feedback=False (SemDeDup's selection by construction).
METHODS = ("random", "semdedup", "adapruner", "adadedup", "adadedup_nofb")
EMBEDDING_METHODS = ("semdedup", "adadedup", "adadedup_nofb")
BATCH = 16
LR = 3e-3
# Two-sided 95% t quantiles, by degrees of freedom (no scipy here).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 14: 2.145, 19: 2.093, 29: 2.045}

log = logging.getLogger("benchmarks.detection_powered")


def method_params(method: str, epochs: int, embeddings: str) -> tuple[str, dict[str, Any]]:
    """(registered name, parameters) of a benchmark method. AdaPruner's mask schedule is as long as one
    full training (warm-up + pruning epochs = the detector's epochs, no extra epochs)."""
    if method == "adapruner":
        warmup = max(1, epochs // 4)
        return "adapruner", {"warmup_epochs": warmup, "epochs": epochs - warmup, "max_extra_epochs": 0}
    if method == "adadedup":
        return "adadedup", {"embeddings": embeddings}
    if method == "adadedup_nofb":
        return "adadedup", {"embeddings": embeddings, "feedback": False}
    if method == "semdedup":
        return "semdedup", {"embeddings": embeddings}
    return method, {}


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t interval of paired differences (the interval is the mean when only one pair)."""
    d = np.asarray(diffs, dtype=np.float64)
    m = float(d.mean())
    if len(d) < 2:
        return m, m, m
    df = len(d) - 1
    t = T975.get(df) or T975[max(k for k in T975 if k <= df)]
    half = t * float(d.std(ddof=1)) / np.sqrt(len(d))
    return m, m - half, m + half


def kept_hash(kept: list[int] | None) -> str:
    return "full" if kept is None else hashlib.sha1(np.asarray(kept, dtype=np.int64).tobytes()).hexdigest()


def load_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def job_key(job: dict[str, Any]) -> str:
    return f"{job['kind']}:{job['seed']}:{job.get('method', '')}:{job.get('prune', '')}"


def worker(worker_id: int, queue: Any, cfg: dict[str, Any], out_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    from adaprune.data import load_data
    from adaprune.evaluate.harness import train_and_test
    from adaprune.models.detector import CenterNet
    from adaprune.registry import build_method
    from adaprune.selection import Budget
    from adaprune.tasks import make_task
    from adaprune.training.loop import TrainConfig

    data = load_data(cfg["spec"])
    width, num_classes = cfg["width"], data.num_classes

    def detector() -> CenterNet:
        return CenterNet(num_classes, width=width)

    train = TrainConfig(epochs=cfg["epochs"], batch_size=cfg["batch"], lr=cfg["lr"], schedule=cfg["schedule"])
    task = make_task(data, model=detector, train=train)
    for job in iter(queue.get, None):
        start = time.perf_counter()
        prune_seconds, kept, details = 0.0, None, {}
        if job["kind"] == "prune":
            name, params = method_params(job["method"], cfg["epochs"], cfg["embeddings_path"])
            method = build_method(name, params)
            n_keep = Budget.from_args(prune=job["prune"]).count(data.n)
            result = method.run(task, n_keep, seed=job["seed"], progress=False)
            kept = np.asarray(result.kept, dtype=np.int64).tolist()
            prune_seconds = time.perf_counter() - start
            if job["method"] == "adadedup":
                details = {"rounds": [{k: r[k] for k in ("round", "clusters_defined", "clusters_moved",
                                                         "samples_moved") if k in r}
                                      for r in (result.details or {}).get("rounds", [])]}
        digest = kept_hash(kept)
        same = [r for r in load_records(Path(out_path)) if r["seed"] == job["seed"] and r["kept_hash"] == digest]
        train_start = time.perf_counter()
        if same:  # the same subset, seed and schedule: the same training (it is deterministic)
            mean_ap, map50, reused = same[0]["map"], same[0]["map50"], job_key(same[0])
            train_seconds = None
        else:
            metric = train_and_test(task, None if kept is None else np.asarray(kept), seed=job["seed"],
                                    progress=False)
            mean_ap, map50, reused = metric.value, metric.extras["map50"], None
            train_seconds = time.perf_counter() - train_start
        record = {**job, "worker": worker_id, "n_kept": data.n if kept is None else len(kept), "map": mean_ap,
                  "map50": map50, "prune_seconds": prune_seconds, "train_seconds": train_seconds,
                  "kept_hash": digest, "training_reused_from": reused, "details": details, "kept": kept}
        with open(out_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        print(f"[{worker_id}] {job_key(job)} map={mean_ap:.4f} map50={map50:.4f} prune={prune_seconds:.1f}s "
              f"train={'reused' if reused else f'{train_seconds:.1f}s'}", file=sys.stderr, flush=True)


def run_jobs(jobs: list[dict[str, Any]], cfg: dict[str, Any], runs_path: Path, workers: int) -> None:
    done = {job_key(r) for r in load_records(runs_path)}
    todo = [j for j in jobs if job_key(j) not in done]
    # One queue: a free worker takes the next job. Full trainings first (the cost ratios and the
    # reuse of trainings need them), then seed by seed (a run cut short leaves whole seeds), the
    # longest first within a seed (AdaPruner trains a mask first).
    todo.sort(key=lambda j: (j["kind"] != "full", j["seed"], j.get("method") != "adapruner"))
    if not todo:
        return
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for job in todo:
        queue.put(job)
    for _ in range(workers):
        queue.put(None)
    procs = [ctx.Process(target=worker, args=(w, queue, cfg, str(runs_path))) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def fmt_interval(m: float, lo: float, hi: float) -> str:
    mark = " (above)" if lo > 0 else " (below)" if hi < 0 else ""
    return f"{100 * m:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]{mark}"


def tune_report(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    rows = {}
    for r in records:
        rows.setdefault((r["n"], r["epochs"], r["width"], r["schedule"], r.get("batch", 32), r.get("lr", LR)),
                        []).append(r)
    lines = [
        "# Detection benchmark tuning: full-data mAP on synthtraffic's validation scenes",
        "",
        "Full-set trainings only, on the validation split (separate scenes from another stream of the "
        "seed; the test scenes are not read). The aim: the cheapest setting whose std over seeds is under "
        "5% of its mean and whose whole benchmark (about 13 such trainings per seed) fits the time.",
        "",
        "| train images | epochs | width | schedule | batch | lr | seeds | mAP@[.5:.95] | std / mean | mAP@.5 "
        "| seconds / training |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for (n, epochs, width, schedule, batch, lr), rs in sorted(rows.items()):
        maps = np.asarray([r["map"] for r in rs])
        m50 = np.asarray([r["map50"] for r in rs])
        sd = float(maps.std(ddof=1)) if len(maps) > 1 else 0.0
        secs = float(np.mean([r["train_seconds"] for r in rs]))
        summary.append({"n": n, "epochs": epochs, "width": width, "schedule": schedule, "batch": batch, "lr": lr,
                        "seeds": sorted(r["seed"] for r in rs), "map_mean": float(maps.mean()), "map_std": sd,
                        "map50_mean": float(m50.mean()), "seconds": secs})
        lines.append(f"| {n} | {epochs} | {width} | {schedule} | {batch} | {lr:g} | {len(rs)} "
                     f"| {100 * maps.mean():.2f} ± {100 * sd:.2f} "
                     f"| {100 * sd / maps.mean():.1f}% | {100 * m50.mean():.2f} | {secs:.0f} |")
    met = [r for r in summary if len(r["seeds"]) > 1 and r["map_std"] < 0.05 * r["map_mean"]]
    lines += ["", "Under 5%: " + (", ".join(f"{r['n']} images x {r['epochs']} epochs (width {r['width']}, batch "
                                             f"{r['batch']})" for r in met) if met else "none of these settings.")]
    lines += ["", "Seconds per training on one torch thread, several worker processes, on a 2-core "
              "machine shared with other jobs (a guide to relative cost only; the load changed between rows)."]
    write_results("detection_powered_tune", {"summary": summary, "runs": records, "shared_machine": True},
                  "\n".join(lines) + "\n")


def tune(args: argparse.Namespace) -> None:
    """Full trainings on the validation scenes over a grid of (n, epochs, width, schedule)."""
    path = RESULTS / "detection_powered_tune_runs.jsonl"
    records = load_records(path)
    done = {(r["n"], r["epochs"], r["width"], r["schedule"], r["seed"], r.get("batch", 32), r.get("lr", LR))
            for r in records}
    grid = [(n, e, w, sch, s) for n in _ints(args.tune_n or str(args.n)) for e in _ints(args.tune_epochs or
            str(args.epochs)) for w in _ints(args.tune_width or str(args.width))
            for sch in (args.tune_schedule or args.schedule).split(",") for s in _ints(args.seeds)]
    todo = [g for g in grid if (*g, args.batch, args.lr) not in done]
    if todo:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_tune_worker, args=(todo[w::args.workers], str(path), args.batch, args.lr))
                 for w in range(args.workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    tune_report(args, load_records(path))


def _tune_worker(todo: list[tuple], out_path: str, batch: int, lr: float) -> None:
    import torch

    torch.set_num_threads(1)
    from adaprune.data import load_data
    from adaprune.evaluate.harness import train_and_test
    from adaprune.models.detector import CenterNet
    from adaprune.tasks import make_task
    from adaprune.training.loop import TrainConfig

    for n, epochs, width, schedule, seed in todo:
        data = load_data(f"synthtraffic:{n}:val")
        task = make_task(data, model=lambda w=width, k=data.num_classes: CenterNet(k, width=w),
                         train=TrainConfig(epochs=epochs, batch_size=batch, lr=lr, schedule=schedule))
        start = time.perf_counter()
        metric = train_and_test(task, None, seed=seed, progress=False)
        rec = {"n": n, "epochs": epochs, "width": width, "schedule": schedule, "batch": batch, "lr": lr, "seed": seed,
               "map": metric.value,
               "map50": metric.extras["map50"], "train_seconds": time.perf_counter() - start}
        with open(out_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"tune {rec}", file=sys.stderr, flush=True)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def report(args: argparse.Namespace, records: list[dict[str, Any]], seeds: list[int], methods: list[str]) -> None:
    from adaprune.data.synthtraffic import SCENE_KINDS, held_out_size, scene_kinds

    kinds = scene_kinds(args.n)
    by = {(r["kind"], r["seed"], r.get("method"), r.get("prune")): r for r in records}
    full = {s: by[("full", s, None, None)] for s in seeds if ("full", s, None, None) in by}
    # Training seconds of every subset trained (a reused training counts with the job that ran it).
    trained = {(r["seed"], r["kept_hash"]): r["train_seconds"] for r in records if r["train_seconds"]}
    full_maps = [full[s]["map"] for s in seeds if s in full]
    full_m, full_sd = float(np.mean(full_maps)), float(np.std(full_maps, ddof=1)) if len(full_maps) > 1 else 0.0
    full50 = [full[s]["map50"] for s in seeds if s in full]
    summary = []
    for p in PRUNES:
        for method in methods:
            rs = {s: by[("prune", s, method, p)] for s in seeds if ("prune", s, method, p) in by}
            paired = [s for s in rs if s in full]
            if not paired:
                continue
            maps = [rs[s]["map"] for s in paired]
            row: dict[str, Any] = {
                "method": method, "prune": p, "seeds": paired,
                "map_mean": float(np.mean(maps)), "map_std": float(np.std(maps, ddof=1)) if len(maps) > 1 else 0.0,
                "map50_mean": float(np.mean([rs[s]["map50"] for s in paired])),
                "vs_full": t_interval([rs[s]["map"] - full[s]["map"] for s in paired]),
            }
            for base in ("random", "semdedup"):
                both = [s for s in paired if ("prune", s, base, p) in by]
                row[f"vs_{base}"] = (t_interval([rs[s]["map"] - by[("prune", s, base, p)]["map"] for s in both])
                                     if both and base != method else None)
                row[f"vs_{base}_seeds"] = both
            removed = {k: [] for k in SCENE_KINDS}
            for s in paired:
                gone = np.ones(args.n, dtype=bool)
                gone[np.asarray(rs[s]["kept"], dtype=np.int64)] = False
                for k in SCENE_KINDS:
                    removed[k].append(float(gone[kinds == k].mean()))
            row["removed_share"] = {k: float(np.mean(v)) for k, v in removed.items()}
            embed = args.embed_seconds if method in EMBEDDING_METHODS else 0.0
            ratios = [(rs[s]["prune_seconds"] + embed) / full[s]["train_seconds"] for s in paired]
            row["cost_ratio_vs_full_job"] = float(np.mean(ratios))
            # The load on the shared machine moved during the run (the full trainings ran first, at its
            # heaviest), so the main ratio uses the training in the same job, right after the pruning,
            # scaled to the full set's size (training time is proportional to the images seen).
            local = [(r["prune_seconds"] + embed) / (trained[(r["seed"], r["kept_hash"])] * args.n / r["n_kept"])
                     for r in (rs[s] for s in paired) if (r["seed"], r["kept_hash"]) in trained]
            row["cost_ratio"] = float(np.mean(local)) if local else row["cost_ratio_vs_full_job"]
            row["adadedup_moved"] = None
            if method == "adadedup":
                row["adadedup_moved"] = [sum(rd.get("samples_moved", 0) for rd in rs[s]["details"].get("rounds", []))
                                         for s in paired]
            summary.append(row)
    rows = {(r["method"], r["prune"]): r for r in summary}
    for r in summary:
        rnd = rows.get(("random", r["prune"]))
        r["reduction_of_degradation"] = None
        if rnd is not None and r["method"] != "random":
            common = [s for s in r["seeds"] if s in rnd["seeds"]]
            f = np.mean([full[s]["map"] for s in common])
            m = np.mean([by[("prune", s, r["method"], r["prune"])]["map"] for s in common])
            q = np.mean([by[("prune", s, "random", r["prune"])]["map"] for s in common])
            r["reduction_of_degradation"] = float(1 - (f - m) / (f - q)) if f - q > 0 else None

    share = {k: float(np.mean(kinds == k)) for k in SCENE_KINDS}
    lines = [
        f"# Detection pruning with power: synthtraffic ({args.n} train images, 64x64; test: "
        f"{held_out_size(args.n)} frames of separate scenes), CenterNet width {args.width}, {args.epochs} epochs, "
        f"batch {args.batch}, Adam {args.lr:g} with {args.schedule} decay",
        "",
        f"Full data, seeds {seeds}: mAP@[.5:.95] **{100 * full_m:.2f} ± {100 * full_sd:.2f}** "
        f"(std {100 * full_sd / full_m:.1f}% of the mean), mAP@.5 {100 * np.mean(full50):.2f}.",
        "",
        "Paired differences in mAP@[.5:.95] points, mean [95% t interval over seeds]; (above)/(below) when "
        "the interval excludes 0. Removed: the share of each scene kind's frames the method removes "
        f"(the training set is {', '.join(f'{k} {100 * v:.0f}%' for k, v in share.items())}).",
        "",
        "| pruned | method | mAP@[.5:.95] | mAP@.5 | − full | − random | − semdedup | reduction of degradation "
        "vs random | removed: " + " / ".join(SCENE_KINDS) + " | pruning cost / one full training |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        rod = r["reduction_of_degradation"]
        lines.append(
            f"| {r['prune']:.0%} | {r['method']} | {100 * r['map_mean']:.2f} ± {100 * r['map_std']:.2f} | "
            f"{100 * r['map50_mean']:.2f} | {fmt_interval(*r['vs_full'])} | "
            f"{'—' if r['vs_random'] is None else fmt_interval(*r['vs_random'])} | "
            f"{'—' if r['vs_semdedup'] is None else fmt_interval(*r['vs_semdedup'])} | "
            f"{'—' if rod is None else f'{100 * rod:.0f}%'} | "
            + " / ".join(f"{100 * r['removed_share'][k]:.0f}%" for k in SCENE_KINDS)
            + f" | {r['cost_ratio']:.2f} |"
        )
    moved = [r for r in summary if r["adadedup_moved"] is not None]
    lines += [
        "",
        "Reduction of degradation = 1 - (mAP_full - mAP_method) / (mAP_full - mAP_random) from the paired "
        "means (100%: no loss against the full set; 0%: as bad as random; negative: worse than random).",
        "",
        "Methods: " + "; ".join(f"{m}: {method_params(m, args.epochs, '<pixels>')}" for m in methods) + ". "
        "adadedup_nofb is AdaDeDup with feedback off (SemDeDup's rule, so its training is reused where its "
        "subset equals SemDeDup's). SemDeDup and AdaDeDup read a pixel embedding (flatten + PCA to 64) "
        "computed once; its time is added to their cost.",
    ]
    if moved:
        lines.append("AdaDeDup's feedback moved (samples, per seed): " + "; ".join(
            f"{r['prune']:.0%}: {r['adadedup_moved']}" for r in moved) + ".")
        for r in moved:
            sem = rows.get(("semdedup", r["prune"]))
            if sem is not None:
                r["cost_vs_semdedup"] = r["cost_ratio"] / sem["cost_ratio"] if sem["cost_ratio"] else None
        lines.append("AdaDeDup's pruning time over SemDeDup's (embedding included in both): " + "; ".join(
            f"{r['prune']:.0%}: {r['cost_vs_semdedup']:.1f}x" for r in moved if r.get("cost_vs_semdedup")) + ".")
    lines += [
        "",
        "Cost = the method's wall-clock pruning seconds over one full training of the detector, both in the same "
        "worker process of this run: the training that followed the pruning in the same job, scaled to the full "
        "set's size (n / n_kept; it includes the test read-out, a fixed cost, so the scaled figure is a little high), "
        "so both are measured under the same load (the JSON also has the ratio to the "
        "seed's full-set job, which ran first, when the shared machine was busiest). One torch thread per "
        f"worker, {args.workers} workers on a 2-core machine shared with other jobs: a ratio, not a timing.",
    ]
    payload = {"n_train": args.n, "epochs": args.epochs, "width": args.width, "schedule": args.schedule,
               "batch": args.batch, "lr": args.lr, "seeds": seeds, "prunes": list(PRUNES), "methods": methods,
               "method_params": {m: method_params(m, args.epochs, "<pixels>")[1] for m in methods},
               "full_map": [full_m, full_sd], "full_map_std_over_mean": full_sd / full_m,
               "scene_shares": share, "summary": summary, "embed_seconds": args.embed_seconds,
               "runs": [{k: v for k, v in r.items() if k != "kept"} for r in records], "shared_machine": True}
    json_path, md_path = write_results("detection_powered", payload, "\n".join(lines) + "\n")
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=16, help="CenterNet width (the library default is 32)")
    parser.add_argument("--schedule", default="cosine", choices=("constant", "cosine"))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only write the tables from the finished jobs")
    parser.add_argument("--tune", action="store_true", help="full trainings on the validation scenes only")
    parser.add_argument("--tune-n", default="")
    parser.add_argument("--tune-epochs", default="")
    parser.add_argument("--tune-width", default="")
    parser.add_argument("--tune-schedule", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.tune:
        tune(args)
        return
    seeds = _ints(args.seeds)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; expected some of {', '.join(METHODS)}")
    tag = f"n{args.n}_e{args.epochs}_w{args.width}_{args.schedule}_b{args.batch}_lr{args.lr:g}"
    runs_path = RESULTS / f"detection_powered_runs_{tag}.jsonl"
    args.embeddings_path = str(RESULTS.parent / f".synthtraffic_n{args.n}_pixels.npy")
    args.embed_seconds = cached_pixel_embedding(f"synthtraffic:{args.n}", args.embeddings_path,
                                                compute=not args.report)
    if not args.report:
        cfg = {"spec": f"synthtraffic:{args.n}", "width": args.width, "epochs": args.epochs,
               "schedule": args.schedule, "batch": args.batch, "lr": args.lr,
               "embeddings_path": args.embeddings_path}
        jobs = [{"kind": "full", "seed": s} for s in seeds]
        jobs += [{"kind": "prune", "seed": s, "method": m, "prune": p} for s in seeds for m in methods for p in PRUNES]
        run_jobs(jobs, cfg, runs_path, args.workers)
    # Report every method that has runs, in the fixed order.
    present = {r.get("method") for r in load_records(runs_path)}
    report(args, load_records(runs_path), seeds, [m for m in METHODS if m in present])


if __name__ == "__main__":
    main()
