"""The dedup stages on a torch device (`--device cuda`): the k-means assignment and SemDeDup's per-
cluster M as torch matrix products, with the numpy path's rules step for step (the same blocks, the
same argmax-with-knockout for the top clusters, ties to the lower index, the same merge order).
These propose; the host decides: each proposal (the best centroids and one more, each row's partner
and runner-up for M) goes through `adaprune.cluster.ties`, the rule the numpy path's proposals go
through too, so on the same embeddings both paths choose the same clusters and the same samples,
near-ties included. Rows are read from the (memory-mapped) array on the host, block by block, and
copied to the device; results come back as numpy arrays.

The same code runs on `device="cpu"`, which is how the tests check it against the numpy path on a
machine without a GPU. torch is imported when a function runs (`adaprune` imports without it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaprune.errors import require

NONE = np.iinfo(np.int64).max  # "no candidate yet" in the merged top lists (sorts last)


def _torch() -> Any:
    torch = require("torch", "torch")
    return torch


def _to(x: np.ndarray, device: str) -> Any:
    torch = _torch()
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def _top(sims: Any, m: int) -> tuple[Any, Any]:
    """Each row's m largest columns, largest first, ties to the lower column (torch.argmax returns
    the first maximum), by repeated argmax with the winner knocked out, as the numpy `_top`."""
    torch = _torch()
    rows = torch.arange(len(sims), device=sims.device)
    cols, vals = [], []
    for r in range(m):
        if r:
            sims[rows, cols[-1]] = -torch.inf
        c = torch.argmax(sims, dim=1)
        cols.append(c)
        vals.append(sims[rows, c])
    return torch.stack(cols, 1), torch.stack(vals, 1)


def top_on_device(unit: np.ndarray, mat_t: np.ndarray, m: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """The m best columns of `unit @ mat_t` per row (ids, float32 similarities), as the numpy `_top`."""
    cols, vals = _top(_to(unit, device) @ _to(mat_t, device), m)
    return cols.cpu().numpy().astype(np.int64), vals.cpu().numpy().astype(np.float32)


def probed_on_device(unit: np.ndarray, centroids_t: np.ndarray, probed: np.ndarray, cells: list[np.ndarray],
                     width: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Every row's `width` best fine centroids among those of its `probed` coarse cells (ids, NONE where
    fewer; float32 similarities, -inf there), merged cell by cell as the numpy `probed_candidates`."""
    torch = _torch()
    block = _to(unit, device)
    cent_t = _to(centroids_t, device)
    probes = probed.shape[1]
    flat = torch.from_numpy(np.ascontiguousarray(probed.reshape(-1))).to(device)
    pair_rows = torch.arange(len(block), device=block.device).repeat_interleave(probes)
    by_cell = torch.argsort(flat, stable=True)
    counts = np.bincount(probed.reshape(-1), minlength=len(cells))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    cand = torch.full((len(block), width), NONE, dtype=torch.int64, device=block.device)
    cand_sim = torch.full((len(block), width), -torch.inf, dtype=torch.float32, device=block.device)
    for j, fine_ids in enumerate(cells):
        if bounds[j + 1] == bounds[j] or len(fine_ids) == 0:
            continue
        rows = pair_rows[by_cell[int(bounds[j]) : int(bounds[j + 1])]]
        fine = torch.from_numpy(np.asarray(fine_ids, dtype=np.int64)).to(block.device)
        local, local_sim = _top(block[rows] @ cent_t[:, fine], min(width, len(fine_ids)))
        ids = torch.cat([cand[rows], fine[local]], dim=1)
        sims = torch.cat([cand_sim[rows], local_sim], dim=1)
        # Similarity descending, ties to the lower id: a stable sort by id, then by -similarity.
        by_id = torch.argsort(ids, dim=1, stable=True)
        ids, sims = torch.gather(ids, 1, by_id), torch.gather(sims, 1, by_id)
        by_sim = torch.argsort(-sims, dim=1, stable=True)[:, :width]
        cand[rows] = torch.gather(ids, 1, by_sim)
        cand_sim[rows] = torch.gather(sims, 1, by_sim)
    return cand.cpu().numpy(), cand_sim.cpu().numpy().astype(np.float32)


def assign_chunk_on_device(unit: np.ndarray, centroids_t: np.ndarray, coarse: Any, width: int,
                           device: str) -> tuple[np.ndarray, np.ndarray, Callable[[int], np.ndarray] | None]:
    """The numpy `assign_candidates` on `device`: every row's `width` best centroids proposed from
    float32 products (flat, or through the probed coarse cells, the probes settled on the host by
    the tie rule), and the candidates a near-tied row is re-decided over (None: all)."""
    from adaprune.cluster.ties import settle_probes

    if coarse is None:
        cand, cand_sim = top_on_device(unit, centroids_t, min(width, centroids_t.shape[1]), device)
        return cand, cand_sim, None
    k1 = len(coarse.centroids)
    probes = min(coarse.probes, k1)
    top, top_sim = top_on_device(unit, np.ascontiguousarray(coarse.centroids.T), min(probes + 1, k1), device)
    probed, universe = settle_probes(unit, top, top_sim, coarse)
    cand, cand_sim = probed_on_device(unit, centroids_t, probed, coarse.cells(), width, device)
    return cand, cand_sim, universe


def _partners(sims: Any) -> tuple[Any, Any]:
    """`semdedup._row_partners` in torch: each row's PARTNERS largest values, largest first, and the
    columns of the first two (first maximum; -1 where none). `sims` is overwritten."""
    from adaprune.cluster.ties import PARTNERS

    torch = _torch()
    n, cols = sims.shape
    values = torch.full((n, PARTNERS), -torch.inf, dtype=torch.float32, device=sims.device)
    ids = torch.full((n, PARTNERS), -1, dtype=torch.int64, device=sims.device)
    rows = torch.arange(n, device=sims.device)
    for r in range(min(PARTNERS, cols)):
        if r == PARTNERS - 1:
            values[:, r] = sims.max(dim=1).values
            break
        col = torch.argmax(sims, dim=1)
        values[:, r] = sims[rows, col]
        ids[:, r] = torch.where(values[:, r] > -torch.inf, col, -1)
        sims[rows, col] = -torch.inf
    return values, ids


def _merge(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """`ties.merge_partners` in torch (disjoint partners; on equal values `a`'s first)."""
    from adaprune.cluster.ties import PARTNERS

    torch = _torch()
    values, ids = torch.cat([a[0], b[0]], dim=1), torch.cat([a[1], b[1]], dim=1)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :PARTNERS]
    return torch.gather(values, 1, order), torch.gather(ids, 1, order)


@dataclass(frozen=True)
class DeviceKernel:
    """`semdedup.cluster_kernel` on a torch device: the same signature and result (one cluster's
    members against earlier members and earlier neighbours, and the neighbours against earlier
    members; with `partners`, each row's best cosines and partners for `ties.settle_pairs`), the
    products and maxima computed there in blocks of at most `block_bytes`."""

    device: str = "cpu"

    def __call__(self, core: np.ndarray, core_rank: np.ndarray, halo: np.ndarray, halo_rank: np.ndarray, *,
                 block_bytes: int = 64 * 2**20, partners: bool = False) -> Any:
        from adaprune.cluster.ties import Partners, no_partners

        torch = _torch()
        dev = self.device
        n, h = len(core), len(halo)
        c_order = np.argsort(core_rank, kind="stable")
        h_order = np.argsort(halo_rank, kind="stable")
        core_s = _to(core[c_order], dev)

        def empty(size: int) -> tuple[Any, Any]:
            none = no_partners(size)
            return torch.from_numpy(none.values).to(dev), torch.from_numpy(none.ids).to(dev)

        # Members against earlier members: row r of the block is compared with columns before it.
        b = int(max(1, min(n, block_bytes // (4 * max(1, n)))))
        cols = torch.arange(n, device=dev)
        parts = []
        for start in range(0, n, b):
            stop = min(n, start + b)
            sims = core_s[start:stop] @ core_s[:stop].T
            sims.masked_fill_(cols[None, :stop] >= cols[start:stop, None], -torch.inf)
            parts.append(_partners(sims))
        t_core = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])) if parts else empty(0)
        # Partners so far are sorted core positions; a halo partner is n + its sorted halo position.
        t_halo = empty(h)
        if h and n:
            halo_s = _to(halo[h_order], dev)
            c_rank = torch.from_numpy(core_rank[c_order].astype(np.int64)).to(dev)
            h_rank = torch.from_numpy(halo_rank[h_order].astype(np.int64)).to(dev)
            bh = int(max(1, min(h, block_bytes // (4 * n))))
            halo_parts = []
            for start in range(0, h, bh):
                stop = min(h, start + bh)
                sims = halo_s[start:stop] @ core_s.T
                core_first = c_rank[None, :] < h_rank[start:stop, None]
                halo_parts.append(_partners(sims.masked_fill(~core_first, -torch.inf)))
                values, ids = _partners(sims.masked_fill(core_first, -torch.inf).T.contiguous())
                t_core = _merge(t_core, (values, torch.where(ids >= 0, ids + n + start, -1)))
            t_halo = (torch.cat([p[0] for p in halo_parts]), torch.cat([p[1] for p in halo_parts]))
        # Back to the callers' order, partners as positions in core followed by halo.
        positions = np.concatenate([c_order, n + h_order]).astype(np.int64)

        def back(top: tuple[Any, Any], order: np.ndarray) -> Partners:
            values, ids = top[0].cpu().numpy(), top[1].cpu().numpy()
            out = no_partners(len(order))
            out.values[order] = values
            out.ids[order] = np.where(ids >= 0, positions[np.maximum(ids, 0)], -1)
            return out

        out_core, out_halo = back(t_core, c_order), back(t_halo, h_order)
        if partners:
            return out_core, out_halo
        return (np.minimum(np.maximum(out_core.values[:, 0], -1.0), 1.0).astype(np.float32),
                np.minimum(np.maximum(out_halo.values[:, 0], -1.0), 1.0).astype(np.float32))
