"""SemDeDup (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through semantic
deduplication", arXiv 2303.09540).

Embed, cluster with spherical k-means, order all samples by cosine distance to their own centroid
(farthest first by default: SemDeDup's "keep hard"; one global order, ties by index, so inside a
cluster it is the paper's order) and give sample j

    M_j = max_{i earlier than j, i compared with j} cos(x_i, x_j)      (-1 when there is none)

"Compared with": i and j share a cluster (the paper's rule, `nearest_clusters=1`) or, by default,
one of them is a member of the other's second-nearest cluster and the other lies within
sqrt(2 - 2 `border_cosine`) of the hyperplane bisecting those two centroids. Two unit rows at
cosine s are sqrt(2 - 2 s) apart, and a pair split by k-means has each row within that distance
of the border, so every pair at cosine >= `border_cosine` (0.9) that the clustering splits between
a row's two nearest clusters is still compared; the paper's rule never compares it.

A sample is removed when M_j > 1 - eps. The threshold that meets the budget lies between two
consecutive values of the sorted M_j, so it is read off the sorted order: that is the exact limit
of a bisection on eps, and ties (which no eps can split) are broken by sample index, so the kept
count is exactly the budget. Threshold mode (`run_threshold`) removes every sample with M_j above a
given cosine instead. The M_j are the method's scores (lower = keep) and are cached per
(data, seed), so another budget on the same data needs no recomputation; `redundancy()` returns
them for reuse from Python.

Similarities are computed in row blocks of at most `block_mb` megabytes against the earlier
samples of the cluster, so memory stays bounded however large a cluster grows (no full square
matrix is formed). Embeddings may be a read-only memory map: rows are read cluster by cluster.
The work of one cluster, `cluster_kernel`, is a pure function of its rows, its neighbours' rows
and their global ranks, so an engine (`adaprune.engine`: a local loop or thread pool, or Ray tasks)
maps it over blocks of whole clusters (`block_redundancy`); the driver merges the blocks' M with a
maximum. With `work_dir`, the clustering and every group of blocks are recorded as they finish
(`adaprune.engine.stages`), so a killed run resumes.

Audit trail: once the kept set is final, `attach_twins` gives every removed sample the most similar
kept sample among those it was compared with and their cosine (AdaDeDup calls it too), and
`_causes.attach_causes` the earlier sample whose cosine (its M) removed it, which may itself be removed.

Groups (`Dataset.groups`): samples that must stay together are decided as one unit, embedded as the
normalised mean of their members' unit embeddings. Whole groups are removed, highest M first,
skipping any group that would overshoot the budget, so the kept count is the smallest one at or
above the budget that whole groups allow (exact when groups are single samples); with a threshold,
every group whose M is above it is removed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from adaprune.cluster import BACKENDS, Clustering, normalize_rows, spherical_kmeans, split_oversized
from adaprune.cluster.kmeans import group_sums
from adaprune.cluster.ties import (
    PARTNERS,
    TIE_RULE,
    Partners,
    merge_partners,
    no_partners,
    settle_pairs,
    tie_margin,
)
from adaprune.engine import ENGINES, Engine, LocalEngine, Shared, get_engine
from adaprune.engine.base import check_cancelled
from adaprune.engine.stages import StageStore, input_identity
from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import release_pages
from adaprune.methods._blocks import (
    BLOCK_ROWS,
    _cluster_rows,
    _concat,
    best_per_row,
    cluster_blocks,
    cluster_twins,
)
from adaprune.methods.base import MethodResult, Selector
from adaprune.params import AnyString, Interval, ParamSpec, StrOptions
from adaprune.registry import register_method
from adaprune.selection import check_threshold
from adaprune.tasks import Task

log = logging.getLogger(__name__)

NO_EARLIER = -1.0  # M of a cluster's first sample: nothing earlier to be a duplicate of
# The partition of the clusters into blocks, and of blocks into recorded groups (--work-dir), is a
# function of the data alone, never of the engine's worker count: a run killed on 8 workers resumes
# on 1 (or the other way round) with every finished group still valid and every pair compared.
BLOCKS_PER_RUN = 32  # blocks of about total / 32 rows (BLOCK_ROWS at most): work for up to ~32 workers
GROUP_BLOCKS = 16  # blocks per completion record
ORDERS = ("farthest", "closest")
KERNELS = ("auto", "numpy", "torch")


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

    def first_sample_of(self, units: np.ndarray) -> np.ndarray:
        """Per entry naming a unit (-1: none), the unit's first sample (the same when ungrouped)."""
        if self.index is None:
            return units
        n = len(self.index)
        first = np.full(self.n_units, n, dtype=np.int64)
        np.minimum.at(first, self.index, np.arange(n, dtype=np.int64))
        return np.where(units >= 0, first[np.maximum(units, 0)], -1)

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
            present, part = group_sums(self.index[start : start + len(block)], block)
            sums[present] += part
        return normalize_rows(sums)


# ---------------------------------------------------------------- the kernel
def _row_partners(sims: np.ndarray) -> Partners:
    """Each row's PARTNERS largest values, largest first, and the columns of the first two (ties:
    the lower column; -1 where the row has no such value). `sims` is overwritten."""
    n, cols = sims.shape
    out = no_partners(n)
    rows = np.arange(n)
    for r in range(min(PARTNERS, cols)):
        if r == PARTNERS - 1:  # the last value only says how many are near: no column needed
            out.values[:, r] = sims.max(axis=1)
            break
        col = np.argmax(sims, axis=1)
        out.values[:, r] = sims[rows, col]
        out.ids[:, r] = np.where(out.values[:, r] > -np.inf, col, -1)
        sims[rows, col] = -np.inf
    return out


def _as_m(best: np.ndarray) -> np.ndarray:
    """Best cosines as M: NO_EARLIER where there is no earlier row, at most 1."""
    return np.minimum(np.maximum(best, NO_EARLIER), 1.0).astype(np.float32)


def _placed(top: Partners, order: np.ndarray, positions: np.ndarray) -> Partners:
    """`top` of rows taken in `order`, put back in the callers' order, partner `i` renamed
    `positions[i]`."""
    out = no_partners(len(order))
    out.values[order] = top.values
    out.ids[order] = np.where(top.ids >= 0, positions[np.maximum(top.ids, 0)], -1)
    return out


def cluster_partners(xc: np.ndarray, *, block_bytes: int = 64 * 2**20) -> Partners:
    """For rows in priority order: the largest cosines of row j to earlier rows and the rows behind
    the first two (`Partners`, positions in `xc`).

    `xc` holds unit rows (n, D). Rows are processed in blocks of b rows against the (at most n)
    rows before the block's end, so memory is b * n floats, b chosen from `block_bytes`."""
    n = len(xc)
    out = no_partners(n)
    if n < 2:
        return out
    # Blocks of at most 256 rows also skip most of the upper triangle: about half the work of a square.
    b = int(max(1, min(n, 256, block_bytes // (4 * n))))
    for start in range(0, n, b):
        check_cancelled()  # Ctrl-C: stop between blocks, not after the whole cluster
        stop = min(n, start + b)
        sims = xc[start:stop] @ xc[:stop].T  # (stop - start, stop)
        # Row r is sample start + r: only columns < start + r are earlier samples.
        tail = sims[:, start:stop]
        rows = np.arange(stop - start)
        tail[rows[:, None] <= rows[None, :]] = -np.inf
        out.values[start:stop], out.ids[start:stop] = _row_partners(sims)
    return out


def cluster_redundancy(xc: np.ndarray, *, block_bytes: int = 64 * 2**20) -> np.ndarray:
    """M_j for rows in priority order: the largest cosine similarity of row j to any earlier row
    (float32 products; `cluster_partners` with the partners)."""
    return _as_m(cluster_partners(xc, block_bytes=block_bytes).values[:, 0])


def priority_order(distance: np.ndarray, *, order: str) -> np.ndarray:
    """Positions ordered by keep priority: farthest from the centroid first (or closest first).

    Ties go to the lower position."""
    pos = np.arange(len(distance))
    key = -distance if order == "farthest" else distance
    return np.lexsort((pos, key))


def global_rank(distance: np.ndarray, *, order: str) -> np.ndarray:
    """Every row's place in one priority order over all rows (by distance to its own centroid,
    ties by index). Restricted to one cluster it is that cluster's `priority_order`, so "earlier"
    means the same inside a cluster and across a border."""
    ranked = priority_order(distance, order=order)
    rank = np.empty(len(distance), dtype=np.int64)
    rank[ranked] = np.arange(len(distance), dtype=np.int64)
    return rank


def clustering_rank(clustering: Clustering, *, order: str) -> np.ndarray:
    """`global_rank` of a clustering's distances, computed once per clustering and order (M and the
    causes both read it)."""
    return clustering.cached(("global_rank", order), lambda: global_rank(clustering.distance, order=order))


def border_partners(
    core: np.ndarray, core_rank: np.ndarray, halo: np.ndarray, halo_rank: np.ndarray, *,
    block_bytes: int = 64 * 2**20,
) -> tuple[Partners, Partners]:
    """Across the pairs (halo row, core row): every core row's largest cosines to earlier halo
    rows and every halo row's largest cosines to earlier core rows, with the partners (`Partners`;
    a core row's partners are positions in `halo`, a halo row's positions in `core`).

    Unit rows; ranks are places in one global priority order (distinct across the two sets).
    Both sets are put in rank order and the halo is taken in blocks against all core rows: for a
    block, core rows ranked before all of it are earlier for every row of the block and core rows
    ranked after all of it are later, so only the few core rows ranked inside the block's range
    need a mask. Memory stays near `block_bytes`."""
    if len(core) == 0 or len(halo) == 0:
        return no_partners(len(core)), no_partners(len(halo))
    c_order = np.argsort(core_rank, kind="stable")
    h_order = np.argsort(halo_rank, kind="stable")
    core_s, c_rank = core[c_order], core_rank[c_order]
    halo_s, h_rank = halo[h_order], halo_rank[h_order]
    tc, th = no_partners(len(core)), no_partners(len(halo))
    b = len(halo) if 4 * len(core) * len(halo) <= block_bytes else int(
        max(1, min(len(halo), 256, block_bytes // (4 * len(core)))))
    for start in range(0, len(halo), b):
        check_cancelled()
        stop = min(len(halo), start + b)
        ranks = h_rank[start:stop]
        lo, hi = np.searchsorted(c_rank, [ranks[0], ranks[-1]])  # core [:lo] earlier than all, [hi:] later
        sims = halo_s[start:stop] @ core_s.T  # (block, n_core)
        # A pair counts for the later row of the two: the block against core [:lo], core [hi:]
        # against the whole block, and inside [lo:hi] by rank. Partners are sorted positions here.
        core_first = c_rank[None, lo:hi] < ranks[:, None]
        halo_side = sims[:, :hi].copy()
        halo_side[:, lo:hi][~core_first] = -np.inf
        th.values[start:stop], th.ids[start:stop] = _row_partners(halo_side)
        core_side = sims[:, lo:]
        core_side[:, : hi - lo][core_first] = -np.inf
        top_c = _row_partners(np.ascontiguousarray(core_side.T))
        top_c = top_c._replace(ids=np.where(top_c.ids >= 0, top_c.ids + start, -1))
        tc.values[lo:], tc.ids[lo:] = merge_partners(Partners(tc.values[lo:], tc.ids[lo:]), top_c)
    # Back to the callers' order, partners as positions in the callers' order.
    return _placed(tc, c_order, h_order), _placed(th, h_order, c_order)


def border_redundancy(
    core: np.ndarray, core_rank: np.ndarray, halo: np.ndarray, halo_rank: np.ndarray, *,
    block_bytes: int = 64 * 2**20,
) -> tuple[np.ndarray, np.ndarray]:
    """`border_partners`'s best cosines as M: every core row's largest cosine to an earlier halo
    row and every halo row's largest cosine to an earlier core row (NO_EARLIER where none)."""
    tc, th = border_partners(core, core_rank, halo, halo_rank, block_bytes=block_bytes)
    return _as_m(tc.values[:, 0]), _as_m(th.values[:, 0])


def cluster_kernel(
    core: np.ndarray, core_rank: np.ndarray, halo: np.ndarray, halo_rank: np.ndarray, *,
    block_bytes: int = 64 * 2**20, partners: bool = False,
) -> Any:
    """One cluster's share of M: its members (`core`) against earlier members and earlier
    neighbours (`halo`: rows whose next-nearest cluster this is), and the neighbours against
    earlier members. Returns (M of core rows, M of halo rows), each a max over this cluster's pairs
    only; a row's M is the max over every cluster it takes part in. With `partners`, (Partners of
    core rows, Partners of halo rows) instead, positions in core followed by halo, for the tie rule
    (`ties.settle_pairs`).

    A pure function of its arguments (unit rows in any order, their global ranks), so an engine
    can map it over clusters."""
    n = len(core)
    order = np.argsort(core_rank, kind="stable")
    t_core = _placed(cluster_partners(core[order], block_bytes=block_bytes), order, order)
    border_core, t_halo = border_partners(core, core_rank, halo, halo_rank, block_bytes=block_bytes)
    border_core = border_core._replace(ids=np.where(border_core.ids >= 0, border_core.ids + n, -1))
    t_core = merge_partners(t_core, border_core)
    if partners:
        return t_core, t_halo
    return _as_m(t_core.values[:, 0]), _as_m(t_halo.values[:, 0])


@dataclass(frozen=True)
class ClusterBlock:
    """A block of whole clusters: the unit of work an engine maps (clusters are independent).
    Per cluster: its members, its neighbours (`Clustering.neighbour_members`), and their global ranks."""

    emb: Shared  # the rows, read inside the stage
    members: tuple[np.ndarray, ...]  # sorted row indices of each cluster
    halo: tuple[np.ndarray, ...]  # sorted row indices of each cluster's neighbours
    rank: Shared  # every row's place in the global priority order (read per cluster, not copied per block)
    block_bytes: int
    kernel: Callable[..., Any] = cluster_kernel  # or a variant with the same signature (partners included)


def block_redundancy(block: ClusterBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(member rows, their M, neighbour rows, their M) over the block's clusters, each M a max over
    the pairs of the block's clusters only (a neighbour row may appear once per cluster it borders).
    Each M is `settle_pairs`'s value, the same bits whichever kernel proposed the partners."""
    emb = block.emb.get()
    idx_out, m_out, hidx_out, mh_out = [], [], [], []
    ranks = block.rank.get()
    for idx, hidx in zip(block.members, block.halo, strict=True):
        check_cancelled()
        if len(idx) == 0 or len(idx) + len(hidx) < 2:
            continue
        core, halo = _cluster_rows(emb, idx), _cluster_rows(emb, hidx)
        top_core, top_halo = block.kernel(core, ranks[idx], halo, ranks[hidx], block_bytes=block.block_bytes,
                                          partners=True)
        # The kernel's float32 maxima decide nothing themselves: one host rule for both kernels.
        m_core, m_halo = settle_pairs(core, ranks[idx], halo, ranks[hidx], top_core, top_halo,
                                      margin=tie_margin(core.shape[1]), block_bytes=block.block_bytes)
        idx_out.append(idx)
        m_out.append(m_core)
        hidx_out.append(hidx)
        mh_out.append(m_halo)
    return (_concat(idx_out, np.int64), _concat(m_out, np.float32),
            _concat(hidx_out, np.int64), _concat(mh_out, np.float32))


def _merge_block(m: np.ndarray, result: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Fold one block's M into the per-row M: a row's M is the max over every cluster it takes part in."""
    idx, m_core, hidx, m_halo = result
    m[idx] = np.maximum(m[idx], m_core)  # every row is a member of one cluster only
    np.maximum.at(m, hidx, m_halo)  # but may neighbour several


def semdedup_redundancy(
    emb: np.ndarray,
    clustering: Clustering,
    *,
    order: str = "farthest",
    block_bytes: int = 64 * 2**20,
    max_border: float = math.inf,
    progress: bool = False,
    engine: Engine | None = None,
    kernel: Callable[..., Any] = cluster_kernel,
    store: StageStore | None = None,
) -> np.ndarray:
    """M_j for every row of `emb` given its clustering.

    M_j = the largest cosine of row j to an earlier row (global priority order, `global_rank`)
    that it is compared with: the members of its own cluster and, where `clustering.next_nearest`
    is set, across a border: row i is also compared with the members of a next-nearest cluster
    of i when i lies within `max_border` of the border between its own cluster and that one
    (`Clustering.border_distance`), and the other way round. Without `next_nearest` this is
    SemDeDup's own-cluster rule.

    Clusters are independent: blocks of them (members and neighbours) are mapped by `engine`
    (local loop by default, or Ray tasks), each running `kernel` per cluster, and the driver merges
    the blocks' M with a maximum. With a `store`, every group of blocks leaves a completion record,
    and finished groups are loaded instead of recomputed."""
    if order not in ORDERS:
        raise ConfigError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    engine = engine or LocalEngine()
    m = np.full(len(emb), NO_EARLIER, dtype=np.float32)
    rank = clustering_rank(clustering, order=order)
    members = clustering.members()
    neighbours = clustering.neighbour_members(max_border)
    sizes = np.array([len(a) + len(b) for a, b in zip(members, neighbours, strict=True)], dtype=np.int64)
    target = int(max(1, min(BLOCK_ROWS, int(sizes.sum()) // BLOCKS_PER_RUN + 1)))
    partition = cluster_blocks(sizes, target_rows=target)
    shared, shared_rank = engine.share(emb), engine.share(rank)
    blocks = [
        ClusterBlock(
            emb=shared,
            members=tuple(members[c] for c in ids),
            halo=tuple(neighbours[c] for c in ids),
            rank=shared_rank,
            block_bytes=block_bytes,
            kernel=kernel,
        )
        for ids in partition
    ]
    if store is None:
        # Mapped a group at a time and merged as each group lands: the blocks' results hold about
        # 48 bytes per row and neighbour, 4.8 GB at 10^8 rows if all were kept until the end.
        bar = tqdm(total=len(blocks), desc="semdedup", disable=not progress, leave=False)
        try:
            for start in range(0, len(blocks), GROUP_BLOCKS):
                group = blocks[start : start + GROUP_BLOCKS]
                for result in engine.map(block_redundancy, group, desc="semdedup", progress=False):
                    _merge_block(m, result)
                bar.update(len(group))
        finally:
            bar.close()
        return m
    for g, start in enumerate(range(0, len(blocks), GROUP_BLOCKS)):
        name = f"redundancy-{g:05d}"
        # The record names the clusters it covers: a record from another partition is never reused.
        part = {"clusters": [[int(ids[0]), int(ids[-1])] for ids in partition[start : start + GROUP_BLOCKS]],
                "ties": TIE_RULE}
        done = store.load(name, part=part)
        if done is None:
            results = engine.map(block_redundancy, blocks[start : start + GROUP_BLOCKS], desc="semdedup",
                                 progress=progress)
            done = {key: _concat([r[i] for r in results], dtype)
                    for i, (key, dtype) in enumerate((("rows", np.int64), ("m", np.float32),
                                                      ("halo_rows", np.int64), ("halo_m", np.float32)))}
            store.save(name, done, part=part)
        _merge_block(m, (done["rows"], done["m"], done["halo_rows"], done["halo_m"]))
    return m


# ---------------------------------------------------------------- the audit trail
@dataclass(frozen=True)
class TwinBlock:
    """A block of whole clusters for the audit trail: members and neighbours with their kept flags."""

    emb: Shared
    members: tuple[np.ndarray, ...]
    halo: tuple[np.ndarray, ...]
    member_kept: tuple[np.ndarray, ...]
    halo_kept: tuple[np.ndarray, ...]
    block_bytes: int


def block_twins(block: TwinBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(removed rows, a kept row each was compared with, their cosine): per cluster, removed members
    against kept members and kept neighbours, removed neighbours against kept members; every
    removed row's best candidate in each cluster (ties: the lower index), one entry per cluster."""
    emb = block.emb.get()
    q_out, t_out, s_out = [], [], []
    for idx, hidx, kept, hkept in zip(block.members, block.halo, block.member_kept, block.halo_kept, strict=True):
        check_cancelled()
        q, t, sim = cluster_twins(_cluster_rows(emb, idx), _cluster_rows(emb, hidx), idx, hidx, kept, hkept,
                                  block_bytes=block.block_bytes)
        q_out.append(q)
        t_out.append(t)
        s_out.append(sim)
    return _concat(q_out, np.int64), _concat(t_out, np.int64), _concat(s_out, np.float64)


def attach_twins(
    emb_rows: np.ndarray,
    clustering: Clustering,
    kept_mask: np.ndarray,
    *,
    block_bytes: int = 64 * 2**20,
    max_border: float = math.inf,
    progress: bool = False,
    engine: Engine | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every removed row's twin: the most similar KEPT row among the rows it was compared with
    (its own cluster's members and neighbours, and the members of the next-nearest clusters it is
    near the border of: the same pairs as `semdedup_redundancy` with the same `max_border`), and
    their cosine. Returns (twin int64, -1 for kept rows and for a removed row with no kept row
    to compare; similarity float64, NaN there); ties go to the lower index.

    `emb_rows` are the rows that were clustered (a memory map is fine: read cluster by cluster);
    call it once the final kept set is known (SemDeDup and AdaDeDup both do). Blocks of clusters
    are mapped by `engine` (a local loop by default); the driver keeps each row's best candidate."""
    kept_mask = np.asarray(kept_mask, dtype=bool)
    if kept_mask.shape != (len(emb_rows),):
        raise DataError(f"kept_mask must hold one flag per row ({len(emb_rows)}), got shape {kept_mask.shape}")
    twin = np.full(len(emb_rows), -1, dtype=np.int64)
    similarity = np.full(len(emb_rows), np.nan, dtype=np.float64)
    if kept_mask.all() or not kept_mask.any():
        return twin, similarity
    engine = engine or LocalEngine()
    members = clustering.members()
    neighbours = clustering.neighbour_members(max_border)
    # Only clusters with a removed member or neighbour have work.
    busy = [c for c, (idx, hidx) in enumerate(zip(members, neighbours, strict=True))
            if not (kept_mask[idx].all() and kept_mask[hidx].all())]
    sizes = np.array([len(members[c]) + len(neighbours[c]) for c in busy], dtype=np.int64)
    target = int(max(1, min(BLOCK_ROWS, int(sizes.sum()) // (4 * max(1, engine.workers)) + 1)))
    shared = engine.share(emb_rows)
    blocks = [
        TwinBlock(
            emb=shared,
            members=tuple(members[busy[i]] for i in ids),
            halo=tuple(neighbours[busy[i]] for i in ids),
            member_kept=tuple(kept_mask[members[busy[i]]] for i in ids),
            halo_kept=tuple(kept_mask[neighbours[busy[i]]] for i in ids),
            block_bytes=block_bytes,
        )
        for ids in cluster_blocks(sizes, target_rows=target)
    ]
    results = engine.map(block_twins, blocks, desc="twins", progress=progress)
    best_per_row(twin, similarity, *(_concat([r[i] for r in results], dt)
                                     for i, dt in enumerate((np.int64, np.int64, np.float64))))
    return twin, similarity


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
    """Everything SemDeDup needs to select at any budget: per-unit M, the clustering of units and the
    rows that were clustered (kept for the audit trail; `emb` itself, or the groups' mean rows)."""

    m: np.ndarray  # per unit
    units: Units
    clustering: Clustering
    rows: np.ndarray
    max_border: float = math.inf  # rows this near a border are compared across it (see semdedup_redundancy)

    def select(self, n_keep: int) -> tuple[np.ndarray, float | None]:
        """Kept sample indices (sorted) and the eps that removes the rest."""
        n = int(self.units.sizes.sum())
        if not 0 < n_keep <= n:
            raise ConfigError(f"cannot keep {n_keep} of {n} samples")
        removed = remove_units(removal_order(self.m), self.units.sizes, n - n_keep)
        keep_units = np.ones(self.units.n_units, dtype=bool)
        keep_units[removed] = False
        return self.units.samples(keep_units), epsilon_between(self.m, removed)

    def keep_units_below(self, threshold: float) -> np.ndarray:
        """Units kept by the threshold rule: every unit whose M is above `threshold` is removed."""
        return ~(self.m > np.float32(threshold))

    def twins(self, keep_units: np.ndarray, *, block_bytes: int = 64 * 2**20,
              progress: bool = False, engine: Engine | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per sample: the kept sample a removed one is nearest to, and their cosine (`attach_twins`).
        For groups the twin is the first sample of the nearest kept group and the cosine is between
        the groups' mean rows."""
        twin_units, sim_units = attach_twins(self.rows, self.clustering, keep_units, block_bytes=block_bytes,
                                             max_border=self.max_border, progress=progress, engine=engine)
        if not self.units.grouped:
            return twin_units, sim_units
        return self.units.expand(self.units.first_sample_of(twin_units)), self.units.expand(sim_units)


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

    Score = M_j, the largest cosine similarity to an earlier sample of its cluster or of its
    next-nearest clusters (lower = keep). `nearest_clusters=1` is the paper's own-cluster rule.

    Parameters:
        encoder: embedding to cluster: auto, identity, pixels[:DIM], centred[:DIM], model[:EPOCHS], clip:PATH
        embeddings: a .npy of one row per sample to use instead of the encoder
        n_clusters: k-means clusters (None: round(sqrt(N)) up to 1e6 rows, then N / 1000)
        n_iter: k-means iterations
        kmeans_sample: rows the centroids are trained on (None: min(N, max(64 K, 10000)); 32 K from K = 512)
        max_cluster: clusters larger than this are split into parts of the mean size (None: max(2048, 2 N/K); 0: no)
        order: priority by distance to the own centroid: farthest first, or closest
        backend: k-means backend: auto, faiss or sklearn
        block_mb: memory limit of one block of similarities, in MB
        kernel: auto (torch on --device when it is not cpu, else numpy), numpy, or torch (on --device, cpu included)
        nearest_clusters: 2 also compares a sample with its second-nearest cluster near the border; 1: own only
        border_cosine: pairs at this cosine or above that the clustering splits are still compared
        engine: where the growing stages run: local (threads) or ray
        ray_address: the Ray cluster to join (engine ray; None: start or find a local one)
        work_dir: keep each finished stage here so a killed run resumes"""

    supported_tasks = ("classification", "detection")

    higher_is_keep = False
    has_threshold = True
    param_spec = ParamSpec({
        "encoder": AnyString("an encoder spec"),
        # None first, so `--param work_dir=none` reads as None rather than a folder named "none".
        "embeddings": [None, AnyString("a path to a .npy")],
        "n_clusters": [Interval(int, 1, None), None],
        "n_iter": Interval(int, 1, None),
        "kmeans_sample": [Interval(int, 1, None), None],
        "max_cluster": [Interval(int, 0, None), None],
        "order": StrOptions(ORDERS),
        "backend": StrOptions(BACKENDS),
        "block_mb": Interval(int, 1, None),
        "kernel": StrOptions(KERNELS),
        "nearest_clusters": Interval(int, 1, None),
        "border_cosine": Interval(float, -1, 1),
        "engine": StrOptions(ENGINES),
        "ray_address": [None, AnyString("a Ray address")],
        "work_dir": [None, AnyString("a folder")],
    })

    def __init__(
        self,
        *,
        encoder: str = "auto",
        embeddings: str | None = None,
        n_clusters: int | None = None,
        n_iter: int = 20,
        kmeans_sample: int | None = None,
        max_cluster: int | None = None,
        order: str = "farthest",
        backend: str = "auto",
        block_mb: int = 64,
        kernel: str = "auto",
        nearest_clusters: int = 2,
        border_cosine: float = 0.9,
        engine: str = "local",
        ray_address: str | None = None,
        work_dir: str | None = None,
    ) -> None:
        self.encoder = encoder
        self.embeddings = embeddings
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.kmeans_sample = kmeans_sample
        self.max_cluster = max_cluster
        self.order = order
        self.backend = backend
        self.block_mb = block_mb
        self.kernel = kernel
        self.nearest_clusters = nearest_clusters
        self.border_cosine = border_cosine
        self.engine = engine
        self.ray_address = ray_address
        self.work_dir = work_dir
        self._cache: tuple[object, int, Redundancy] | None = None

    def redundancy(self, task: Task, *, seed: int, progress: bool, engine: Engine | None = None) -> Redundancy:
        """Embed, cluster and compute M (cached for the last data object and seed), on `engine`
        (when None, one made from the `engine` parameter for this call)."""
        if self._cache is not None and self._cache[0] is task.data and self._cache[1] == seed:
            return self._cache[2]
        from adaprune.embed import task_embeddings

        emb = task_embeddings(task, encoder=self.encoder, embeddings=self.embeddings, seed=seed, progress=progress)
        units = Units.from_groups(task.data.groups, task.n)
        store = None
        if self.work_dir is not None:
            # Every parameter that changes a stage's result is in the key (nearest_clusters and
            # border_cosine included); where and how the stages run is not.
            key = {"embeddings": input_identity(emb), "seed": seed, "params": self.stage_params(), "ties": TIE_RULE,
                   "groups": None if units.index is None else input_identity(units.index)}
            store = StageStore(self.work_dir, key)
        own = engine is None
        engine = self._engine() if engine is None else engine
        try:
            red = compute_redundancy(
                emb, units, n_clusters=self.n_clusters, seed=seed,
                n_iter=self.n_iter, kmeans_sample=self.kmeans_sample, max_cluster=self.max_cluster,
                order=self.order, backend=self.backend,
                block_bytes=self.block_mb * 2**20, nearest_clusters=self.nearest_clusters,
                border_cosine=self.border_cosine, progress=progress, engine=engine, store=store,
                device=self.compute_device(task),
            )
        finally:
            if own:
                engine.close()
        self._cache = (task.data, seed, red)
        return red

    def compute_device(self, task: Task) -> str | None:
        """The torch device the assignment and M run on, or None for the numpy path."""
        device = str(getattr(task, "device", "cpu"))
        if self.kernel == "numpy" or (self.kernel == "auto" and device == "cpu"):
            return None
        return device

    def stage_params(self) -> dict[str, Any]:
        """The parameters that key the recorded stages: every one that changes a stage's result
        (nearest_clusters and border_cosine included), not where or how the stages run."""
        return {k: v for k, v in self.params().items() if k not in ("engine", "ray_address", "work_dir")}

    def _engine(self) -> Engine:
        return get_engine(self.engine, address=self.ray_address)

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        engine = self._engine()  # one engine (one Ray start) for M and the audit trail
        try:
            red = self.redundancy(task, seed=seed, progress=progress, engine=engine)
            kept, eps = red.select(n_keep)
            if len(kept) != n_keep:
                log.info("semdedup: whole groups keep %d samples for a budget of %d", len(kept), n_keep)
            return self._result(red, kept, {"epsilon": eps}, progress=progress, engine=engine)
        finally:
            engine.close()

    def run_threshold(self, task: Task, threshold: float, *, seed: int,
                      progress: bool) -> MethodResult:
        """Remove every sample (or group) whose M is above `threshold` (a cosine); no budget."""
        check_threshold(threshold)
        engine = self._engine()
        try:
            red = self.redundancy(task, seed=seed, progress=progress, engine=engine)
            keep_units = red.keep_units_below(threshold)  # never empty: the first row in priority has M = -1
            kept = red.units.samples(keep_units)
            log.info("semdedup: threshold %g removes %d of %d samples (%.2f%%)", threshold, task.n - len(kept),
                     task.n, 100 * (1 - len(kept) / task.n))
            return self._result(red, kept, {"threshold": float(threshold), "epsilon": 1.0 - float(threshold)},
                                progress=progress, engine=engine)
        finally:
            engine.close()

    def _result(self, red: Redundancy, kept: np.ndarray, extra: dict[str, Any], *, progress: bool,
                engine: Engine | None = None) -> MethodResult:
        keep_units = np.zeros(red.units.n_units, dtype=bool)
        keep_units[red.units.expand(np.arange(red.units.n_units))[kept]] = True
        twin, similarity, cause, cause_similarity = self._audit(red, keep_units, progress=progress, engine=engine)
        details = {
            **extra,
            "clusters": cluster_summary(red.clustering.sizes()),
            "backend": red.clustering.backend,
            "split_clusters": red.clustering.split,
            "units": "groups" if red.units.grouped else "samples",
            "n_units": red.units.n_units,
            "nearest_clusters": red.clustering.next_nearest.shape[1] + 1 if red.clustering.next_nearest is not None
            else 1,
        }
        return MethodResult(kept=kept, scores=red.units.expand(red.m).astype(np.float64), details=details,
                            twin=twin, similarity=similarity, cause=cause, cause_similarity=cause_similarity)

    def _audit(self, red: Redundancy, keep_units: np.ndarray, *, progress: bool,
               engine: Engine | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per sample, from one pass over the clusters (`_causes.attach_audit`): the kept sample a
        removed one is nearest to and their cosine (`attach_twins`; for groups the first sample of
        the nearest kept group, the cosine between the groups' mean rows), and the earlier sample
        whose similarity removed it and that cosine, which is its M (`attach_causes`; -1 and NaN
        for kept samples)."""
        from adaprune.methods._causes import attach_audit

        rank = clustering_rank(red.clustering, order=self.order)
        twin, twin_sim, cause = attach_audit(red.rows, red.clustering, rank, ~keep_units,
                                             block_bytes=self.block_mb * 2**20, max_border=red.max_border,
                                             progress=progress, engine=engine)
        # The per-row arrays derived for M and the audit (members, neighbours, ranks: several bytes a
        # row) are not needed for the selection, which is the largest allocation still to come.
        red.clustering.forget_derived()
        # Nor are the embeddings' pages: at 10^7 x 256 they are 10 GB resident in this process.
        release_pages(red.rows)
        cause_sim = np.where(cause >= 0, red.m.astype(np.float64), np.nan)
        units = red.units
        if units.grouped:
            twin = units.first_sample_of(twin)
            cause = units.first_sample_of(cause)
        return units.expand(twin), units.expand(twin_sim), units.expand(cause), units.expand(cause_sim)


def clustering_arrays(c: Clustering) -> dict[str, np.ndarray]:
    out = {"centroids": c.centroids, "assignment": c.assignment, "distance": c.distance,
           "backend": np.array(c.backend), "sample_size": np.array(c.sample_size), "split": np.array(c.split)}
    if c.coarse is not None:
        out |= {"coarse_centroids": c.coarse.centroids, "coarse_owner": c.coarse.owner}
    if c.next_nearest is not None and c.next_distance is not None:
        out |= {"next_nearest": c.next_nearest, "next_distance": c.next_distance}
    return out


def clustering_from_arrays(a: dict[str, np.ndarray], *, seed: int, n_iter: int) -> Clustering:
    from adaprune.cluster.kmeans import CoarseLevel

    coarse = CoarseLevel(a["coarse_centroids"], a["coarse_owner"]) if "coarse_centroids" in a else None
    return Clustering(centroids=a["centroids"], assignment=a["assignment"], distance=a["distance"],
                      backend=str(a["backend"]), seed=seed, n_iter=n_iter, sample_size=int(a["sample_size"]),
                      coarse=coarse, next_nearest=a.get("next_nearest"), next_distance=a.get("next_distance"),
                      split=int(a.get("split", 0)))


def compute_redundancy(
    emb: np.ndarray,
    units: Units,
    *,
    n_clusters: int | None,
    seed: int,
    n_iter: int = 20,
    kmeans_sample: int | None = None,
    max_cluster: int | None = None,
    order: str = "farthest",
    backend: str = "auto",
    block_bytes: int = 64 * 2**20,
    nearest_clusters: int = 2,
    border_cosine: float = 0.9,
    progress: bool = False,
    engine: Engine | None = None,
    store: StageStore | None = None,
    device: str | None = None,
) -> Redundancy:
    """Cluster the units' embeddings and compute every unit's M: compared with the members of its
    cluster and, when it lies near enough to the border of one of its `nearest_clusters` - 1
    next-nearest clusters for a pair at cosine `border_cosine` to straddle it, with that one's.
    Clusters larger than `max_cluster` rows are split into parts first (`split_oversized`; None:
    its default limit, 0: never). With `device` (a torch device) the assignment and M are computed
    there (`adaprune.cluster.device`). The growing stages (assignment, split, per-cluster M) run on
    `engine`; each stage is recorded in `store` when given, and reused from it on a rerun."""
    rows = units.embeddings(emb)
    k = n_clusters if n_clusters is None else min(int(n_clusters), len(rows))
    saved = store.load("clustering") if store is not None else None
    if saved is not None:
        clustering = clustering_from_arrays(saved, seed=seed, n_iter=n_iter)
    else:
        clustering = spherical_kmeans(rows, k, seed=seed, n_iter=n_iter, sample_size=kmeans_sample,
                                      backend=backend, nearest=nearest_clusters, progress=progress, engine=engine,
                                      device=device)
        clustering = split_oversized(rows, clustering, max_size=max_cluster, seed=seed, n_iter=n_iter,
                                     engine=engine, progress=progress)
        if store is not None:
            store.save("clustering", clustering_arrays(clustering))
    max_border = border_reach(border_cosine)
    kernel = cluster_kernel
    if device is not None:
        from adaprune.cluster.device import DeviceKernel

        kernel = DeviceKernel(device)
    m = semdedup_redundancy(rows, clustering, order=order, block_bytes=block_bytes, max_border=max_border,
                            progress=progress, engine=engine, kernel=kernel, store=store)
    return Redundancy(m=m, units=units, clustering=clustering, rows=rows, max_border=max_border)


def border_reach(border_cosine: float) -> float:
    """How near a border a row must lie to be compared across it: two unit rows at cosine s are
    sqrt(2 - 2 s) apart, and a pair split by a border has each row at most that far from it."""
    return float(np.sqrt(max(0.0, 2.0 - 2.0 * border_cosine)))
