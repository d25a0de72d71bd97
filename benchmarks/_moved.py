"""Moved near-copies of real images, as consecutive frames make them: a shift of 1-2 pixels, a small
rotation, a change of light, sensor noise. Used by the encoder and dedup benchmarks; drawn with
scipy.ndimage and numpy, independently of the contrastive encoder's own torch augmentations."""

from __future__ import annotations

import numpy as np


def move(image: np.ndarray, rng: np.random.Generator, *, max_shift: int = 1, max_degrees: float = 10.0,
         light: float = 0.15, noise: float = 0.04) -> np.ndarray:
    """One moved copy of an (H, W) image with values in [0, 1]."""
    from scipy import ndimage

    out = ndimage.rotate(image, float(rng.uniform(-max_degrees, max_degrees)), reshape=False, order=1, mode="constant")
    shift = rng.integers(-max_shift, max_shift + 1, size=2)
    out = ndimage.shift(out, shift.astype(float), order=0, mode="constant")
    out = out * rng.uniform(1 - light, 1 + light) + rng.uniform(-light / 2, light / 2)
    return np.clip(out + noise * rng.standard_normal(out.shape), 0.0, 1.0)


# Two kinds of moved copies. "frames": what the issue describes for consecutive frames, a shift by a
# pixel or two, a change of light, sensor noise, on digits upsampled to 16 x 16. "rotated": harder,
# the 8 x 8 digits as they are, a shift of up to one pixel (an eighth of the frame) plus a rotation of
# up to 10 degrees.
KINDS = {
    "frames": {"side": 16, "max_shift": 2, "max_degrees": 0.0},
    "rotated": {"side": 8, "max_shift": 1, "max_degrees": 10.0},
}


def digits_with_moved_copies(n_copies: int, seed: int, *, side: int = 16, max_shift: int = 1,
                             max_degrees: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's 1,797 real 8 x 8 digits, upsampled to `side` x `side` (bilinear; 8 keeps them as
    they are) and scaled to [0, 1], shape (N, 1, side, side), plus `n_copies` moved copies of
    originals drawn at random (`move` with `max_shift` and `max_degrees`). Returns x, y and the group
    (= source original) of every row."""
    from scipy import ndimage
    from sklearn.datasets import load_digits

    digits = load_digits()
    x0 = (digits.images / 16.0).astype(np.float32)
    if side != 8:
        x0 = np.clip(np.stack([ndimage.zoom(im, side / 8, order=1) for im in x0]), 0, 1).astype(np.float32)
    y0 = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(x0), n_copies)
    copies = (np.stack([move(x0[s], rng, max_shift=max_shift, max_degrees=max_degrees) for s in source])
              .astype(np.float32) if n_copies else x0[:0])
    x = np.concatenate([x0, copies])[:, None]
    return x, np.concatenate([y0, y0[source]]), np.concatenate([np.arange(len(x0)), source])


def surplus_quality(kept: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """At a budget of exactly the surplus, the share of the surplus resolved (1 - extra kept
    members / surplus) and the share of groups lost (no member kept)."""
    n_groups = len(np.unique(group))
    surplus = len(group) - n_groups
    kept_per_group = np.bincount(np.unique(group, return_inverse=True)[1][kept], minlength=n_groups)
    extra = int(np.maximum(kept_per_group - 1, 0).sum())
    return {"resolved": 1 - extra / surplus if surplus else 1.0, "groups_lost": float((kept_per_group == 0).mean())}


def nearest_is_own_group(emb: np.ndarray, group: np.ndarray, rows: np.ndarray) -> float:
    """Share of `rows` whose cosine nearest neighbour (among all other rows) is of their own group."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    hits = 0
    for start in range(0, len(rows), 1024):
        r = rows[start : start + 1024]
        sims = e[r] @ e.T
        sims[np.arange(len(r)), r] = -np.inf
        hits += int((group[sims.argmax(1)] == group[r]).sum())
    return hits / max(len(rows), 1)
