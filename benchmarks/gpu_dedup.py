"""SemDeDup's assignment and M on a GPU (`--device cuda`): rows per second, and the share of the
device's fp32 matrix-product rate the stages reach. One short command on a machine with a GPU:

    python benchmarks/gpu_dedup.py                      # about 2-5 minutes on one GPU

What it does, in one process:
1. the device's fp32 matmul rate: the median of timed 8192 x 8192 x 8192 products (TF32 off,
   so it is the fp32 rate the stages use);
2. a synthetic (N, D) float32 array (the scale benchmark's mixture with 10% planted near-copies,
   `scale_dedup.make_embeddings`, seed 0) memory-mapped from --workdir;
3. `compute_redundancy` with device=DEVICE (assignment and M on the device; centroids trained
   on the host, as always) and, on the first --check-rows rows, also on the host's numpy path: the
   two selections must be identical (the same kept rows at 10% pruned);
4. rows per second of the assignment and of M, and their useful flops (assignment: 2 D per row
   and centroid compared; M: 2 D per compared pair) as a share of the matmul rate.

Without a GPU it says so in the results and times the same torch code on the CPU instead
(`--device cpu`), so the script and its table are known to work; those rows measure nothing
about GPUs."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import write_results
from scale_dedup import make_embeddings, quality

from adaprune.cluster import spherical_kmeans, split_oversized
from adaprune.methods.semdedup import Units, border_reach, compute_redundancy, removal_order, semdedup_redundancy

log = logging.getLogger("gpu_dedup")


def matmul_rate(torch, device: str, size: int, repeats: int = 5) -> float:
    """fp32 GFLOP/s of size^3 products on `device` (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    times = []
    for i in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        (a @ b).sum().item()
        if i:
            times.append(time.perf_counter() - t)
    return 2 * size**3 / statistics.median(times) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="rows (default: 4,000,000 on a GPU, 500,000 on a CPU)")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--check-rows", type=int, default=200_000,
                        help="rows on which the device and numpy selections are compared")
    parser.add_argument("--workdir", default="/tmp/adaprune_gpu_bench")
    parser.add_argument("--stem", default="gpu_dedup")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import torch

    gpu = torch.cuda.is_available()
    device = args.device or ("cuda" if gpu else "cpu")
    gpu_name = torch.cuda.get_device_name(0) if gpu else None
    args.n = args.n or (4_000_000 if device.startswith("cuda") else 500_000)
    rate = matmul_rate(torch, device, 8192 if device.startswith("cuda") else 2048)
    log.info("device %s (%s): fp32 matmul %.0f GFLOP/s", device, gpu_name or "no GPU", rate)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"emb_{args.n}_{args.dim}.npy"
    copies, originals = make_embeddings(path, args.n, args.dim, share=0.1, components=500, seed=0)
    emb = np.load(path, mmap_mode="r")

    # Identical selections on the check subset: device path against the numpy path.
    sub = np.ascontiguousarray(emb[: args.check_rows])
    units = Units.from_groups(None, len(sub))
    host = compute_redundancy(sub, units, n_clusters=None, seed=0)
    on_device = compute_redundancy(sub, units, n_clusters=None, seed=0, device=device)
    keep = len(sub) - len(sub) // 10
    same_selection = bool(np.array_equal(host.select(keep)[0], on_device.select(keep)[0]))
    max_m_gap = float(np.abs(host.m - on_device.m).max())
    log.info("check on %d rows: same selection %s, largest |M gap| %.2e", len(sub), same_selection, max_m_gap)

    # Timed stages on the full array, on the device.
    t = time.perf_counter()
    clustering = spherical_kmeans(emb, None, seed=0, nearest=2, device=device)
    kmeans_s = time.perf_counter() - t
    t = time.perf_counter()
    clustering = split_oversized(emb, clustering, seed=0)
    split_s = time.perf_counter() - t
    from adaprune.cluster.device import DeviceKernel

    reach = border_reach(0.9)
    t = time.perf_counter()
    m = semdedup_redundancy(emb, clustering, max_border=reach, kernel=DeviceKernel(device))
    m_s = time.perf_counter() - t
    sizes = clustering.sizes().astype(np.float64)
    halo = np.array([len(h) for h in clustering.neighbour_members(reach)], dtype=np.float64)
    pairs = float((sizes * (sizes - 1) / 2).sum() + (halo * sizes).sum())
    coarse = clustering.coarse
    per_row = clustering.n_clusters if coarse is None else len(coarse.centroids) * (1 + coarse.probes)
    removed = removal_order(m)[: len(copies)]
    row = {
        "device": device, "gpu": gpu_name, "n": args.n, "dim": args.dim, "matmul_gflops": rate,
        "kmeans_s": kmeans_s, "split_s": split_s, "m_s": m_s, "clusters": int(clustering.n_clusters),
        "compared_pairs": pairs, "assignment_flops": 2.0 * args.dim * per_row * args.n,
        "m_rows_per_s": args.n / m_s, "m_gflops": 2 * args.dim * pairs / m_s / 1e9,
        "check_rows": len(sub), "same_selection": same_selection, "max_m_gap": max_m_gap,
        **quality(removed, copies, originals, args.n),
    }
    row["m_share_of_matmul"] = row["m_gflops"] / rate
    path.unlink(missing_ok=True)
    note = (f"GPU: {gpu_name}." if gpu else
            "**No GPU was available on the machine this ran on**: the rows time the same torch code on the "
            "CPU (`--device cpu`) and say nothing about GPU speed; run `python benchmarks/gpu_dedup.py` on a "
            "machine with one.")
    lines = [
        "## SemDeDup's assignment and M on a torch device",
        "",
        note,
        "",
        "| device | N | D | fp32 matmul GFLOP/s | k-means s (training on host) | split s | M s | M rows/s "
        "| M GFLOP/s | M / matmul | same selection as numpy (rows) | largest M gap | pairs resolved |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {device} | {args.n:,} | {args.dim} | {rate:.0f} | {kmeans_s:.1f} | {split_s:.1f} | {m_s:.1f} "
        f"| {row['m_rows_per_s']:,.0f} | {row['m_gflops']:.1f} | {row['m_share_of_matmul']:.2f} "
        f"| {same_selection} ({len(sub):,}) | {max_m_gap:.1e} | {row['pairs_resolved']:.6f} |",
    ]
    write_results(args.stem, {"seeds": {"data": 0, "method": 0}, "gpu_available": gpu, "rows": [row]},
                  "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
