"""Pairs lost at cluster borders: our SemDeDup before and after comparing each sample with the members
of its next-nearest cluster, side by side with the SemDeDup reference code, on the same embeddings.

Data (as benchmarks/scale_dedup.py makes it): a mixture of --components Gaussians in --dim dimensions,
float32 .npy; --share of the rows (5%) are copies of other, distinct rows plus 0.001-scale noise
(planted pairs). Every run prunes exactly that share (budget 5%): a pair is resolved when one of its
two rows is removed; every missed pair makes the exact budget remove a distinct sample instead.

Columns, each a fresh process (wall time, peak resident memory):
- before: `adaprune.prune(embeddings:X, "semdedup", prune=share)` with the code at --before-src (a
  copy of main's src/ before this change; skipped when not given);
- after: the same call with this checkout's code (default: nearest_clusters=2);
- after, own cluster only: this checkout with nearest_clusters=1 (sizes up to --ablation-max-n), so the
  gain of the border comparison is separated from everything else;
- reference: the SemDeDup reference code (facebookresearch/SemDeDup) at --reference (skipped when not
  given): its compute_centroids (faiss spherical k-means, niter 100 as in its config, same K as ours),
  assign_and_sort_clusters ("hard": farthest first) and SemDeDupJob.semdedup per cluster, driven by
  a short adapter in this script that only does its I/O (stubs submitit when absent, maps its
  GPU-to-CPU index call to the identity on a CPU faiss, reads the sorted clusters it wrote). Its M is
  turned into the same exact budget as ours (highest M removed first, ties keep the lower index). It
  expects unit-norm embeddings (its encoders write them), so it reads a normalised copy, written
  beforehand and not timed. pandas, which it needs, may come from --reference-deps (a pip --target
  folder), so the project's environment is not touched.
No code of the reference is in this script; it runs from the path given.

All children run with one BLAS/OpenMP/torch thread (OMP_NUM_THREADS=1 etc.): the machine is shared."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_results
from scale_dedup import make_embeddings, quality

log = logging.getLogger("border_pairs")

CHILD_OURS = r"""
import json, resource, sys, time
import numpy as np
path, share, seed, out, params = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
start = time.perf_counter()
from adaprune.api import prune
t = time.perf_counter()
sel = prune(f"embeddings:{path}", "semdedup", prune=share, seed=seed, progress=False, params=params or None)
method = time.perf_counter() - t
np.save(out, np.flatnonzero(~sel.mask))
print(json.dumps({"method_seconds": method, "seconds_in_process": time.perf_counter() - start,
                  "n_clusters": sel.details["clusters"]["n_clusters"],
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

# An adapter around the reference code: I/O only (paths, stubs for SLURM/GPU helpers, the budget).
CHILD_REFERENCE = r"""
import contextlib, io, json, os, resource, sys, time, types
ref, deps, path, k, n_remove, seed, work, out, niter = sys.argv[1:10]
k, n_remove, seed, niter = int(k), int(n_remove), int(seed), int(niter)
start = time.perf_counter()
sys.path[:0] = [os.path.join(ref, "clustering"), ref]
if deps:
    sys.path.append(deps)
try:
    import submitit  # noqa: F401  (the reference runs under SLURM through it; not needed here)
except ImportError:
    stub = types.ModuleType("submitit")
    stub.helpers = types.SimpleNamespace(Checkpointable=object)
    sys.modules["submitit"] = stub
import faiss
if not hasattr(faiss, "index_gpu_to_cpu"):  # a CPU-only faiss: the index is already on the CPU
    faiss.index_gpu_to_cpu = lambda index: index
import numpy as np
import torch
torch.set_num_threads(1)
from clustering import compute_centroids
from sort_clusters import assign_and_sort_clusters
from utils import get_logger
from semdedup import SemDeDupJob
t = time.perf_counter()
data = np.load(path, mmap_mode="r")
n = len(data)
logger = get_logger(file_name=os.path.join(work, "reference.log"), stdout=False)
quiet = io.StringIO()
with contextlib.redirect_stdout(quiet):
    compute_centroids(data, k, niter, seed, True, work, logger, False)
    paths = np.array([str(i) for i in range(n)])
    sorted_dir = os.path.join(work, "sorted_clusters")
    assign_and_sort_clusters(data, paths, "cosine", True, True, work, sorted_dir, range(k), logger)
    job = SemDeDupJob(types.SimpleNamespace(seed=seed), 0)
    m = np.full(n, -1.0)
    for c in range(k):
        cluster_i = np.load(os.path.join(sorted_dir, f"cluster_{c}.npy"))
        if len(cluster_i) < 2:
            continue
        ids = cluster_i[:, 1].astype("int32")
        m[ids] = job.semdedup(cluster_i, torch.tensor(data[ids]), "cpu").numpy()
removed = np.sort(np.lexsort((-np.arange(n), -m))[:n_remove])
method = time.perf_counter() - t
np.save(out, removed)
print(json.dumps({"method_seconds": method, "seconds_in_process": time.perf_counter() - start, "n_clusters": k,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

THREAD_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def run_child(code: str, args: list[str], *, pythonpath: str | None, timeout: float) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **THREAD_ENV)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_seconds": wall}


def normalised_copy(src: Path, dst: Path, *, chunk: int = 100_000) -> None:
    x = np.load(src, mmap_mode="r")
    out = np.lib.format.open_memmap(dst, mode="w+", dtype=np.float32, shape=x.shape)
    for start in range(0, len(x), chunk):
        block = np.asarray(x[start : start + chunk], dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated N")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--share", type=float, default=0.05, help="planted pairs share = prune fraction")
    parser.add_argument("--components", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="data seed; every method runs with it too")
    parser.add_argument("--before-src", default=None, help="src/ folder of the code before the change")
    parser.add_argument("--before-label", default="main", help="what --before-src is (e.g. a commit)")
    parser.add_argument("--after-src", default=None, help="src/ folder of the code after (default: this checkout's)")
    parser.add_argument("--after-label", default="this checkout", help="what --after-src is (e.g. a commit)")
    parser.add_argument("--reference", default=None, help="a checkout of facebookresearch/SemDeDup")
    parser.add_argument("--reference-deps", default=None, help="extra import path for the reference (pandas)")
    parser.add_argument("--reference-niter", type=int, default=100, help="its k-means iterations (its config: 100)")
    parser.add_argument("--ablation-max-n", type=int, default=100_000,
                        help="run the own-cluster-only column up to this N")
    parser.add_argument("--before-max-n", type=int, default=None, help="run the before column up to this N")
    parser.add_argument("--reference-max-n", type=int, default=None, help="run the reference up to this N")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--stem", default="border_pairs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    here = args.after_src or str(Path(__file__).resolve().parents[1] / "src")
    columns: list[tuple[str, str | None, dict, int | None]] = []
    if args.before_src:
        columns.append((f"before ({args.before_label})", args.before_src, {}, args.before_max_n))
    columns.append(("after", here, {}, None))
    columns.append(("after, own cluster only", here, {"nearest_clusters": 1}, args.ablation_max_n))
    if args.reference:
        columns.append(("reference", None, {}, args.reference_max_n))
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="border_pairs_"))
    try:
        for n in [int(v) for v in args.sizes.split(",")]:
            path = work / f"emb_{n}.npy"
            copies, originals = make_embeddings(path, n, args.dim, share=args.share, components=args.components,
                                                seed=args.seed)
            n_remove = n - int(round((1 - args.share) * n))
            k = None
            for label, src, params, max_n in columns:
                if max_n is not None and n > max_n:
                    continue
                out = work / "removed.npy"
                if label == "reference":
                    unit = work / f"unit_{n}.npy"
                    if not unit.exists():
                        normalised_copy(path, unit)
                    ref_work = work / "reference"
                    shutil.rmtree(ref_work, ignore_errors=True)
                    ref_work.mkdir()
                    res = run_child(CHILD_REFERENCE, [args.reference, args.reference_deps or "", str(unit),
                                                      str(k), str(n_remove), str(args.seed), str(ref_work),
                                                      str(out), str(args.reference_niter)],
                                    pythonpath=None, timeout=args.timeout)
                else:
                    res = run_child(CHILD_OURS, [str(path), str(args.share), str(args.seed), str(out),
                                                 json.dumps(params)], pythonpath=src, timeout=args.timeout)
                    k = res["n_clusters"]
                removed = np.load(out)
                q = quality(removed, copies, originals, n)
                row = {"n": n, "column": label, "params": params, **res, "n_removed": int(len(removed)),
                       "pairs": int(len(copies)), "missed_pairs": int(round((1 - q["pairs_resolved"]) * len(copies))),
                       "array_bytes": n * args.dim * 4, **q}
                rows.append(row)
                log.info("N=%d %s: %.1f s (method %.1f s), peak %.0f MB, missed %d of %d pairs", n, label,
                         row["wall_seconds"], row["method_seconds"], row["peak_rss_bytes"] / 2**20,
                         row["missed_pairs"], row["pairs"])
            for f in work.glob("*.npy"):
                f.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload, markdown = summarise(rows, args)
    json_path, md_path = write_results(args.stem, payload, markdown)
    log.info("wrote %s and %s", json_path, md_path)
    return 0


def summarise(rows: list[dict], args) -> tuple[dict, str]:
    payload = {"seeds": {"data": args.seed, "method": args.seed}, "share": args.share, "dim": args.dim,
               "components": args.components, "before": args.before_label, "after": args.after_label,
               "reference_niter": args.reference_niter, "threads": 1, "rows": rows}
    lines = [
        "## Pairs lost at cluster borders: SemDeDup before, after, and the reference code",
        "",
        f"Mixture of {args.components} Gaussians in {args.dim} dimensions, {args.share:.0%} planted pairs "
        f"(copy + 0.001 noise), pruned by exactly {args.share:.0%}; data and method seed {args.seed}; "
        "K = round(sqrt(N)) clusters for every column. Missed = planted pairs of which neither row was removed. "
        "Wall = the whole child process (start, imports, clustering, M, selection); method = the call alone; "
        "peak = the child's peak resident memory (memory-mapped pages it touched included). One thread per "
        "process; the machine was shared with other jobs, so read the ratios, not the seconds.",
        "",
        f"after = {args.after_label} (default parameters: nearest_clusters=2, border_cosine=0.9 where the code has "
        f"them); before = {args.before_label}; reference = facebookresearch/SemDeDup at {args.reference or '(not run)'}"
        f", k-means niter {args.reference_niter}.",
        "",
        "| N | column | missed pairs | pairs resolved | wall s | method s | peak MB | peak / array |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['column']} | {r['missed_pairs']:,} of {r['pairs']:,} | {r['pairs_resolved']:.4f} | "
            f"{r['wall_seconds']:.1f} | {r['method_seconds']:.1f} | {r['peak_rss_bytes'] / 2**20:.0f} | "
            f"{r['peak_rss_bytes'] / r['array_bytes']:.2f} |"
        )
    ratios = []
    for n in sorted({r["n"] for r in rows}):
        by = {r["column"]: r for r in rows if r["n"] == n}
        after = by.get("after")
        for other in by:
            if other == "after" or after is None:
                continue
            o = by[other]
            ratios.append({"n": n, "versus": other, "wall_after_over_other": after["wall_seconds"] / o["wall_seconds"],
                           "method_after_over_other": after["method_seconds"] / o["method_seconds"],
                           "peak_after_over_other": after["peak_rss_bytes"] / o["peak_rss_bytes"]})
    payload["ratios"] = ratios
    if ratios:
        lines += ["", "Ratios, after / other (below 1: after is faster or lighter):", "",
                  "| N | versus | wall | method | peak memory |", "|---|---|---|---|---|"]
        lines += [f"| {r['n']:,} | {r['versus']} | {r['wall_after_over_other']:.2f} | "
                  f"{r['method_after_over_other']:.2f} | {r['peak_after_over_other']:.2f} |" for r in ratios]
    return payload, "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
