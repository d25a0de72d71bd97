"""AdaDeDup (Kang et al. 2025, "AdaDeDup: Adaptive Hybrid Data Pruning for Efficient Large-Scale
Object Detection Training", arXiv 2507.00049).

The paper clusters the data in an embedding space (K clusters), prunes by density inside each
cluster, then lets a proxy model compare its losses on the kept and the pruned samples of each
cluster and adapts each cluster's pruning threshold: more aggressive where the cluster is
redundant, less where pruning removed something the proxy needed (strength beta, with separate
factors alpha_plus and alpha_minus for the two directions). The exact update is not given in the
text we could read; this is *our reading*, with the paper's names. One round:

  1. Density step: SemDeDup at the budget (redundancy M_j, one global threshold); p_c = the
     fraction of cluster c it prunes. `feedback=False` stops here: exactly SemDeDup's selection.
  2. Cross-fitted proxy losses: the kept units are split into `folds` folds (balanced inside every
     cluster); proxy f trains on the kept units outside fold f (never on a pruned one) and returns
     a loss for every sample. Each unit's held-out loss h_u: a kept unit's from the proxy that held
     it out, a pruned unit's the mean over all proxies (every one held it out). The proxy is the
     task's model (`epochs` epochs) or the user's `proxy_losses(train_indices) -> N losses`.
  3. Lock the copies: a pruned unit u whose kept twin t (the most similar kept unit it was
     compared with, SemDeDup's audit trail) is a copy of it by embedding (cosine >= `copy_cosine`,
     0.999) or to the proxy (the same loss under every proxy, max_f |L_f(u) - L_f(t)| <= `lock_tol`
     x the mean held-out loss) adds nothing the twin does not: it stays pruned, and its twin stays
     kept, for the rest of the run. The proxy test alone is not enough: a proxy's loss on a copy
     can differ from its twin's by half (a 3-epoch MLP on digits with 0.01 pixel noise, where
     near-constant pixels are standardised), so the embedding decides near-exact copies. A frame
     that looks alike but holds something new, below `copy_cosine`, is not locked when the
     proxies that trained on its twin still miss it.
     Everything below acts only on the free budget: the budget less the locked samples, over the
     units that are neither locked nor a locked unit's twin.
  4. Probe every cluster, including those density leaves alone: the probe of c is its most
     redundant free units (highest M first, pruned or not), ceil(r x free units of c) of them and at
     least 3, r = the free budget's share of the free samples (the share a uniform rule would take
     from every cluster). d_c = (mean h over the probe of c - centre) / scale, centre = the
     probe-size-weighted mean over clusters, scale = max(centre, 0.1 x the mean held-out loss);
     se_c its standard error. d_c < 0: the cluster's next removals are samples the proxy predicts
     without training on them (redundant, prune more); d_c > 0: they are samples it cannot predict
     (informative, prune less). Comparing levels across clusters, not each cluster against itself,
     is what lets a tight cluster of informative samples give budget to a spread cluster of easy ones.
  5. Shrink (empirical Bayes, positive-part James-Stein): tau^2 = max(0, sum_c d_c^2 / (m - 1) -
     mean se_c^2) over the m clusters with a probe, s_c = d_c tau^2 / (tau^2 + se_c^2). Real
     differences across clusters survive; pure noise (tau^2 near 0) moves little. `shrink=False`
     takes s_c = d_c.
  6. Additive adaptation of each cluster's free rate p_c: p'_c = clip(p_c - beta a_c s_c, 0, p_max),
     a_c = alpha_plus where s_c > 0 (prune less) else alpha_minus. Additive, so a cluster that
     density leaves alone (p_c = 0) can be pruned when its probe is cheap.
  7. One factor f, by bisection, rescales every rate, min(f p'_c, p_max), so the budget is met
     exactly (integer quotas by largest remainder); inside a cluster the most redundant free units
     go first (highest M); a shortfall is removed globally by M among the free units. Groups
     (`Dataset.groups`) are decided whole: quotas count samples and a group that would overshoot
     is skipped.
  8. `rounds` rounds, each from the previous selection (locks accumulate); it stops early when a
     round moves nothing.

Where density is right the feedback moves nothing: on a set whose only redundancy is near-exact
copies, at a budget up to the surplus, every density removal is a copy and locked, so the free
budget is 0 and the selection is SemDeDup's (tests/test_adadedup.py, benchmarks/planted_adadedup.py).

Every SemDeDup option (engine, ray_address, work_dir, nearest_clusters, border_cosine, ...) is an
AdaDeDup option: the constructor's signature is SemDeDup's plus the feedback's. With `work_dir`,
the SemDeDup stages are shared with semdedup runs on the same data and settings, and each proxy's
losses are recorded too, so a killed run resumes after the last finished proxy.

`details` (JSON) records per cluster: size, p_initial, d (the last round's d_c), final_rate, and
each round's probe means, d, se, tau2, s, the rates before, adapted and after, the locked samples
and the samples moved; `plot_cluster_rates` draws them.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaprune.engine import Engine
from adaprune.engine.stages import StageStore
from adaprune.errors import ConfigError, DataError
from adaprune.io_utils import atomic_write
from adaprune.methods.base import MethodResult
from adaprune.methods.semdedup import (
    Redundancy,
    SemDeDup,
    Units,
    attach_twins,
    cluster_summary,
    removal_order,
    remove_units,
)
from adaprune.registry import method_parameters, register_method
from adaprune.tasks import Task

log = logging.getLogger(__name__)

ProxyLosses = Callable[[np.ndarray], np.ndarray]
RELATIVE_FLOOR = 0.1  # the scale of d_c is never below this share of the mean held-out loss
MIN_PROBE = 3  # units in a cluster's probe, at least (fewer free units: the cluster has no d_c)


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
    proxy: ProxyLosses, units: Units, removed: np.ndarray, fold: np.ndarray, n_folds: int, *,
    store: StageStore | None = None, stage: str = "proxy",
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out loss of every unit, and every proxy's loss of every unit (n_folds, n_units).

    `fold` holds the fold of each kept unit (ignored for removed ones). Proxy f trains on the kept
    units outside fold f; a kept unit's held-out loss is proxy f's for its fold, a removed unit's
    the mean over all proxies. With a `store`, each proxy's losses are recorded as `stage`-f and
    reused on a rerun."""
    n = int(units.sizes.sum())
    kept = ~removed
    per_fold = np.zeros((n_folds, units.n_units))
    for f in range(n_folds):
        saved = store.load(f"{stage}-{f}") if store is not None else None
        if saved is not None:
            losses = saved["losses"]
        else:
            losses = np.asarray(proxy(units.samples(kept & (fold != f))), dtype=np.float64)
            if losses.shape != (n,) or not np.isfinite(losses).all():
                raise DataError(f"proxy_losses must return {n} finite per-sample losses, got shape {losses.shape}")
            if store is not None:
                store.save(f"{stage}-{f}", {"losses": losses})
        per_fold[f] = losses if not units.grouped else (
            np.bincount(units.index, weights=losses, minlength=units.n_units) / units.sizes
        )
    held = per_fold.mean(axis=0)
    held[kept] = per_fold[fold[kept], np.flatnonzero(kept)]
    return held, per_fold


def explained_by_twin(per_fold: np.ndarray, removed: np.ndarray, twin: np.ndarray, tol: float) -> np.ndarray:
    """Removed units with a kept twin whose loss is within `tol` of the twin's under every proxy."""
    ok = removed & (twin >= 0)
    idx = np.flatnonzero(ok)
    diff = np.abs(per_fold[:, idx] - per_fold[:, twin[idx]]).max(axis=0) if len(idx) else np.zeros(0)
    out = np.zeros(len(removed), dtype=bool)
    out[idx[diff <= tol]] = True
    return out


def probe_units(order: np.ndarray, cluster: np.ndarray, free: np.ndarray, share: float, k: int) -> np.ndarray:
    """Per cluster, its ceil(share x free units) most redundant free units (at least MIN_PROBE;
    none where the cluster has fewer free units than that). `order` is the removal order."""
    cand = order[free[order]]
    grouped = cand[np.argsort(cluster[cand], kind="stable")]  # by cluster, removal order inside
    counts = np.bincount(cluster[cand], minlength=k)
    probe = np.zeros(len(cluster), dtype=bool)
    start = 0
    for c in range(k):
        size = int(counts[c])
        take = max(MIN_PROBE, math.ceil(share * size - 1e-9))
        if size >= MIN_PROBE:
            probe[grouped[start : start + min(take, size)]] = True
        start += size
    return probe


@dataclass(frozen=True)
class ProbeGaps:
    """Per cluster: the probe's mean held-out loss and unit count, d = (mean - centre) / scale and
    its standard error (0 where the cluster has no probe), and the centre and scale."""

    mean: np.ndarray
    n: np.ndarray
    d: np.ndarray
    se: np.ndarray
    defined: np.ndarray
    centre: float
    scale: float


def probe_gaps(loss: np.ndarray, weight: np.ndarray, cluster: np.ndarray, probe: np.ndarray, k: int, *,
               level: float) -> ProbeGaps:
    """d_c and se_c of the probes (means and variances weighted by `weight`, samples per unit; n
    counts units); `level` is the mean held-out loss that floors the scale."""
    loss = np.asarray(loss, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    c = cluster[probe]
    sw = np.bincount(c, weights=w[probe], minlength=k)
    mean = np.bincount(c, weights=(w * loss)[probe], minlength=k) / np.maximum(sw, 1e-300)
    sq = np.bincount(c, weights=(w * (loss - mean[cluster]) ** 2)[probe], minlength=k)
    n = np.bincount(c, minlength=k)
    var = np.where(n > 1, sq / np.maximum(sw, 1e-300) * n / np.maximum(n - 1, 1), 0.0)
    defined = n >= MIN_PROBE
    if not defined.any():
        zero = np.zeros(k)
        return ProbeGaps(mean, n, zero, zero, defined, 0.0, 1.0)
    centre = float((sw * mean)[defined].sum() / sw[defined].sum())
    scale = max(centre, RELATIVE_FLOOR * level, 1e-12)
    d = np.where(defined, (mean - centre) / scale, 0.0)
    se = np.where(defined, np.sqrt(var / np.maximum(n, 1)) / scale, 0.0)
    return ProbeGaps(mean, n, d, se, defined, centre, scale)


def james_stein(d: np.ndarray, se: np.ndarray, defined: np.ndarray) -> tuple[np.ndarray, float]:
    """Positive-part James-Stein shrinkage of the centred gaps toward 0: s_c = d_c tau^2 / (tau^2 +
    se_c^2), tau^2 = max(0, sum d_c^2 / (m - 1) - mean se_c^2) over the m defined clusters (the
    between-cluster spread beyond the noise). Returns s (0 off `defined`) and tau^2."""
    m = int(defined.sum())
    if m < 2:
        return np.zeros(len(d)), 0.0
    tau2 = max(0.0, float((d[defined] ** 2).sum() / (m - 1) - (se[defined] ** 2).mean()))
    s = np.where(defined, d * tau2 / np.maximum(tau2 + se**2, 1e-300), 0.0)
    return s, tau2


def adapt_rates(p: np.ndarray, s: np.ndarray, *, alpha_plus: float, alpha_minus: float, beta: float,
                p_max: float) -> np.ndarray:
    """p'_c = clip(p_c - beta a_c s_c, 0, p_max), a_c = alpha_plus where s_c > 0 else alpha_minus."""
    a = np.where(s > 0, alpha_plus, alpha_minus)
    return np.clip(p - beta * a * s, 0.0, p_max)


def remove_by_quotas(order: np.ndarray, cluster: np.ndarray, sizes: np.ndarray, free: np.ndarray,
                     quotas: np.ndarray, n_free: int) -> np.ndarray:
    """Free units removed: in each cluster its most redundant free units (in `order`) up to the
    quota (samples), then any shortfall globally in `order` among the free units. A boolean mask."""
    removed = np.zeros(len(sizes), dtype=bool)
    cand = order[free[order]]
    grouped = cand[np.argsort(cluster[cand], kind="stable")]
    bounds = np.cumsum(np.bincount(cluster[cand], minlength=len(quotas)))[:-1]
    for c, members in enumerate(np.split(grouped, bounds)):
        if quotas[c] > 0:
            removed[remove_units(members, sizes, int(quotas[c]))] = True
    short = n_free - int(sizes[removed].sum())
    if short > 0:
        rest = cand[~removed[cand]]
        removed[remove_units(rest, sizes, short)] = True
    return removed


# ---------------------------------------------------------------- the proxy
def task_proxy(task: Task, *, epochs: int, seed: int, progress: bool) -> ProxyLosses:
    """The default proxy: the task's model, freshly seeded for every call (seed, seed + 1, ...),
    trained `epochs` epochs on the given indices; per-sample loss of every training sample (for
    detection the task's per-image loss, normalised by the image's object count)."""
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
SEMDEDUP_PARAMETERS = tuple(method_parameters(SemDeDup))


def _with_semdedup_parameters(init: Callable[..., None]) -> Callable[..., None]:
    """Give AdaDeDup's constructor SemDeDup's keyword parameters followed by its own, as one
    signature (what `params()`, the CLI and the docs read), so no SemDeDup option is listed twice
    or dropped; the `**semdedup` it collects is checked against SemDeDup's names."""
    own = [p for n, p in inspect.signature(init).parameters.items()
           if p.kind is inspect.Parameter.KEYWORD_ONLY]
    sem = list(inspect.signature(SemDeDup.__init__).parameters.values())
    self_param, sem_params = sem[0], [p for p in sem[1:] if p.kind is inspect.Parameter.KEYWORD_ONLY]
    init.__signature__ = inspect.Signature([self_param, *sem_params, *own])  # type: ignore[attr-defined]
    return init


@register_method("adadedup")
class AdaDeDup(SemDeDup):
    """AdaDeDup (Kang et al. 2025): density pruning per cluster, rates adapted by a proxy model's loss.

    Score = M_j, SemDeDup's redundancy (lower = keep); the kept set also follows each cluster's rate.
    Takes every SemDeDup parameter, then:

    Parameters:
        feedback: false: the density step alone (exactly semdedup's selection at this budget)
        epochs: training epochs of the proxy model (each proxy trains on the kept samples outside its fold)
        folds: cross-fitting folds of the kept set: each proxy scores the fold it did not train on
        rounds: most rounds of probe, shrink and adapt (each from the last selection; stops when nothing moves)
        shrink: true: James-Stein shrinkage of the cluster gaps by their estimated spread; false: face value
        alpha_plus: a_c for clusters whose next removals the proxy cannot predict (s_c > 0: prune less)
        alpha_minus: a_c for clusters whose next removals it predicts (s_c <= 0: prune more)
        beta: strength of the additive adaptation p'_c = p_c - beta a_c s_c
        p_max: highest fraction of a cluster's free samples that may be pruned
        lock_tol: a pruned sample whose loss is within lock_tol x the mean held-out loss of its
            kept twin's under every proxy stays pruned (its twin kept)
        copy_cosine: a pruned sample at this cosine or above to its kept twin is a copy: it stays pruned
            (its twin kept) whatever the proxy says (1.0: only exact copies)
        proxy_losses: your proxy: callable(train_indices) -> per-sample losses of all N (default: ours)"""

    higher_is_keep = False
    trains_model = True
    has_threshold = False  # the feedback moves a budget between clusters: it needs one

    @_with_semdedup_parameters
    def __init__(
        self,
        *,
        feedback: bool = True,
        epochs: int = 5,
        folds: int = 3,
        rounds: int = 2,
        shrink: bool = True,
        alpha_plus: float = 1.0,
        alpha_minus: float = 1.0,
        beta: float = 0.5,
        p_max: float = 0.95,
        lock_tol: float = 0.05,
        copy_cosine: float = 0.999,
        proxy_losses: ProxyLosses | None = None,
        **semdedup: Any,
    ) -> None:
        unknown = sorted(set(semdedup) - set(SEMDEDUP_PARAMETERS))
        if unknown:
            raise ConfigError(f"adadedup got unknown parameter(s) {', '.join(unknown)}; it takes semdedup's "
                              f"({', '.join(SEMDEDUP_PARAMETERS)}) and feedback, epochs, folds, rounds, shrink, "
                              "alpha_plus, alpha_minus, beta, p_max, lock_tol, copy_cosine, proxy_losses")
        super().__init__(**semdedup)
        for name, value in (("feedback", feedback), ("shrink", shrink)):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, got {value!r}")
        if epochs < 1 or rounds < 1:
            raise ConfigError(f"epochs and rounds must be at least 1, got {epochs} and {rounds}")
        if folds < 2:
            raise ConfigError(f"folds must be at least 2 (cross-fitting holds one fold out), got {folds}")
        if alpha_plus < 0 or alpha_minus < 0 or beta < 0:
            raise ConfigError(f"alpha_plus, alpha_minus and beta must be >= 0, got {alpha_plus}, {alpha_minus}, {beta}")
        if not 0 < p_max <= 1:
            raise ConfigError(f"p_max must be in (0, 1], got {p_max}")
        if not lock_tol >= 0:
            raise ConfigError(f"lock_tol must be >= 0, got {lock_tol}")
        if not (isinstance(copy_cosine, (int, float)) and -1.0 <= copy_cosine <= 1.0):
            raise ConfigError(f"copy_cosine must be a cosine in [-1, 1], got {copy_cosine!r}")
        if proxy_losses is not None and not callable(proxy_losses):
            raise ConfigError(f"proxy_losses must be a callable(train_indices) -> losses, got {proxy_losses!r}")
        self.feedback = feedback
        self.epochs = epochs
        self.folds = folds
        self.rounds = rounds
        self.shrink = shrink
        self.alpha_plus = alpha_plus
        self.alpha_minus = alpha_minus
        self.beta = beta
        self.p_max = p_max
        self.lock_tol = lock_tol
        self.copy_cosine = copy_cosine
        self.proxy_losses = proxy_losses

    def params(self) -> dict[str, Any]:
        params = super().params()
        fn = params["proxy_losses"]
        if fn is not None:  # metadata is JSON: record the callable by name
            name = getattr(fn, "__qualname__", type(fn).__name__)
            params["proxy_losses"] = f"{getattr(fn, '__module__', '?')}.{name}"
        return params

    def stage_params(self) -> dict[str, Any]:
        """Only SemDeDup's parameters key the SemDeDup stages: a semdedup run's records are reused."""
        return {k: v for k, v in super().stage_params().items() if k in SEMDEDUP_PARAMETERS}

    def run(self, task: Task, n_keep: int, *, seed: int, progress: bool) -> MethodResult:
        single_class = task.labels is not None and len(np.unique(task.labels)) < 2
        if self.feedback and self.proxy_losses is None and single_class:
            raise ConfigError(
                "adadedup trains a proxy classifier and needs labels of at least two classes; "
                f"{task.data.name} has one class (an embeddings source without labels?); use semdedup, "
                "feedback=False or your own proxy_losses"
            )
        engine = self._engine()  # one engine (one Ray start) for M, the twins and the audit trail
        try:
            return self._run(task, n_keep, seed=seed, progress=progress, engine=engine)
        finally:
            engine.close()

    def _run(self, task: Task, n_keep: int, *, seed: int, progress: bool, engine: Engine) -> MethodResult:
        red = self.redundancy(task, seed=seed, progress=progress, engine=engine)
        units, cluster = red.units, red.clustering.assignment
        k = red.clustering.n_clusters
        n_remove = task.n - n_keep
        size_c = np.bincount(cluster, weights=units.sizes, minlength=k).astype(np.int64)
        order = removal_order(red.m)
        removed = np.zeros(units.n_units, dtype=bool)
        removed[remove_units(order, units.sizes, n_remove)] = True  # the density step: SemDeDup's
        p_initial = _rates(removed, units.sizes, cluster, size_c)
        rounds: list[dict[str, Any]] = []
        d_last = np.zeros(k)
        if self.feedback and n_remove > 0:
            proxy = self.proxy_losses or task_proxy(task, epochs=self.epochs, seed=seed + 1, progress=progress)
            store = self._proxy_store(task, seed, n_keep)
            rng = np.random.default_rng(seed)
            locked = np.zeros(units.n_units, dtype=bool)
            protected = np.zeros(units.n_units, dtype=bool)
            for r in range(self.rounds):
                new_removed, info = self._round(red, order, removed, locked, protected, n_remove, proxy, rng,
                                                store=store, stage=f"proxy-round{r}", engine=engine,
                                                progress=progress)
                moved = int(units.sizes[new_removed & ~removed].sum())
                rounds.append({"round": r, **info, "samples_moved": moved})
                d_last = info["d"]
                log.info("adadedup round %d: %d samples locked, %d clusters probed, tau^2 %.3g, %d samples moved",
                         r, info["locked_samples"], info["clusters_defined"], info["tau2"], moved)
                removed = new_removed
                if moved == 0:
                    break
        keep_units = ~removed
        twin, similarity = red.twins(keep_units, block_bytes=self.block_mb * 2**20, progress=progress,
                                     engine=engine)
        details = {
            "reading": "our reading of AdaDeDup (the update is not public); see adaprune.methods.adadedup",
            "feedback": self.feedback,
            "clusters": {
                "size": size_c.tolist(), "p_initial": p_initial.tolist(), "d": np.asarray(d_last).tolist(),
                "final_rate": _rates(removed, units.sizes, cluster, size_c).tolist(),
            },
            "cluster_summary": cluster_summary(size_c),
            "rounds": rounds,
            "backend": red.clustering.backend,
            "units": "groups" if units.grouped else "samples",
        }
        return MethodResult(kept=units.samples(keep_units), scores=units.expand(red.m).astype(np.float64),
                            details=details, twin=twin, similarity=similarity)

    def _round(self, red: Redundancy, order: np.ndarray, removed: np.ndarray, locked: np.ndarray,
               protected: np.ndarray, n_remove: int, proxy: ProxyLosses, rng: np.random.Generator, *,
               store: StageStore | None, stage: str, engine: Engine, progress: bool,
               ) -> tuple[np.ndarray, dict[str, Any]]:
        """One round of probe, shrink and adapt from the selection `removed`; updates `locked` and
        `protected` in place (they only grow). Returns the new removed mask and the round's record."""
        units, cluster = red.units, red.clustering.assignment
        k = red.clustering.n_clusters
        sizes = units.sizes
        twin_units, twin_sim = attach_twins(red.rows, red.clustering, ~removed, block_bytes=self.block_mb * 2**20,
                                            max_border=red.max_border, progress=progress, engine=engine)
        copies = removed & ~locked & (twin_units >= 0) & (np.nan_to_num(twin_sim, nan=-1.0) >= self.copy_cosine)
        locked |= copies
        protected[twin_units[copies]] = True
        n_copies = int(sizes[copies].sum())
        if n_remove - int(sizes[locked].sum()) == 0:  # every removal is a copy: nothing can move, no proxy trains
            return removed, {"locked_samples": int(sizes[locked].sum()), "locked_copies": n_copies,
                             "locked_same_loss": 0, "free_budget": 0, "proxies_trained": 0,
                             "d": np.zeros(k), "s": np.zeros(k), "tau2": 0.0, "clusters_defined": 0,
                             "clusters_moved": 0}
        fold = np.full(units.n_units, -1, dtype=np.int64)
        fold[~removed] = crossfit_folds(cluster[~removed], self.folds, rng)
        held, per_fold = crossfit_unit_losses(proxy, units, removed, fold, self.folds, store=store, stage=stage)
        level = float((sizes * held).sum() / sizes.sum())
        same_loss = explained_by_twin(per_fold, removed & ~locked, twin_units, self.lock_tol * level)
        locked |= same_loss
        protected[twin_units[same_loss]] = True
        free = ~locked & ~protected
        n_free = n_remove - int(sizes[locked].sum())
        size_free = np.bincount(cluster[free], weights=sizes[free], minlength=k).astype(np.int64)
        p = _rates(removed & free, sizes, cluster, size_free)
        share = n_free / max(int(size_free.sum()), 1)
        probe = probe_units(order, cluster, free, share, k)
        gaps = probe_gaps(held, sizes, cluster, probe, k, level=level)
        if self.shrink:
            s, tau2 = james_stein(gaps.d, gaps.se, gaps.defined)
        else:
            s, tau2 = gaps.d, math.nan
        adapted = adapt_rates(p, s, alpha_plus=self.alpha_plus, alpha_minus=self.alpha_minus, beta=self.beta,
                              p_max=self.p_max)
        factor: float | None = None
        if n_free > 0 and (s != 0).any():
            quotas, factor = allocate_quotas(size_free, adapted, n_free, p_max=self.p_max)
            new_removed = locked | remove_by_quotas(order, cluster, sizes, free, quotas, n_free)
        else:  # nothing to move: the current selection stands exactly
            new_removed = removed
        info = {
            "locked_samples": int(sizes[locked].sum()), "locked_copies": n_copies,
            "locked_same_loss": int(sizes[same_loss].sum()), "free_budget": n_free, "proxies_trained": self.folds,
            "probe_share": share,
            "mean_probe": gaps.mean, "n_probe": gaps.n, "centre": gaps.centre, "scale": gaps.scale,
            "d": gaps.d, "se": gaps.se, "tau2": tau2, "s": s, "p_before": p, "p_adapted": adapted,
            "factor": factor, "p_after": _rates(new_removed & free, sizes, cluster, size_free),
            "clusters_defined": int(gaps.defined.sum()), "clusters_moved": int((s != 0).sum()),
        }
        return new_removed, info

    def _proxy_store(self, task: Task, seed: int, n_keep: int) -> StageStore | None:
        """Completion records of the proxies' losses under `work_dir` (a proxy is the expensive part)."""
        if self.work_dir is None or self.proxy_losses is not None:
            return None  # a user's callable has no stable identity to key a record by
        from adaprune.engine.stages import array_fingerprint

        params = {k: v for k, v in self.params().items() if k not in ("engine", "ray_address", "work_dir")}
        labels = task.labels if task.labels is not None else np.zeros(0)
        red = self.redundancy(task, seed=seed, progress=False)  # cached: the rows that were clustered
        key = {"method": "adadedup", "n": task.n, "n_keep": n_keep, "seed": seed, "params": params,
               "rows": array_fingerprint(red.rows), "labels": array_fingerprint(np.asarray(labels)),
               "model": str(getattr(task, "model", "")), "train": repr(getattr(task, "train", ""))}
        return StageStore(Path(self.work_dir) / "adadedup", key)


def _rates(removed: np.ndarray, sizes: np.ndarray, cluster: np.ndarray, size_c: np.ndarray) -> np.ndarray:
    rem = np.bincount(cluster[removed], weights=sizes[removed], minlength=len(size_c))
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
