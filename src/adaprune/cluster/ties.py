"""One tie rule for the numpy and the torch paths, so both choose the same clusters and samples.

The two paths compute the same float32 products, summed in different orders, so two similarities
within float32 rounding of each other can come out in either order, and a value compared with a
threshold or with another row's value can land on either side. Every discrete outcome is therefore
settled here, on the host, by one deterministic float64 computation that both paths share:

* a path proposes candidates from its float32 products (the `width` best columns and one more);
  where the last kept one and the first left out are within `tie_margin` of each other, the row is
  re-decided in float64 over every candidate (`settle_top`), ties to the lower index;
* the similarities a path hands on (to a centroid, M) are recomputed in float64 from the host's
  float32 unit rows for the chosen pair (`pair_dots`) and rounded to float32, so the values that are
  later sorted or compared with a threshold are the same bits on both paths;
* M's partner (the earlier row behind a row's M) is re-decided in float64 where a second partner
  lies within the margin: between the two, or over the row's compared rows where a third does too
  (`settle_pairs`).

Outside a near-tie a path's float32 choice is the float64 one, so the rule changes no choice there
(only the last bits of the values). The margin is far above float32 rounding of a D-length dot
product of unit rows (about sqrt(D) 2^-24) and far below the gaps that decide anything."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from adaprune.cluster.kmeans import CoarseLevel

NONE = np.iinfo(np.int64).max  # "no candidate" in a top list (sorts last)
# Recorded stages (--work-dir) name the rule they were computed under: an older record is recomputed.
TIE_RULE = 1
_PAIR_ROWS = 4096  # rows of a float64 gather at a time


def tie_margin(dim: int) -> float:
    """How close two float32 cosines of unit rows in `dim` dimensions must be for the paths to be
    allowed to order them differently: 3e-5, or 16 sqrt(D) float32 ulps for very wide rows."""
    return max(3e-5, 16.0 * math.sqrt(max(1, dim)) * 2.0**-24)


def pair_dots(a: np.ndarray, ia: np.ndarray | None, b: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """float64 a[ia[i]] . b[ib[i]] for every i (float32 rows, summed in float64 in index order). A
    row's result depends on its two rows only, never on the batch around it or its alignment
    (tests/test_ties.py checks it), so every caller of this rule (either path, any chunk) gets the
    same bits for the same pair. 5x faster than an explicit float64 product and sum. `ia` None:
    a's rows in order (no gather)."""
    out = np.empty(len(ib), dtype=np.float64)
    for s in range(0, len(ib), _PAIR_ROWS):
        rows_a = a[s : s + _PAIR_ROWS] if ia is None else a[ia[s : s + _PAIR_ROWS]]
        out[s : s + _PAIR_ROWS] = np.einsum("ij,ij->i", rows_a, b[ib[s : s + _PAIR_ROWS]], dtype=np.float64)
    return out


def settle_top(unit: np.ndarray, cand: np.ndarray, cand_sim: np.ndarray, width: int, mat: np.ndarray, *,
               margin: float, universe: Callable[[int], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `width` best columns of `unit @ mat.T` for every row, as both paths must report them.

    `unit` (n, D) are the host's float32 unit rows, `mat` (K, D) float32 rows (centroids). A path's
    proposal `cand`, `cand_sim` (n, m) holds its best columns, best first (NONE / -inf padding),
    m = width + 1 wherever more than `width` columns exist. A row whose width-th and (width+1)-th
    proposed similarities are within `margin` is re-decided in float64 over `universe(row)` (sorted
    column ids; default all of `mat`), ties to the lower id. Returns (ids (n, w), float64
    similarities (n, w)), w = min(width, m), ordered by similarity, ties to the lower id, every
    similarity recomputed by `pair_dots`."""
    w = min(width, cand.shape[1])
    ids = np.array(cand[:, :w], dtype=np.int64, copy=True)
    if cand.shape[1] > w and w > 0:
        with np.errstate(invalid="ignore"):  # -inf - -inf: padding, never a tie
            near = np.flatnonzero(cand_sim[:, w - 1] - cand_sim[:, w] < margin)
        if len(near) and universe is None:
            full = np.asarray(mat, dtype=np.float64)
            for s in range(0, len(near), _PAIR_ROWS):
                rows = near[s : s + _PAIR_ROWS]
                sims = np.asarray(unit[rows], dtype=np.float64) @ full.T
                ids[rows] = np.argsort(-sims, axis=1, kind="stable")[:, :w]
        else:
            for r in near.tolist():
                cols = universe(r)  # type: ignore[misc]
                sims = np.asarray(mat[cols], dtype=np.float64) @ np.asarray(unit[r], dtype=np.float64)
                best = cols[np.argsort(-sims, kind="stable")[:w]]
                ids[r] = NONE
                ids[r, : len(best)] = best
    sims = np.full(ids.shape, -np.inf, dtype=np.float64)
    for j in range(w):  # a column at a time: the rows are read in order, not gathered
        valid = ids[:, j] != NONE
        if valid.all():
            sims[:, j] = pair_dots(unit, None, mat, ids[:, j])
        else:
            rows = np.flatnonzero(valid)
            sims[rows, j] = pair_dots(unit, rows, mat, ids[rows, j])
    # Similarity descending, ties to the lower id; only the rows out of that order are sorted.
    ahead = (sims[:, 1:] > sims[:, :-1]) | ((sims[:, 1:] == sims[:, :-1]) & (ids[:, 1:] < ids[:, :-1]))
    bad = np.flatnonzero(ahead.any(axis=1))
    if len(bad):
        order = np.lexsort((ids[bad], -sims[bad]), axis=1)
        ids[bad] = np.take_along_axis(ids[bad], order, axis=1)
        sims[bad] = np.take_along_axis(sims[bad], order, axis=1)
    return ids, sims


def settle_probes(unit: np.ndarray, top: np.ndarray, top_sim: np.ndarray,
                  coarse: CoarseLevel) -> tuple[np.ndarray, Callable[[int], np.ndarray]]:
    """Every row's probed coarse cells from a path's proposal (its `probes` + 1 best cells), settled
    by the tie rule, and for each row the fine centroids of those cells (sorted), which a near-tied
    fine choice is re-decided over."""
    probes = min(coarse.probes, len(coarse.centroids))
    probed, _ = settle_top(unit, top, top_sim, probes, coarse.centroids, margin=tie_margin(unit.shape[1]))
    cells = coarse.cells()
    return probed, lambda r: np.sort(np.concatenate([cells[p] for p in probed[r]]))


# Best cosines a kernel reports per row: the best two with their partners settle a two-way near-tie
# (an original and its near-copy seen from a third row, the common case) in float64 on those two;
# the third says whether more rows are within the margin (then the row's whole compared set).
PARTNERS = 3


class Partners(NamedTuple):
    """Per row of a cluster's kernel, its best float32 cosines to earlier compared rows, best first
    (n, PARTNERS; -inf: none), and the positions of the rows behind the first two (n, PARTNERS; -1:
    none or not kept). Positions index the cluster's members followed by its neighbours."""

    values: np.ndarray
    ids: np.ndarray


def no_partners(n: int) -> Partners:
    return Partners(np.full((n, PARTNERS), -np.inf, dtype=np.float32), np.full((n, PARTNERS), -1, dtype=np.int64))


def merge_partners(a: Partners, b: Partners) -> Partners:
    """Two Partners of the same rows over disjoint sets of partners, folded into one (on equal
    values `a`'s first: a tie is settled by `settle_pairs` whichever partner is named)."""
    values = np.concatenate([a.values, b.values], axis=1)
    ids = np.concatenate([a.ids, b.ids], axis=1)
    order = np.argsort(-values, axis=1, kind="stable")[:, :PARTNERS]
    return Partners(np.take_along_axis(values, order, axis=1), np.take_along_axis(ids, order, axis=1))


def settle_pairs(core: np.ndarray, core_rank: np.ndarray, halo: np.ndarray, halo_rank: np.ndarray,
                 top_core: Partners, top_halo: Partners, *, margin: float,
                 block_bytes: int = 64 * 2**20) -> tuple[np.ndarray, np.ndarray]:
    """One cluster's M (members, neighbours) from a kernel's Partners, as both paths must report it:
    the float64 cosine (`pair_dots`, rounded to float32) of every row and its partner. Where the best
    two cosines are within `margin`, the partner is the float64 better of the two (ties: the lower
    position); where the third is within it too, the float64 best of the row's earlier compared rows
    (members: members and neighbours; neighbours: members), ties to the lower position. -1 where a
    row has no earlier compared row."""
    n, h = len(core), len(halo)
    rows = np.concatenate([core, halo]) if h else core
    values = np.concatenate([top_core.values, top_halo.values])
    ids = np.concatenate([top_core.ids, top_halo.ids])
    partner = ids[:, 0].copy()
    with np.errstate(invalid="ignore"):  # -inf - -inf: no partner, never a tie
        two = (partner >= 0) & (values[:, 0] - values[:, 1] < margin)
        many = np.flatnonzero(two & (values[:, 0] - values[:, 2] < margin))
    pair = np.flatnonzero(two)
    if len(pair):
        first = pair_dots(rows, pair, rows, ids[pair, 0])
        second = pair_dots(rows, pair, rows, ids[pair, 1])
        lower = np.minimum(ids[pair, 0], ids[pair, 1])
        partner[pair] = np.where(second > first, ids[pair, 1], np.where(second < first, ids[pair, 0], lower))
    if len(many):
        rank = np.concatenate([core_rank, halo_rank]).astype(np.int64)
        rows64 = np.asarray(rows, dtype=np.float64)
        is_halo = np.arange(n + h) >= n
        step = int(max(1, block_bytes // (8 * (n + h))))
        for s in range(0, len(many), step):
            q = many[s : s + step]
            sims = rows64[q] @ rows64.T
            # Compared: earlier rows only; a neighbour only with members (no neighbour pairs).
            banned = (rank[None, :] >= rank[q, None]) | (is_halo[q, None] & is_halo[None, :])
            sims[banned] = -np.inf
            # The float64 product screens; `pair_dots` decides among the rows within the margin of
            # the best, as it does between two, so a row that one path sends here and the other
            # settles between two gets the same partner.
            r_idx, c_idx = np.nonzero(sims >= sims.max(axis=1, keepdims=True) - margin)
            vals = pair_dots(rows, q[r_idx], rows, c_idx)
            best = np.lexsort((c_idx, -vals, r_idx))
            first = np.ones(len(best), dtype=bool)
            first[1:] = r_idx[best][1:] != r_idx[best][:-1]
            partner[q[r_idx[best][first]]] = c_idx[best][first]
    m = np.full(n + h, -1.0, dtype=np.float32)
    has = np.flatnonzero(partner >= 0)
    m[has] = np.clip(pair_dots(rows, has, rows, partner[has]).astype(np.float32), -1.0, 1.0)
    return m[:n], m[n:]
