"""The dedup stages on a torch device (`--device cuda`): the k-means assignment and SemDeDup's per-
cluster M as torch matrix products, with the numpy path's rules step for step (the same blocks, the
same argmax-with-knockout for the top clusters, ties to the lower index, the same merge order), so
on the same embeddings both paths choose the same clusters and the same samples wherever no two
similarities are within float32 rounding of each other. Rows are read from the (memory-mapped)
array on the host, block by block, and copied to the device; results come back as numpy arrays.

The same code runs on `device="cpu"`, which is how the tests check it against the numpy path on a
machine without a GPU. torch is imported when a function runs (`adaprune` imports without it)."""

from __future__ import annotations

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


def _unit(t: Any) -> Any:
    """Unit rows (a zero row stays zero), as `normalize_rows`."""
    norms = t.norm(dim=1, keepdim=True)
    return t / norms.masked_fill(norms == 0, 1.0)


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


def assign_chunk_on_device(block_rows: np.ndarray, centroids_t: np.ndarray, coarse: Any, width: int,
                           device: str) -> tuple[np.ndarray, np.ndarray]:
    """(the `width` nearest centroids, their cosines) of every row of `block_rows`, as the numpy
    `assign_chunk` computes them (flat, or through the probed coarse cells), on `device`."""
    torch = _torch()
    block = _unit(_to(block_rows, device))
    cent_t = _to(centroids_t, device)
    if coarse is None:
        cand, cand_sim = _top(block @ cent_t, min(width, cent_t.shape[1]))
        return cand.cpu().numpy().astype(np.int64), cand_sim.cpu().numpy().astype(np.float32)
    probes = min(coarse.probes, len(coarse.centroids))
    top, _ = _top(block @ _to(coarse.centroids, device).T, probes)
    flat = top.reshape(-1)
    pair_rows = torch.arange(len(block), device=block.device).repeat_interleave(probes)
    by_cell = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=len(coarse.centroids)).cpu().numpy()
    bounds = np.concatenate([[0], np.cumsum(counts)])
    cand = torch.full((len(block), width), NONE, dtype=torch.int64, device=block.device)
    cand_sim = torch.full((len(block), width), -torch.inf, dtype=torch.float32, device=block.device)
    for j, fine_ids in enumerate(coarse.cells()):
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


@dataclass(frozen=True)
class DeviceKernel:
    """`semdedup.cluster_kernel` on a torch device: the same signature and result (one cluster's
    members against earlier members and earlier neighbours, and the neighbours against earlier
    members), the products and maxima computed there in blocks of at most `block_bytes`."""

    device: str = "cpu"

    def __call__(self, core: np.ndarray, core_rank: np.ndarray, halo: np.ndarray, halo_rank: np.ndarray, *,
                 block_bytes: int = 64 * 2**20) -> tuple[np.ndarray, np.ndarray]:
        torch = _torch()
        dev = self.device
        c_order = np.argsort(core_rank, kind="stable")
        core_s = _to(core[c_order], dev)
        n = len(core_s)
        m_core = torch.full((n,), -1.0, dtype=torch.float32, device=dev)
        # Members against earlier members: row r of the block is compared with columns before it.
        b = int(max(1, min(n, block_bytes // (4 * max(1, n)))))
        cols = torch.arange(n, device=dev)
        for start in range(0, n, b):
            stop = min(n, start + b)
            sims = core_s[start:stop] @ core_s[:stop].T
            sims.masked_fill_(cols[None, :stop] >= cols[start:stop, None], -torch.inf)
            m_core[start:stop] = torch.clamp(sims.max(dim=1).values, min=-1.0)
        m_halo = torch.full((len(halo),), -1.0, dtype=torch.float32, device=dev)
        if len(halo) and n:
            h_order = np.argsort(halo_rank, kind="stable")
            halo_s = _to(halo[h_order], dev)
            c_rank = torch.from_numpy(core_rank[c_order].astype(np.int64)).to(dev)
            h_rank = torch.from_numpy(halo_rank[h_order].astype(np.int64)).to(dev)
            bh = int(max(1, min(len(halo), block_bytes // (4 * n))))
            mh = torch.full((len(halo),), -1.0, dtype=torch.float32, device=dev)
            for start in range(0, len(halo), bh):
                stop = min(len(halo), start + bh)
                sims = halo_s[start:stop] @ core_s.T
                core_first = c_rank[None, :] < h_rank[start:stop, None]
                mh[start:stop] = torch.clamp(sims.masked_fill(~core_first, -torch.inf).max(dim=1).values, min=-1.0)
                m_core = torch.maximum(m_core, sims.masked_fill(core_first, -torch.inf).max(dim=0).values)
            m_halo[torch.from_numpy(h_order).to(dev)] = mh
        out_core = np.empty(n, dtype=np.float32)
        out_core[c_order] = torch.clamp(m_core, max=1.0).cpu().numpy()
        return out_core, torch.clamp(m_halo, max=1.0).cpu().numpy()
