"""Engines: the local loop, a thread pool and Ray map the same stage functions to the same results."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.cluster import kmeans as km
from adaprune.engine import LocalEngine, get_engine
from adaprune.engine.base import NpyFile, npy_file_of
from adaprune.errors import ConfigError
from adaprune.methods.semdedup import Units, compute_redundancy


def planted(n_centres: int = 12, per: int = 40, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters around random unit centres, with every 10th row a near-copy of the row before."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, d))
    label = np.repeat(np.arange(n_centres), per)
    x = centres[label] + 0.05 * rng.normal(size=(len(label), d))
    x[1::10] = x[0::10][: len(x[1::10])] + 1e-4 * rng.normal(size=(len(x[1::10]), d))
    return x.astype(np.float32), label


def test_thread_pool_keeps_item_order():
    items = list(range(50))
    assert LocalEngine(workers=4).map(lambda i: i * i, items) == [i * i for i in items]


def test_unknown_engine_and_stray_address_are_refused():
    with pytest.raises(ConfigError, match="unknown engine .spark.; expected one of: local, ray"):
        get_engine("spark")
    with pytest.raises(ConfigError, match="address applies to engine='ray'"):  # the API's names from Python
        get_engine("local", address="auto")


def test_memmap_is_shared_by_path_and_slices_are_not(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(6, 2))
    mm = np.load(path, mmap_mode="r")
    ref = npy_file_of(mm)
    assert ref == NpyFile(str(path), (6, 2))
    assert np.array_equal(ref.get(), mm)
    assert npy_file_of(mm[2:]) is None  # a slice cannot be re-opened by path
    assert npy_file_of(np.zeros(3)) is None


def test_thread_pool_gives_the_same_redundancy_as_the_loop():
    x, _ = planted()
    a = compute_redundancy(x, Units.from_groups(None, len(x)), n_clusters=12, seed=3, engine=LocalEngine(1))
    b = compute_redundancy(x, Units.from_groups(None, len(x)), n_clusters=12, seed=3, engine=LocalEngine(3))
    assert np.array_equal(a.clustering.assignment, b.clustering.assignment)
    assert np.array_equal(a.m, b.m)


def test_default_k_is_sqrt_n_up_to_a_million_then_clusters_of_a_thousand():
    assert km.default_n_clusters(10_000) == 100
    assert km.default_n_clusters(1_000_000) == 1000
    assert km.default_n_clusters(10_000_000) == 10_000
    assert km.default_n_clusters(10_000_001) == 10_001


def test_two_level_kmeans_recovers_planted_clusters(monkeypatch):
    """With the coarse level forced on, 12 well-separated clusters are found exactly as the flat
    k-means finds them (the same partition, up to cluster ids)."""
    x, label = planted()
    flat = km.spherical_kmeans(x, 12, seed=0, backend="sklearn")
    monkeypatch.setattr(km, "TWO_LEVEL_MIN_K", 4)
    two = km.spherical_kmeans(x, 12, seed=0, backend="sklearn")
    assert two.coarse is not None and len(two.coarse.centroids) == 3 and len(two.centroids) == 12
    for clustering in (flat, two):
        # Each planted cluster lands in one k-means cluster, and no two planted clusters share one.
        pairs = {(int(a), int(b)) for a, b in zip(label, clustering.assignment, strict=True)}
        assert len(pairs) == 12 and len({b for _, b in pairs}) == 12


def test_two_level_assignment_tracks_the_second_nearest_across_probed_cells(monkeypatch):
    """With 3 coarse cells all probed, the coarse path's nearest and next-nearest clusters are the
    flat search's over the same centroids."""
    x, _ = planted()
    monkeypatch.setattr(km, "TWO_LEVEL_MIN_K", 4)
    two = km.spherical_kmeans(x, 12, seed=0, backend="sklearn", nearest=3)
    assert two.coarse is not None and two.next_nearest is not None and two.next_distance is not None
    assignment, distance, next_nearest, next_distance = km.assign_nearest(x, two.centroids, nearest=3)
    assert np.array_equal(two.assignment, assignment)
    assert np.array_equal(two.next_nearest, next_nearest)
    assert (two.next_nearest != two.assignment[:, None]).all()
    assert np.allclose(two.next_distance, next_distance, atol=1e-6)
    assert (two.next_distance >= two.distance[:, None] - 1e-6).all()


def test_work_dir_stages_are_keyed_on_the_border_parameters(tmp_path, monkeypatch):
    """A rerun with another nearest_clusters or border_cosine recomputes; the same settings reuse."""
    import adaprune.methods.semdedup as sd
    from adaprune.api import prune

    x, _ = planted(seed=4)
    emb = tmp_path / "emb.npy"
    np.save(emb, x)
    real_kmeans = sd.spherical_kmeans
    runs: list[int] = []
    monkeypatch.setattr(sd, "spherical_kmeans", lambda *a, **k: runs.append(1) or real_kmeans(*a, **k))

    def run(**params):
        return prune(f"embeddings:{emb}", "semdedup", prune=0.1, seed=0, progress=False,
                     params={"work_dir": str(tmp_path / "work"), **params})

    first = run()
    assert run().kept.tolist() == first.kept.tolist() and len(runs) == 1
    run(nearest_clusters=1)
    run(nearest_clusters=1, border_cosine=0.5)
    assert len(runs) == 3
    clean = prune(f"embeddings:{emb}", "semdedup", prune=0.1, seed=0, progress=False,
                  params={"nearest_clusters": 1, "border_cosine": 0.5})
    assert run(nearest_clusters=1, border_cosine=0.5).kept.tolist() == clean.kept.tolist() and len(runs) == 4


@pytest.mark.slow
def test_ray_and_local_engines_write_identical_selections(tmp_path, ray_session):
    """A local Ray cluster (2 CPUs) started here: the same embeddings and seed give the same file."""
    from adaprune.api import prune
    from adaprune.selection import Selection

    x, _ = planted(n_centres=20, per=30, d=16, seed=1)
    path = tmp_path / "emb.npy"
    np.save(path, x)
    local = prune(f"embeddings:{path}", "semdedup", prune=0.2, seed=5, progress=False)
    remote = prune(f"embeddings:{path}", "semdedup", prune=0.2, seed=5, progress=False, params={"engine": "ray"})
    local.save(tmp_path / "local.csv")
    remote.save(tmp_path / "ray.csv")
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "ray.csv").read_text()
    assert np.array_equal(Selection.load(tmp_path / "ray.csv").kept, local.kept)


def test_killed_prune_resumes_without_redoing_finished_stages(tmp_path, monkeypatch):
    """Clustering and the first group of cluster blocks finish, then the run is killed; the rerun
    loads both from --work-dir (k-means would raise if called) and writes the same selection."""
    import adaprune.methods.semdedup as sd
    from adaprune.cli.main import main

    x, _ = planted(n_centres=40, per=20, d=8, seed=2)
    emb = tmp_path / "emb.npy"
    np.save(emb, x)
    # Blocks of about 100 rows (members and border neighbours), recorded `group` at a time.
    monkeypatch.setattr(sd, "BLOCK_ROWS", 100)
    monkeypatch.setattr(sd, "GROUP_BLOCKS", 4)
    monkeypatch.setattr("adaprune.engine.base.default_workers", lambda: 2)  # a 2-thread local engine
    group = sd.GROUP_BLOCKS
    base = ["prune", f"embeddings:{emb}", "--method", "semdedup", "--prune", "0.2", "--quiet"]
    real_block = sd.block_redundancy
    calls = {"n": 0}
    lock = __import__("threading").Lock()

    def counted(block):
        with lock:
            calls["n"] += 1
        return real_block(block)

    monkeypatch.setattr(sd, "block_redundancy", counted)
    assert main([*base, "--out", str(tmp_path / "clean.csv")]) == 0
    n_blocks, calls["n"] = calls["n"], 0
    assert n_blocks > 2 * group  # so the kill lands in the second group and a third one exists

    def killed_in_second_group(block):
        with lock:
            calls["n"] += 1
            kill = calls["n"] == group + 1
        if kill:
            raise KeyboardInterrupt("killed")
        return real_block(block)

    work = tmp_path / "work"
    monkeypatch.setattr(sd, "block_redundancy", killed_in_second_group)
    assert main([*base, "--out", str(tmp_path / "sel.csv"), "--work-dir", str(work)]) == 130
    assert not (tmp_path / "sel.csv").exists()
    assert sorted(p.name for p in work.glob("*.done.json")) == ["clustering.done.json", "redundancy-00000.done.json"]

    def no_kmeans(*args, **kwargs):
        raise AssertionError("clustering was recomputed")

    calls["n"] = -100  # no more kills
    monkeypatch.setattr(sd, "spherical_kmeans", no_kmeans)
    assert main([*base, "--out", str(tmp_path / "sel.csv"), "--work-dir", str(work)]) == 0
    assert calls["n"] == -100 + n_blocks - group  # only the blocks after the recorded group
    assert (tmp_path / "sel.csv").read_text() == (tmp_path / "clean.csv").read_text()


def test_stages_give_the_same_bits_whatever_the_blas_threads():
    """A mapped stage runs with single-threaded BLAS, so a process whose BLAS uses 2 threads (here)
    and a Ray worker (1 thread) compute the same bits."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3000, 64)).astype(np.float32), rng.normal(size=(64, 300)).astype(np.float32)
    with threadpool_limits(1):
        single = a @ b
    assert LocalEngine(workers=2).map(lambda m: m @ b, [a])[0].tobytes() == single.tobytes()


@pytest.mark.slow
def test_ray_embed_of_a_folder_matches_the_local_embed(tmp_path, ray_session):
    """Chunks of files encoded as Ray tasks (2 CPUs) write the same array as the local loop."""
    from test_files import image_folder

    from adaprune.embed import embed

    root = image_folder(tmp_path / "imgs", per_class=8)
    local = embed(f"folder:{root}", "pixels:5", tmp_path / "local.npy", chunk_size=3, progress=False)
    remote = embed(f"folder:{root}", "pixels:5", tmp_path / "ray.npy", chunk_size=3, progress=False, engine="ray")
    assert local.chunks_computed == remote.chunks_computed == 6
    assert np.array_equal(np.load(tmp_path / "local.npy"), np.load(tmp_path / "ray.npy"))
    assert (tmp_path / "ray.paths.txt").read_text() == (tmp_path / "local.paths.txt").read_text()


@pytest.mark.slow
def test_ray_embed_runs_an_actor_pool_that_unpickles_the_encoder_once_per_actor(tmp_path, ray_session, monkeypatch):
    """10 chunks, 2 actors: the fitted encoder is unpickled once in each actor (the pool's workers,
    never the driver), not once per chunk as Ray tasks would; the array equals the local one byte for byte."""
    import os

    import adaprune.embed as embed_module
    from adaprune.data import Dataset
    from adaprune.embed import PixelsEncoder, embed

    loads = tmp_path / "encoder_loads.txt"

    class CountedPixels(PixelsEncoder):
        # Defined here so cloudpickle ships the class by value to the workers.
        def __setstate__(self, state: dict) -> None:
            with open(state["_loads"], "a") as f:
                f.write(f"{os.getpid()}\n")
            self.__dict__.update(state)

    def counted(spec, data=None):
        enc = CountedPixels(6)
        enc._loads = str(loads)
        return enc

    monkeypatch.setattr(embed_module, "get_encoder", counted)
    rng = np.random.default_rng(3)
    data = Dataset("blobs", rng.normal(size=(40, 3, 4, 4)).astype(np.float32), rng.integers(0, 2, 40))
    local = embed(data, "pixels:6", tmp_path / "local.npy", chunk_size=4, progress=False)
    assert not loads.exists()
    remote = embed(data, "pixels:6", tmp_path / "ray.npy", chunk_size=4, progress=False, engine="ray")
    assert local.chunks_computed == remote.chunks_computed == 10
    pids = loads.read_text().split()
    assert 1 <= len(pids) <= 2 and len(set(pids)) == len(pids) and str(os.getpid()) not in pids
    assert (tmp_path / "ray.npy").read_bytes() == (tmp_path / "local.npy").read_bytes()


@pytest.mark.slow
def test_actor_pool_raises_the_workers_own_error(ray_session):
    """Ray Data would wrap a worker's exception in its own; the engine raises the original type,
    so the CLI still turns it into one error line."""
    from adaprune.engine.ray import RayEngine

    def square_or_refuse(item: int) -> np.ndarray:  # local, so cloudpickle ships it by value
        if item == 3:
            raise ConfigError("item 3 is refused")
        return np.full((1, 2), item * item)

    got = {}
    with pytest.raises(ConfigError, match="item 3 is refused"):
        for index, result in RayEngine().stream_with_actor_pool(lambda: square_or_refuse, [0, 1, 2, 3, 4]):
            got[index] = int(result[0, 0])
    assert all(got[i] == i * i for i in got) and 3 not in got


@pytest.mark.parametrize("resume_workers", [4, 5])
def test_resume_with_another_worker_count_gives_the_uninterrupted_answer(tmp_path, monkeypatch, resume_workers):
    """Killed right after the first recorded group with 1 worker, resumed with more: every pair is
    still compared (the same M, so the same selection) as in one uninterrupted run. The partition
    of the clusters into recorded groups must not depend on the worker count (or be in the key)."""
    from adaprune.engine.stages import StageStore

    x, _ = planted(n_centres=40, per=25, d=8, seed=3)
    units = Units.from_groups(None, len(x))
    kwargs = dict(n_clusters=30, seed=0, backend="sklearn")
    clean = compute_redundancy(x, units, engine=LocalEngine(workers=1), **kwargs)
    real_save = StageStore.save

    def killed_after_first_group(self, name, arrays, **kw):
        real_save(self, name, arrays, **kw)
        if name.startswith("redundancy-"):
            raise KeyboardInterrupt("killed")

    key = {"embeddings": "planted", "seed": 0}
    monkeypatch.setattr(StageStore, "save", killed_after_first_group)
    with pytest.raises(KeyboardInterrupt):
        compute_redundancy(x, units, engine=LocalEngine(workers=1), store=StageStore(tmp_path, key), **kwargs)
    assert sorted(p.name for p in tmp_path.glob("redundancy-*.done.json")) == ["redundancy-00000.done.json"]
    monkeypatch.setattr(StageStore, "save", real_save)
    resumed = compute_redundancy(x, units, engine=LocalEngine(workers=resume_workers),
                                 store=StageStore(tmp_path, key), **kwargs)
    assert int((clean.m > 0.99).sum()) >= 80  # the planted copies, there to be lost
    assert np.array_equal(resumed.m, clean.m)
    assert np.array_equal(resumed.select(800)[0], clean.select(800)[0])


def test_a_group_record_from_another_partition_is_not_reused(tmp_path):
    """The partition is in each record's key: a record of other clusters is recomputed, not merged."""
    from adaprune.engine.stages import StageStore

    store = StageStore(tmp_path, {"k": 1})
    store.save("redundancy-00000", {"m": np.zeros(2)}, part={"clusters": [[0, 3]]})
    assert store.load("redundancy-00000", part={"clusters": [[0, 3]]}) is not None
    assert store.load("redundancy-00000", part={"clusters": [[0, 1], [2, 5]]}) is None
    assert store.load("redundancy-00000") is None
