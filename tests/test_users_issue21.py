"""Issue 21, what new users tripped on: class names matched by name, manifest labels, selections
checked against their data, colour never dropped silently, a prompt Ctrl-C, names that say what they
hold, an audit that says why each sample went, export folders that follow the umask, ids from an own loop."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import adaprune
from adaprune.api import evaluate
from adaprune.cli.main import main
from adaprune.data import Dataset, load_data
from adaprune.errors import DataError
from adaprune.selection import Selection

ROOT = Path(__file__).resolve().parents[1]
# Three classes of flat-coloured 8x8 images: red, green, blue (plus noise), so a small model learns them.
COLOURS = {"bear": (200, 30, 30), "cat": (30, 200, 30), "dog": (30, 30, 200)}


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def colour_folder(root: Path, classes=("bear", "cat", "dog"), *, per_class: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        for i in range(per_class):
            pixels = np.clip(np.array(COLOURS[name]) + rng.integers(-20, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            write_png(root / name / f"{name}{i:02d}.png", pixels)
    return root


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("adaprune: error: ") and err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------- class names matched by name
def test_a_test_folder_without_one_class_is_matched_by_name_and_scores_like_the_restricted_full_test(tmp_path):
    train = colour_folder(tmp_path / "train", per_class=8)
    full = colour_folder(tmp_path / "test", per_class=4, seed=1)
    nobear = tmp_path / "test_nobear"
    shutil.copytree(full, nobear)
    shutil.rmtree(nobear / "bear")
    with_full = load_data(f"folder:{train}", test=f"folder:{full}")
    with_part = load_data(f"folder:{train}", test=f"folder:{nobear}")
    # cat and dog keep the training numbers 1 and 2 (renumbered from the folder's own 0 and 1).
    assert with_part.y_test.tolist() == [1] * 4 + [2] * 4
    restricted = with_full.y_test != 0
    assert with_part.y_test.tolist() == with_full.y_test[restricted].tolist()
    np.testing.assert_array_equal(np.asarray(with_part.x_test), np.asarray(with_full.x_test)[restricted])
    # The metric of the subset test source equals the full test set restricted to its classes.
    sel = adaprune.prune(with_full, "random", keep=0.5, seed=0, progress=False)
    restricted_data = Dataset(name="train", x=np.asarray(with_full.x), y=with_full.y,
                              x_test=np.asarray(with_full.x_test)[restricted], y_test=with_full.y_test[restricted],
                              class_names=with_full.class_names)
    part = evaluate(with_part, sel, seeds=1, epochs=3, progress=False, include_full=False)
    ref = evaluate(restricted_data, sel, seeds=1, epochs=3, progress=False, include_full=False)
    assert part.subset == pytest.approx(ref.subset)


def test_a_test_class_the_training_source_lacks_is_one_line_naming_it(tmp_path, capsys):
    train = colour_folder(tmp_path / "train", ("cat", "dog"))
    extra = colour_folder(tmp_path / "test", ("bear", "cat", "dog"), per_class=2)
    with pytest.raises(DataError, match="has class 'bear', which the training source"):
        load_data(f"folder:{train}", test=f"folder:{extra}")
    sel = tmp_path / "sel.csv"
    assert main(["prune", f"folder:{train}", "--method", "random", "--keep", "0.5", "--balance", "class",
                 "--out", str(sel),
                 "--quiet"]) == 0
    assert main(["evaluate", f"folder:{train}", "--selection", str(sel), "--test", f"folder:{extra}",
                 "--seeds", "1", "--epochs", "1", "--quiet"]) == 2
    assert "'bear'" in one_line_error(capsys)


def test_manifest_test_source_with_named_labels_is_matched_to_the_folder_classes(tmp_path):
    train = colour_folder(tmp_path / "train")
    manifest = tmp_path / "test.csv"
    manifest.write_text(f"path,label\n{train}/dog/dog00.png,dog\n{train}/cat/cat00.png,cat\n")
    data = load_data(f"folder:{train}", test=f"files:{manifest}")
    assert data.y_test.tolist() == [2, 1]  # the manifest alone numbers them cat 0, dog 1


def test_the_name_to_number_map_is_in_every_selection_score_file_and_result(tmp_path):
    train = colour_folder(tmp_path / "train", per_class=4)
    classes = {"bear": 0, "cat": 1, "dog": 2}
    sel = tmp_path / "sel.csv"
    assert main(["prune", f"folder:{train}", "--method", "random", "--keep", "0.5", "--balance", "class",
                 "--out", str(sel),
                 "--quiet"]) == 0
    meta = json.loads((tmp_path / "sel.csv.meta.json").read_text())
    assert meta["data"]["classes"] == classes and meta["data"]["n"] == 12
    scores = tmp_path / "scores.json"
    data = load_data(f"folder:{train}", test=f"folder:{train}")
    adaprune.score(data, "el2n", params={"epochs": 1, "runs": 1}, progress=False).save(scores)
    assert json.loads(scores.read_text())["metadata"]["data"]["classes"] == classes
    selected = adaprune.select(str(scores), keep=0.5)
    assert selected.metadata()["data"]["classes"] == classes
    result = evaluate(data, Selection.load(sel), seeds=1, epochs=1, progress=False, include_full=False)
    assert result.data["classes"] == classes


# ---------------------------------------------------------------- manifest labels
def test_a_manifest_row_with_an_empty_label_is_refused_naming_the_row_or_left_out(tmp_path, capsys, caplog):
    train = colour_folder(tmp_path / "imgs", per_class=2)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\nimgs/cat/cat00.png,cat\nimgs/cat/cat01.png,\nimgs/dog/dog00.png,dog\n"
                        "imgs/dog/dog01.png,dog\n")
    with pytest.raises(DataError, match=r"row 1 \(path 'imgs/cat/cat01.png'\) has an empty label"):
        load_data(f"files:{manifest}")
    out = tmp_path / "sel.csv"
    args = ["prune", f"files:{manifest}", "--method", "random", "--keep", "0.5", "--balance", "class",
            "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert "row 1" in err and "--on-bad-file skip" in err and not out.exists()
    data = load_data(f"files:{manifest}", on_bad_file="skip")
    assert data.n == 3 and data.class_names == ("cat", "dog") and data.y.tolist() == [0, 1, 1]
    assert data.skipped == (str(train.resolve() / "cat" / "cat01.png"),)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("path,label\nimgs/cat/cat00.png,cat\nimgs/dog/dog00.png,dog\nimgs/dog/dog01.png,3\n")
    with pytest.raises(DataError, match=r"row 2 .* label '3', an integer where the other labels are class names"):
        load_data(f"files:{mixed}")


# ---------------------------------------------------------------- selections checked against their data
def test_evaluate_refuses_a_selection_made_on_another_source_of_the_same_size(tmp_path, capsys):
    animals = colour_folder(tmp_path / "animals", per_class=4)
    sel = tmp_path / "A.csv"
    assert main(["prune", f"folder:{animals}", "--method", "random", "--keep", "0.5", "--balance", "class",
                 "--out", str(sel),
                 "--quiet"]) == 0
    rng = np.random.default_rng(0)
    other = tmp_path / "B.npz"  # 12 samples like the folder, other labels
    np.savez(other, x=rng.normal(size=(12, 3, 8, 8)).astype(np.float32), y=np.array([2, 1, 0] * 4),
             x_test=rng.normal(size=(6, 3, 8, 8)).astype(np.float32), y_test=np.array([0, 1, 2] * 2))
    assert main(["evaluate", f"npz:{other}", "--selection", str(sel), "--seeds", "1", "--epochs", "1",
                 "--quiet"]) == 2
    assert "labels differ" in one_line_error(capsys)
    # Another folder of the same size and classes: the path column names the first differing row.
    from adaprune.selection import check_matches

    twin_folder = colour_folder(tmp_path / "zoo", per_class=4)
    (twin_folder / "cat" / "cat01.png").rename(twin_folder / "cat" / "cat01b.png")
    with pytest.raises(DataError, match=r"row 5 names path 'cat/cat01.png' but row 5 of zoo is 'cat/cat01b.png'"):
        check_matches(Selection.load(sel), load_data(f"folder:{twin_folder}"))
    # The same files, moved: paths are compared relative to their root, so it still matches.
    moved = tmp_path / "moved"
    animals.rename(moved)
    check_matches(Selection.load(sel), load_data(f"folder:{moved}"))


def test_select_carries_the_ids_and_export_with_data_refuses_other_files(tmp_path, capsys):
    animals = colour_folder(tmp_path / "animals", per_class=4)
    scores = tmp_path / "scores.csv"
    assert main(["score", f"folder:{animals}", "--method", "random", "--out", str(scores), "--quiet"]) == 0
    sel = tmp_path / "sel.csv"
    assert main(["select", str(scores), "--keep", "0.5", "--balance", "class", "--out", str(sel), "--quiet"]) == 0
    selection = Selection.load(sel)
    assert selection.id_column == "path" and selection.ids[0].endswith("bear/bear00.png")
    assert selection.data["n"] == 12
    zoo = colour_folder(tmp_path / "zoo", ("bear", "cat", "dog"), per_class=4)
    (zoo / "dog" / "dog03.png").rename(zoo / "dog" / "dog09.png")
    target = tmp_path / "kept"
    assert main(["export", str(sel), "--to", str(target), "--data", f"folder:{zoo}", "--quiet"]) == 2
    assert "row 11" in one_line_error(capsys) and not target.exists()
    assert main(["export", str(sel), "--to", str(target), "--data", f"folder:{animals}", "--quiet"]) == 0


def test_row_count_check_stays_for_tables_without_ids():
    from adaprune.selection import check_matches

    sel = Selection(kept=[0], n_total=3, method="random", params={}, seed=0, requested_keep=0.3)
    data = Dataset(name="blobs", x=np.zeros((4, 2), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="covers 3 samples but the data 'blobs' has 4"):
        check_matches(sel, data)


# ---------------------------------------------------------------- image modes and sizes
def test_a_grey_first_image_among_rgb_ones_is_promoted_to_rgb_and_said(tmp_path, caplog):
    root = tmp_path / "imgs"
    write_png(root / "a" / "00.png", np.full((8, 8), 90, dtype=np.uint8))  # grey, first
    write_png(root / "a" / "01.png", np.full((8, 8, 3), (250, 10, 10), dtype=np.uint8))  # red
    write_png(root / "b" / "00.png", np.full((12, 6, 3), (10, 250, 10), dtype=np.uint8))  # green, other size
    with caplog.at_level(logging.INFO, logger="adaprune"):
        data = load_data(f"folder:{root}")
    assert data.x.shape == (3, 3, 8, 8)
    assert np.asarray(data.x[1])[:, 0, 0] == pytest.approx([250 / 255, 10 / 255, 10 / 255])  # colour kept
    text = caplog.text
    assert "1 grey and 2 colour images: reading every image as RGB" in text
    assert "images of 2 sizes" in text and "resized to 8x8" in text


# ---------------------------------------------------------------- names
def test_selection_names_kept_indices_and_mask():
    sel = Selection(kept=[3, 1], n_total=5, method="random", params={}, seed=0, requested_keep=0.4)
    assert sel.kept_indices.tolist() == [1, 3] and sel.kept_indices is sel.kept
    assert sel.mask.tolist() == [False, True, False, True, False] and sel.mask.sum() == sel.n_kept
    assert "kept_indices" in Selection.__doc__ and "mask" in Selection.__doc__


def test_the_starved_class_warning_names_the_api_argument_from_python_and_the_flag_from_the_cli(
        tmp_path, caplog, capsys):
    scores = np.concatenate([np.ones(40), np.zeros(40)])
    from adaprune.scores import Direction, ScoreSet

    s = ScoreSet(scores=scores, direction=Direction(True), method="m", params={}, seed=0,
                 labels=np.repeat([0, 1], 40))
    with caplog.at_level(logging.WARNING, logger="adaprune"):
        adaprune.select(s, keep=0.5, balance="none")
    assert "balance='class' keeps every class's share" in caplog.text and "--balance" not in caplog.text
    path = tmp_path / "s.csv"
    s.save(path)
    capsys.readouterr()
    assert main(["select", str(path), "--keep", "0.5", "--balance", "none", "--out", str(tmp_path / "o.csv")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("adaprune: class 1 keeps")]
    assert len(warned) == 1 and warned[0].endswith("; --balance class keeps every class's share")


def test_coco_errors_say_annotation_id_and_image_id(tmp_path, capsys):
    from tests.test_detection_data import write_coco

    path = write_coco(tmp_path)
    path.write_text(path.read_text().replace("[0, 0, 40, 30]", "[10, 0, 40, 30]"))
    assert main(["prune", f"coco:{path}", "--method", "random", "--prune", "0.5",
                 "--out", str(tmp_path / "p.json")]) == 2
    err = one_line_error(capsys)
    assert "annotation id 103 box" in err and "(image id 3)" in err


def test_history_is_documented_as_a_dict_of_per_epoch_lists():
    doc = adaprune.AdaPrunerMask.__doc__
    assert "`history` is a dict of per-epoch lists" in doc and 'history["r"][e]' in doc


# ---------------------------------------------------------------- the audit: why each sample went
def chain_embeddings() -> np.ndarray:
    """A chain a -> b -> c (cos(a,b) = cos(b,c) = 0.97, cos(a,c) = 0.88) among spread rows."""
    rng = np.random.default_rng(0)
    d = 16
    base = np.linalg.qr(rng.normal(size=(d, d)))[0]
    t = np.arccos(0.97)
    a = base[0]
    b = np.cos(t) * base[0] + np.sin(t) * base[1]
    c = np.cos(2 * t) * base[0] + np.sin(2 * t) * base[1]
    # The spread rows pull the centroid towards -45 degrees in the chain's plane, so the keep priority
    # (farthest from the centroid first) is c, b, a: b goes because of c, then a because of b.
    spread = base[2:12] + 0.6 * (base[0] - base[1]) + 0.05 * rng.normal(size=(10, d))
    return np.vstack([a, b, c, spread]).astype(np.float32)


def reference_causes(emb: np.ndarray, rank: np.ndarray, assignment: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Brute force: the earlier row of the same cluster each removed row is most similar to."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    out = np.full(len(emb), -1)
    for j in np.flatnonzero(removed):
        cands = np.flatnonzero((assignment == assignment[j]) & (rank < rank[j]))
        if len(cands):
            sims = unit[cands] @ unit[j]
            out[j] = cands[np.argmax(sims)]
    return out


def test_threshold_audit_names_the_cause_at_or_above_the_threshold_beside_the_nearest_kept_twin(tmp_path):
    emb = chain_embeddings()
    path = tmp_path / "emb.npy"
    np.save(path, emb)
    sel = adaprune.prune(f"embeddings:{path}", "semdedup", threshold=0.95, seed=0, progress=False,
                         params={"n_clusters": 1, "nearest_clusters": 1})
    removed = np.flatnonzero(~sel.mask)
    assert len(removed) == 2 and sel.cause is not None
    # Every removed sample's cause has cosine >= the threshold; one twin lies below it (the chain's end).
    assert (sel.cause_similarity[removed] >= 0.95).all()
    assert (sel.similarity[removed] < 0.95).any()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for j in removed:
        assert unit[j] @ unit[sel.cause[j]] == pytest.approx(sel.cause_similarity[j], abs=1e-5)
        assert sel.cause_similarity[j] == pytest.approx(sel.scores[j])
    assert (sel.cause[sel.mask] == -1).all()
    out = tmp_path / "sel.csv"
    sel.save(out)
    header = out.read_text().splitlines()[0]
    assert header == "index,kept,score,twin,similarity,cause,cause_similarity"
    back = Selection.load(out)
    assert back.cause.tolist() == sel.cause.tolist()
    # Against a brute-force reference on random data with several clusters.
    from adaprune.cluster import spherical_kmeans
    from adaprune.methods._causes import attach_causes
    from adaprune.methods.semdedup import global_rank

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    x[150:] = x[:150] + 0.3 * rng.normal(size=(150, 8)).astype(np.float32)
    clustering = spherical_kmeans(x, 4, seed=0, backend="sklearn")
    rank = global_rank(clustering.distance, order="farthest")
    removed_mask = rng.random(300) < 0.4
    got = attach_causes(x / np.linalg.norm(x, axis=1, keepdims=True), clustering, rank, removed_mask,
                        block_bytes=4096)
    assert got.tolist() == reference_causes(x, rank, clustering.assignment, removed_mask).tolist()


def test_file_sources_name_twin_and_cause_by_path_and_the_report_captions_use_them(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for i in range(6):
        write_png(root / "a" / f"{i:02d}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write_png(root / "a" / "copy.png", np.asarray(__import__("PIL.Image").Image.open(root / "a" / "03.png")))
    sel_path = tmp_path / "sel.csv"
    assert main(["prune", f"folder:{root}", "--method", "semdedup", "--prune", "0.15", "--encoder", "pixels",
                 "--param", "n_clusters=1", "--out", str(sel_path), "--quiet"]) == 0
    lines = sel_path.read_text().splitlines()
    assert lines[0] == "index,kept,score,path,twin,similarity,twin_path,cause,cause_similarity,cause_path"
    sel = Selection.load(sel_path)
    gone = int(np.flatnonzero(~sel.mask)[0])
    assert {Path(sel.ids[gone]).name, Path(sel.ids[sel.twin[gone]]).name} == {"03.png", "copy.png"}
    assert lines[gone + 1].split(",")[6] == sel.ids[sel.twin[gone]]
    html = tmp_path / "r.html"
    assert main(["report", str(sel_path), "--data", f"folder:{root}", "--out", str(html), "--quiet"]) == 0
    text = html.read_text()
    assert re.search(r"(03|copy)\.png → kept twin (03|copy)\.png", text)
    assert "removed because of" in text and "cause_similarity" in text
    assert "-1: no earlier sample was compared with it" in text  # the special score explained


# ---------------------------------------------------------------- export folders follow the umask
@pytest.mark.parametrize("mode", ["link", "copy"])
def test_export_folder_follows_the_umask(tmp_path, mode):
    root = colour_folder(tmp_path / "imgs", per_class=2)
    sel = tmp_path / "sel.csv"
    assert main(["prune", f"folder:{root}", "--method", "random", "--keep", "0.5", "--balance", "class",
                 "--out", str(sel),
                 "--quiet"]) == 0
    old = os.umask(0o022)
    try:
        assert main(["export", str(sel), "--to", str(tmp_path / "kept"), "--mode", mode, "--quiet"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "kept").stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o755 for p in (tmp_path / "kept").rglob("*") if p.is_dir())


# ---------------------------------------------------------------- own loop: ids into the Selection
def test_the_own_loop_ids_block_runs_and_names_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "bring_your_own_loop.md").read_text()
    block = re.findall(r"<!-- readme-test: ids -->\n```python\n(.*?)```", text, flags=re.S)
    assert block, "no ids block in docs/bring_your_own_loop.md"
    exec(compile(block[0], "bring_your_own_loop.md", "exec"), {"__name__": "own_loop"})
    sel = Selection.load(tmp_path / "sel.csv")
    assert sel.id_column == "path" and sel.n_kept == 20 and Path(sel.kept_ids[0]).suffix == ".jpg"
    assert (tmp_path / "sel.csv").read_text().splitlines()[0] == "index,kept,score,path"


# ---------------------------------------------------------------- Ctrl-C during semdedup
@pytest.mark.slow
def test_ctrl_c_during_semdedup_stops_within_seconds_leaves_nothing_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    n, d = 60_000, 32  # few large clusters: a short clustering, then seconds of per-cluster work
    emb = rng.normal(size=(n, d)).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    work, out = tmp_path / "work", tmp_path / "sel.parquet"
    cmd = [sys.executable, "-m", "adaprune", "prune", f"embeddings:{tmp_path / 'emb.npy'}", "--method", "semdedup",
           "--prune", "0.1", "--param", "n_clusters=30", "--work-dir", str(work), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell without job control starts background jobs with SIGINT ignored, and Python then takes no
    # Ctrl-C at all: give the child the default disposition a terminal gives it.
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (work / "clustering.done.json").exists():  # interrupt during the per-cluster stage
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    stopped = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert stopped < 3.0, f"took {stopped:.1f} s to stop"  # 9 s before (shared 2-core machine)
    assert b"interrupted" in err and not out.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # nothing half-written left
    done_before = sorted(p.name for p in work.glob("*.done.json"))
    assert "clustering.done.json" in done_before
    clustered = (work / "clustering.npz").stat().st_mtime_ns
    rerun = subprocess.run(cmd, capture_output=True, env=env, cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert (work / "clustering.npz").stat().st_mtime_ns == clustered  # resumed: the clustering was reused
    sel = Selection.load(out)
    assert sel.n_kept == n - round(0.1 * n)
