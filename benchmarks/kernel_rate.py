"""SemDeDup's per-cluster kernels against the machine's sgemm, side by side in one run.

For clusters of n rows (and a border halo of n rows) in D dimensions, one thread (as every mapped
stage runs): the seconds of `cluster_redundancy` (members against earlier members), of
`border_redundancy` (halo against members), and of a plain float32 matrix product of the same
shapes (`a @ b.T`, OpenBLAS through numpy). The useful flops are 2 D per compared pair (n^2 / 2
pairs inside a cluster, n^2 across a border); the kernels' rate is given as GFLOP/s and as a share
of the sgemm rate on the full square. Rows are stored float32 or float16 (float16 is read into
float32 rows, which is what the stages do). Medians over --repeats, alternating the order."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from _common import write_results
from threadpoolctl import threadpool_limits

from adaprune.cluster import normalize_rows
from adaprune.methods.semdedup import border_redundancy, cluster_redundancy


def timed(fn, repeats: int) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="500,1000,2000,4000")
    parser.add_argument("--dims", default="64,256")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(1):
        for d in [int(v) for v in args.dims.split(",")]:
            for n in [int(v) for v in args.sizes.split(",")]:
                for dtype in ("float32", "float16"):
                    stored = rng.normal(size=(2 * n, d)).astype(dtype)
                    ranks = rng.permutation(2 * n)
                    core_rank, halo_rank = np.sort(ranks[:n]), ranks[n:]

                    def inside(stored=stored, n=n):
                        return cluster_redundancy(normalize_rows(stored[:n]))

                    def across(stored=stored, n=n, core_rank=core_rank, halo_rank=halo_rank):
                        return border_redundancy(normalize_rows(stored[:n]), core_rank, normalize_rows(stored[n:]),
                                                 halo_rank)

                    a, b = normalize_rows(stored[:n]), normalize_rows(stored[n:])
                    t_in, t_across, t_gemm = timed(inside, args.repeats), timed(across, args.repeats), \
                        timed(lambda a=a, b=b: a @ b.T, args.repeats)
                    gemm_rate = 2 * d * n * n / t_gemm / 1e9
                    rows.append({
                        "n": n, "dim": d, "dtype": dtype, "inside_s": t_in, "across_s": t_across, "sgemm_s": t_gemm,
                        "sgemm_gflops": gemm_rate,
                        "inside_gflops": 2 * d * n * n / 2 / t_in / 1e9,
                        "across_gflops": 2 * d * n * n / t_across / 1e9,
                    })
                    r = rows[-1]
                    print(f"n={n} d={d} {dtype}: inside {r['inside_gflops']:.1f}, across {r['across_gflops']:.1f}, "
                          f"sgemm {gemm_rate:.1f} GFLOP/s", file=sys.stderr)
    lines = [
        "## SemDeDup's per-cluster kernels against sgemm (one thread)",
        "",
        "Rate = useful flops (2 D per compared pair) per second; share = the kernel's rate / sgemm's on the "
        "n x n product of the same rows. Inside = members against earlier members (n^2 / 2 pairs, computed in "
        "row blocks against the rows before each block's end); across = a halo of n rows against n members "
        "(n^2 pairs). Timings include normalising the stored rows to float32 unit rows.",
        "",
        "| n | D | stored | inside GFLOP/s | across GFLOP/s | sgemm GFLOP/s | inside / sgemm | across / sgemm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['dim']} | {r['dtype']} | {r['inside_gflops']:.1f} | {r['across_gflops']:.1f} "
                     f"| {r['sgemm_gflops']:.1f} | {r['inside_gflops'] / r['sgemm_gflops']:.2f} "
                     f"| {r['across_gflops'] / r['sgemm_gflops']:.2f} |")
    write_results("kernel_rate", {"seeds": {"data": 0}, "repeats": args.repeats, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
