"""Even work from uneven clusters: split the clusters that are too large for their square.

SemDeDup's per-cluster work grows as the square of a cluster's size (every member against every
earlier member, and every neighbour against every member), so on embeddings that cluster unevenly
(photo collections, frames of a driving log) a few large clusters dominate the run: at 10^7 rows in
10^4 clusters the largest held 10,882 rows against a median of 560, and the sum of squared sizes was
2.45 times that of even clusters.

`split_oversized` runs a small seeded spherical k-means inside every cluster larger than `max_size`,
into ceil(size / `part_size`) parts, and returns the refined flat clustering: the first part keeps the
cluster's id, the others are appended. Every rule that reads a clustering (own cluster, next-nearest
clusters, borders) then applies to the parts exactly as it does to the clusters, so a pair at cosine
>= `border_cosine` that a new border splits between a row's two nearest parts is still compared.

A row's next-nearest clusters are chosen among its former next-nearest clusters (a split one stands
for its part nearest to the row) and, in a split cluster, the other parts of its own cluster: the
search is local, not over all centroids. Rows that neither belong to a split cluster nor have one
among their next-nearest keep every field as it was, bit for bit; when no cluster is larger than
`max_size` the clustering is returned unchanged (the object itself)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from adaprune.cluster.kmeans import Clustering, CoarseLevel, _init_centroids, _top, _train, normalize_rows
from adaprune.engine import Engine, LocalEngine, Shared

log = logging.getLogger(__name__)

# Below this size a cluster is never split: its square costs a few milliseconds.
MIN_SPLIT_SIZE = 2048
# The default limit is this many times the mean cluster size.
SPLIT_FACTOR = 2.0


def default_max_size(n_rows: int, n_clusters: int) -> int:
    """max(MIN_SPLIT_SIZE, SPLIT_FACTOR x the mean cluster size)."""
    return int(max(MIN_SPLIT_SIZE, math.ceil(SPLIT_FACTOR * n_rows / max(1, n_clusters))))


@dataclass(frozen=True)
class SplitItem:
    """One oversized cluster to split: the unit of work an engine maps."""

    x: Shared
    cluster: int
    members: np.ndarray  # sorted row indices
    outsiders: np.ndarray  # sorted rows that have this cluster among their next-nearest
    parts: int
    seed: int
    n_iter: int
    backend: str


@dataclass(frozen=True)
class SplitResult:
    cluster: int
    centroids: np.ndarray  # (parts, D) unit rows
    member_sims: np.ndarray  # (members, parts) cosine of every member to every part
    outsider_part: np.ndarray  # each outsider's nearest part (local index)
    outsider_sim: np.ndarray  # and its cosine


def split_cluster(item: SplitItem) -> SplitResult:
    """A seeded spherical k-means of one cluster's members into `parts` parts, and every member's and
    outsider's cosine to the parts."""
    x = item.x.get()
    rows = normalize_rows(x[item.members])
    rng = np.random.default_rng([item.seed, item.cluster])
    # Trained on every member: centroids trained on a sample of 64 rows a part were faster but drew
    # noisier borders (more planted pairs missed in a trial run at 10^7 rows).
    centroids = _train(rows, _init_centroids(rows, item.parts, rng), n_iter=item.n_iter, seed=item.seed,
                       backend=item.backend)
    member_sims = rows @ centroids.T
    if len(item.outsiders):
        out_sims = normalize_rows(x[item.outsiders]) @ centroids.T
        part, sim = _top(out_sims, 1)
        outsider_part, outsider_sim = part[:, 0], sim[:, 0]
    else:
        outsider_part, outsider_sim = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return SplitResult(item.cluster, centroids, member_sims.astype(np.float32), outsider_part,
                       outsider_sim.astype(np.float32))


def split_oversized(
    x: np.ndarray,
    clustering: Clustering,
    *,
    max_size: int | None = None,
    part_size: int | None = None,
    seed: int,
    n_iter: int = 20,
    engine: Engine | None = None,
    progress: bool = False,
) -> Clustering:
    """The clustering with every cluster of more than `max_size` members (None: `default_max_size`)
    split into ceil(size / `part_size`) parts (None: the mean cluster size, rounded up). `x` holds
    the clustered rows (a memory map is fine: only the split clusters' rows and their outsiders are
    read). 0 for `max_size` never splits."""
    n, k = len(clustering.assignment), clustering.n_clusters
    if max_size is None:
        max_size = default_max_size(n, k)
    sizes = clustering.sizes()
    if max_size <= 0 or sizes.max(initial=0) <= max_size:
        return clustering
    part_size = int(part_size or math.ceil(n / k))
    big = np.flatnonzero(sizes > max_size)
    members = clustering.members()
    nxt = clustering.next_nearest
    width = 0 if nxt is None else nxt.shape[1]
    if width:
        assert nxt is not None
        is_big = np.zeros(k, dtype=bool)
        is_big[big] = True
        flat = nxt.reshape(-1)
        touching = np.flatnonzero((flat >= 0) & is_big[np.maximum(flat, 0)])
        touching = touching[np.argsort(flat[touching], kind="stable")]
        named = flat[touching]  # the big cluster each entry names, ascending
        bounds, ends = np.searchsorted(named, big), np.searchsorted(named, big, side="right")
        outsiders = [touching[a:b] // width for a, b in zip(bounds, ends, strict=True)]
    else:
        outsiders = [np.zeros(0, dtype=np.int64) for _ in big]
    engine = engine or LocalEngine()
    shared = engine.share(x)
    # Each outsider list is sorted and distinct already: a row names a cluster in one column at most,
    # and the stable sort keeps its flat positions (row-major) ascending.
    items = [SplitItem(shared, int(c), members[c], out, int(math.ceil(sizes[c] / part_size)), seed,
                       n_iter, clustering.backend) for c, out in zip(big, outsiders, strict=True)]
    results = engine.map(split_cluster, items, desc="split", progress=progress)

    # Part ids: part 0 keeps the cluster's id, the others follow the existing centroids in order.
    part_ids, next_id, new_centroids = [], k, []
    centroids = np.array(clustering.centroids, dtype=np.float32, copy=True)
    for res in results:
        ids = np.concatenate([[res.cluster], np.arange(next_id, next_id + len(res.centroids) - 1)]).astype(np.int64)
        next_id += len(res.centroids) - 1
        part_ids.append(ids)
        centroids[res.cluster] = res.centroids[0]
        new_centroids.append(res.centroids[1:])
    centroids = np.concatenate([centroids, *new_centroids]).astype(np.float32)
    coarse = clustering.coarse
    if coarse is not None:
        owners = [np.full(len(r.centroids) - 1, coarse.owner[r.cluster], dtype=np.int64) for r in results]
        coarse = CoarseLevel(coarse.centroids, np.concatenate([coarse.owner, *owners]), coarse.probes)

    assignment = clustering.assignment.copy()
    distance = clustering.distance.copy()
    # Only the entries that change are rewritten: every other row keeps its next-nearest fields bit for bit.
    next_ids = None if width == 0 else nxt.copy()  # type: ignore[union-attr]
    next_distance = None if width == 0 else clustering.next_distance.copy()  # type: ignore[union-attr]
    # Candidates for the next-nearest columns of affected rows: (row, cluster id, cosine).
    cand_rows, cand_ids, cand_sims = [], [], []
    # Each cluster's similarities and row lists are dropped as soon as they are read: at 10^7 rows
    # they are a few hundred MB, held while the memory-mapped array is resident.
    clustering.forget_derived()
    del members, outsiders
    for i, ids in enumerate(part_ids):
        res, item = results[i], items[i]
        results[i] = items[i] = None  # type: ignore[call-overload]
        own, own_sim = _top(res.member_sims.copy(), min(len(ids), 1 + width))
        assignment[item.members] = ids[own[:, 0]]
        distance[item.members] = np.clip(1.0 - own_sim[:, 0], 0.0, 2.0)
        if width:
            # The other parts of the row's own cluster, nearest first, as candidates.
            for r in range(1, own.shape[1]):
                cand_rows.append(item.members)
                cand_ids.append(ids[own[:, r]])
                cand_sims.append(own_sim[:, r])
            # Outsiders: the split cluster stands for its part nearest to them.
            if len(item.outsiders):
                assert next_ids is not None and next_distance is not None
                hit = next_ids[item.outsiders] == item.cluster
                r_idx, c_idx = np.nonzero(hit)
                rows = item.outsiders[r_idx]
                next_ids[rows, c_idx] = ids[res.outsider_part[r_idx]]
                next_distance[rows, c_idx] = np.maximum(1.0 - res.outsider_sim[r_idx], 0.0)
    if width:
        assert next_ids is not None and next_distance is not None
        # Rows of a split cluster: its former next-nearest columns (mapped above where split) and the
        # other parts of its own cluster compete for the columns, by cosine (ties: the lower id).
        rows = np.concatenate(cand_rows) if cand_rows else np.zeros(0, dtype=np.int64)
        if len(rows):
            # One entry per row and sibling column: with one column, the rows are distinct already.
            affected = np.sort(rows) if width == 1 else np.unique(rows)
            pos = np.searchsorted(affected, rows)
            extra = np.bincount(pos, minlength=len(affected)).max()
            ids_mat = np.full((len(affected), width + extra), -1, dtype=np.int64)
            sim_mat = np.full((len(affected), width + extra), -np.inf, dtype=np.float32)
            ids_mat[:, :width] = next_ids[affected]
            sim_mat[:, :width] = np.where(next_ids[affected] >= 0, 1.0 - next_distance[affected], -np.inf)
            fill = np.full(len(affected), width, dtype=np.int64)
            for r_rows, r_ids, r_sims in zip(cand_rows, cand_ids, cand_sims, strict=True):
                p = np.searchsorted(affected, r_rows)
                ids_mat[p, fill[p]] = r_ids
                sim_mat[p, fill[p]] = r_sims
                fill[p] += 1
            # The candidates are distinct: a former next-nearest cluster is never the row's own, and
            # the parts of different clusters have different ids.
            key_ids = np.where(ids_mat < 0, np.iinfo(np.int64).max, ids_mat)
            order = np.lexsort((key_ids, -sim_mat), axis=1)[:, :width]
            chosen_ids = np.take_along_axis(ids_mat, order, axis=1)
            chosen_sim = np.take_along_axis(sim_mat, order, axis=1)
            next_ids[affected] = chosen_ids
            next_distance[affected] = np.where(chosen_ids >= 0, np.maximum(1.0 - chosen_sim, 0.0), np.inf)
    log.info("split %d clusters larger than %d rows into %d parts (%d clusters in all)", len(big), max_size,
             sum(len(i) for i in part_ids), len(centroids))
    return replace(clustering, centroids=centroids, assignment=assignment, distance=distance, coarse=coarse,
                   next_nearest=next_ids, next_distance=next_distance, split=len(big))
