"""CG-score (Ki, Choi and Chung, "Data Valuation Without Training of a Model", ICLR 2023).

Training-free. For a binary problem on unit-norm inputs x_1..x_n with labels y in {+1, -1}, the
complexity of the data for a wide two-layer ReLU network is y^T H^-1 y with the arc-cosine kernel

    H_ij = x_i . x_j (pi - arccos(x_i . x_j)) / (2 pi)          (H_ii = 1/2)

and the complexity-gap score of sample i is how much it adds to that complexity:

    CG_i = y^T H^-1 y - y_-i^T (H_-i)^-1 y_-i = (A y)_i^2 / A_ii,   A = H^-1,

the second form from the Schur complement of H, so one inverse gives every leave-one-out value.
Irregular samples (mislabeled, atypical) raise the complexity most and score high; a sample
whose near-duplicates are present scores low. Higher CG-score = keep.

Per class c (as in the paper): the class's samples (+1) and an equal-size uniform draw from all
other classes (-1), repeated `repetitions` times with fresh draws; a sample's score is the mean
over repetitions of its value in its own class's problem. Choices beyond the paper:
  max_block  a class larger than max_block / 2 is split into random chunks of at most
             max_block / 2, each paired with its own other-class draw, so no inverse is larger
             than max_block (the paper inverts one matrix per whole class);
  ridge      H + lambda I is inverted, lambda = ridge * trace(H) / n (= ridge / 2 for unit inputs),
             so duplicated inputs (a singular H) stay finite; the paper inverts H itself;
  scarce     when the other classes together have fewer samples than the chunk, all are used.
Inputs are flattened and scaled to unit L2 norm (an all-zero sample stays zero).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from tqdm.auto import tqdm

from adaprune.errors import ConfigError
from adaprune.methods.base import Scorer
from adaprune.params import Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.tasks.classification import ClassificationTask


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Flatten each sample and scale it to unit L2 norm (float64); all-zero rows stay zero."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return flat / np.where(norms > 0, norms, 1.0)


def arccos_kernel(x: np.ndarray) -> np.ndarray:
    """H_ij = g_ij (pi - arccos g_ij) / (2 pi), g = x x^T, for rows of unit (or zero) norm.

    The diagonal is computed from the exact self inner product (1, or 0 for a zero row), so
    H_ii = 1/2 for a unit row, without the rounding of arccos near 1."""
    x = np.asarray(x, dtype=np.float64)
    g = np.clip(x @ x.T, -1.0, 1.0)
    np.fill_diagonal(g, np.where(np.einsum("ij,ij->i", x, x) > 0.5, 1.0, 0.0))
    return g * (np.pi - np.arccos(g)) / (2 * np.pi)


def complexity_gap_loo(h: np.ndarray, y: np.ndarray, *, ridge: float = 0.0) -> np.ndarray:
    """All leave-one-out complexity gaps y^T K^-1 y - y_-i^T (K_-i)^-1 y_-i, K = h + ridge * I.

    By the Schur complement this is a_i^2 / A_ii with A = K^-1 and a = A y: one inverse, not n."""
    h = np.asarray(h, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if h.shape != (n, n):
        raise ConfigError(f"need an (n, n) kernel for {n} labels, got shape {h.shape}")
    try:
        a_mat = np.linalg.inv(h + ridge * np.eye(n))
    except np.linalg.LinAlgError:
        raise ConfigError(
            f"the {n} x {n} kernel is singular (duplicated samples?); use a ridge > 0, got {ridge:g}"
        ) from None
    a_mat = (a_mat + a_mat.T) / 2
    a = a_mat @ y
    diag = np.maximum(np.diag(a_mat), np.finfo(np.float64).tiny)
    return a**2 / diag


def class_blocks(members: np.ndarray, max_block: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The class's sample indices in random order, split into near-equal chunks of at most max_block // 2."""
    half = max(1, max_block // 2)
    n_chunks = max(1, math.ceil(len(members) / half))
    return np.array_split(rng.permutation(members), n_chunks)


def cg_scores(
    x: np.ndarray,
    y: np.ndarray,
    *,
    repetitions: int = 3,
    max_block: int = 2000,
    ridge: float = 1e-6,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """CG-score of every sample (float64, N): see the module docstring. Randomness only from `seed`."""
    y = np.asarray(y)
    if len(x) != len(y):
        raise ConfigError(f"x has {len(x)} samples but y has {len(y)}")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ConfigError(f"cgscore needs at least two classes (class vs. the rest), got {len(classes)}")
    flat = np.asarray(x).reshape(len(x), -1)
    rng = np.random.default_rng(seed)
    total = np.zeros(len(y))
    steps = tqdm(total=repetitions * len(classes), desc="cgscore", disable=not progress, leave=False)
    for _ in range(repetitions):
        for c in classes:
            others = np.flatnonzero(y != c)
            for chunk in class_blocks(np.flatnonzero(y == c), max_block, rng):
                negatives = rng.choice(others, size=min(len(chunk), len(others)), replace=False)
                idx = np.concatenate([chunk, negatives])
                labels = np.where(np.arange(len(idx)) < len(chunk), 1.0, -1.0)
                h = arccos_kernel(normalize_rows(flat[idx]))
                lam = ridge * float(np.trace(h)) / len(idx)
                total[chunk] += complexity_gap_loo(h, labels, ridge=lam)[: len(chunk)]
            steps.update()
    steps.close()
    return total / repetitions


@register_method("cgscore")
class CGScore(Scorer):
    """CG-score (Ki et al., ICLR 2023, "Data Valuation Without Training of a Model"): training-free; higher = keep.

    Score = complexity gap y^T H^-1 y - y_-i^T H_-i^-1 y_-i (arc-cosine kernel on unit-norm flattened
    inputs) in class-vs-rest problems, mean over `repetitions` (default 3) other-class draws; blocks of
    at most `max_block` (default 2000) samples; ridge lambda = `ridge` (default 1e-6) * mean diag(H).

    Parameters:
        repetitions: other-class draws averaged per sample
        max_block: most samples in one kernel block (memory grows with its square)
        ridge: ridge added to the kernel, times its mean diagonal"""

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): a large complexity gap is a hard (or mislabelled) sample.
    higher_is_hard: ClassVar[bool | None] = True

    def uses_labels(self, data: object) -> bool:
        # Trains no model, but the score is a kernel regression on the labels.
        return True

    param_spec = ParamSpec({"repetitions": Interval(int, 1, None), "max_block": Interval(int, 2, None),
                            "ridge": Interval(float, 0, None)})

    def __init__(self, *, repetitions: int = 3, max_block: int = 2000, ridge: float = 1e-6) -> None:
        self.repetitions = repetitions
        self.max_block = max_block
        self.ridge = ridge

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        return cg_scores(
            task.data.x, task.data.y, repetitions=self.repetitions, max_block=self.max_block,
            ridge=self.ridge, seed=seed, progress=progress,
        )
