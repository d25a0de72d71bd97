"""Why SemDeDup removed a sample: the earlier sample it is most similar to among those it was
compared with (the argmax behind its score M_j), found once the kept set is known.

`twin` (the nearest KEPT sample) answers "what is left that looks like it"; the cause answers "why
did it go": its M_j is the cosine to the cause, at or above the threshold in threshold mode, and the
cause may itself have been removed (a chain of near-copies keeps only its first)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adaprune.cluster import Clustering
from adaprune.engine import Engine, LocalEngine, Shared
from adaprune.engine.base import check_cancelled
from adaprune.methods._blocks import BLOCK_ROWS, _cluster_rows, _concat, best_per_row, cluster_blocks, cluster_twins


@dataclass(frozen=True)
class CauseBlock:
    """Whole clusters: members and neighbours with their global ranks and removed flags."""

    emb: Shared
    members: tuple[np.ndarray, ...]
    halo: tuple[np.ndarray, ...]
    rank: Shared  # every row's place in the global priority order
    member_gone: tuple[np.ndarray, ...]
    halo_gone: tuple[np.ndarray, ...]
    block_bytes: int


def earliest_best(queries: np.ndarray, q_rank: np.ndarray, cands: np.ndarray, c_rank: np.ndarray,
                  *, block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query row: the position of its most similar candidate ranked before it (ties: the lower
    position) and that cosine; (-1, -inf) where no candidate is earlier."""
    pos = np.full(len(queries), -1, dtype=np.int64)
    sim = np.full(len(queries), -np.inf, dtype=np.float64)
    if len(queries) == 0 or len(cands) == 0:
        return pos, sim
    b = int(max(1, min(len(queries), block_bytes // (4 * len(cands)))))
    for start in range(0, len(queries), b):
        check_cancelled()
        stop = min(len(queries), start + b)
        sims = queries[start:stop] @ cands.T
        sims[c_rank[None, :] >= q_rank[start:stop, None]] = -np.inf
        best = np.argmax(sims, axis=1)
        value = sims[np.arange(len(best)), best].astype(np.float64)
        found = np.isfinite(value)
        pos[start:stop] = np.where(found, best, -1)
        sim[start:stop] = value
    return pos, sim


def cluster_causes(core: np.ndarray, halo: np.ndarray, idx: np.ndarray, hidx: np.ndarray, rank: np.ndarray,
                   hrank: np.ndarray, gone: np.ndarray, hgone: np.ndarray, *,
                   block_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(removed rows, the earlier row each is most similar to in this cluster, their cosine): removed
    members against earlier members and earlier neighbours, removed neighbours against earlier
    members (the pairs `semdedup_redundancy` compares); ties go to the lower index."""
    all_ids = np.concatenate([idx, hidx])
    order = np.argsort(all_ids, kind="stable")  # lower index first: argmax ties go to it
    all_rows = np.concatenate([core, halo])[order]
    all_ranks = np.concatenate([rank, hrank])[order]
    all_ids = all_ids[order]
    q_out, c_out, s_out = [], [], []
    for queries, q_ids, q_rank, c_rows, c_ids, c_rank in (
        (core[gone], idx[gone], rank[gone], all_rows, all_ids, all_ranks),
        (halo[hgone], hidx[hgone], hrank[hgone], core, idx, rank),
    ):
        pos, sim = earliest_best(queries, q_rank, c_rows, c_rank, block_bytes=block_bytes)
        found = pos >= 0
        q_out.append(q_ids[found])
        c_out.append(c_ids[pos[found]])
        s_out.append(sim[found])
    return _concat(q_out, np.int64), _concat(c_out, np.int64), _concat(s_out, np.float64)


def block_causes(block: CauseBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`cluster_causes` over the block's clusters, one entry per cluster and row."""
    emb = block.emb.get()
    q_out, c_out, s_out = [], [], []
    ranks = block.rank.get()
    for idx, hidx, gone, hgone in zip(block.members, block.halo, block.member_gone, block.halo_gone, strict=True):
        check_cancelled()
        rank, hrank = ranks[idx], ranks[hidx]
        q, c, sim = cluster_causes(_cluster_rows(emb, idx), _cluster_rows(emb, hidx), idx, hidx, rank, hrank, gone,
                                   hgone, block_bytes=block.block_bytes)
        q_out.append(q)
        c_out.append(c)
        s_out.append(sim)
    return _concat(q_out, np.int64), _concat(c_out, np.int64), _concat(s_out, np.float64)


def block_audit(block: CauseBlock) -> tuple[np.ndarray, ...]:
    """Twins (`cluster_twins`) and causes (`cluster_causes`) of the block's clusters from one read of
    their rows: (twin rows, twins, twin cosines, cause rows, causes, cause cosines)."""
    emb = block.emb.get()
    parts: list[list[np.ndarray]] = [[] for _ in range(6)]
    ranks = block.rank.get()
    for idx, hidx, gone, hgone in zip(block.members, block.halo, block.member_gone, block.halo_gone, strict=True):
        check_cancelled()
        rank, hrank = ranks[idx], ranks[hidx]
        core, halo = _cluster_rows(emb, idx), _cluster_rows(emb, hidx)
        found = (*cluster_twins(core, halo, idx, hidx, ~gone, ~hgone, block_bytes=block.block_bytes),
                 *cluster_causes(core, halo, idx, hidx, rank, hrank, gone, hgone, block_bytes=block.block_bytes))
        for part, value in zip(parts, found, strict=True):
            part.append(value)
    return tuple(_concat(p, dt) for p, dt in zip(parts, (np.int64, np.int64, np.float64) * 2, strict=True))


def _audit_blocks(emb_rows: np.ndarray, clustering: Clustering, rank: np.ndarray, removed: np.ndarray, *,
                  block_bytes: int, max_border: float, engine: Engine) -> list[CauseBlock]:
    """Blocks of the clusters with a removed member or neighbour (the only ones with work)."""
    members = clustering.members()
    neighbours = clustering.neighbour_members(max_border)
    busy = [c for c, (idx, hidx) in enumerate(zip(members, neighbours, strict=True))
            if removed[idx].any() or removed[hidx].any()]
    sizes = np.array([len(members[c]) + len(neighbours[c]) for c in busy], dtype=np.int64)
    target = int(max(1, min(BLOCK_ROWS, int(sizes.sum()) // (4 * max(1, engine.workers)) + 1)))
    shared, shared_rank = engine.share(emb_rows), engine.share(np.asarray(rank))
    return [
        CauseBlock(
            emb=shared,
            members=tuple(members[busy[i]] for i in ids),
            halo=tuple(neighbours[busy[i]] for i in ids),
            rank=shared_rank,
            member_gone=tuple(removed[members[busy[i]]] for i in ids),
            halo_gone=tuple(removed[neighbours[busy[i]]] for i in ids),
            block_bytes=block_bytes,
        )
        for ids in cluster_blocks(sizes, target_rows=target)
    ]


def attach_causes(
    emb_rows: np.ndarray,
    clustering: Clustering,
    rank: np.ndarray,
    removed: np.ndarray,
    *,
    block_bytes: int = 64 * 2**20,
    max_border: float = math.inf,
    progress: bool = False,
    engine: Engine | None = None,
) -> np.ndarray:
    """Every removed row's cause: the row ranked before it (`rank`: the global priority order)
    that it is most similar to among the rows it was compared with; -1 for kept rows and for a
    removed row compared with no earlier row. Ties go to the lower index."""
    removed = np.asarray(removed, dtype=bool)
    cause = np.full(len(emb_rows), -1, dtype=np.int64)
    if not removed.any():
        return cause
    engine = engine or LocalEngine()
    blocks = _audit_blocks(emb_rows, clustering, rank, removed, block_bytes=block_bytes, max_border=max_border,
                           engine=engine)
    results = engine.map(block_causes, blocks, desc="causes", progress=progress)
    best_per_row(cause, None, *(_concat([r[i] for r in results], dt)
                                for i, dt in enumerate((np.int64, np.int64, np.float64))))
    return cause


def attach_audit(
    emb_rows: np.ndarray,
    clustering: Clustering,
    rank: np.ndarray,
    removed: np.ndarray,
    *,
    block_bytes: int = 64 * 2**20,
    max_border: float = math.inf,
    progress: bool = False,
    engine: Engine | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(twin, twin cosine, cause) of every row in one pass over the clusters: `semdedup.attach_twins`
    and `attach_causes` of the same removed set, each cluster's rows read once for both."""
    removed = np.asarray(removed, dtype=bool)
    n = len(emb_rows)
    columns: list[np.ndarray] = []
    if removed.any():
        engine = engine or LocalEngine()
        blocks = _audit_blocks(emb_rows, clustering, rank, removed, block_bytes=block_bytes, max_border=max_border,
                               engine=engine)
        results = engine.map(block_audit, blocks, desc="audit", progress=progress)
        columns = [_concat([r[i] for r in results], dt) for i, dt in enumerate((np.int64, np.int64, np.float64) * 2)]
        del results, blocks
    # Allocated once the pass is done, so that 24 bytes a row are not held through it.
    twin, similarity = np.full(n, -1, dtype=np.int64), np.full(n, np.nan, dtype=np.float64)
    cause = np.full(n, -1, dtype=np.int64)
    if not columns:
        return twin, similarity, cause
    if not removed.all():  # with nothing kept there is no twin (attach_twins returns none)
        best_per_row(twin, similarity, *columns[:3])
    best_per_row(cause, None, *columns[3:])
    return twin, similarity, cause
