"""How often the two-level k-means assignment finds a row's exact nearest centroid, by probes.

From --clusters 512 on, rows are assigned through a coarse level (`adaprune.cluster.kmeans`: each
row is compared with round(sqrt(K)) coarse centroids, then with the fine centroids of its
COARSE_PROBES nearest coarse cells). On an (N, D) array (a memory map), this trains the default
clustering once (seed --seed), then on a seeded sample of --rows rows compares the exact nearest
centroid (a product with all K) with the two-level answer at several probe counts, and times the
two-level assignment of the sample at each (2 threads, the engine's default), side by side."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
from _common import write_results

from adaprune.cluster import normalize_rows, spherical_kmeans
from adaprune.cluster.kmeans import COARSE_PROBES, assign_nearest
from adaprune.engine import get_engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="an (N, D) .npy (memory-mapped)")
    parser.add_argument("--label", required=True, help="what the data is (shown in the table)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--probes", default="3,5,8,12")
    parser.add_argument("--stem", default="assign_recall")
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    emb = np.load(args.data, mmap_mode="r")
    engine = get_engine("local")
    clustering = spherical_kmeans(emb, None, seed=args.seed, nearest=2, engine=engine)
    assert clustering.coarse is not None, "fewer than 512 clusters: no coarse level to measure"
    rows = np.sort(np.random.default_rng(args.seed).choice(len(emb), size=min(args.rows, len(emb)), replace=False))
    x = np.ascontiguousarray(emb[rows])
    units = normalize_rows(x)
    exact = np.concatenate([np.argmax(units[s : s + 4096] @ clustering.centroids.T, axis=1)
                            for s in range(0, len(units), 4096)])
    results = []
    for probes in [int(p) for p in args.probes.split(",")]:
        coarse = dataclasses.replace(clustering.coarse, probes=probes)
        t = time.perf_counter()
        found, _, _, _ = assign_nearest(x, clustering.centroids, nearest=2, coarse=coarse, engine=engine)
        seconds = time.perf_counter() - t
        results.append({"probes": probes, "exact_share": float((found == exact).mean()), "seconds": seconds})
    row = {"label": args.label, "n": len(emb), "dim": int(emb.shape[1]), "clusters": clustering.n_clusters,
           "coarse": len(clustering.coarse.centroids), "sample": len(rows), "default_probes": COARSE_PROBES,
           "results": results}
    rows_out = [row]
    if args.append:
        import json

        from _common import RESULTS

        rows_out = json.loads((RESULTS / f"{args.stem}.json").read_text())["rows"] + rows_out
    lines = ["## Two-level k-means assignment: share of rows given their exact nearest centroid", "",
             "A seeded sample of rows; exact = the argmax over all K centroids; time = the two-level assignment "
             "of the sample (2 threads), relative to the default probe count.", "",
             "| data | N | D | K | coarse cells | probes | exact nearest | time / default |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows_out:
        ref = next((q["seconds"] for q in r["results"] if q["probes"] == r["default_probes"]),
                   r["results"][0]["seconds"])
        for q in r["results"]:
            default = " (default)" if q["probes"] == r["default_probes"] else ""
            lines.append(f"| {r['label']} | {r['n']:,} | {r['dim']} | {r['clusters']:,} | {r['coarse']} "
                         f"| {q['probes']}{default} | {q['exact_share']:.3f} | {q['seconds'] / ref:.2f} |")
    write_results(args.stem, {"seeds": {"clustering": args.seed, "sample": args.seed}, "rows": rows_out},
                  "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
