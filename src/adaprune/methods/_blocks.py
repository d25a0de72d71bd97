"""The block helpers SemDeDup's stages and its audit (`_causes`) share: clusters grouped into
blocks of about a target number of rows, and a block's unit rows read from the embeddings. A
module of their own so that `semdedup` and `_causes` both import it and neither imports the other."""

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
