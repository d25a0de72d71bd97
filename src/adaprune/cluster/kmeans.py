"""Spherical k-means (cosine geometry) that scales to memory-mapped embeddings.

The centroids are trained on a seeded random sample of the rows; every row is then assigned to
its nearest centroid in chunks read from the (possibly memory-mapped) array, so the full array is
never copied or normalised in memory. Both backends start from the same initial centroids (a
seeded draw of sample rows) and run spherical Lloyd iterations (centroids renormalised every
step): faiss with `spherical=True`, or the same iterations in numpy ("sklearn": scikit-learn
seeds). Initial centroids come from scikit-learn's k-means++ on a seeded sub-sample, and the
final assignment is the same exact chunked matrix product for both, so on well-separated data
the two backends reach the same partition.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from adaprune.cluster.ties import settle_probes, settle_top, tie_margin
from adaprune.engine import Engine, LocalEngine, Shared
from adaprune.errors import ConfigError, DataError, MissingDependencyError, require

T = TypeVar("T")

log = logging.getLogger(__name__)

BACKENDS = ("auto", "faiss", "sklearn")
# Rows of a chunk during assignment: bounded so chunk x K similarities stay small.
_ASSIGN_BYTES = 64 * 2**20
_ASSIGN_ROWS = 65_536
# The default K keeps clusters at about sqrt(N) rows up to this size, then at this size.
MAX_MEAN_CLUSTER = 1000
# From this many clusters on, centroids are trained and rows assigned through a coarse level of
# round(sqrt(K)) centroids (an inverted index): each row is compared with the coarse centroids,
# then only with the fine centroids of its COARSE_PROBES nearest coarse cells, so the cost per
# row is (sqrt(K) + probes x sqrt(K)) D instead of K D.
TWO_LEVEL_MIN_K = 512
COARSE_PROBES = 3


@dataclass(frozen=True)
class CoarseLevel:
    """An inverted index over the centroids: round(sqrt(K)) coarse unit centroids, and the coarse
    cell each fine centroid belongs to."""

    centroids: np.ndarray  # (K1, D) unit rows
    owner: np.ndarray  # (K,) coarse cell of every fine centroid
    probes: int = COARSE_PROBES

    def cells(self) -> list[np.ndarray]:
        order = np.argsort(self.owner, kind="stable")
        return np.split(order, np.cumsum(np.bincount(self.owner, minlength=len(self.centroids)))[:-1])


@dataclass(frozen=True)
class Clustering:
    """A partition of N rows into K clusters in cosine geometry.

    `centroids` are unit vectors (K, D); `assignment[i]` is row i's cluster; `distance[i]` is its
    cosine distance 1 - cos(x_i, centroid) to that cluster's centroid. `next_nearest[i]` (when asked
    for with `nearest` > 1) holds row i's next-nearest clusters, nearest first: (N, nearest - 1), -1
    where there are fewer clusters; `next_distance[i]` the cosine distances to them. `split` counts
    the oversized clusters `split_oversized` has replaced by parts."""

    centroids: np.ndarray
    assignment: np.ndarray
    distance: np.ndarray
    backend: str
    seed: int
    n_iter: int
    sample_size: int
    coarse: CoarseLevel | None = None
    next_nearest: np.ndarray | None = None
    next_distance: np.ndarray | None = None
    split: int = 0  # clusters split into parts afterwards (`adaprune.cluster.split`)
    # Derived per-row arrays, computed once: M, the twins and the causes each read the members and
    # neighbours (at 10^7 rows every recomputation costs seconds). Not copied by `replace`.
    _derived: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        """`compute()` the first time `key` is asked for, the stored value afterwards (the arrays a
        clustering derives never change: the clustering is frozen)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def forget_derived(self) -> None:
        """Drop the cached derived arrays (they are recomputed when asked for again)."""
        self._derived.clear()

    @property
    def n_clusters(self) -> int:
        return len(self.centroids)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.assignment, minlength=self.n_clusters)

    def members(self) -> list[np.ndarray]:
        """Row indices of every cluster (sorted), computed in one pass."""

        def compute() -> list[np.ndarray]:
            order = np.argsort(self.assignment, kind="stable")
            return np.split(order, np.cumsum(self.sizes())[:-1])

        return self.cached("members", compute)

    def border_distance(self) -> np.ndarray:
        """(N, nearest - 1): each row's Euclidean distance (unit rows) to the hyperplane that bisects
        its own centroid and each next-nearest one. A pair of rows split between those two clusters
        is at least this far apart, so a pair at cosine s straddles the border only when both of its
        rows lie within sqrt(2 - 2 s) of it."""
        return self.cached("border_distance", self._border_distance)

    def _border_distance(self) -> np.ndarray:
        assert self.next_nearest is not None and self.next_distance is not None
        valid = self.next_nearest >= 0
        gap = self.next_distance - self.distance[:, None]  # cos(own) - cos(next) >= 0
        # Unit centroids: |c_a - c_b| = sqrt(2 - 2 c_a . c_b). The products are taken once per
        # distinct (own, next) pair of clusters, of which there are far fewer than rows (a K x K Gram
        # matrix would not fit at K = N / 1000 for large N; a product per row reads N x D floats).
        own, other = self.assignment, np.maximum(self.next_nearest, 0)
        k = np.int64(max(1, self.n_clusters))
        pair_key = own[:, None].astype(np.int64) * k + other
        keys, inverse = np.unique(pair_key.reshape(-1), return_inverse=True)
        dots = np.empty(len(keys), dtype=np.float32)
        chunk = max(1, _ASSIGN_BYTES // (4 * max(1, self.centroids.shape[1])))
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            dots[start : start + len(part)] = np.einsum("ij,ij->i", self.centroids[part // k],
                                                        self.centroids[part % k])
        dots = dots[inverse.reshape(-1)].reshape(other.shape)
        apart = np.sqrt(np.maximum(2.0 - 2.0 * dots, 0.0))
        out = np.where(apart > 0, gap / np.maximum(apart, 1e-12), 0.0).astype(np.float32)
        return np.where(valid, out, np.inf).astype(np.float32)

    def neighbour_members(self, max_border: float = math.inf) -> list[np.ndarray]:
        """Row indices (sorted) of every cluster's neighbours: the rows that have it among their
        next-nearest clusters (never its own members) and lie within `max_border` of the border
        between it and their own cluster (`border_distance`). Empty lists without `next_nearest`."""
        return self.cached(("neighbour_members", float(max_border)), lambda: self._neighbour_members(max_border))

    def _neighbour_members(self, max_border: float) -> list[np.ndarray]:
        k = self.n_clusters
        if self.next_nearest is None or self.next_nearest.size == 0:
            return [np.empty(0, dtype=np.int64) for _ in range(k)]
        rows = np.repeat(np.arange(len(self.next_nearest), dtype=np.int64), self.next_nearest.shape[1])
        clusters = self.next_nearest.reshape(-1)
        valid = clusters >= 0
        if math.isfinite(max_border):
            valid &= self.border_distance().reshape(-1) <= max_border
        rows, clusters = rows[valid], clusters[valid]
        order = np.argsort(clusters, kind="stable")  # stable: rows stay sorted inside a cluster
        bounds = np.cumsum(np.bincount(clusters, minlength=k))[:-1]
        return np.split(rows[order], bounds)


def _faiss():
    """faiss, imported lazily (install hint when absent); its loader's INFO chatter is silenced."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    return require("faiss", "faiss")


def have_faiss() -> bool:
    try:
        _faiss()
    except MissingDependencyError:
        return False
    return True


def default_n_clusters(n: int) -> int:
    """round(sqrt(N)) up to a million rows, then ceil(N / 1000), at least 1: clusters of about
    sqrt(N) rows, but never more than about MAX_MEAN_CLUSTER on average, so the per-cluster dedup
    (cluster size x N x D) grows linearly in N beyond a million rows instead of as N^1.5."""
    if n <= MAX_MEAN_CLUSTER**2:
        return max(1, min(n, int(round(math.sqrt(n)))))
    return min(n, math.ceil(n / MAX_MEAN_CLUSTER))


def row_norms(x: np.ndarray, *, chunk_rows: int = 65536) -> np.ndarray:
    """L2 norm of every row, read chunk by chunk (float32 out)."""
    out = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), chunk_rows):
        block = np.asarray(x[start : start + chunk_rows], dtype=np.float32).reshape(-1, x.shape[1])
        out[start : start + len(block)] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """A float32 copy of `x` with unit rows (a zero row stays zero)."""
    x = np.array(x, dtype=np.float32, copy=True).reshape(len(x), -1)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    x /= norms[:, None]
    return x


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"clustering backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "faiss" if have_faiss() else "sklearn"
    if backend == "faiss":
        _faiss()
    return backend


def spherical_kmeans(
    x: np.ndarray,
    n_clusters: int | None = None,
    *,
    seed: int,
    n_iter: int = 20,
    sample_size: int | None = None,
    backend: str = "auto",
    nearest: int = 1,
    progress: bool = False,
    engine: Engine | None = None,
    device: str | None = None,
) -> Clustering:
    """Cluster the rows of `x` (N, D) by cosine similarity.

    `n_clusters` defaults to `default_n_clusters(N)`. Centroids are trained on `sample_size` rows
    drawn with `seed` (default: min(N, max(64 K, 10,000)); 32 K instead of 64 K with a coarse level),
    then all N rows are assigned in chunks, mapped by `engine` (local by default); `nearest` > 1
    also records each row's next-nearest clusters (same pass). From TWO_LEVEL_MIN_K clusters on,
    training and assignment go through a coarse level (see `CoarseLevel`). `x` may be a read-only
    memory map; it is never modified or copied whole. With `device` (a torch device) the assignment
    runs there; the centroids are trained on the host."""
    if not hasattr(x, "shape") or len(x.shape) != 2:
        raise DataError(f"embeddings must be a 2-D array (N, D), got shape {getattr(x, 'shape', None)}")
    n, d = x.shape
    if n == 0:
        raise DataError("embeddings are empty (0 rows)")
    k = default_n_clusters(n) if n_clusters is None else int(n_clusters)
    if not 1 <= k <= n:
        raise ConfigError(f"n_clusters must be in [1, {n}] (the number of rows), got {n_clusters}")
    if n_iter < 1:
        raise ConfigError(f"n_iter must be at least 1, got {n_iter}")
    if nearest < 1:
        raise ConfigError(f"nearest must be at least 1, got {nearest}")
    if sample_size is not None and sample_size < k:
        raise ConfigError(f"sample_size must be at least n_clusters ({k}), got {sample_size}")
    backend = _resolve_backend(backend)
    two_level = k >= TWO_LEVEL_MIN_K
    per_cluster = 32 if two_level else 64
    s = min(n, max(per_cluster * k, 10_000) if sample_size is None else int(sample_size))
    rng = np.random.default_rng(seed)
    sample_idx = np.arange(n) if s == n else np.sort(rng.choice(n, size=s, replace=False))
    xs = normalize_rows(x[sample_idx])
    log.info("spherical k-means (%s%s): %d clusters, %d iterations on %d of %d rows", backend,
             ", two-level" if two_level else "", k, n_iter, s, n)
    coarse = None
    if two_level:
        centroids, coarse = _train_two_level(xs, k, rng, n_iter=n_iter, seed=seed, backend=backend)
    else:
        centroids = _train(xs, _init_centroids(xs, k, rng), n_iter=n_iter, seed=seed, backend=backend)
    del xs
    assignment, distance, next_nearest, next_distance = assign_nearest(
        x, centroids, nearest=nearest, backend=backend, progress=progress, engine=engine, coarse=coarse,
        device=device)
    return Clustering(
        centroids=centroids, assignment=assignment, distance=distance, backend=backend,
        seed=seed, n_iter=n_iter, sample_size=s, coarse=coarse, next_nearest=next_nearest,
        next_distance=next_distance,
    )


def _train(xs: np.ndarray, init: np.ndarray, *, n_iter: int, seed: int, backend: str) -> np.ndarray:
    fit = _train_faiss if backend == "faiss" else _train_sklearn
    return interruptible(fit, xs, init, n_iter=n_iter, seed=seed)


def interruptible(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` run so that Ctrl-C stops the caller at once: a faiss or scikit-learn
    fit is one long call into C, during which Python delivers no signal to the thread running it.
    From the main thread the call runs in a daemon thread while the main thread waits in 0.1 s
    slices, where a KeyboardInterrupt arrives; the abandoned fit finishes (or dies with the
    process) in the background, and nothing of it is kept. From any other thread: a plain call."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, name="adaprune-kmeans", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _train_two_level(
    xs: np.ndarray, k: int, rng: np.random.Generator, *, n_iter: int, seed: int, backend: str
) -> tuple[np.ndarray, CoarseLevel]:
    """round(sqrt(K)) coarse centroids on the sample, then inside every coarse cell a k-means with
    a share of the K fine centroids in proportion to the cell's sample rows (largest remainders,
    summing to K exactly)."""
    from adaprune.selection import stratified_quotas

    k1 = max(1, int(round(math.sqrt(k))))
    coarse = _train(xs, _init_centroids(xs, k1, rng), n_iter=n_iter, seed=seed, backend=backend)
    cell = np.argmax(xs @ coarse.T, axis=1)
    sizes = np.bincount(cell, minlength=k1)
    quotas = stratified_quotas(sizes, k, min_per_stratum=1)
    fine, owner = [], []
    for j in range(k1):
        if quotas[j] == 0:
            continue
        members = xs[cell == j]
        kj = int(quotas[j])
        if kj == len(members):
            cents = members.copy()
        else:
            cents = _train(members, _init_centroids(members, kj, rng), n_iter=n_iter, seed=seed, backend=backend)
        fine.append(cents)
        owner.append(np.full(kj, j, dtype=np.int64))
    return np.concatenate(fine).astype(np.float32), CoarseLevel(centroids=coarse, owner=np.concatenate(owner))


def _init_centroids(xs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (scikit-learn's `kmeans_plusplus`: D^2 sampling, the best of 2 + ln K
    candidates per step) seeded from `rng`, on at most 8 K of the sample rows, so both backends
    start from the same centroids and seeding stays a small part of the cost. Unit rows: the
    squared Euclidean distance is 2 - 2 cos, so D^2 sampling is cosine sampling."""
    from sklearn.cluster import kmeans_plusplus

    sub = xs if len(xs) <= 8 * k else xs[np.sort(rng.choice(len(xs), size=8 * k, replace=False))]
    sub = np.ascontiguousarray(sub, dtype=np.float32)
    centres, _ = kmeans_plusplus(sub, k, x_squared_norms=np.einsum("ij,ij->i", sub, sub),
                                 random_state=int(rng.integers(2**31 - 1)))
    return np.ascontiguousarray(centres, dtype=np.float32)


def group_sums(index: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the groups present in `index`, sorted; the float64 sum of each one's `rows`), `index[i]`
    being row i's group: one sparse (groups x rows) indicator product, far faster than np.add.at
    (and its result is only as large as the groups present)."""
    from scipy import sparse

    groups, inverse = np.unique(np.asarray(index, dtype=np.int64), return_inverse=True)
    indicator = sparse.csr_matrix((np.ones(len(inverse)), (inverse.reshape(-1), np.arange(len(inverse)))),
                                  shape=(len(groups), len(inverse)))
    return groups, np.asarray(indicator @ np.asarray(rows, dtype=np.float64))


def _train_faiss(xs: np.ndarray, init: np.ndarray, *, n_iter: int, seed: int) -> np.ndarray:
    """faiss's Lloyd iterations with one OpenMP thread: the two-level training makes many small fits,
    where OpenMP's fork and join per step cost more than the second thread gains (7x slower with
    two threads than with one on a 2-core machine with one busy core; 1.3 to 2x even on the one
    coarse fit), and a thread count fixed here keeps the centroids the same on any machine."""
    faiss = _faiss()
    k, d = init.shape
    km = faiss.Kmeans(
        d, k, niter=n_iter, spherical=True, seed=seed, verbose=False,
        max_points_per_centroid=max(1, len(xs)), min_points_per_centroid=1,
    )
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km.train(xs, init_centroids=np.ascontiguousarray(init))
    finally:
        faiss.omp_set_num_threads(threads)
    return normalize_rows(km.centroids)


def _train_sklearn(xs: np.ndarray, init: np.ndarray, *, n_iter: int, seed: int) -> np.ndarray:
    """Spherical Lloyd iterations on unit rows (the faiss backend's `spherical=True`): assign every
    row to its most similar centroid, then move each centroid to its members' renormalised mean;
    an empty cluster keeps its centroid. Stops early once no centroid moves. (scikit-learn's KMeans
    is Euclidean Lloyd, whose centroids are not unit vectors between steps; only the seeding,
    `kmeans_plusplus`, is scikit-learn's.)"""
    centroids = np.array(init, dtype=np.float32)
    k = len(centroids)
    chunk = max(1, _ASSIGN_BYTES // (4 * max(1, k)))
    for _ in range(n_iter):
        assign = np.concatenate([np.argmax(xs[start : start + chunk] @ centroids.T, axis=1)
                                 for start in range(0, len(xs), chunk)])
        filled, sums = group_sums(assign, xs)
        moved = centroids.copy()
        moved[filled] = normalize_rows(sums)
        if np.array_equal(moved, centroids):
            break
        centroids = moved
    return centroids


@dataclass(frozen=True)
class AssignChunk:
    """Rows start:stop of `x` to assign: the unit of work an engine maps."""

    x: Shared
    start: int
    stop: int
    centroids_t: Shared  # (D, K) unit centroids, transposed
    coarse: CoarseLevel | None
    nearest: int = 1  # how many clusters per row: the nearest, then nearest - 1 next-nearest
    device: str | None = None  # a torch device to compute on (`adaprune.cluster.device`); None: numpy


def _top(sims: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's m largest columns, largest first, ties to the lower column, and their values:
    repeated argmax with the winner knocked out (cheaper than a sort for a small m). `sims` is
    overwritten where m > 1."""
    rows = np.arange(len(sims))
    cols = np.empty((len(sims), m), dtype=np.int64)
    vals = np.empty((len(sims), m), dtype=np.float32)
    for r in range(m):
        if r:
            sims[rows, cols[:, r - 1]] = -np.inf
        cols[:, r] = np.argmax(sims, axis=1)
        vals[:, r] = sims[rows, cols[:, r]]
    return cols, vals


def probed_candidates(unit: np.ndarray, cent_t: np.ndarray, probed: np.ndarray, cells: list[np.ndarray],
                      width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's `width` best fine centroids among those of its `probed` cells (NONE / -inf where
    fewer), merged cell by cell (similarity descending, ties to the lower index)."""
    none = np.iinfo(np.int64).max
    probes = probed.shape[1]
    # (row, probed cell) pairs grouped by cell in one stable sort: rows stay ascending in a cell.
    pair_rows = np.repeat(np.arange(len(unit), dtype=np.int64), probes)
    by_cell = np.argsort(probed.reshape(-1), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(probed.reshape(-1), minlength=len(cells)))])
    cand = np.full((len(unit), width), none, dtype=np.int64)
    cand_sim = np.full((len(unit), width), -np.inf, dtype=np.float32)
    for j, fine_ids in enumerate(cells):
        rows = pair_rows[by_cell[bounds[j] : bounds[j + 1]]]
        if len(rows) == 0 or len(fine_ids) == 0:
            continue
        local, local_sim = _top(unit[rows] @ cent_t[:, fine_ids], min(width, len(fine_ids)))
        ids = np.concatenate([cand[rows], fine_ids[local]], axis=1)
        sims = np.concatenate([cand_sim[rows], local_sim], axis=1)
        order = np.lexsort((ids, -sims), axis=1)[:, :width]
        cand[rows] = np.take_along_axis(ids, order, axis=1)
        cand_sim[rows] = np.take_along_axis(sims, order, axis=1)
    return cand, cand_sim


def assign_candidates(unit: np.ndarray, cent_t: np.ndarray, coarse: CoarseLevel | None,
                      width: int) -> tuple[np.ndarray, np.ndarray, Callable[[int], np.ndarray] | None]:
    """A proposal of every row's `width` best centroids from float32 products (flat, or through the
    probed coarse cells), and the candidates a near-tied row is re-decided over (None: all)."""
    if coarse is None:
        cand, cand_sim = _top(unit @ cent_t, min(width, cent_t.shape[1]))
        return cand, cand_sim, None
    k1 = len(coarse.centroids)
    probes = min(coarse.probes, k1)
    # (K1, D) x (D, rows), transposed back: OpenBLAS is several times slower on the (rows, D) x (D, K1)
    # form when K1 is a few hundred or less.
    top, top_sim = _top(np.ascontiguousarray((coarse.centroids @ unit.T).T), min(probes + 1, k1))
    probed, universe = settle_probes(unit, top, top_sim, coarse)
    cand, cand_sim = probed_candidates(unit, cent_t, probed, coarse.cells(), width)
    return cand, cand_sim, universe


def assign_chunk(item: AssignChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(nearest centroid, its cosine similarity, the next `nearest - 1` centroids (rows, nearest - 1;
    -1 where there are fewer), their similarities (-inf there)) for the chunk's rows; the last two
    are None when `nearest` is 1. Ties go to the lower index. With `device`, the products and the
    top lists are computed by torch on that device, by the same rules. Either path proposes one
    centroid more than it reports, and the tie rule (`adaprune.cluster.ties`) settles the choice
    and recomputes the similarities, so both paths report the same bits."""
    cent_t = item.centroids_t.get()
    cent = np.ascontiguousarray(cent_t.T)  # (K, D) rows: the rule gathers centroids by row
    width = item.nearest
    none = np.iinfo(np.int64).max
    # The host's unit rows: the input of the numpy products, of the device's (copied there), and of
    # the tie rule on both paths.
    unit = normalize_rows(item.x.get()[item.start : item.stop])
    if item.device is not None:
        from adaprune.cluster.device import assign_chunk_on_device

        cand, cand_sim, universe = assign_chunk_on_device(unit, cent_t, item.coarse, width + 1, item.device)
    else:
        cand, cand_sim, universe = assign_candidates(unit, cent_t, item.coarse, width + 1)
    cand, sims64 = settle_top(unit, cand, cand_sim, width, cent, margin=tie_margin(unit.shape[1]),
                              universe=universe)
    cand_sim = sims64.astype(np.float32)
    best, best_sim = cand[:, 0].copy(), cand_sim[:, 0].copy()
    if width == 1:
        return best, best_sim, None, None
    next_best = np.full((len(cand), width - 1), -1, dtype=np.int64)
    next_sim = np.full((len(cand), width - 1), -np.inf, dtype=np.float32)
    found = cand.shape[1] - 1
    next_best[:, :found], next_sim[:, :found] = cand[:, 1:], cand_sim[:, 1:]
    next_best[next_best == none] = -1
    return best, best_sim, next_best, next_sim


def assign(
    x: np.ndarray,
    centroids: np.ndarray,
    *,
    backend: str = "auto",
    progress: bool = False,
    engine: Engine | None = None,
    coarse: CoarseLevel | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest unit centroid of every row by cosine similarity, in chunks read from `x`, mapped
    by `engine` (a local loop by default).

    Returns (assignment int64, cosine distance float32). Ties go to the lower cluster index. The
    same exact matrix product serves both backends (`backend` is accepted for symmetry): it is as
    fast as faiss's flat search here and gives identical assignments whichever trained the centroids.
    With a `coarse` level the search is restricted to the fine centroids of each row's nearest
    coarse cells (an approximate nearest centroid, exact whenever it lies in those cells)."""
    _resolve_backend(backend)
    assignment, distance, _, _ = assign_nearest(x, centroids, nearest=1, backend=backend, progress=progress,
                                                engine=engine, coarse=coarse)
    return assignment, distance


def assign_nearest(
    x: np.ndarray,
    centroids: np.ndarray,
    *,
    nearest: int = 1,
    backend: str = "auto",
    progress: bool = False,
    engine: Engine | None = None,
    coarse: CoarseLevel | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`assign`, plus (when `nearest` > 1) every row's next `nearest - 1` clusters by similarity,
    nearest first (N, nearest - 1), -1 beyond the number of clusters, and the cosine distances to
    them (inf there); both None when `nearest` is 1. Ties go to the lower cluster index. With a
    `coarse` level the next-nearest clusters, like the nearest, are searched among the fine
    centroids of the row's probed coarse cells."""
    _resolve_backend(backend)
    if nearest < 1:
        raise ConfigError(f"nearest must be at least 1, got {nearest}")
    engine = engine or LocalEngine()
    n = len(x)
    # A chunk's similarities stay near _ASSIGN_BYTES: chunk x K, or chunk x round(sqrt(K)) with a
    # coarse level (its cells then see a few rows each, so larger chunks mean fewer small products).
    k = len(centroids) if coarse is None else len(coarse.centroids)
    centroids_t = np.ascontiguousarray(np.asarray(centroids, dtype=np.float32).T)
    # At most _ASSIGN_ROWS rows a chunk: each thread holds a chunk's rows twice (read, normalised),
    # 170 MB at 167,000 x 256, and that sits on top of the resident memory map.
    chunk = max(1024, min(_ASSIGN_ROWS, _ASSIGN_BYTES // (4 * max(k, 1))))
    shared_x, shared_c = engine.share(x), engine.share(centroids_t)
    items = [AssignChunk(shared_x, start, min(n, start + chunk), shared_c, coarse, nearest, device)
             for start in range(0, n, chunk)]
    assignment = np.empty(n, dtype=np.int64)
    similarity = np.empty(n, dtype=np.float32)
    extra = nearest - 1
    next_nearest = np.full((n, extra), -1, dtype=np.int64) if extra > 0 else None
    next_similarity = np.full((n, extra), -np.inf, dtype=np.float32) if extra > 0 else None
    for item, (best, sims, next_best, next_sims) in zip(
        items, engine.map(assign_chunk, items, desc="assign", progress=progress), strict=True
    ):
        assignment[item.start : item.stop] = best
        similarity[item.start : item.stop] = sims
        if next_nearest is not None and next_similarity is not None:
            next_nearest[item.start : item.stop] = next_best
            next_similarity[item.start : item.stop] = next_sims
    distance = np.clip(1.0 - similarity, 0.0, 2.0).astype(np.float32)
    next_distance = None if next_similarity is None else np.clip(1.0 - next_similarity, 0.0, np.inf)
    return assignment, distance, next_nearest, next_distance
