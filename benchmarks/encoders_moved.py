"""Encoders on moved near-copies of real digits: which embedding puts a copy next to its source?

Data: sklearn's 1,797 real 8 x 8 digits plus moved copies of randomly drawn originals (a shift of
up to one pixel, a rotation of up to 10 degrees, a change of light, sensor noise;
benchmarks/_moved.py), `--share` of the rows copies; each original and its copies form a group.
For each encoder: the share of copies whose cosine nearest neighbour (among all other rows) is of
their own group, and SemDeDup (default parameters) pruning exactly the surplus: the share of the
surplus resolved (1 - extra members kept / surplus) and the share of groups lost. Random pruning
at that budget for reference (mean of 5 draws). Encoders: pixels (PCA 64, the default), model:10
(a classifier's penultimate features, trained on the labels), contrastive:EPOCHS (trained on the
images themselves; its time is reported). `--timing-n` also times the contrastive encoder on a set
of that many rows (originals plus copies).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import torch
from _common import write_results
from _moved import digits_with_moved_copies, nearest_is_own_group, surplus_quality

from adaprune.data import Dataset
from adaprune.embed import task_embeddings
from adaprune.methods.semdedup import Units, compute_redundancy
from adaprune.tasks import make_task

log = logging.getLogger("encoders_moved")


def evaluate(emb: np.ndarray, group: np.ndarray, copies: np.ndarray, seed: int) -> dict[str, float]:
    n_keep = len(np.unique(group))
    red = compute_redundancy(emb, Units.from_groups(None, len(group)), n_clusters=None, seed=seed)
    kept, _ = red.select(n_keep)
    return {"nearest_is_source": nearest_is_own_group(emb, group, copies), **surplus_quality(kept, group)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--share", type=float, default=0.25, help="share of the rows that are moved copies")
    parser.add_argument("--epochs", type=int, default=10, help="contrastive encoder epochs")
    parser.add_argument("--encoders", default="pixels,model:10,contrastive")
    parser.add_argument("--timing-n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    n0 = 1797
    n_copies = int(round(args.share * n0 / (1 - args.share)))
    x, y, group = digits_with_moved_copies(n_copies, args.seed, side=8)
    copies = np.arange(n0, len(x))
    data = Dataset(name="digits+moved", x=x, y=y)
    task = make_task(data)
    rows: dict[str, dict[str, float]] = {}
    for spec in args.encoders.split(","):
        spec = f"contrastive:{args.epochs}" if spec == "contrastive" else spec
        t0, c0 = time.perf_counter(), time.process_time()
        emb = task_embeddings(task, encoder=spec, seed=args.seed, progress=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows[spec] = {**evaluate(np.asarray(emb, dtype=np.float32), group, copies, args.seed), "seconds": seconds,
                      "cpu_seconds": cpu}
        log.info("%s: %s", spec, rows[spec])
    rng = np.random.default_rng(args.seed)
    draws = [surplus_quality(np.sort(rng.choice(len(x), n0, replace=False)), group) for _ in range(5)]
    rows["random"] = {k: float(np.mean([d[k] for d in draws])) for k in ("resolved", "groups_lost")}
    timing = {}
    if args.timing_n:
        xt, _, _ = digits_with_moved_copies(args.timing_n - n0, args.seed + 1, side=8)
        from adaprune.embed.contrastive import train_contrastive

        t0, c0 = time.perf_counter(), time.process_time()
        train_contrastive(xt, epochs=args.epochs, seed=args.seed, progress=False)
        timing = {"n": int(len(xt)), "epochs": args.epochs, "seconds": time.perf_counter() - t0,
                  "cpu_seconds": time.process_time() - c0}
    lines = [
        f"{len(x)} rows: {n0} real 8 x 8 digits and {len(copies)} moved copies ({args.share:.0%} of the rows), "
        f"{n0} groups; SemDeDup (default clusters) pruning exactly the surplus ({len(copies)}).",
        "",
        "| encoder | copies whose nearest neighbour is their own group | surplus resolved | groups lost | "
        "encoder time: wall / CPU (s) |",
        "|---|---|---|---|---|",
    ]
    for spec, r in rows.items():
        nn = f"{r['nearest_is_source']:.3f}" if "nearest_is_source" in r else "-"
        sec = f"{r['seconds']:.0f} / {r['cpu_seconds']:.0f}" if "seconds" in r else "-"
        lines.append(f"| {spec} | {nn} | {r['resolved']:.3f} | {r['groups_lost']:.3f} | {sec} |")
    if timing:
        lines += ["", f"Contrastive encoder training on {timing['n']} images, {timing['epochs']} epochs, 1 torch "
                      f"thread: {timing['seconds']:.0f} s wall, {timing['cpu_seconds']:.0f} s of CPU. The machine was "
                      "shared with other jobs (load average 20-30 on 2 cores), so wall times are far above the "
                      "CPU times; the CPU time is what one free core would take."]
    payload = {"share": args.share, "seed": args.seed, "epochs": args.epochs, "rows": rows, "timing": timing}
    write_results("encoders_moved", payload, "## Encoders on moved copies of real digits\n\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
