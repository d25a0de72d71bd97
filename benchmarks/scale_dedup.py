"""Scale: cluster + SemDeDup end to end through `adaprune prune embeddings:...` on synthetic embeddings.

Synthetic data: a mixture of Gaussians in D dimensions (G components, unit-variance centres, noise 0.75
per coordinate), written in chunks to a float32 .npy; a share of the rows (10% by default) are replaced by
copies of other, distinct rows plus 0.001-scale noise (planted near-duplicates). For every N on a
log grid up to --max-n, a fresh process runs

    python -m adaprune prune embeddings:X.npy --method semdedup --prune SHARE --out sel.parquet --quiet

and the parent records its wall time and the child's peak resident memory (ru_maxrss, which counts the
memory-mapped pages it touched) against the size of the embedding array. Quality: the share of planted
pairs (original, copy) of which one row was removed, and the share of removed rows that belong to a pair.

In the same run a naive implementation (the whole array loaded, scikit-learn KMeans on all rows,
a full similarity matrix per cluster) runs on the sizes it can take: it stops after the first size
that takes longer than --naive-budget-s. The ratio naive / ours is reported at the largest size both ran.

Targets: N = 1,000,000 x 256 in under 90 s on 2 cores with peak memory under twice the array, and a
time curve no worse than N log N (t / (N log N) not rising with N)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, command_line

from adaprune.evaluate.benchmark import machine_info
from adaprune.io_utils import atomic_write_text

log = logging.getLogger("scale_dedup")

CHILD_OURS = r"""
import json, resource, sys, time
start = time.perf_counter()
from adaprune.cli.main import main
import adaprune.methods.semdedup as sd
timing = {}
run = sd.SemDeDup.run
def timed(self, *args, **kwargs):  # the method alone: embed (identity), cluster, M, select
    t = time.perf_counter()
    out = run(self, *args, **kwargs)
    timing["method_seconds"] = time.perf_counter() - t
    return out
sd.SemDeDup.run = timed
code = main(sys.argv[1:])
print(json.dumps({"rc": code, "seconds_in_process": time.perf_counter() - start, **timing,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

CHILD_NAIVE = r"""
import json, resource, sys, time
import numpy as np
from sklearn.cluster import KMeans
path, k, n_remove, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
start = time.perf_counter()
x = np.load(path)
u = x / np.linalg.norm(x, axis=1, keepdims=True)
km = KMeans(n_clusters=k, n_init=1, max_iter=20, random_state=seed).fit(u)
cent = km.cluster_centers_ / np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True)
m = np.full(len(x), -1.0)
for c in range(k):
    idx = np.flatnonzero(km.labels_ == c)
    if len(idx) < 2:
        continue
    idx = idx[np.argsort(-(1 - u[idx] @ cent[c]), kind="stable")]   # farthest from the centroid first
    sims = u[idx] @ u[idx].T                                        # the full square matrix
    sims[np.tril_indices(len(idx))] = -np.inf                       # keep i < j: earlier samples only
    m[idx] = np.maximum(sims.max(axis=0), -1.0)
removed = np.lexsort((-np.arange(len(m)), -m))[:n_remove]
np.save(out, np.sort(removed))
print(json.dumps({"rc": 0, "seconds_in_process": time.perf_counter() - start,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def make_embeddings(path: Path, n: int, d: int, *, share: float, components: int, seed: int,
                    chunk: int = 100_000, dtype: str = "float32", noise: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Write the synthetic array to `path` (stored as `dtype`); return (copy rows, their original rows).
    Float32 with the default noise is the array every earlier scale run used (same seed, same values)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(components, d)).astype(np.float32)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=(n, d))
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        comp = rng.integers(0, components, c)
        arr[start : start + c] = centres[comp] + np.float32(noise) * rng.standard_normal((c, d), dtype=np.float32)
    n_dup = int(round(share * n))
    perm = rng.permutation(n)
    copies, originals = np.sort(perm[:n_dup]), perm[n_dup : 2 * n_dup]
    for start in range(0, n_dup, chunk):
        rows = copies[start : start + chunk]
        src = arr[originals[start : start + chunk]]
        arr[rows] = src + 0.001 * rng.standard_normal(src.shape, dtype=np.float32)
    arr.flush()
    del arr
    return copies, originals


def quality(removed: np.ndarray, copies: np.ndarray, originals: np.ndarray, n: int) -> dict[str, float]:
    mask = np.zeros(n, dtype=bool)
    mask[removed] = True
    pair_hit = mask[copies] | mask[originals]
    in_pair = np.zeros(n, dtype=bool)
    in_pair[copies] = in_pair[originals] = True
    return {
        "pairs_resolved": float(pair_hit.mean()) if len(copies) else 1.0,
        "removed_in_planted_pairs": float(in_pair[removed].mean()) if len(removed) else 1.0,
    }


def run_child(code: str, args: list[str], timeout: float) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out.get("rc", 0) != 0:
        raise RuntimeError(f"adaprune prune failed: {proc.stderr[-2000:]}")
    return {**out, "wall_seconds": wall}


def sizes_up_to(min_n: int, max_n: int) -> list[int]:
    out, n = [], min_n
    while n < max_n:
        out.append(n)
        n = int(round(n * math.sqrt(10)))
    out.append(max_n)
    return sorted(set(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-n", type=int, default=1_000_000)
    parser.add_argument("--min-n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--share", type=float, default=0.1, help="planted near-duplicate share = prune fraction")
    parser.add_argument("--components", type=int, default=500, help="Gaussian components of the mixture")
    parser.add_argument("--seed", type=int, default=0, help="data seed; the method runs with --seed too")
    parser.add_argument("--naive-budget-s", type=float, default=120.0,
                        help="the naive run stops after the first size that takes longer than this")
    parser.add_argument("--naive-max-n", type=int, default=None, help="never run the naive one above this N")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per child process")
    parser.add_argument("--workdir", default=None, help="where the arrays go (default: a temporary folder)")
    parser.add_argument("--results-dir", default=str(RESULTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="scale_dedup_"))
    work.mkdir(parents=True, exist_ok=True)
    rows, naive_rows = [], []
    naive_on = True
    try:
        for n in sizes_up_to(args.min_n, args.max_n):
            path = work / f"emb_{n}.npy"
            t0 = time.perf_counter()
            copies, originals = make_embeddings(path, n, args.dim, share=args.share, components=args.components,
                                                seed=args.seed)
            log.info("N=%d: data written in %.1f s (%.0f MB)", n, time.perf_counter() - t0, path.stat().st_size / 2**20)
            sel = work / f"sel_{n}.parquet"
            res = run_child(CHILD_OURS, ["prune", f"embeddings:{path}", "--method", "semdedup", "--prune",
                                         str(args.share), "--seed", str(args.seed), "--out", str(sel), "--quiet"],
                            args.timeout)
            from adaprune.selection import Selection

            selection = Selection.load(sel)
            removed = np.flatnonzero(~selection.mask)
            array_bytes = n * args.dim * 4
            row = {
                "n": n, "dim": args.dim, "wall_seconds": res["wall_seconds"], "method_seconds": res["method_seconds"],
                "peak_rss_bytes": res["peak_rss_bytes"],
                "array_bytes": array_bytes, "peak_over_array": res["peak_rss_bytes"] / array_bytes,
                "n_removed": int(len(removed)), "clusters": selection.details.get("clusters"),
                **quality(removed, copies, originals, n),
            }
            rows.append(row)
            log.info("N=%d ours: %.1f s, peak %.0f MB (%.2f x array), pairs resolved %.4f", n, row["wall_seconds"],
                     row["peak_rss_bytes"] / 2**20, row["peak_over_array"], row["pairs_resolved"])
            if naive_on and (args.naive_max_n is None or n <= args.naive_max_n):
                k = selection.details["clusters"]["n_clusters"]
                out = work / f"naive_{n}.npy"
                try:
                    nres = run_child(CHILD_NAIVE, [str(path), str(k), str(len(removed)), str(args.seed), str(out)],
                                     args.timeout)
                    nremoved = np.load(out)
                    naive_rows.append({
                        "n": n, "wall_seconds": nres["wall_seconds"], "peak_rss_bytes": nres["peak_rss_bytes"],
                        "clusters": k, **quality(nremoved, copies, originals, n),
                    })
                    log.info("N=%d naive: %.1f s, peak %.0f MB", n, nres["wall_seconds"],
                             nres["peak_rss_bytes"] / 2**20)
                    naive_on = nres["wall_seconds"] <= args.naive_budget_s
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    log.info("N=%d naive: gave up (%s)", n, str(exc)[:200])
                    naive_on = False
            for f in (path, sel, work / f"naive_{n}.npy"):
                f.unlink(missing_ok=True)
            Path(str(sel) + ".meta.json").unlink(missing_ok=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    payload, markdown = summarise(rows, naive_rows, args)
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "machine": machine_info(), **payload}
    atomic_write_text(out_dir / "scale_dedup.json", json.dumps(payload, indent=2) + "\n")
    footer = f"\nCommand: `{payload['command']}`  \nMachine: {payload['machine']['summary']}\n"
    atomic_write_text(out_dir / "scale_dedup.md", markdown + footer)
    log.info("wrote %s and %s", out_dir / "scale_dedup.json", out_dir / "scale_dedup.md")
    return 0


def curve(ns: np.ndarray, ts: np.ndarray) -> dict:
    """Log-log slope of time against N (overall and per segment) and t / (N ln N) per size."""
    per = ts / (ns * np.log(ns))
    out = {"seconds_per_n_ln_n": per.tolist(), "slope": None, "segment_slopes": [], "n_ln_n_segment_slopes": []}
    if len(ns) > 1:
        out["slope"] = float(np.polyfit(np.log(ns), np.log(ts), 1)[0])
        out["segment_slopes"] = (np.diff(np.log(ts)) / np.diff(np.log(ns))).tolist()
        nlogn = ns * np.log(ns)
        out["n_ln_n_segment_slopes"] = (np.diff(np.log(nlogn)) / np.diff(np.log(ns))).tolist()
        # No worse than N log N: t / (N ln N) never rises above its value at the smallest size.
        out["not_rising_vs_smallest"] = bool(np.all(per[1:] <= per[0] * 1.05))
    return out


def summarise(rows: list[dict], naive_rows: list[dict], args) -> tuple[dict, str]:
    ns = np.array([r["n"] for r in rows], dtype=float)
    wall = curve(ns, np.array([r["wall_seconds"] for r in rows]))
    method = curve(ns, np.array([r["method_seconds"] for r in rows]))
    for r, v, m in zip(rows, wall["seconds_per_n_ln_n"], method["seconds_per_n_ln_n"], strict=True):
        r["seconds_per_n_log_n"] = v
        r["method_seconds_per_n_log_n"] = m
    slope = wall["slope"]
    nlogn_ok = wall.get("not_rising_vs_smallest")
    largest = rows[-1]
    both = [r for r in rows if any(nr["n"] == r["n"] for nr in naive_rows)]
    ratio = None
    if both:
        ours = both[-1]
        nv = next(nr for nr in naive_rows if nr["n"] == ours["n"])
        ratio = {"n": ours["n"], "time_naive_over_ours": nv["wall_seconds"] / ours["wall_seconds"],
                 "memory_naive_over_ours": nv["peak_rss_bytes"] / ours["peak_rss_bytes"]}
    targets = {
        "largest_n": largest["n"],
        "under_90_s": largest["wall_seconds"] < 90 if largest["n"] >= 1_000_000 else None,
        "peak_under_2x_array": largest["peak_over_array"] < 2,
        "no_worse_than_n_log_n": nlogn_ok,
        "log_log_slope": slope,
        "wall_curve": wall,
        "method_curve": method,
    }
    payload = {"seeds": {"data": args.seed, "method": args.seed}, "share": args.share, "dim": args.dim,
               "components": args.components, "rows": rows, "naive": naive_rows, "naive_ratio": ratio,
               "targets": targets}
    lines = [
        "## SemDeDup at scale: `adaprune prune embeddings:X.npy --method semdedup` end to end",
        "",
        f"Synthetic mixture of {args.components} Gaussians in {args.dim} dimensions, {args.share:.0%} planted "
        f"near-duplicates (copy + 0.001 noise), pruned at {args.share:.0%}; seed {args.seed}. Wall time includes "
        "interpreter start, imports, loading, clustering, SemDeDup and writing the selection (parquet). Peak = "
        "the process's peak resident memory, memory-mapped pages included.",
        "",
        "| N | wall s | method s | wall s / (N ln N) x 1e6 | method s / (N ln N) x 1e6 | peak MB | peak / array "
        "| pairs resolved | removed in pairs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['wall_seconds']:.1f} | {r['method_seconds']:.2f} | "
            f"{1e6 * r['seconds_per_n_log_n']:.3f} | {1e6 * r['method_seconds_per_n_log_n']:.3f} | "
            f"{r['peak_rss_bytes'] / 2**20:.0f} | {r['peak_over_array']:.2f} | {r['pairs_resolved']:.4f} | "
            f"{r['removed_in_planted_pairs']:.4f} |"
        )
    if naive_rows:
        lines += ["", "Naive (whole array in memory, scikit-learn KMeans on all rows, full per-cluster matrix):", "",
                  "| N | wall s | peak MB | pairs resolved |", "|---|---|---|---|"]
        lines += [f"| {r['n']:,} | {r['wall_seconds']:.1f} | {r['peak_rss_bytes'] / 2**20:.0f} | "
                  f"{r['pairs_resolved']:.4f} |" for r in naive_rows]
    if ratio:
        lines += ["", f"At N = {ratio['n']:,}: naive takes {ratio['time_naive_over_ours']:.2f}x our time and "
                      f"{ratio['memory_naive_over_ours']:.2f}x our peak memory."]
    slope_text = "n/a" if slope is None else f"{slope:.2f}"
    if len(rows) > 1:
        segs = ", ".join(f"{a:.2f} (N ln N: {b:.2f})" for a, b in
                         zip(method["segment_slopes"], method["n_ln_n_segment_slopes"], strict=True))
        lines += ["", f"Method time (SemDeDup.run alone: clustering, M, selection), log-log slope per segment: {segs}."]
    lines += ["", f"Targets: largest N {largest['n']:,}: {largest['wall_seconds']:.1f} s (target < 90 s at 1,000,000), "
                  f"peak {largest['peak_over_array']:.2f} x array (target < 2); log-log slope of time vs N "
                  f"{slope_text}; t / (N ln N) not rising: {nlogn_ok}."]
    return payload, "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
