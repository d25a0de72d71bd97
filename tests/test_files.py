"""File sources: lazy folders and manifests, bad files, path columns, export, streaming embed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaprune.cli.main import main
from adaprune.data import load_data
from adaprune.errors import DataError
from adaprune.selection import Selection


def write_png(path, array) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def image_folder(root, *, per_class: int = 6, size=(8, 8), seed: int = 0):
    """Two class folders of small random RGB PNGs."""
    rng = np.random.default_rng(seed)
    for cls in ("cat", "dog"):
        for i in range(per_class):
            write_png(root / cls / f"{i:02d}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return root


def test_folder_is_lazy_resizes_mixed_sizes_and_names_every_file(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=3)
    write_png(root / "dog" / "big.png", np.full((16, 12, 3), 200, dtype=np.uint8))
    d = load_data(f"folder:{root}")
    assert d.x.shape == (7, 3, 8, 8) and not isinstance(d.x, np.ndarray)
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1, 1] and d.class_names == ("cat", "dog")
    assert d.ids[3].endswith("dog/00.png") and d.id_root == str(root.resolve())
    assert d.x[6] == pytest.approx(np.full((3, 8, 8), 200 / 255))  # resized to the first image's size


def test_flat_folder_and_manifest_with_relative_paths_labels_and_groups(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=2)
    flat = load_data(f"folder:{root / 'cat'}")
    assert flat.n == 2 and flat.y.tolist() == [0, 0] and flat.class_names is None
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,group\nimgs/dog/01.png,bird,g1\nimgs/cat/00.png,ant,g1\nimgs/cat/01.png,bird,g2\n")
    d = load_data(f"files:{manifest}")
    assert d.ids.tolist() == [str(root.resolve() / p) for p in ("dog/01.png", "cat/00.png", "cat/01.png")]
    assert d.y.tolist() == [1, 0, 1] and d.class_names == ("ant", "bird") and d.groups.tolist() == ["g1", "g1", "g2"]
    assert d.id_root == str(tmp_path.resolve())
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"path": ["imgs/cat/00.png"], "label": [4]}), tmp_path / "list.parquet")
    one = load_data(f"files:{tmp_path / 'list.parquet'}")
    assert one.y.tolist() == [4] and one.ids[0].endswith("cat/00.png")
    (tmp_path / "nopath.csv").write_text("file\na.png\n")
    with pytest.raises(DataError, match="no path column"):
        load_data(f"files:{tmp_path / 'nopath.csv'}")


def test_bad_files_stop_with_every_path_or_are_skipped_and_listed(tmp_path, capsys):
    root = image_folder(tmp_path / "imgs")
    (root / "cat" / "03.png").write_bytes(b"not a png")  # unreadable
    (root / "dog" / "empty.png").write_bytes(b"")  # zero bytes
    good = (root / "dog" / "01.png").read_bytes()
    (root / "dog" / "02.png").write_bytes(good[: len(good) // 2])  # truncated
    out = tmp_path / "sel.csv"
    args = ["prune", f"folder:{root}", "--method", "random", "--prune", "0.5", "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "3 bad image files" in err
    for name in ("cat/03.png", "dog/empty.png", "dog/02.png"):
        assert name in err
    assert not out.exists() and list(tmp_path.iterdir()) == [root]  # nothing written
    assert main([*args, "--on-bad-file", "skip"]) == 0
    sel = Selection.load(out)
    meta = json.loads((tmp_path / "sel.csv.meta.json").read_text())
    assert sorted(p.split("imgs/")[1] for p in meta["skipped_files"]) == ["cat/03.png", "dog/02.png", "dog/empty.png"]
    assert sel.n_total == 10 and sel.id_column == "path" and len(sel.ids) == 10
    assert not any("03.png" in p and "cat" in p for p in sel.ids)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_selection_ids_round_trip(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    ids = np.array(["/d/a b.png", "/d/c,d.png", "/d/é.png"])
    sel = Selection(kept=[0, 2], n_total=3, method="random", params={}, seed=0, requested_keep=0.67,
                    ids=ids, id_column="path", id_root="/d", skipped=("/d/bad.png",))
    sel.save(tmp_path / f"s{suffix}")
    back = Selection.load(tmp_path / f"s{suffix}")
    assert back.ids.tolist() == ids.tolist() and back.id_column == "path" and back.id_root == "/d"
    assert back.skipped == ("/d/bad.png",) and back.kept_ids.tolist() == ["/d/a b.png", "/d/é.png"]
    numbered = Selection(kept=[1], n_total=2, method="random", params={}, seed=0, requested_keep=0.5,
                         ids=np.array([17, 42]))
    numbered.save(tmp_path / f"n{suffix}")
    again = Selection.load(tmp_path / f"n{suffix}")
    assert again.id_column == "id" and again.ids.tolist() == [17, 42]


@pytest.mark.parametrize("mode", ["link", "copy"])
def test_export_round_trip_keeps_exactly_the_kept_files_byte_identical(tmp_path, mode):
    root = image_folder(tmp_path / "imgs")
    sel_path = tmp_path / "sel.parquet"
    assert main(["prune", f"folder:{root}", "--method", "random", "--keep", "0.5", "--out", str(sel_path),
                 "--quiet"]) == 0
    sel = Selection.load(sel_path)
    target = tmp_path / "kept"
    assert main(["export", str(sel_path), "--to", str(target), "--mode", mode, "--quiet"]) == 0
    exported = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    expected = sorted(str(p.relative_to(root.resolve())) for p in map(__import__("pathlib").Path, sel.kept_ids))
    assert exported == expected and len(exported) == 6
    for rel in exported:
        assert (target / rel).read_bytes() == (root / rel).read_bytes()
    before = {p: p.read_bytes() for p in root.rglob("*.png")}
    assert main(["export", str(sel_path), "--to", str(target), "--mode", mode, "--quiet"]) == 2  # never overwrites
    assert {p: p.read_bytes() for p in root.rglob("*.png")} == before
    listed = tmp_path / "kept.txt"
    assert main(["export", str(sel_path), "--to", str(listed), "--mode", "list", "--quiet"]) == 0
    assert listed.read_text().splitlines() == sel.kept_ids.tolist()


def test_export_needs_a_path_column(tmp_path, capsys):
    Selection(kept=[0], n_total=2, method="random", params={}, seed=0, requested_keep=0.5).save(tmp_path / "s.csv")
    assert main(["export", str(tmp_path / "s.csv"), "--to", str(tmp_path / "out")]) == 2
    assert "no path column" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_killed_embed_redoes_at_most_one_chunk_and_refuses_changed_inputs(tmp_path, monkeypatch):
    from adaprune.embed import PixelsEncoder, embed

    root = image_folder(tmp_path / "imgs", per_class=10)  # 20 images, chunks of 3: 7 chunks
    full = embed(f"folder:{root}", "pixels:4", tmp_path / "full.npy", chunk_size=3, progress=False)
    assert full.chunks_computed == 7
    encode = PixelsEncoder.encode
    calls = {"n": 0}

    def dies_after_4_chunks(self, x):
        calls["n"] += 1
        if calls["n"] == 6:  # call 1 measures the output width; calls 2-5 are chunks 0-3
            raise KeyboardInterrupt("killed")
        return encode(self, x)

    out = tmp_path / "emb.npy"
    monkeypatch.setattr(PixelsEncoder, "encode", dies_after_4_chunks)
    with pytest.raises(KeyboardInterrupt):
        embed(f"folder:{root}", "pixels:4", out, chunk_size=3, progress=False)
    monkeypatch.setattr(PixelsEncoder, "encode", encode)
    assert not out.exists()
    resumed = embed(f"folder:{root}", "pixels:4", out, chunk_size=3, progress=False)
    assert resumed.chunks_computed == 3  # 4 chunks kept; only the killed one is redone
    assert np.array_equal(np.load(out), np.load(tmp_path / "full.npy"))
    assert (tmp_path / "emb.paths.txt").read_text().splitlines()[0].endswith("cat/00.png")
    emb = load_data(f"embeddings:{out}")
    assert emb.ids.tolist() == load_data(f"folder:{root}").ids.tolist()
    # Kill again, then touch one input: the resume is refused.
    out2 = tmp_path / "emb2.npy"
    calls["n"] = 0
    monkeypatch.setattr(PixelsEncoder, "encode", dies_after_4_chunks)
    with pytest.raises(KeyboardInterrupt):
        embed(f"folder:{root}", "pixels:4", out2, chunk_size=3, progress=False)
    monkeypatch.setattr(PixelsEncoder, "encode", encode)
    write_png(root / "dog" / "05.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="input files changed.*refusing to resume"):
        embed(f"folder:{root}", "pixels:4", out2, chunk_size=3, progress=False)
    assert not out2.exists()
