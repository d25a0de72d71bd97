"""AdaDeDup (Kang et al. 2025, "AdaDeDup: Adaptive Hybrid Data Pruning for Efficient Large-Scale
Object Detection Training", arXiv 2507.00049).

The paper clusters the data in an embedding space, prunes by density inside each cluster, then lets a
proxy model decide where that pruning hurt and adapts each cluster's pruning rate. Its exact
adaptation formula is not public; this is *our reading*, with the paper's parameter names:

  1. K clusters (spherical k-means); an initial density prune with SemDeDup's redundancy M_j and one
     global threshold that meets the budget; p_c = the fraction of cluster c pruned.
  2. A proxy model (the task's small model, `epochs` epochs) trained on the kept samples only; then
     the per-sample loss on all samples.
  3. Per cluster, d_c = mean loss of its pruned samples - mean loss of its kept ones (0 when the
     cluster has no pruned or no kept sample); s_c = d_c / a robust scale across clusters (1.4826
     x the median absolute deviation of the defined d_c; the standard deviation if that is 0; never
     below `min_scale` nats, so that when most gaps are ~0 a tiny one is not blown up into a large
     s_c); a_c = alpha_plus if s_c > 0 else alpha_minus;
         p'_c = clip(p_c * (1 - beta * a_c * s_c), 0, p_max).
     Pruned samples the proxy finds hard (d_c > 0) mean pruning hurt there: prune less; easy ones
     (d_c < 0) mean the cluster is redundant: prune more.
  4. One factor f, found by bisection, rescales every rate, min(f p'_c, p_max), so the global
     budget is met exactly (integer quotas by largest remainder); inside a cluster the most
     redundant samples (highest M_j) go first. If the clusters with p'_c > 0 cannot absorb the
     budget at p_max, the rest is removed globally by M_j.
  5. `rounds` > 1 repeats 2-4 with the adapted selection as the new starting point.

`details` (JSON) records per cluster: size, p_initial, d (last round), final_rate, and each round's
d, s, adapted rate and factor; `plot_cluster_rates` draws them. Groups (`Dataset.groups`) are decided
whole, as in SemDeDup: quotas count samples and a group is skipped when it would overshoot.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaprune.errors import ConfigError
from adaprune.io_utils import atomic_write
from adaprune.methods.base import MethodResult
from adaprune.methods.semdedup import (
    Redundancy,
    SemDeDup,
    Units,
    cluster_summary,
    removal_order,
    remove_units,
)
from adaprune.registry import register_method
from adaprune.tasks import Task
from adaprune.training.loop import fit, per_sample_losses

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- budget arithmetic
def allocate_quotas(
    sizes: np.ndarray, rates: np.ndarray, n_remove: int, *, p_max: float = 1.0, tol: float = 1e-9
) -> tuple[np.ndarray, float]:
    """Samples to remove per cluster: quotas close to sizes * min(f * rates, p_max), summing to
    exactly `n_remove`, with the one factor f found by bisection.

    A cluster with rate 0 gets 0 and no quota exceeds floor(p_max * size). When the clusters with a
    positive rate cannot absorb `n_remove` at p_max, every such cluster is at its cap and the
    returned quotas sum to less (the caller removes the rest); f is then inf."""
    sizes = np.asarray(sizes, dtype=np.int64)
    rates = np.clip(np.asarray(rates, dtype=np.float64), 0.0, None)
    if not 0.0 <= p_max <= 1.0:
        raise ConfigError(f"p_max must be in [0, 1], got {p_max}")
    if not 0 <= n_remove <= int(sizes.sum()):
        raise ConfigError(f"cannot remove {n_remove} of {int(sizes.sum())} samples")
    cap = np.where(rates > 0, np.floor(p_max * sizes + 1e-9), 0).astype(np.int64)
    if n_remove == 0:
        return np.zeros_like(sizes), 0.0
    if cap.sum() <= n_remove:
        return cap, math.inf

    def removed(f: float) -> np.ndarray:
        return np.minimum(f * rates * sizes, cap)

    lo, hi = 0.0, 1.0
    while removed(hi).sum() < n_remove:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if removed(mid).sum() >= n_remove:
            hi = mid
        else:
            lo = mid
        if hi - lo <= tol * hi:
            break
    targets = removed(hi)
    quotas = np.minimum(np.floor(targets + 1e-9).astype(np.int64), cap)
    # Largest remainder first (ties: lower cluster index), never above the cap.
    frac = targets - quotas
    order = np.lexsort((np.arange(len(sizes)), -frac))
    while quotas.sum() < n_remove:
        for c in order:
            if quotas.sum() == n_remove:
                break
            if quotas[c] < cap[c]:
                quotas[c] += 1
    while quotas.sum() > n_remove:
        for c in order[::-1]:
            if quotas.sum() == n_remove:
                break
            if quotas[c] > 0:
                quotas[c] -= 1
    return quotas, float(hi)


def robust_scale(values: np.ndarray) -> float:
    """1.4826 x median absolute deviation; the standard deviation if that is 0; 1 if both are."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return 1.0
    mad = 1.4826 * float(np.median(np.abs(v - np.median(v))))
    if mad > 0:
        return mad
    std = float(v.std())
    return std if std > 0 else 1.0


def adapt_rates(
    p: np.ndarray, d: np.ndarray, defined: np.ndarray, *, alpha_plus: float, alpha_minus: float, beta: float,
    p_max: float, min_scale: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Step 3: p'_c = clip(p_c * (1 - beta * a_c * s_c), 0, p_max) with s_c = d_c / robust scale."""
    scale = max(robust_scale(d[defined]), min_scale)
    s = np.where(defined, d / scale, 0.0)
    a = np.where(s > 0, alpha_plus, alpha_minus)
    return np.clip(p * (1.0 - beta * a * s), 0.0, p_max), s, scale


def _cluster_loss_gap(
    loss_units: np.ndarray, sizes: np.ndarray, cluster: np.ndarray, removed: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """d_c = sample-weighted mean loss of removed units - of kept units, and where it is defined."""
    w = sizes.astype(np.float64)
    tot_r = np.bincount(cluster[removed], weights=(loss_units * w)[removed], minlength=k)
    cnt_r = np.bincount(cluster[removed], weights=w[removed], minlength=k)
    tot_k = np.bincount(cluster[~removed], weights=(loss_units * w)[~removed], minlength=k)
    cnt_k = np.bincount(cluster[~removed], weights=w[~removed], minlength=k)
    defined = (cnt_r > 0) & (cnt_k > 0)
    d = np.zeros(k)
    d[defined] = tot_r[defined] / cnt_r[defined] - tot_k[defined] / cnt_k[defined]
    return d, defined


def remove_by_quotas(red: Redundancy, quotas: np.ndarray, n_remove: int) -> np.ndarray:
    """Units removed: in each cluster its most redundant units up to the quota (samples), then any
    shortfall globally by redundancy. Returns a boolean mask over units."""
    units, cluster = red.units, red.clustering.assignment
    order = removal_order(red.m)
    removed = np.zeros(units.n_units, dtype=bool)
    by_cluster = np.argsort(cluster[order], kind="stable")  # removal order, grouped by cluster
    grouped = order[by_cluster]
    bounds = np.cumsum(np.bincount(cluster, minlength=len(quotas)))[:-1]
    for c, cand in enumerate(np.split(grouped, bounds)):
        if quotas[c] > 0:
            removed[remove_units(cand, units.sizes, int(quotas[c]))] = True
    short = n_remove - int(units.sizes[removed].sum())
    if short > 0:
        rest = order[~removed[order]]
        removed[remove_units(rest, units.sizes, short)] = True
    return removed


# ---------------------------------------------------------------- the method
@register_method("adadedup")
class AdaDeDup(SemDeDup):
    """AdaDeDup (Kang et al. 2025): density pruning per cluster, rates adapted by a proxy model's loss.

    Score = M_j, SemDeDup's redundancy (lower = keep); the kept set also follows each cluster's rate."""

    higher_is_keep = False
    trains_model = True

    def __init__(
        self,
        *,
        encoder: str = "auto",
        embeddings: str | None = None,
        n_clusters: int | None = None,
        n_iter: int = 20,
        kmeans_sample: int | None = None,
        order: str = "farthest",
        backend: str = "auto",
        block_mb: int = 64,
        epochs: int = 5,
        rounds: int = 1,
        alpha_plus: float = 1.0,
        alpha_minus: float = 1.0,
        beta: float = 0.5,
        p_max: float = 0.95,
        min_scale: float = 0.05,
    ) -> None:
        super().__init__(
            encoder=encoder, embeddings=embeddings, n_clusters=n_clusters, n_iter=n_iter,
            kmeans_sample=kmeans_sample, order=order, backend=backend, block_mb=block_mb,
        )
        if epochs < 1 or rounds < 1:
            raise ConfigError(f"epochs and rounds must be at least 1, got {epochs} and {rounds}")
        if alpha_plus < 0 or alpha_minus < 0 or beta < 0:
            raise ConfigError("alpha_plus, alpha_minus and beta must be >= 0")
        if not 0 < p_max <= 1:
            raise ConfigError(f"p_max must be in (0, 1], got {p_max}")
        if min_scale < 0:
            raise ConfigError(f"min_scale must be >= 0, got {min_scale}")
        self.epochs = epochs
        self.rounds = rounds
        self.alpha_plus = alpha_plus
        self.alpha_minus = alpha_minus
        self.beta = beta
        self.p_max = p_max
        self.min_scale = min_scale

    def _unit_losses(self, task: Task, units: Units, kept: np.ndarray, *, seed: int,
                     progress: bool) -> np.ndarray:
        """Train the proxy on the kept samples only; mean per-sample loss of every unit."""
        model = task.new_model(seed)
        fit(model, task, seed=seed, indices=torch.from_numpy(kept), epochs=self.epochs,
            progress=progress, desc="adadedup proxy")
        loss = per_sample_losses(model, task)
        if not units.grouped:
            return loss
        assert units.index is not None
        return np.bincount(units.index, weights=loss, minlength=units.n_units) / units.sizes

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        if task.labels is not None and len(np.unique(task.labels)) < 2:
            raise ConfigError(
                "adadedup trains a proxy classifier and needs labels of at least two classes; "
                f"{task.data.name} has one class (an embeddings source without labels?); use semdedup"
            )
        red = self.redundancy(task, seed=seed, progress=progress)
        units, cluster = red.units, red.clustering.assignment
        k = red.clustering.n_clusters
        n = task.n
        n_remove = n - n_keep
        size_c = np.bincount(cluster, weights=units.sizes, minlength=k).astype(np.int64)
        # Step 1: one global threshold on M (SemDeDup at this budget).
        removed = np.zeros(units.n_units, dtype=bool)
        removed[remove_units(removal_order(red.m), units.sizes, n_remove)] = True
        p_initial = self._rates(removed, units, cluster, size_c)
        p = p_initial
        rounds: list[dict[str, Any]] = []
        d = np.zeros(k)
        for r in range(self.rounds):
            kept_samples = units.samples(~removed)
            loss_units = self._unit_losses(task, units, kept_samples, seed=seed + 1 + r, progress=progress)
            d, defined = _cluster_loss_gap(loss_units, units.sizes, cluster, removed, k)
            adapted, s, scale = adapt_rates(p, d, defined, alpha_plus=self.alpha_plus, alpha_minus=self.alpha_minus,
                                            beta=self.beta, p_max=self.p_max, min_scale=self.min_scale)
            quotas, factor = allocate_quotas(size_c, adapted, n_remove, p_max=self.p_max)
            removed = remove_by_quotas(red, quotas, n_remove)
            p_new = self._rates(removed, units, cluster, size_c)
            rounds.append({
                "round": r, "d": d.tolist(), "s": s.tolist(), "scale": scale, "p_before": p.tolist(),
                "p_adapted": adapted.tolist(), "factor": factor, "p_after": p_new.tolist(),
                "clusters_defined": int(defined.sum()),
            })
            log.info("adadedup round %d: factor %.3g, %d clusters with a loss gap, %d rates changed", r, factor,
                     int(defined.sum()), int((np.abs(p_new - p) > 1e-12).sum()))
            p = p_new
        kept = units.samples(~removed)
        details = {
            "reading": "our reading of AdaDeDup (formula not public); see adaprune.methods.adadedup",
            "clusters": {
                "size": size_c.tolist(), "p_initial": p_initial.tolist(), "d": d.tolist(), "final_rate": p.tolist(),
            },
            "cluster_summary": cluster_summary(size_c),
            "rounds": rounds,
            "backend": red.clustering.backend,
            "units": "groups" if units.grouped else "samples",
        }
        return MethodResult(kept=kept, scores=units.expand(red.m).astype(np.float64), details=details)

    @staticmethod
    def _rates(removed: np.ndarray, units: Units, cluster: np.ndarray, size_c: np.ndarray) -> np.ndarray:
        rem = np.bincount(cluster[removed], weights=units.sizes[removed], minlength=len(size_c))
        return np.where(size_c > 0, rem / np.maximum(size_c, 1), 0.0)


def plot_cluster_rates(details: dict[str, Any], path: str | Path) -> Path:
    """A PNG of AdaDeDup's per-cluster decisions from `details` (a Selection's or MethodResult's):
    initial vs final pruning rate (colour: loss gap d_c, area: cluster size), and d_c by cluster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clusters = details["clusters"]
    size = np.asarray(clusters["size"], dtype=float)
    p0 = np.asarray(clusters["p_initial"])
    p1 = np.asarray(clusters["final_rate"])
    d = np.asarray(clusters["d"])

    def draw(tmp: Path) -> None:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
        lim = max(1e-3, float(np.abs(d).max()))
        sc = ax1.scatter(p0, p1, c=d, cmap="coolwarm", vmin=-lim, vmax=lim,
                         s=10 + 90 * size / max(size.max(), 1.0), edgecolors="k", linewidths=0.3)
        top = max(float(p0.max(initial=0)), float(p1.max(initial=0)), 0.05)
        ax1.plot([0, top], [0, top], "--", color="gray", linewidth=1)
        ax1.set_xlabel("initial pruning rate p_c (density only)")
        ax1.set_ylabel("final pruning rate")
        ax1.set_title("per cluster (area: size)")
        fig.colorbar(sc, ax=ax1, label="d_c = loss(pruned) - loss(kept)")
        order = np.argsort(d)
        ax2.bar(np.arange(len(d)), d[order], color=np.where(d[order] > 0, "tab:red", "tab:blue"))
        ax2.axhline(0, color="k", linewidth=0.8)
        ax2.set_xlabel("cluster (sorted by d_c)")
        ax2.set_ylabel("d_c")
        ax2.set_title("proxy loss gap: > 0 prune less, < 0 prune more")
        fig.tight_layout()
        fig.savefig(tmp, format="png")
        plt.close(fig)

    atomic_write(path, draw)
    return Path(path)
