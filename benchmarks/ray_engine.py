"""SemDeDup's growing stages on a local Ray cluster of 2 worker nodes against the local engine.

The same 1e6 x 256 embeddings as `scale_dedup.py` (seeded mixture with 10% planted near-duplicates)
go through `compute_redundancy` three times in one process, one run each: the local engine as a
loop (1 worker: the per-CPU throughput), the local engine as `adaprune prune` runs it (a thread
pool of one thread per core, here 2), then the Ray engine on a `ray.cluster_utils.Cluster` of two
nodes of one CPU each (the head node and one added node; every task is recorded with the node that
ran it). All must give the same M for every row. Stage times: k-means (sample training in the
driver + assignment mapped over chunks) and per-cluster M (mapped over blocks of clusters). From
the measured rows/s per worker of each stage the script writes what 1e8 and 1e9 rows would need."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _common import write_results
from scale_1e7 import machine_load
from scale_dedup import make_embeddings

import adaprune.cluster.kmeans as km
import adaprune.methods.semdedup as sd
from adaprune.engine import LocalEngine
from adaprune.engine.base import default_workers
from adaprune.engine.ray import RayEngine

log = logging.getLogger("ray_engine")


def _node_of(fn, item):
    import ray

    return fn(item), ray.get_runtime_context().get_node_id()


class TracingRayEngine(RayEngine):
    """The Ray engine, also recording which node ran each task (for the table)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.nodes: Counter = Counter()

    def map(self, fn, items, *, desc="", progress=False):
        import functools

        pairs = super().map(functools.partial(_node_of, fn), items, desc=desc, progress=progress)
        self.nodes.update(node for _, node in pairs)
        return [r for r, _ in pairs]


def timed_stages(emb: np.ndarray, engine, *, seed: int) -> tuple[dict, np.ndarray, int]:
    times: dict[str, float] = {}

    def wrap(mod, name, key):
        fn = getattr(mod, name)

        def inner(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[key] = times.get(key, 0.0) + time.perf_counter() - t

        setattr(mod, name, inner)
        return fn

    originals = [(km, "assign_nearest", wrap(km, "assign_nearest", "assign_s")),
                 (sd, "spherical_kmeans", wrap(sd, "spherical_kmeans", "kmeans_total_s")),
                 (sd, "semdedup_redundancy", wrap(sd, "semdedup_redundancy", "redundancy_s"))]
    try:
        t = time.perf_counter()
        red = sd.compute_redundancy(emb, sd.Units.from_groups(None, len(emb)), n_clusters=None, seed=seed,
                                    engine=engine)
        times["total_s"] = time.perf_counter() - t
    finally:
        for mod, name, fn in originals:
            setattr(mod, name, fn)
    times["train_s"] = times["kmeans_total_s"] - times["assign_s"]
    return times, red.m, red.clustering.n_clusters


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import ray
    from ray.cluster_utils import Cluster

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"ray_emb_{args.n}.npy"
    make_embeddings(path, args.n, args.dim, share=0.1, components=500, seed=args.seed)
    try:
        emb = np.load(path, mmap_mode="r")
        before = machine_load()
        local_times, local_m, k = timed_stages(emb, LocalEngine(), seed=args.seed)
        log.info("local: %s", {a: round(b, 1) for a, b in local_times.items()})
        threads = default_workers()
        threads_times, threads_m, _ = timed_stages(emb, LocalEngine(threads), seed=args.seed)
        log.info("local, %d threads: %s", threads, {a: round(b, 1) for a, b in threads_times.items()})
        t = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        engine = TracingRayEngine()
        startup = time.perf_counter() - t
        try:
            ray_times, ray_m, _ = timed_stages(emb, engine, seed=args.seed)
        finally:
            ray.shutdown()
            cluster.shutdown()
        after = machine_load()
        log.info("ray: %s, startup %.1f s, tasks per node %s", {a: round(b, 1) for a, b in ray_times.items()},
                 startup, dict(engine.nodes))
        identical = bool(np.array_equal(local_m, ray_m) and np.array_equal(local_m, threads_m))
    finally:
        path.unlink(missing_ok=True)
    n = args.n
    # Throughput per worker (one CPU) of the mapped stages, measured on the local engine's loop.
    assign_rate = n / local_times["assign_s"]
    m_rate = n / local_times["redundancy_s"]

    def assign_cost(kk: int) -> float:  # centroids compared per row
        return kk if kk < km.TWO_LEVEL_MIN_K else (1 + km.COARSE_PROBES) * math.sqrt(kk)

    def train_cost(kk: int) -> float:  # sample rows x centroids per row (one Lloyd step)
        if kk < km.TWO_LEVEL_MIN_K:
            return max(64 * kk, 10_000) * kk
        return max(32 * kk, 10_000) * 2 * math.sqrt(kk)

    estimates = []
    for big in (10**8, 10**9):
        k_big = km.default_n_clusters(big)
        # M per row ~ (cluster size) x D: clusters of ~MAX_MEAN_CLUSTER rows at both sizes.
        m_cost_ratio = (big / k_big) / (n / k)
        mapped_hours = (big * assign_cost(k_big) / assign_cost(k) / assign_rate + big * m_cost_ratio / m_rate) / 3600
        train_hours = local_times["train_s"] * train_cost(k_big) / train_cost(k) / 3600
        estimates.append({
            "n": big, "clusters": k_big, "array_gb": big * args.dim * 4 / 1e9,
            "cpu_hours": mapped_hours,
            "workers_for_2_hours": math.ceil(mapped_hours / 2),
            "driver_training_hours": train_hours,
            # assignment 8, distance 4, next-nearest 8 + 4, rank 8, members 8, neighbours 8, M 4, scores 8 bytes
            "driver_memory_gb": big * 60 / 1e9,
        })
    payload = {"n": n, "dim": args.dim, "seeds": {"data": args.seed, "method": args.seed},
               "local": local_times, "local_threads": threads_times, "threads": threads, "ray": ray_times,
               "ray_startup_s": startup,
               "ray_tasks_per_node": dict(engine.nodes), "identical_m": identical,
               "ratio_ray_over_local": ray_times["total_s"] / local_times["total_s"],
               "ratio_ray_over_local_threads": ray_times["total_s"] / threads_times["total_s"],
               "load_before": before, "load_after": after, "estimates": estimates}
    lines = [
        f"## SemDeDup stages, local engine vs Ray on 2 nodes (N = {n:,} x {args.dim})",
        "",
        "One run each, in one process, on the same memory-mapped array and seed. Ray: `ray.cluster_utils.Cluster`, "
        "a head node and one added node of 1 CPU each; the array is shared by path (both nodes read the same file).",
        "",
        "| engine | k-means training s | assignment s | per-cluster M s | total s |",
        "|---|---|---|---|---|",
    ]
    for name, tm in (("local, loop (1 CPU)", local_times), (f"local, {threads} threads (the default)", threads_times),
                     ("ray (2 nodes x 1 CPU)", ray_times)):
        lines.append(f"| {name} | {tm['train_s']:.1f} | {tm['assign_s']:.1f} | {tm['redundancy_s']:.1f} | "
                     f"{tm['total_s']:.1f} |")
    lines += [
        "",
        f"Ray / local total time: {payload['ratio_ray_over_local_threads']:.2f} against the local engine's "
        f"{threads} threads, {payload['ratio_ray_over_local']:.2f} against its loop (cluster start-up, "
        f"{startup:.1f} s, not included). Tasks per node: {', '.join(str(v) for v in engine.nodes.values())} "
        f"({len(engine.nodes)} nodes). Same M for every row on all three: {identical}.",
        f"Load average before the run: {before['loadavg'][0]:.1f}, after: {after['loadavg'][0]:.1f} (2 cores, shared).",
        "",
        "Estimate from the local engine's measured throughput per CPU (assignment "
        f"{assign_rate:,.0f} rows/s at K = {k}, per-cluster M {m_rate:,.0f} rows/s at clusters of ~{n // k}), "
        "scaled by the cost per row at the default K (two-level assignment ~ (1 + probes) sqrt(K) D, "
        "M ~ cluster size x D). CPU-hours are the mapped stages (assignment, M), which split over workers; the "
        "k-means training runs in the driver on a sample of 32 rows per cluster, its cost scaled as "
        "sample x 2 sqrt(K) from the measured training time:",
        "",
        "| N | K | array GB | mapped CPU-hours | workers for ~2 h | driver training hours | driver memory GB "
        "(per-row arrays) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in estimates:
        lines.append(f"| {e['n']:.0e} | {e['clusters']:,} | {e['array_gb']:,.0f} | {e['cpu_hours']:.1f} | "
                     f"{e['workers_for_2_hours']} | {e['driver_training_hours']:.1f} | {e['driver_memory_gb']:.0f} |")
    write_results("ray_engine", payload, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    sys.exit(main())
