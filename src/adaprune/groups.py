"""Groups: samples kept or dropped together (the frames of one scene, the cameras of one frame).

Methods that decide per group themselves (SemDeDup, AdaDeDup) hand back whole groups already;
for every other method `whole_groups` turns its per-sample decision into a per-group one, so no
method splits a group. Never imports torch."""

from __future__ import annotations

import numpy as np


def whole_groups(
    kept: np.ndarray,
    n_keep: int,
    groups: np.ndarray,
    *,
    scores: np.ndarray | None = None,
    higher_is_keep: bool | None = None,
) -> np.ndarray:
    """Sorted indices of whole groups, ranked by the method's own decision and filled to the budget.

    Groups are ranked by the share of their members the method kept (highest first), then by the
    mean score of their members in the method's keep direction, then by their first member; the
    shortest prefix of that ranking holding at least `n_keep` samples is kept (so the realised
    fraction is at or just above the budget; exact when groups are single samples). A decision
    that already keeps whole groups and meets the budget comes back unchanged."""
    groups = np.asarray(groups)
    n = len(groups)
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    size = np.bincount(inverse, minlength=n_groups)
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(kept, dtype=np.int64)] = True
    kept_count = np.bincount(inverse, weights=mask, minlength=n_groups)
    if np.all((kept_count == 0) | (kept_count == size)) and len(kept) >= n_keep:
        return np.sort(np.asarray(kept, dtype=np.int64))
    share = kept_count / size
    mean_score = np.zeros(n_groups)
    if scores is not None and higher_is_keep is not None:
        s = np.asarray(scores, dtype=np.float64)
        s = np.where(np.isnan(s), -np.inf if higher_is_keep else np.inf, s)
        s = np.clip(s, -1e300, 1e300)
        mean_score = np.bincount(inverse, weights=s, minlength=n_groups) / size
        if not higher_is_keep:
            mean_score = -mean_score
    first = np.full(n_groups, n, dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(n))
    order = np.lexsort((first, -mean_score, -share))
    reached = np.cumsum(size[order]) >= n_keep
    stop = int(np.argmax(reached)) + 1 if reached.any() else n_groups
    chosen = np.zeros(n_groups, dtype=bool)
    chosen[order[:stop]] = True
    return np.flatnonzero(chosen[inverse]).astype(np.int64)
