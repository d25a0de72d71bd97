"""GLISTER one-shot (Killamsetty et al., "GLISTER: Generalization based Data Subset Selection for
Efficient and Robust Learning", AAAI 2021).

1. Carve a validation split from the TRAINING set (seeded, `val_fraction` of every class, at least
   one sample of each class that has two; the test split is never touched) and train a fresh task
   model on the rest for `epochs`.
2. Last-layer gradients in closed form: for cross-entropy, the gradient wrt the last linear layer
   (weights and bias) of sample i is g_i = (p_i - onehot(y_i)) (x) [h_i, 1], with h_i the
   penultimate features (`model.features`) and p_i the softmax of the model's logits. They are
   never materialised: with E = p - onehot (N, C) and H = [h, 1] (N, D+1),
   <g_i, G> = E_i . (G H_i), so memory is O(N (C + D)).
3. g_val = mean of g_v over the validation samples. Greedy: the gain of adding i is <g_i, g_val>
   (the first-order decrease of the validation loss from an SGD step on i). After each pick,
   g_val is moved to its value after that SGD step, to first order with the Hessian taken as the
   identity: g_val <- g_val - eta * g_i. (The reference code recomputes the last-layer validation
   gradient exactly at the moved weights; the identity-Hessian step is this module's stated
   approximation.) Picks are made `greedy_batch` at a time (the top gains of the round), then
   g_val takes all their steps; greedy_batch=1 is the plain greedy. eta=0 is plain top-k by
   alignment. Unlike the exact update, the linear one never saturates: after k picks g_val has
   moved by eta times the sum of k gradients, so at large budgets that term dominates (the greedy
   then balances the picked gradients' sum against g_val / eta); choose eta with that in mind.

With `balance=True` (the default, as in DeepCore) the budget is split over classes in proportion
to their sizes (the shared `stratified_quotas`) and the greedy runs inside each class against that
class's validation gradient (the global one for a class with no validation sample). Without
balance, one greedy runs over all samples, which on easy data can leave classes nearly empty.

Validation samples are candidates too: every one of the N samples may be kept, all scored with the
model trained on the training part. A validation sample's own gradient is part of g_val, so its
gain uses the leave-one-out validation gradient, g_val - g_v / n_val (no self-credit).

Within a class (or over all samples, without balance) the pick order does not depend on the
budget, which only decides where it stops.
The result's scores are the initial gains <g_i, g_val> (higher = better aligned); the kept set is
the greedy's, not the top of those scores.
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from adaprune.errors import ConfigError
from adaprune.methods.base import MethodResult, Selector
from adaprune.params import Boolean, Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.selection import rank_for_keep, stratified_quotas
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.loop import fit


def split_validation(
    labels: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-stratified split of the samples into sorted (train, validation) indices.

    A class of n_c >= 2 samples gives min(n_c - 1, max(1, round(val_fraction * n_c))) to
    validation; a singleton class stays in training."""
    labels = np.asarray(labels)
    val_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_c = len(members)
        n_val = min(n_c - 1, max(1, int(round(val_fraction * n_c)))) if n_c >= 2 else 0
        val_parts.append(rng.permutation(members)[:n_val])
    val = np.sort(np.concatenate(val_parts)).astype(np.int64)
    if len(val) == 0:
        raise ConfigError("no class has two samples: cannot carve a validation split for glister")
    return np.setdiff1d(np.arange(len(labels)), val), val


def last_layer_factors(logits: np.ndarray, feats: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, H): g_i = outer(E_i, H_i) is sample i's cross-entropy gradient wrt the last linear layer
    [W | b]; E = softmax(logits) - onehot(y) (N, C), H = [feats, 1] (N, D+1)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    h = np.hstack([np.asarray(feats, dtype=np.float64).reshape(len(y), -1), np.ones((len(y), 1))])
    return p, h


def glister_greedy(
    err: np.ndarray,
    feats: np.ndarray,
    val_grad: np.ndarray,
    n_keep: int,
    *,
    eta: float,
    greedy_batch: int = 1,
    self_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy gradient matching on factorised per-sample gradients g_i = outer(err_i, feats_i).

    `val_grad` (C, P) is the validation gradient; `self_weight[i]` (default 0) removes
    self_weight[i] * g_i from it when scoring i (leave-one-out). Returns (pick order of length
    n_keep, initial gains). Ties go to the lower index. A plain flat gradient g (N, P) is
    err=g, feats=ones((N, 1)), val_grad=g_val[:, None]."""
    err = np.asarray(err, dtype=np.float64)
    feats = np.asarray(feats, dtype=np.float64)
    g_val = np.array(val_grad, dtype=np.float64)
    n = len(err)
    if err.ndim != 2 or feats.ndim != 2 or len(feats) != n or g_val.shape != (err.shape[1], feats.shape[1]):
        raise ConfigError(
            f"shapes do not match: err {err.shape}, feats {feats.shape}, val_grad {g_val.shape}"
        )
    if not 0 <= n_keep <= n:
        raise ConfigError(f"cannot keep {n_keep} of {n} samples")
    if greedy_batch < 1:
        raise ConfigError(f"greedy_batch must be >= 1, got {greedy_batch}")
    # <g_i, g_i> = |err_i|^2 |feats_i|^2 for an outer product.
    penalty = np.zeros(n)
    if self_weight is not None:
        penalty = np.asarray(self_weight, dtype=np.float64) * (err**2).sum(1) * (feats**2).sum(1)
    # Many small products: one BLAS thread is faster, and far faster on a busy machine.
    with threadpool_limits(1, user_api="blas"):
        return _glister_greedy(err, feats, g_val, n_keep, eta=eta, greedy_batch=greedy_batch, penalty=penalty)


def _glister_greedy(
    err: np.ndarray, feats: np.ndarray, g_val: np.ndarray, n_keep: int, *, eta: float, greedy_batch: int,
    penalty: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(err)

    def gains(rows: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", err[rows] @ g_val, feats[rows]) - penalty[rows]

    initial = gains(np.arange(n))
    available = np.ones(n, dtype=bool)
    order = np.empty(n_keep, dtype=np.int64)
    done = 0
    while done < n_keep:
        rows = np.flatnonzero(available)
        b = min(greedy_batch, n_keep - done)
        current = initial[rows] if done == 0 else gains(rows)
        picks = rows[rank_for_keep(current, higher_is_keep=True)[:b]]
        order[done : done + b] = picks
        done += b
        available[picks] = False
        g_val -= eta * (err[picks].T @ feats[picks])
    return order, initial


@register_method("glister")
class Glister(Selector):
    """GLISTER one-shot (Killamsetty et al., AAAI 2021): greedy last-layer gradient match to a held-out split.

    Owns its keep decision (greedy picks, exactly n_keep). Defaults: val_fraction=0.1 of each class
    of the training set (seeded; validation samples are candidates too, with leave-one-out gains),
    epochs=5 of training on the rest, eta=0.01 (the SGD step of the identity-Hessian Taylor update
    g_val <- g_val - eta * g_i), greedy_batch=16 picks per update, balance=True (class quotas, one
    greedy per class against its class's validation gradient). Scores = initial gains
    <g_i, g_val> (higher = better aligned with the validation gradient).

    Parameters:
        epochs: training epochs on the non-validation part before the greedy search
        val_fraction: fraction of each class held out as the validation split
        eta: SGD step of the Taylor update of the validation gradient
        greedy_batch: samples picked per gradient update
        balance: one greedy search per class with class quotas"""

    trains_model = True

    param_spec = ParamSpec({
        "epochs": Interval(int, 1, None),
        "val_fraction": Interval(float, 0, 1, closed="neither"),
        "eta": Interval(float, 0, None),
        "greedy_batch": Interval(int, 1, None),
        "balance": Boolean(),
    })

    def __init__(
        self,
        *,
        epochs: int = 5,
        val_fraction: float = 0.1,
        eta: float = 0.01,
        greedy_batch: int = 16,
        balance: bool = True,
    ) -> None:
        self.epochs = epochs
        self.val_fraction = val_fraction
        self.eta = eta
        self.greedy_batch = greedy_batch
        self.balance = balance

    def run(self, task: ClassificationTask, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        n, labels = task.data.n, task.data.y
        train_idx, val_idx = split_validation(labels, self.val_fraction, np.random.default_rng([seed, 0x6115]))
        model = task.new_model(seed)
        fit(model, task, seed=seed, indices=torch.from_numpy(train_idx), epochs=self.epochs,
            progress=progress, desc="glister")
        feats = task.features(model)
        logits = task.logits(model).numpy()
        err, h = last_layer_factors(logits, feats, labels)
        is_val = np.zeros(n, dtype=bool)
        is_val[val_idx] = True
        if self.balance:
            classes = np.unique(labels)
            groups = [np.flatnonzero(labels == c) for c in classes]
            quotas = stratified_quotas([len(g) for g in groups], n_keep)
        else:
            groups, quotas = [np.arange(n)], np.array([n_keep])
        kept, scores = [], np.empty(n)
        for members, quota in zip(groups, quotas, strict=True):
            val = members[is_val[members]]
            if len(val) == 0:  # a singleton class: match the global validation gradient
                val = val_idx
            val_grad = err[val].T @ h[val] / len(val)
            self_weight = np.where(is_val[members] & np.isin(members, val), 1.0 / len(val), 0.0)
            order, initial = glister_greedy(
                err[members], h[members], val_grad, int(quota),
                eta=self.eta, greedy_batch=self.greedy_batch, self_weight=self_weight,
            )
            kept.append(members[order])
            scores[members] = initial
        kept_all = np.sort(np.concatenate(kept)).astype(np.int64)
        details = {
            "n_validation": len(val_idx),
            "n_validation_kept": int(is_val[kept_all].sum()),
        }
        return MethodResult(kept=kept_all, scores=scores, details=details)
