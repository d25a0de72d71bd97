"""Detection: AdaDeDup, AdaPruner, SemDeDup and random on synthdet, with the CenterNet detector.

For every seed: one detector trained on the full set, then for every method and prune fraction the
method prunes with that seed and a fresh detector (same seed, same epochs) trains on the kept images;
COCO mAP@[.5:.95] and mAP@.5 (pycocotools) on synthdet's test scenes, read once per training.
Reported: mean and std over seeds; AdaDeDup's headline measure, the reduction of degradation against
random, 1 - (mAP_full - mAP_method) / (mAP_full - mAP_random) (from the seed means); the cost of
pruning against one full training of the same detector (ratio of wall-clock seconds measured in the
same worker process) and the detector's training throughput (images/s).

Jobs (one full training per seed, one prune+train per method x fraction x seed) are shared among
`--workers` processes, each on one torch thread; every finished job is appended to a JSON-lines
file, so a killed run resumes where it stopped. `--report` only writes the tables from that file.

    python benchmarks/detection.py [--n 600] [--epochs 3] [--width 16] [--seeds 0,1,2] [--workers 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, write_results

METHODS = ("adadedup", "adapruner", "semdedup", "random")
PRUNES = (0.1, 0.2, 0.3, 0.5)
# Method settings sized for a shared 2-core CPU: the mask and proxy trainings are a few epochs each.
METHOD_PARAMS: dict[str, dict[str, Any]] = {
    "adapruner": {"warmup_epochs": 1, "epochs": 2, "max_extra_epochs": 0},  # 3 epochs: one full training
    "adadedup": {"epochs": 2},
    "semdedup": {},
    "random": {},
}
SEARCHED = (
    "A real detection set that runs offline was searched for in the package lists under "
    "/work/.library/env/packages/ (PyPI names and summaries, and what is installed here) with: coco, coco8, "
    "mini/tiny coco, voc, pascal, kitti, penn-fudan, wider, balloon, raccoon, detection dataset, yolo, "
    "ultralytics, torchvision. The hits are annotation tools, format converters, loaders that download, "
    "or torchvision (which breaks this project's torch build); none is known to ship images with boxes, "
    "and nothing may be downloaded at run time, so this benchmark runs on synthdet only."
)

# SemDeDup and AdaDeDup read one pixel embedding (flatten + PCA to 64, fitted on every image, so the
# same for every seed) computed once before the workers start; its time is added to their cost.
EMBEDDING_METHODS = ("semdedup", "adadedup")

log = logging.getLogger("benchmarks.detection")


def cached_pixel_embedding(spec: str, path: str, *, compute: bool) -> float:
    """The pixel embedding (flatten + PCA to 64, seed 0) of `spec`'s training images, saved at `path`
    once (when `compute` and not there yet), with the seconds it took beside it; those seconds (0 when
    never computed)."""
    seconds_path = Path(path + ".seconds")
    if compute and not seconds_path.is_file():
        import torch

        torch.set_num_threads(1)
        from adaprune.data import load_data
        from adaprune.embed import task_embeddings
        from adaprune.tasks import make_task

        start = time.perf_counter()
        np.save(path, task_embeddings(make_task(load_data(spec)), encoder="pixels", seed=0))
        seconds_path.write_text(f"{time.perf_counter() - start}\n")
    return float(seconds_path.read_text()) if seconds_path.is_file() else 0.0


def jobs(seeds: list[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for seed in seeds:
        out.append({"kind": "full", "seed": seed})
        for method in METHODS:
            for p in PRUNES:
                out.append({"kind": "prune", "seed": seed, "method": method, "prune": p})
    return out


def job_key(job: dict[str, Any]) -> str:
    return f"{job['kind']}:{job['seed']}:{job.get('method', '')}:{job.get('prune', '')}"


def worker(worker_id: int, todo: list[dict[str, Any]], args: argparse.Namespace, out_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    from adaprune.data import load_data
    from adaprune.evaluate.harness import train_and_test
    from adaprune.models.detector import CenterNet
    from adaprune.registry import build_method
    from adaprune.selection import Budget
    from adaprune.tasks import make_task
    from adaprune.training.loop import TrainConfig

    data = load_data(f"synthdet:{args.n}")
    width, num_classes = args.width, data.num_classes

    def detector() -> CenterNet:
        return CenterNet(num_classes, width=width)

    eval_task = make_task(data, model=detector, train=TrainConfig(epochs=args.epochs, batch_size=32))
    method_task = make_task(data, model=detector, train=TrainConfig(epochs=args.epochs, batch_size=32))
    for job in todo:
        start = time.perf_counter()
        prune_seconds = 0.0
        kept = None
        if job["kind"] == "prune":
            params = dict(METHOD_PARAMS[job["method"]])
            if job["method"] in EMBEDDING_METHODS:
                params["embeddings"] = args.embeddings_path
            method = build_method(job["method"], params)
            n_keep = Budget.from_args(prune=job["prune"]).count(data.n)
            result = method.run(method_task, n_keep, seed=job["seed"], progress=False)
            kept = result.kept
            prune_seconds = time.perf_counter() - start
        train_start = time.perf_counter()
        metric = train_and_test(eval_task, kept, seed=job["seed"], progress=False)
        train_seconds = time.perf_counter() - train_start
        record = {**job, "worker": worker_id, "n_kept": int(data.n if kept is None else len(kept)),
                  "map": metric.value, "map50": metric.extras["map50"], "prune_seconds": prune_seconds,
                  "train_seconds": train_seconds, "kept": None if kept is None else np.asarray(kept).tolist()}
        with open(out_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        print(f"[{worker_id}] {job_key(job)} map={metric.value:.4f} map50={metric.extras['map50']:.4f} "
              f"prune={prune_seconds:.1f}s train={train_seconds:.1f}s", file=sys.stderr, flush=True)


def load_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def report(args: argparse.Namespace, records: list[dict[str, Any]], seeds: list[int]) -> None:
    from adaprune.data.synthdet import scene_kinds

    full = {r["seed"]: r for r in records if r["kind"] == "full"}
    cells: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in records:
        if r["kind"] == "prune":
            cells.setdefault((r["method"], r["prune"]), []).append(r)
    full_map = mean_std([full[s]["map"] for s in seeds if s in full])
    full_map50 = mean_std([full[s]["map50"] for s in seeds if s in full])
    kinds = scene_kinds(args.n)
    summary = []
    for method in METHODS:
        for p in PRUNES:
            rs = cells.get((method, p), [])
            if not rs:
                continue
            m, m50 = mean_std([r["map"] for r in rs]), mean_std([r["map50"] for r in rs])
            extra = args.embed_seconds if method in EMBEDDING_METHODS else 0.0
            ratios = [(r["prune_seconds"] + extra) / full[r["seed"]]["train_seconds"] for r in rs if r["seed"] in full]
            # Share of the removed images that came from parked (long, redundant) scenes.
            parked = [float(np.mean(kinds[np.setdiff1d(np.arange(args.n), r["kept"])] == "parked")) for r in rs]
            summary.append({"method": method, "prune": p, "seeds": sorted(r["seed"] for r in rs),
                            "map_mean": m[0], "map_std": m[1], "map50_mean": m50[0], "map50_std": m50[1],
                            "prune_cost_ratio_mean": float(np.mean(ratios)) if ratios else None,
                            "removed_from_parked_scenes": float(np.mean(parked))})
    by = {(s["method"], s["prune"]): s for s in summary}
    for s in summary:
        rnd = by.get(("random", s["prune"]))
        s["reduction_of_degradation"] = None
        if rnd is not None and s["method"] != "random":
            gap = full_map[0] - rnd["map_mean"]
            s["reduction_of_degradation"] = 1 - (full_map[0] - s["map_mean"]) / gap if gap > 0 else None
    full_runs = [full[s] for s in seeds if s in full]
    imgs_per_s = [args.n * args.epochs / r["train_seconds"] for r in full_runs]
    parked_share = float(np.mean(kinds == "parked"))

    lines = [
        f"# Detection pruning on synthdet ({args.n} train images, 64x64, {len(kinds)} frames; test: separate "
        f"scenes), CenterNet width {args.width} ({args.epochs} epochs, batch 32, Adam 3e-3)",
        "",
        f"COCO mAP@[.5:.95] and mAP@.5 (%, pycocotools) on the test scenes, mean ± std over seeds {seeds}. "
        f"Full data: mAP {100 * full_map[0]:.2f} ± {100 * full_map[1]:.2f}, "
        f"mAP@.5 {100 * full_map50[0]:.2f} ± {100 * full_map50[1]:.2f}.",
        "",
        "| method | pruned | mAP@[.5:.95] | mAP@.5 | reduction of degradation vs random | pruning cost / one full "
        "training | removed from parked scenes |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        rod, ratio = s["reduction_of_degradation"], s["prune_cost_ratio_mean"]
        lines.append(
            f"| {s['method']} | {s['prune']:.0%} | {100 * s['map_mean']:.2f} ± {100 * s['map_std']:.2f} | "
            f"{100 * s['map50_mean']:.2f} ± {100 * s['map50_std']:.2f} | "
            f"{'—' if rod is None else f'{100 * rod:.0f}%'} | "
            f"{'—' if ratio is None else f'{ratio:.2f}'} | "
            f"{100 * s['removed_from_parked_scenes']:.0f}% |"
        )
    lines += [
        "",
        f"Reduction of degradation = 1 - (mAP_full - mAP_method) / (mAP_full - mAP_random), from the seed means "
        "(100% = no loss against the full set, 0% = as bad as random, negative = worse than random). "
        f"Parked-scene frames are {100 * parked_share:.0f}% of the training set.",
        "",
        f"Detector training throughput: {np.mean(imgs_per_s):.1f} images/s (one torch thread, "
        f"{args.workers} benchmark worker processes, on a 2-core machine shared with other jobs). "
        "Pruning cost = the method's wall-clock seconds over those of the full-set training of the same seed, "
        "both measured in this run under the same load; for semdedup and adadedup it includes the one-off "
        f"pixel embedding ({args.embed_seconds:.1f} s, computed once and shared by all their runs).",
        "",
        SEARCHED,
    ]
    payload = {"n_train": args.n, "epochs": args.epochs, "width": args.width, "seeds": seeds, "methods": list(METHODS),
               "prunes": list(PRUNES), "method_params": METHOD_PARAMS, "full_map": full_map,
               "full_map50": full_map50, "images_per_second": imgs_per_s, "summary": summary,
               "parked_share": parked_share, "runs": [{k: v for k, v in r.items() if k != "kept"} for r in records],
               "note": SEARCHED, "shared_machine": True, "embed_seconds": args.embed_seconds}
    json_path, md_path = write_results("detection", payload, "\n".join(lines) + "\n")
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=16, help="CenterNet width (the library default is 32)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="only write the tables from the finished jobs")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    logging.basicConfig(level=logging.WARNING)
    runs_path = RESULTS / f"detection_runs_n{args.n}_e{args.epochs}_w{args.width}.jsonl"
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.embeddings_path = str(RESULTS.parent / f".synthdet_n{args.n}_pixels.npy")
    args.embed_seconds = cached_pixel_embedding(f"synthdet:{args.n}", args.embeddings_path, compute=not args.report)
    if not args.report:
        done = {job_key(r) for r in load_records(runs_path)}
        todo = [j for j in jobs(seeds) if job_key(j) not in done]
        # Full trainings first: the cost ratios need them.
        todo.sort(key=lambda j: j["kind"] != "full")
        procs = [mp.get_context("spawn").Process(target=worker, args=(w, todo[w :: args.workers], args,
                                                                       str(runs_path)))
                 for w in range(args.workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    report(args, load_records(runs_path), seeds)


if __name__ == "__main__":
    main()
