"""SemDeDup (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through semantic
deduplication", arXiv 2303.09540).

Embed, cluster with spherical k-means, then inside each cluster order the samples by cosine
distance to the centroid (farthest first by default: SemDeDup's "keep hard") and give sample j

    M_j = max_{i earlier than j in its cluster} cos(x_i, x_j)      (-1 for a cluster's first sample)

A sample is removed when M_j > 1 - eps. The threshold that meets the budget lies between two
consecutive values of the sorted M_j, so it is read off the sorted order: that is the exact limit
of a bisection on eps, and ties (which no eps can split) are broken by sample index, so the kept
count is exactly the budget. The M_j are the method's scores (lower = keep) and are cached per
(data, seed), so another budget on the same data needs no recomputation; `redundancy()` returns
them for reuse from Python.

Similarities are computed in row blocks of at most `block_mb` megabytes against the earlier
samples of the cluster, so memory stays bounded however large a cluster grows (no full square
matrix is formed). Embeddings may be a read-only memory map: rows are read cluster by cluster.

Groups (`Dataset.groups`): samples that must stay together are decided as one unit, embedded as the
normalised mean of their members' unit embeddings. Whole groups are removed, highest M first,
skipping any group that would overshoot the budget, so the kept count is the smallest one at or
above the budget that whole groups allow (exact when groups are single samples).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from adaprune.cluster import BACKENDS, Clustering, normalize_rows, spherical_kmeans
from adaprune.errors import ConfigError, DataError
from adaprune.methods.base import MethodResult, Selector
from adaprune.registry import register_method
from adaprune.tasks import Task

log = logging.getLogger(__name__)

NO_EARLIER = -1.0  # M of a cluster's first sample: nothing earlier to be a duplicate of
ORDERS = ("farthest", "closest")


# ---------------------------------------------------------------- units (samples or groups)
@dataclass(frozen=True)
class Units:
    """What a keep decision is made on: single samples, or groups of samples kept or removed together."""

    index: np.ndarray | None  # unit of every sample; None when every sample is its own unit
    sizes: np.ndarray  # samples per unit

    @staticmethod
    def from_groups(groups: np.ndarray | None, n: int) -> Units:
        if groups is None:
            return Units(index=None, sizes=np.ones(n, dtype=np.int64))
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise DataError(f"groups must hold one id per sample ({n}), got shape {groups.shape}")
        _, index = np.unique(groups, return_inverse=True)
        index = index.astype(np.int64).reshape(-1)
        return Units(index=index, sizes=np.bincount(index))

    @property
    def n_units(self) -> int:
        return len(self.sizes)

    @property
    def grouped(self) -> bool:
        return self.index is not None

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Per-unit values as per-sample values."""
        return values if self.index is None else values[self.index]

    def samples(self, unit_mask: np.ndarray) -> np.ndarray:
        """Sorted sample indices of the units where `unit_mask` is True."""
        return np.flatnonzero(self.expand(unit_mask)).astype(np.int64)

    def embeddings(self, emb: np.ndarray, *, chunk_rows: int = 65536) -> np.ndarray:
        """The rows to cluster: `emb` itself, or each group's normalised mean of unit rows."""
        if self.index is None:
            return emb
        sums = np.zeros((self.n_units, emb.shape[1]), dtype=np.float64)
        for start in range(0, len(emb), chunk_rows):
            block = normalize_rows(emb[start : start + chunk_rows])
            np.add.at(sums, self.index[start : start + len(block)], block)
        return normalize_rows(sums)


# ---------------------------------------------------------------- the kernel
def cluster_redundancy(xc: np.ndarray, *, block_bytes: int = 64 * 2**20) -> np.ndarray:
    """M_j for rows in priority order: the largest cosine similarity of row j to any earlier row.

    `xc` holds unit rows (n, D). Rows are processed in blocks of b rows against the (at most n)
    rows before the block's end, so memory is b * n floats, b chosen from `block_bytes`."""
    n = len(xc)
    m = np.full(n, NO_EARLIER, dtype=np.float32)
    if n < 2:
        return m
    # Blocks of at most 256 rows also skip most of the upper triangle: about half the work of a square.
    b = int(max(1, min(n, 256, block_bytes // (4 * n))))
    for start in range(0, n, b):
        stop = min(n, start + b)
        sims = xc[start:stop] @ xc[:stop].T  # (stop - start, stop)
        # Row r is sample start + r: only columns < start + r are earlier samples.
        tail = sims[:, start:stop]
        rows = np.arange(stop - start)
        tail[rows[:, None] <= rows[None, :]] = -np.inf
        best = sims.max(axis=1)
        m[start:stop] = np.maximum(best, NO_EARLIER)
    return np.minimum(m, 1.0)


def priority_order(distance: np.ndarray, *, order: str) -> np.ndarray:
    """Positions ordered by keep priority: farthest from the centroid first (or closest first).

    Ties go to the lower position."""
    pos = np.arange(len(distance))
    key = -distance if order == "farthest" else distance
    return np.lexsort((pos, key))


def semdedup_redundancy(
    emb: np.ndarray,
    clustering: Clustering,
    *,
    order: str = "farthest",
    block_bytes: int = 64 * 2**20,
    progress: bool = False,
) -> np.ndarray:
    """M_j for every row of `emb` given its clustering (one cluster at a time from `emb`)."""
    if order not in ORDERS:
        raise ConfigError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    m = np.full(len(emb), NO_EARLIER, dtype=np.float32)
    members = clustering.members()
    for idx in tqdm(members, desc="semdedup", disable=not progress, leave=False, unit="cluster"):
        if len(idx) < 2:
            continue
        ranked = idx[priority_order(clustering.distance[idx], order=order)]
        # Read rows in file order (idx is sorted), then put them in priority order.
        rows = normalize_rows(emb[idx])
        pos = np.searchsorted(idx, ranked)
        m[ranked] = cluster_redundancy(rows[pos], block_bytes=block_bytes)
    return m


def removal_order(m: np.ndarray) -> np.ndarray:
    """Units from most to least redundant: highest M first; ties remove the higher index first
    (so the lower index is kept, as everywhere in adaprune)."""
    m = np.asarray(m, dtype=np.float64)
    return np.lexsort((-np.arange(len(m)), -m))


def remove_units(candidates: np.ndarray, sizes: np.ndarray, n_remove: int) -> np.ndarray:
    """The prefix of `candidates` (unit ids in removal order) whose sizes add up to `n_remove`
    samples, skipping a unit that would overshoot. Exact when all sizes are 1."""
    if n_remove <= 0 or len(candidates) == 0:
        return candidates[:0]
    cand_sizes = sizes[candidates]
    if (cand_sizes == 1).all():
        return candidates[:n_remove]
    chosen = []
    removed = 0
    for unit, size in zip(candidates.tolist(), cand_sizes.tolist(), strict=True):
        if removed + size <= n_remove:
            chosen.append(unit)
            removed += size
            if removed == n_remove:
                break
    return np.asarray(chosen, dtype=np.int64)


def epsilon_between(m: np.ndarray, removed: np.ndarray) -> float | None:
    """An eps for which the rule M > 1 - eps removes `removed` and keeps the rest (the midpoint
    of the valid interval), or None when ties make no single eps do it."""
    mask = np.zeros(len(m), dtype=bool)
    mask[removed] = True
    lowest_removed = float(m[mask].min()) if mask.any() else 1.0
    highest_kept = float(m[~mask].max()) if (~mask).any() else -1.0
    if mask.any() and (~mask).any() and lowest_removed <= highest_kept:
        return None
    return 1.0 - (lowest_removed + highest_kept) / 2.0


@dataclass(frozen=True)
class Redundancy:
    """Everything SemDeDup needs to select at any budget: per-unit M and the clustering of units."""

    m: np.ndarray  # per unit
    units: Units
    clustering: Clustering

    def select(self, n_keep: int) -> tuple[np.ndarray, float | None]:
        """Kept sample indices (sorted) and the eps that removes the rest."""
        n = int(self.units.sizes.sum())
        if not 0 < n_keep <= n:
            raise ConfigError(f"cannot keep {n_keep} of {n} samples")
        removed = remove_units(removal_order(self.m), self.units.sizes, n - n_keep)
        keep_units = np.ones(self.units.n_units, dtype=bool)
        keep_units[removed] = False
        return self.units.samples(keep_units), epsilon_between(self.m, removed)


def cluster_summary(sizes: np.ndarray) -> dict[str, Any]:
    return {
        "n_clusters": int(len(sizes)),
        "size_min": int(sizes.min()),
        "size_median": float(np.median(sizes)),
        "size_max": int(sizes.max()),
        "empty": int((sizes == 0).sum()),
    }


# ---------------------------------------------------------------- the method
@register_method("semdedup")
class SemDeDup(Selector):
    """SemDeDup (Abbas et al. 2023): remove near-duplicates inside k-means clusters of embeddings.

    Score = M_j, the largest cosine similarity to an earlier sample of its cluster (lower = keep)."""

    supported_tasks = ("classification", "detection")

    higher_is_keep = False

    def __init__(
        self,
        *,
        encoder: str = "auto",
        embeddings: str | None = None,
        n_clusters: int | None = None,
        n_iter: int = 20,
        kmeans_sample: int | None = None,
        order: str = "farthest",
        backend: str = "auto",
        block_mb: int = 64,
    ) -> None:
        if order not in ORDERS:
            raise ConfigError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        if n_clusters is not None and n_clusters < 1:
            raise ConfigError(f"n_clusters must be at least 1, got {n_clusters}")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if block_mb < 1:
            raise ConfigError(f"block_mb must be at least 1, got {block_mb}")
        self.encoder = encoder
        self.embeddings = embeddings
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.kmeans_sample = kmeans_sample
        self.order = order
        self.backend = backend
        self.block_mb = block_mb
        self._cache: tuple[object, int, Redundancy] | None = None

    def redundancy(self, task: Task, *, seed: int, progress: bool) -> Redundancy:
        """Embed, cluster and compute M (cached for the last data object and seed)."""
        if self._cache is not None and self._cache[0] is task.data and self._cache[1] == seed:
            return self._cache[2]
        from adaprune.embed import task_embeddings

        emb = task_embeddings(task, encoder=self.encoder, embeddings=self.embeddings, seed=seed, progress=progress)
        red = compute_redundancy(
            emb, Units.from_groups(task.data.groups, task.n), n_clusters=self.n_clusters, seed=seed,
            n_iter=self.n_iter, kmeans_sample=self.kmeans_sample, order=self.order, backend=self.backend,
            block_bytes=self.block_mb * 2**20, progress=progress,
        )
        self._cache = (task.data, seed, red)
        return red

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        red = self.redundancy(task, seed=seed, progress=progress)
        kept, eps = red.select(n_keep)
        details = {
            "epsilon": eps,
            "clusters": cluster_summary(red.clustering.sizes()),
            "backend": red.clustering.backend,
            "units": "groups" if red.units.grouped else "samples",
            "n_units": red.units.n_units,
        }
        if len(kept) != n_keep:
            log.info("semdedup: whole groups keep %d samples for a budget of %d", len(kept), n_keep)
        return MethodResult(kept=kept, scores=red.units.expand(red.m).astype(np.float64), details=details)


def compute_redundancy(
    emb: np.ndarray,
    units: Units,
    *,
    n_clusters: int | None,
    seed: int,
    n_iter: int = 20,
    kmeans_sample: int | None = None,
    order: str = "farthest",
    backend: str = "auto",
    block_bytes: int = 64 * 2**20,
    progress: bool = False,
) -> Redundancy:
    """Cluster the units' embeddings and compute every unit's M."""
    rows = units.embeddings(emb)
    k = n_clusters if n_clusters is None else min(int(n_clusters), len(rows))
    clustering = spherical_kmeans(rows, k, seed=seed, n_iter=n_iter, sample_size=kmeans_sample,
                                  backend=backend, progress=progress)
    m = semdedup_redundancy(rows, clustering, order=order, block_bytes=block_bytes, progress=progress)
    return Redundancy(m=m, units=units, clustering=clustering)
