"""AdaDeDup (Kang et al. 2025, "AdaDeDup: Adaptive Hybrid Data Pruning for Efficient Large-Scale
Object Detection Training", arXiv 2507.00049).

The paper clusters the data in an embedding space, prunes by density inside each cluster, then lets a
proxy model compare its losses on the kept and the pruned samples of each cluster and adapts each
cluster's pruning threshold: more aggressive where the cluster is redundant, less where pruning
removed something the proxy needed. Its exact formula is not public; this is *our reading*, with the
paper's parameter names:

  1. K clusters (spherical k-means); the density step is SemDeDup at the budget: redundancy M_j
     and one global threshold; p_c = the fraction of cluster c it prunes. `feedback=False` stops
     here (the selection is then exactly SemDeDup's).
  2. Cross-fitted proxy losses, so both sides of the comparison are losses on samples the proxy did
     not train on: the kept units are split into `folds` folds (stratified by cluster); proxy f
     trains on the kept units outside fold f (never on a pruned one) and scores every sample. A
     kept unit's loss comes from the proxy that held it out; a pruned unit's is the mean over all
     proxies (every one held it out). The proxy is the task's model (`epochs` epochs) or the
     user's `proxy_losses(train_indices) -> per-sample losses of all N`.
  3. Per cluster, the relative gap g_c = (mean loss of pruned - mean loss of kept) / max(the two
     means, floor) in [-1, 1], floor = 0.1 x the mean held-out loss of all kept units, and its
     standard error se_c (of the difference of means, over the same denominator). Pruned samples
     that the kept ones explain (a moved copy whose source was kept) have g_c near -1; pruned
     samples as unknown to the proxy as any held-out one have g_c near 0; harder ones g_c > 0 (near
     1 when the kept ones are easy and the pruned ones are not). Dividing by the cluster's own loss
     level keeps easy and hard clusters on one scale.
  4. Centre and shrink: s_c = soft(g_c - g_bar, z * se_c), g_bar the prune-count-weighted mean of
     the g_c (only differences between clusters can move a fixed budget, and a gap common to all
     clusters is no evidence), soft(x, t) = sign(x) max(|x| - t, 0): a gap within `z` standard
     errors of the centre moves nothing. By default z is Bonferroni's over the K clusters with a
     gap (the normal quantile of 1 - 0.025 / K: 1.96 for one cluster, 3.3 for 60), so that with
     no real difference between clusters the chance that anything moves stays under 5%.
     Clusters with fewer than 2 pruned or 2 kept units get 0.
  5. a_c = alpha_plus if s_c > 0 else alpha_minus;  p'_c = clip(p_c (1 - beta a_c s_c), 0, p_max).
     s_c > 0: pruning removed what the kept samples do not explain -> prune less; s_c < 0: the
     cluster's pruned samples are covered by its kept ones -> prune more. When every s_c is 0 the
     density selection stands unchanged.
  6. One factor f, found by bisection, rescales every rate, min(f p'_c, p_max), so the global
     budget is met exactly (integer quotas by largest remainder); inside a cluster the most
     redundant units (highest M_j) go first, as in the density step. If the clusters with p'_c > 0
     cannot absorb the budget at p_max, the rest is removed globally by M_j.
  7. `rounds` > 1 repeats 2-6 from the adapted selection.

`details` (JSON) records per cluster: size, p_initial, d (the last round's g_c), final_rate, and each
round's gaps, standard errors, centre, s, adapted rate and factor; `plot_cluster_rates` draws them.
Groups (`Dataset.groups`) are decided whole, as in SemDeDup: quotas count samples and a group is
skipped when it would overshoot.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaprune.errors import ConfigError, DataError
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
from adaprune.params import Boolean, CallableValue, Interval
from adaprune.registry import register_method
from adaprune.tasks import Task

log = logging.getLogger(__name__)

ProxyLosses = Callable[[np.ndarray], np.ndarray]
RELATIVE_FLOOR = 0.1  # a cluster's loss scale is never below this share of the overall held-out loss
MIN_UNITS = 2  # per side, for a gap and its standard error


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


# ---------------------------------------------------------------- the feedback, in numpy
def crossfit_folds(cluster: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold in [0, n_folds) for each unit, balanced inside every cluster (random order, then
    round robin from a random start) so that each proxy sees every cluster."""
    cluster = np.asarray(cluster, dtype=np.int64)
    fold = np.empty(len(cluster), dtype=np.int64)
    order = rng.permutation(len(cluster))
    by_cluster = order[np.argsort(cluster[order], kind="stable")]
    counts = np.bincount(cluster, minlength=int(cluster.max(initial=-1)) + 1)
    start = 0
    for size in counts.tolist():
        members = by_cluster[start : start + size]
        fold[members] = (np.arange(size) + int(rng.integers(n_folds))) % n_folds
        start += size
    return fold


def crossfit_unit_losses(
    proxy: ProxyLosses, units: Units, removed: np.ndarray, fold: np.ndarray, n_folds: int
) -> np.ndarray:
    """Held-out loss of every unit. `fold` holds the fold of each kept unit (ignored for removed
    ones). Proxy f trains on the kept units outside fold f; a kept unit gets proxy f's loss for its
    fold, a removed unit the mean over all proxies."""
    n = int(units.sizes.sum())
    kept = ~removed
    out = np.zeros(units.n_units)
    for f in range(n_folds):
        train_units = kept & (fold != f)
        losses = np.asarray(proxy(units.samples(train_units)), dtype=np.float64)
        if losses.shape != (n,) or not np.isfinite(losses).all():
            raise DataError(f"proxy_losses must return {n} finite per-sample losses, got shape {losses.shape}")
        per_unit = losses if not units.grouped else (
            np.bincount(units.index, weights=losses, minlength=units.n_units) / units.sizes
        )
        held = kept & (fold == f)
        out[held] = per_unit[held]
        out[removed] += per_unit[removed] / n_folds
    return out


@dataclass(frozen=True)
class ClusterGaps:
    """Per cluster: the held-out loss means of pruned and kept units, their counts, the relative
    gap g and its standard error (0 and undefined where either side has fewer than 2 units)."""

    mean_pruned: np.ndarray
    mean_kept: np.ndarray
    n_pruned: np.ndarray
    n_kept: np.ndarray
    gap: np.ndarray
    se: np.ndarray
    defined: np.ndarray


def cluster_gaps(loss: np.ndarray, weight: np.ndarray, cluster: np.ndarray, removed: np.ndarray, k: int) -> ClusterGaps:
    """g_c = (mean_pruned - mean_kept) / max(mean_pruned, mean_kept, floor), in [-1, 1], with floor =
    RELATIVE_FLOOR x the overall mean kept loss; se_c = sqrt(v_p / n_p + v_k / n_k) over the same denominator.
    Means and variances are weighted by `weight` (samples per unit); n counts units."""
    loss = np.asarray(loss, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)

    def side(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = cluster[mask]
        sw = np.bincount(c, weights=w[mask], minlength=k)
        mean = np.bincount(c, weights=(w * loss)[mask], minlength=k) / np.maximum(sw, 1e-300)
        sq = np.bincount(c, weights=(w * (loss - mean[cluster]) ** 2)[mask], minlength=k)
        count = np.bincount(c, minlength=k)
        var = np.where(count > 1, sq / np.maximum(sw, 1e-300) * count / np.maximum(count - 1, 1), 0.0)
        return mean, var, count

    mp, vp, np_ = side(removed)
    mk, vk, nk = side(~removed)
    defined = (np_ >= MIN_UNITS) & (nk >= MIN_UNITS)
    kept_w = w[~removed]
    overall = float((kept_w * loss[~removed]).sum() / kept_w.sum()) if kept_w.sum() > 0 else 0.0
    scale = np.maximum(np.maximum(mk, mp), max(RELATIVE_FLOOR * overall, 1e-12))
    gap = np.where(defined, (mp - mk) / scale, 0.0)
    se = np.where(defined, np.sqrt(vp / np.maximum(np_, 1) + vk / np.maximum(nk, 1)) / scale, 0.0)
    return ClusterGaps(mp, mk, np_, nk, gap, se, defined)


def shrunk_signal(gap: np.ndarray, se: np.ndarray, defined: np.ndarray, n_pruned: np.ndarray, *,
                  z: float) -> tuple[np.ndarray, float]:
    """s_c = soft(g_c - g_bar, z se_c) on defined clusters (0 elsewhere), g_bar the mean of the
    defined g_c weighted by pruned count. Returns s and g_bar."""
    weight = np.where(defined, n_pruned, 0).astype(np.float64)
    if weight.sum() == 0:
        return np.zeros(len(gap)), 0.0
    centre = float((weight * gap).sum() / weight.sum())
    x = gap - centre
    s = np.sign(x) * np.maximum(np.abs(x) - z * se, 0.0)
    return np.where(defined, s, 0.0), centre


def bonferroni_z(n_clusters: int, *, level: float = 0.05) -> float:
    """The two-sided normal quantile that keeps the chance of any of `n_clusters` null gaps
    passing below `level` (Bonferroni): 1.96 for one cluster, 3.3 for 60."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - level / (2 * max(n_clusters, 1)))


def adapt_rates(p: np.ndarray, s: np.ndarray, *, alpha_plus: float, alpha_minus: float, beta: float,
                p_max: float) -> np.ndarray:
    """p'_c = clip(p_c (1 - beta a_c s_c), 0, p_max), a_c = alpha_plus where s_c > 0 else alpha_minus."""
    a = np.where(s > 0, alpha_plus, alpha_minus)
    return np.clip(p * (1.0 - beta * a * s), 0.0, p_max)


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


# ---------------------------------------------------------------- the proxy
def task_proxy(task: Task, *, epochs: int, seed: int, progress: bool) -> ProxyLosses:
    """The default proxy: the task's model, freshly seeded for every call (seed, seed + 1, ...),
    trained `epochs` epochs on the given indices; per-sample loss of every training sample."""
    from adaprune.training.loop import fit, per_sample_losses

    calls = [0]

    def proxy(indices: np.ndarray) -> np.ndarray:
        model_seed = seed + calls[0]
        calls[0] += 1
        model = task.new_model(model_seed)
        fit(model, task, seed=model_seed, indices=torch.from_numpy(np.asarray(indices, dtype=np.int64)),
            epochs=epochs, progress=progress, desc="adadedup proxy")
        return np.asarray(per_sample_losses(model, task), dtype=np.float64)

    return proxy


# ---------------------------------------------------------------- the method
@register_method("adadedup")
class AdaDeDup(SemDeDup):
    """AdaDeDup (Kang et al. 2025): density pruning per cluster, rates adapted by a proxy model's loss.

    Score = M_j, SemDeDup's redundancy (lower = keep); the kept set also follows each cluster's rate."""

    higher_is_keep = False
    trains_model = True
    has_threshold = False  # the feedback moves a budget between clusters: it needs one
    param_spec = SemDeDup.param_spec.extend({
        "feedback": Boolean(),
        "epochs": Interval(int, 1, None),
        "folds": Interval(int, 2, None),  # cross-fitting holds one fold out
        "rounds": Interval(int, 1, None),
        "z": [Interval(float, 0, None), None],  # None: Bonferroni over the clusters
        "alpha_plus": Interval(float, 0, None),
        "alpha_minus": Interval(float, 0, None),
        "beta": Interval(float, 0, None),
        "p_max": Interval(float, 0, 1, closed="right"),
        "proxy_losses": [CallableValue("a callable(train_indices) -> losses"), None],
    })

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
        feedback: bool = True,
        epochs: int = 5,
        folds: int = 3,
        rounds: int = 1,
        z: float | None = None,
        alpha_plus: float = 1.0,
        alpha_minus: float = 1.0,
        beta: float = 0.5,
        p_max: float = 0.95,
        proxy_losses: ProxyLosses | None = None,
    ) -> None:
        super().__init__(
            encoder=encoder, embeddings=embeddings, n_clusters=n_clusters, n_iter=n_iter,
            kmeans_sample=kmeans_sample, order=order, backend=backend, block_mb=block_mb,
        )
        self.feedback = feedback
        self.epochs = epochs
        self.folds = folds
        self.rounds = rounds
        self.z = z
        self.alpha_plus = alpha_plus
        self.alpha_minus = alpha_minus
        self.beta = beta
        self.p_max = p_max
        self.proxy_losses = proxy_losses

    def params(self) -> dict[str, Any]:
        params = super().params()
        fn = params["proxy_losses"]
        if fn is not None:  # metadata is JSON: record the callable by name
            name = getattr(fn, "__qualname__", type(fn).__name__)
            params["proxy_losses"] = f"{getattr(fn, '__module__', '?')}.{name}"
        return params

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        single_class = task.labels is not None and len(np.unique(task.labels)) < 2
        if self.feedback and self.proxy_losses is None and single_class:
            raise ConfigError(
                "adadedup trains a proxy classifier and needs labels of at least two classes; "
                f"{task.data.name} has one class (an embeddings source without labels?); use semdedup, "
                "feedback=False or your own proxy_losses"
            )
        red = self.redundancy(task, seed=seed, progress=progress)
        units, cluster = red.units, red.clustering.assignment
        k = red.clustering.n_clusters
        n_remove = task.n - n_keep
        size_c = np.bincount(cluster, weights=units.sizes, minlength=k).astype(np.int64)
        # The density step: one global threshold on M (SemDeDup at this budget).
        removed = np.zeros(units.n_units, dtype=bool)
        removed[remove_units(removal_order(red.m), units.sizes, n_remove)] = True
        p_initial = self._rates(removed, units, cluster, size_c)
        p = p_initial
        rounds: list[dict[str, Any]] = []
        gap = np.zeros(k)
        if self.feedback and n_remove > 0:
            proxy = self.proxy_losses or task_proxy(task, epochs=self.epochs, seed=seed + 1, progress=progress)
            rng = np.random.default_rng(seed)
            for r in range(self.rounds):
                fold = crossfit_folds(cluster, self.folds, rng)
                loss = crossfit_unit_losses(proxy, units, removed, fold, self.folds)
                gaps = cluster_gaps(loss, units.sizes, cluster, removed, k)
                z = self.z if self.z is not None else bonferroni_z(int(gaps.defined.sum()))
                s, centre = shrunk_signal(gaps.gap, gaps.se, gaps.defined, gaps.n_pruned, z=z)
                gap = gaps.gap
                adapted = adapt_rates(p, s, alpha_plus=self.alpha_plus, alpha_minus=self.alpha_minus,
                                      beta=self.beta, p_max=self.p_max)
                factor: float | None = None
                if (s != 0).any():  # otherwise the current selection stands exactly
                    quotas, factor = allocate_quotas(size_c, adapted, n_remove, p_max=self.p_max)
                    new_removed = remove_by_quotas(red, quotas, n_remove)
                else:
                    new_removed = removed
                p_new = self._rates(new_removed, units, cluster, size_c)
                moved = int(units.sizes[new_removed & ~removed].sum())
                rounds.append({
                    "round": r, "mean_pruned": gaps.mean_pruned, "mean_kept": gaps.mean_kept,
                    "n_pruned": gaps.n_pruned, "n_kept": gaps.n_kept, "gap": gaps.gap, "se": gaps.se,
                    "centre": centre, "z": z, "s": s, "p_before": p, "p_adapted": adapted, "factor": factor,
                    "p_after": p_new, "clusters_defined": int(gaps.defined.sum()),
                    "clusters_moved": int((s != 0).sum()), "samples_moved": moved,
                })
                log.info("adadedup round %d: %d of %d clusters with a gap clear of its noise, %d samples moved",
                         r, int((s != 0).sum()), int(gaps.defined.sum()), moved)
                removed, p = new_removed, p_new
                if moved == 0:
                    break
        kept = units.samples(~removed)
        twin, similarity = red.twins(~removed, block_bytes=self.block_mb * 2**20, progress=progress)
        details = {
            "reading": "our reading of AdaDeDup (formula not public); see adaprune.methods.adadedup",
            "feedback": self.feedback,
            "clusters": {
                "size": size_c.tolist(), "p_initial": p_initial.tolist(), "d": gap.tolist(), "final_rate": p.tolist(),
            },
            "cluster_summary": cluster_summary(size_c),
            "rounds": rounds,
            "backend": red.clustering.backend,
            "units": "groups" if units.grouped else "samples",
        }
        return MethodResult(kept=kept, scores=units.expand(red.m).astype(np.float64), details=details,
                            twin=twin, similarity=similarity)

    @staticmethod
    def _rates(removed: np.ndarray, units: Units, cluster: np.ndarray, size_c: np.ndarray) -> np.ndarray:
        rem = np.bincount(cluster[removed], weights=units.sizes[removed], minlength=len(size_c))
        return np.where(size_c > 0, rem / np.maximum(size_c, 1), 0.0)


def plot_cluster_rates(details: dict[str, Any], path: str | Path) -> Path:
    """A PNG of AdaDeDup's per-cluster decisions from `details` (a Selection's or MethodResult's):
    initial vs final pruning rate (colour: the relative loss gap, area: cluster size), and d_c by cluster."""
    # A Figure without pyplot: no global backend switch (a notebook keeps its inline figures).
    from matplotlib.figure import Figure

    clusters = details["clusters"]
    size = np.asarray(clusters["size"], dtype=float)
    p0 = np.asarray(clusters["p_initial"])
    p1 = np.asarray(clusters["final_rate"])
    d = np.asarray(clusters["d"])

    def draw(tmp: Path) -> None:
        fig = Figure(figsize=(10, 4), dpi=120)
        ax1, ax2 = fig.subplots(1, 2)
        lim = max(1e-3, float(np.abs(d).max()))
        sc = ax1.scatter(p0, p1, c=d, cmap="coolwarm", vmin=-lim, vmax=lim,
                         s=10 + 90 * size / max(size.max(), 1.0), edgecolors="k", linewidths=0.3)
        top = max(float(p0.max(initial=0)), float(p1.max(initial=0)), 0.05)
        ax1.plot([0, top], [0, top], "--", color="gray", linewidth=1)
        ax1.set_xlabel("initial pruning rate p_c (density only)")
        ax1.set_ylabel("final pruning rate")
        ax1.set_title("per cluster (area: size)")
        fig.colorbar(sc, ax=ax1, label="d_c: relative held-out loss gap (pruned vs kept)")
        order = np.argsort(d)
        ax2.bar(np.arange(len(d)), d[order], color=np.where(d[order] > 0, "tab:red", "tab:blue"))
        ax2.axhline(0, color="k", linewidth=0.8)
        ax2.set_xlabel("cluster (sorted by d_c)")
        ax2.set_ylabel("d_c")
        ax2.set_title("proxy loss gap: > 0 prune less, < 0 prune more")
        fig.tight_layout()
        fig.savefig(tmp, format="png")

    atomic_write(path, draw)
    return Path(path)
