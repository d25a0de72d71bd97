"""The block helpers SemDeDup's stages and its audit (`_causes`) share: clusters grouped into
blocks of about a target number of rows, a block's unit rows read from the embeddings, and one
cluster's twins (the nearest kept row of every removed row). A module of their own so that
`semdedup` and `_causes` both import it and neither imports the other."""

from __future__ import annotations

import numpy as np

from adaprune.cluster import normalize_rows

BLOCK_ROWS = 262_144  # rows per unit of work mapped by the engine (whole clusters and their neighbours)


def _cluster_rows(emb: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Unit rows of `idx` (sorted), read from `emb` (possibly a memory map) in file order."""
    if len(idx) == 0:
        return np.empty((0, emb.shape[1]), dtype=np.float32)
    return normalize_rows(emb[idx])


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def cluster_blocks(sizes: np.ndarray, *, target_rows: int) -> list[np.ndarray]:
    """Consecutive cluster ids grouped into blocks of about `target_rows` rows (a large cluster is a
    block alone). `sizes` counts each cluster's members and neighbours."""
    blocks, current, rows = [], [], 0
    for c, size in enumerate(sizes.tolist()):
        current.append(c)
        rows += size
        if rows >= target_rows:
            blocks.append(np.asarray(current, dtype=np.int64))
            current, rows = [], 0
    if current:
        blocks.append(np.asarray(current, dtype=np.int64))
    return blocks


def nearest_among(
    queries: np.ndarray, candidates: np.ndarray, *, block_bytes: int = 64 * 2**20
) -> tuple[np.ndarray, np.ndarray]:
    """For every query row, the position of its most similar candidate row (ties: the lower
    position) and that cosine; (-1, NaN) when there is no candidate. Unit rows, blocked."""
    pos = np.full(len(queries), -1, dtype=np.int64)
    sim = np.full(len(queries), np.nan, dtype=np.float64)
    if len(queries) == 0 or len(candidates) == 0:
        return pos, sim
    b = int(max(1, min(len(queries), block_bytes // (4 * len(candidates)))))
    for start in range(0, len(queries), b):
        sims = queries[start : start + b] @ candidates.T
        best = np.argmax(sims, axis=1)
        pos[start : start + b] = best
        sim[start : start + b] = sims[np.arange(len(best)), best]
    return pos, np.minimum(sim, 1.0)


def cluster_twins(core: np.ndarray, halo: np.ndarray, idx: np.ndarray, hidx: np.ndarray, kept: np.ndarray,
                  hkept: np.ndarray, *, block_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(removed rows, the most similar kept row each was compared with in this cluster, their cosine):
    removed members against kept members and kept neighbours, removed neighbours against kept
    members; ties go to the lower index. `core`/`halo` are the unit rows of members `idx` and
    neighbours `hidx`, `kept`/`hkept` their kept flags."""
    gone, hgone = ~kept, ~hkept
    cand_ids = np.concatenate([idx[kept], hidx[hkept]])
    cand_order = np.argsort(cand_ids, kind="stable")  # lower index first, so argmax ties go to it
    cand_ids = cand_ids[cand_order]
    cands = np.concatenate([core[kept], halo[hkept]])[cand_order]
    q_out, t_out, s_out = [], [], []
    for queries, q_ids, c_rows, c_ids in (
        (core[gone], idx[gone], cands, cand_ids),
        (halo[hgone], hidx[hgone], core[kept], idx[kept]),
    ):
        pos, sim = nearest_among(queries, c_rows, block_bytes=block_bytes)
        found = pos >= 0
        q_out.append(q_ids[found])
        t_out.append(c_ids[pos[found]])
        s_out.append(sim[found])
    return _concat(q_out, np.int64), _concat(t_out, np.int64), _concat(s_out, np.float64)


def best_per_row(link: np.ndarray, similarity: np.ndarray | None, rows: np.ndarray, targets: np.ndarray,
                 sims: np.ndarray) -> None:
    """Fold candidate links (row, target, cosine), one per cluster a row takes part in, into `link`
    (and `similarity`, when given) in place: per row the highest cosine, ties to the lower target."""
    if len(rows) == 0:
        return
    best = np.lexsort((targets, -sims, rows))
    first = np.ones(len(best), dtype=bool)
    first[1:] = rows[best][1:] != rows[best][:-1]
    chosen = best[first]
    link[rows[chosen]] = targets[chosen]
    if similarity is not None:
        similarity[rows[chosen]] = sims[chosen]
