"""Container sources read in place: webdataset tar shards and Parquet image columns, named rows,
byte-identical export, bad members, streaming embed within one container per chunk."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from adaprune.cli.main import main
from adaprune.data import load_data
from adaprune.errors import DataError
from adaprune.selection import Selection


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def add_member(tar: tarfile.TarFile, name: str, data: bytes, mtime: int = 1_700_000_000) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o640
    tar.addfile(info, io.BytesIO(data))


def make_shards(root, *, n_shards: int = 3, per_shard: int = 8, seed: int = 0, labels: bool = True,
                bad: dict | None = None):
    """`n_shards` tar shards of 8x8 RGB PNGs (`KEY.png`, `KEY.cls`, a `KEY.txt` caption); keys with
    leading zeros and, in the last shard, a folder inside the tar. `bad` maps a key to what is wrong
    with it ("image": corrupt PNG bytes, "label": no .cls). Returns {(shard, key): {name: bytes}}."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples = {}
    for s in range(n_shards):
        path = root / f"shard-{s:03d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(per_shard):
                key = f"{'sub/' if s == n_shards - 1 else ''}{s * per_shard + i:06d}"
                png = png_bytes(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
                members = {f"{key}.png": png, f"{key}.txt": f"caption {key}".encode()}
                if (bad or {}).get(key) == "image":
                    members[f"{key}.png"] = png[:20]  # truncated: not a readable PNG
                if labels and (bad or {}).get(key) != "label":
                    members[f"{key}.cls"] = str((s * per_shard + i) % 3).encode()
                for name, data in members.items():
                    add_member(tar, name, data)
                samples[(str(path.resolve()), key)] = members
    return samples


def read_tar(path) -> dict[str, tuple[bytes, int]]:
    with tarfile.open(path) as tar:
        return {m.name: (tar.extractfile(m).read(), m.mtime) for m in tar if m.isfile()}


def test_webdataset_groups_members_by_key_and_reads_lazily(tmp_path):
    samples = make_shards(tmp_path / "shards")
    d = load_data(f"webdataset:{tmp_path / 'shards'}/*.tar")
    assert d.n == 24 and d.x.shape == (24, 3, 8, 8)
    assert d.id_column == "shard+key"
    assert d.ids["key"].tolist()[:2] == ["000000", "000001"] and d.ids["key"][-1] == "sub/000023"
    assert d.y.tolist() == [i % 3 for i in range(24)]
    assert d.chunk_bounds == (8, 16)
    # Row 9 decodes to exactly the PNG stored under its key.
    from PIL import Image

    shard, key = d.ids[9]["shard"], d.ids[9]["key"]
    want = np.asarray(Image.open(io.BytesIO(samples[(shard, key)][f"{key}.png"])), dtype=np.float32) / 255
    assert np.allclose(d.x[9], want.transpose(2, 0, 1))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_pruned_shards_hit_the_budget_name_shard_and_key_and_export_byte_identical(tmp_path, suffix):
    samples = make_shards(tmp_path / "shards")
    sel_path = tmp_path / f"sel{suffix}"
    spec = f"webdataset:{tmp_path / 'shards'}/*.tar"
    assert main(["prune", spec, "--method", "semdedup", "--prune", "0.25", "--out", str(sel_path), "--quiet"]) == 0
    sel = Selection.load(sel_path)
    assert sel.n_total == 24 and sel.n_kept == 18  # exactly round(0.75 * 24)
    assert sel.id_column == "shard+key"
    rows = list(zip(sel.ids["shard"].tolist(), sel.ids["key"].tolist(), strict=True))
    assert rows == list(samples)  # every row named by its shard and key, leading zeros kept
    assert main(["export", str(sel_path), "--to", str(tmp_path / "out"), "--quiet"]) == 0
    kept = {rows[i] for i in sel.kept}
    written = {}
    for s in range(3):
        out_shard = tmp_path / "out" / f"shard-{s:03d}.tar"
        assert out_shard.is_file()
        written.update({(str((tmp_path / "shards" / out_shard.name).resolve()), name): v
                        for name, v in read_tar(out_shard).items()})
    expected = {(shard, name): (data, 1_700_000_000) for (shard, key), members in samples.items()
                if (shard, key) in kept for name, data in members.items()}
    assert written == expected  # the kept samples' members, bytes and headers as they were; nothing else


def make_parquet(path, *, n: int = 20, row_group: int = 6, struct: bool = True, seed: int = 0,
                 bad_rows: tuple[int, ...] = ()):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    images = [png_bytes(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(n)]
    for r in bad_rows:
        images[r] = b"not an image"
    column = (pa.array([{"bytes": b, "path": f"img{i}.png"} for i, b in enumerate(images)])
              if struct else pa.array(images, pa.binary()))
    table = pa.table({"image": column, "label": pa.array([["cat", "dog"][i % 2] for i in range(n)]),
                      "group": pa.array([f"g{i // 2}" for i in range(n)])})
    table = table.replace_schema_metadata({b"huggingface": b'{"info": "kept"}'})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group)
    return images


@pytest.mark.parametrize("struct", [True, False])
def test_pruned_parquet_names_file_and_row_and_exports_the_kept_rows(tmp_path, struct):
    import pyarrow.parquet as pq

    src = tmp_path / "data" / "train.parquet"
    images = make_parquet(src, struct=struct)
    d = load_data(f"parquet:{tmp_path / 'data'}/*.parquet:image")
    assert d.n == 20 and d.class_names == ("cat", "dog") and d.y.tolist() == [i % 2 for i in range(20)]
    assert d.groups.tolist()[:3] == ["g0", "g0", "g1"]
    sel_path = tmp_path / "sel.csv"
    assert main(["prune", f"parquet:{src}", "--method", "random", "--keep", "0.5", "--out", str(sel_path),
                 "--quiet"]) == 0
    sel = Selection.load(sel_path)
    assert sel.n_kept == 10 and sel.id_column == "file+row"  # whole groups of two: still exact here
    assert sel.ids["file"].tolist() == [str(src.resolve())] * 20 and sel.ids["row"].tolist() == list(range(20))
    assert main(["export", str(sel_path), "--to", str(tmp_path / "out"), "--quiet"]) == 0
    out = pq.read_table(tmp_path / "out" / "train.parquet")
    source = pq.read_table(src)
    assert out.schema == source.schema and out.schema.metadata == source.schema.metadata
    assert out.to_pylist() == source.take(sel.kept).to_pylist()
    got = [r["bytes"] if struct else r for r in out.column("image").to_pylist()]
    assert got == [images[i] for i in sel.kept]


def test_bad_members_stop_with_every_name_or_are_skipped_and_recorded(tmp_path, capsys):
    make_shards(tmp_path / "shards", bad={"000003": "image", "000010": "label"})
    spec = f"webdataset:{tmp_path / 'shards'}"
    with pytest.raises(DataError, match=r"2 bad samples.*000003 \(not a readable image.*000010 \(missing label"):
        load_data(spec)
    out = tmp_path / "sel.json"
    assert main(["prune", spec, "--method", "random", "--prune", "0.5", "--out", str(out), "--quiet"]) == 2
    assert "2 bad samples" in capsys.readouterr().err
    assert main(["prune", spec, "--method", "random", "--prune", "0.5", "--out", str(out), "--on-bad-file", "skip",
                 "--quiet"]) == 0
    sel = Selection.load(out)
    assert sel.n_total == 22 and "000003" not in sel.ids["key"].tolist()
    assert [s.rsplit(":", 1)[1] for s in sel.skipped] == ["000003", "000010"]

    make_parquet(tmp_path / "pq" / "a.parquet", bad_rows=(4,))
    with pytest.raises(DataError, match=r"1 bad samples.*a.parquet:4 \(not a readable image"):
        load_data(f"parquet:{tmp_path / 'pq'}")
    d = load_data(f"parquet:{tmp_path / 'pq'}", on_bad_file="skip")
    assert d.n == 19 and 4 not in d.ids["row"].tolist()


def test_compressed_shards_and_unknown_columns_are_refused_in_one_line(tmp_path):
    import gzip

    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "a.tar").write_bytes(gzip.compress(b"x" * 1000))
    with pytest.raises(DataError, match="not a plain tar file"):
        load_data(f"webdataset:{tmp_path / 'z'}/*.tar")
    with pytest.raises(DataError, match="matches no files"):
        load_data(f"webdataset:{tmp_path}/none-*.tar")
    make_parquet(tmp_path / "p" / "a.parquet")
    with pytest.raises(DataError, match="has no column 'pixels'; it has: image, label, group"):
        load_data(f"parquet:{tmp_path / 'p'}/a.parquet:pixels")


def test_embed_streams_one_shard_per_chunk_and_names_every_row(tmp_path, monkeypatch):
    from adaprune.data.webdataset import TarStore
    from adaprune.embed import embed

    make_shards(tmp_path / "shards", per_shard=7)  # 21 rows, chunks of 3 within each shard of 7
    spec = f"webdataset:{tmp_path / 'shards'}"
    shards_read = []
    fetch = TarStore.fetch

    def spy(self, rows):
        shards_read.append(sorted({int(self.shard_of[r]) for r in rows}))
        return fetch(self, rows)

    monkeypatch.setattr(TarStore, "fetch", spy)
    result = embed(spec, "pixels:4", tmp_path / "emb.npy", chunk_size=3, progress=False)
    assert result.n == 21
    # The streaming pass (after the PCA fit's sample): chunks of 3, 3, 1 in each shard, one shard each.
    assert shards_read[-9:] == [[0]] * 3 + [[1]] * 3 + [[2]] * 3
    data = load_data(spec)
    lines = (tmp_path / "emb.paths.txt").read_text().splitlines()
    assert lines == [f"{s}\t{k}" for s, k in data.ids.tolist()]
    assert json.loads((tmp_path / "emb.source.json").read_text())["id_column"] == "shard+key"
    sel = tmp_path / "sel.csv"
    assert main(["prune", f"embeddings:{tmp_path / 'emb.npy'}", "--method", "random", "--keep", "0.5",
                 "--out", str(sel), "--quiet"]) == 0
    loaded = Selection.load(sel)
    assert loaded.id_column == "shard+key" and loaded.ids.tolist() == data.ids.tolist()


@pytest.mark.slow
def test_ray_gives_each_shard_its_own_tasks_and_the_local_embeddings_and_selection(tmp_path, ray_session,
                                                                                     monkeypatch):
    """3 shards of 7 and two Parquet files: every Ray item reads one container, and the array, the
    row names and the SemDeDup selection over them equal the local engine's byte for byte."""
    from adaprune.api import prune
    from adaprune.embed import embed
    from adaprune.engine.ray import RayEngine

    make_shards(tmp_path / "shards", per_shard=7)
    make_parquet(tmp_path / "pq" / "a.parquet", n=12, row_group=5)
    make_parquet(tmp_path / "pq" / "b.parquet", n=9, row_group=5, seed=1)
    items_seen = []
    stream = RayEngine.stream_with_actor_pool

    def spy(self, make_worker, items, **kw):
        items_seen.extend(items)
        return stream(self, make_worker, items, **kw)

    monkeypatch.setattr(RayEngine, "stream_with_actor_pool", spy)
    for name, spec in (("wds", f"webdataset:{tmp_path / 'shards'}"), ("pq", f"parquet:{tmp_path / 'pq'}")):
        items_seen.clear()
        local = embed(spec, "pixels:5", tmp_path / f"{name}_local.npy", chunk_size=4, progress=False)
        remote = embed(spec, "pixels:5", tmp_path / f"{name}_ray.npy", chunk_size=4, progress=False, engine="ray")
        assert local.chunks_computed == remote.chunks_computed == 6  # 7 = 4 + 3 per shard; 12 = 4+4+4, 9 = 4+4+1
        assert len(items_seen) == 6
        assert all(len(_containers_read(item.x.store)) == 1 for item in items_seen)
        assert (tmp_path / f"{name}_ray.npy").read_bytes() == (tmp_path / f"{name}_local.npy").read_bytes()
        assert (tmp_path / f"{name}_ray.paths.txt").read_text() == (tmp_path / f"{name}_local.paths.txt").read_text()
    # The selection made from the Ray-made array is the local one (the Ray engine of SemDeDup's own
    # stages is tested on its own in test_engine).
    sels = [prune(f"embeddings:{tmp_path / f'wds_{e}.npy'}", "semdedup", prune=0.3, seed=2, progress=False)
            for e in ("local", "ray")]
    for e, sel in zip(("local", "ray"), sels, strict=True):
        sel.save(tmp_path / f"{e}.csv")
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "ray.csv").read_text()
    assert sels[0].n_kept == round(0.7 * 21) and sels[0].id_column == "shard+key"


def _containers_read(store) -> np.ndarray:
    """Which containers a store's rows lie in."""
    return np.unique(store.shard_of if hasattr(store, "shard_of") else store.file_of)


def test_semdedup_on_shards_removes_one_of_each_planted_copy_across_shards(tmp_path):
    """Six samples of the last shard are byte copies of samples in the first two: pruning 6 of 24
    removes exactly one of each pair, and the selection names both by shard and key."""
    samples = make_shards(tmp_path / "shards")
    keys = list(samples)
    copy_of = {keys[16 + j]: keys[3 * j] for j in range(6)}  # shard 2's first six repeat rows 0, 3, ..., 15
    with tarfile.open(tmp_path / "shards" / "shard-002.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for shard_key in keys[16:]:
            source = copy_of.get(shard_key, shard_key)
            add_member(tar, f"{shard_key[1]}.png", samples[source][f"{source[1]}.png"])
            add_member(tar, f"{shard_key[1]}.cls", b"0")
    sel_path = tmp_path / "sel.csv"
    assert main(["prune", f"webdataset:{tmp_path / 'shards'}", "--method", "semdedup", "--prune", "0.25",
                 "--encoder", "pixels:16", "--out", str(sel_path), "--quiet"]) == 0
    sel = Selection.load(sel_path)
    names = list(zip(sel.ids["shard"].tolist(), sel.ids["key"].tolist(), strict=True))
    removed = {names[i] for i in np.flatnonzero(~sel.mask)}
    assert len(removed) == 6 and all(len(removed & {c, o}) == 1 for c, o in copy_of.items())
