"""What an unfinished `embed` run was computing from, so a resumed run reuses only chunks made from
the same input. Every row counts: a row changed anywhere (not only the first or last) makes the
fingerprint differ, and the resumed run starts over instead of keeping stale rows."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

CHUNK_ROWS = 4096


def array_digest(x: np.ndarray, *, chunk_rows: int = CHUNK_ROWS) -> str:
    """A digest of every row of `x` (dtype and shape included), read `chunk_rows` rows at a time so
    a memory-mapped array is never loaded whole; the same for any `chunk_rows`."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{np.dtype(x.dtype).str}|{tuple(x.shape)}|".encode())
    for start in range(0, len(x), chunk_rows):
        digest.update(np.ascontiguousarray(x[start : start + chunk_rows]).tobytes())
    return digest.hexdigest()


def texts_fingerprint(texts: Sequence[str]) -> str:
    """A digest of every text, in order (a text's length is hashed too, so boundaries count)."""
    digest = hashlib.blake2b(digest_size=20)
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()
