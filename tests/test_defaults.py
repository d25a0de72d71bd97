"""Defaults that hold on real data: threads, standardised vectors, (N, H, W) images, per-class counts,
an unwritable output found before any work."""

from __future__ import annotations

import errno
import json
import logging
import os

import numpy as np
import pytest
import torch

from adaprune.api import evaluate, prune
from adaprune.cli.main import main
from adaprune.data import Dataset, load_data
from adaprune.data.sources import sample_layout
from adaprune.errors import ConfigError
from adaprune.io_utils import check_output_folder, check_writable_folder
from adaprune.models import InputStats, build_model
from adaprune.selection import Selection, count_classes, starved_classes
from adaprune.tasks import ClassificationTask
from adaprune.threads import THREADS_ENV, resolve_threads, torch_threads
from tests.conftest import make_blobs


# ---------------------------------------------------------------- threads
def test_threads_explicit_then_environment_then_by_the_work(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert resolve_threads(None, model="auto", device="cpu") == 1
    assert resolve_threads(None, model="cnn", device="cpu") == 1
    assert resolve_threads(None, model="resnet18", device="cpu") == torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "3")
    assert resolve_threads(None, model="auto", device="cpu") == 3
    assert resolve_threads(2, model="auto", device="cpu") == 2
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        resolve_threads(None, model="auto", device="cpu")
    with pytest.raises(ConfigError, match="threads"):
        resolve_threads(0, model="auto", device="cpu")


def test_torch_threads_restores_the_previous_count():
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_prune_records_threads_and_standardisation(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    x, y = make_blobs(n=60, d=4)
    monkeypatch.setenv(THREADS_ENV, "2")  # a second thread is slow on a busy machine: the flag must win
    sel = prune(Dataset(name="b", x=x, y=y), "el2n", keep=0.5, epochs=1, params={"runs": 1}, progress=False,
                threads=1)
    assert sel.details["threads"] == 1 and sel.details["standardize"] is True
    monkeypatch.delenv(THREADS_ENV)
    sel = prune(Dataset(name="b", x=x, y=y), "el2n", keep=0.5, epochs=1, params={"runs": 1}, progress=False,
                standardize=False)
    assert sel.details["threads"] == 1 and sel.details["standardize"] is False


# ---------------------------------------------------------------- standardisation
def test_standardize_layer_uses_training_statistics_only():
    x = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0]], np.float32)
    stats = InputStats.of(x)
    np.testing.assert_allclose(stats.mean, [2.0, 20.0, 5.0])
    np.testing.assert_allclose(stats.std, [1.0, 10.0, 1.0])  # a constant column is centred, not scaled
    data = Dataset(name="d", x=x, y=np.array([0, 1]), x_test=x * 100, y_test=np.array([0, 1]))
    model = ClassificationTask(data=data, model="mlp").new_model(0)
    np.testing.assert_allclose(model.standardize.mean.numpy(), [2.0, 20.0, 5.0])
    out = model.standardize(torch.tensor([[3.0, 0.0, 6.0]]))
    np.testing.assert_allclose(out.numpy(), [[1.0, -2.0, 1.0]])
    assert ClassificationTask(data=data, model="mlp", standardize=False).new_model(0).standardize is None
    images = Dataset(name="i", x=np.zeros((2, 1, 8, 8), np.float32), y=np.array([0, 1]))
    assert ClassificationTask(data=images).new_model(0).standardize is None  # pixels keep one scale


def test_wine_trains_to_full_accuracy_only_when_standardised():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    bunch = load_wine()
    x_tr, x_te, y_tr, y_te = train_test_split(bunch.data.astype(np.float32), bunch.target, test_size=0.25,
                                              random_state=0, stratify=bunch.target)
    data = Dataset(name="wine", x=x_tr, y=y_tr, x_test=x_te, y_test=y_te)
    everything = Selection(kept=np.arange(data.n), n_total=data.n, method="all", params={}, seed=0,
                           requested_keep=1.0)
    on = evaluate(data, everything, seeds=1, epochs=10, include_full=False, progress=False)
    off = evaluate(data, everything, seeds=1, epochs=10, include_full=False, progress=False, standardize=False)
    assert on.subset[0] >= 0.95
    assert off.subset[0] < on.subset[0] - 0.1


# ---------------------------------------------------------------- (N, H, W)
@pytest.mark.parametrize(
    "shape, layout, becomes",
    [((5, 13), "vectors", (5, 13)), ((5, 28, 28), "grey images", (5, 1, 28, 28)),
     ((5, 1, 40), "sequences", (5, 1, 40)), ((5, 4, 4), "sequences", (5, 4, 4)),
     ((5, 3, 8, 8), "images NCHW", (5, 3, 8, 8)), ((5, 8, 8, 3), "images NHWC", (5, 3, 8, 8))],
)
def test_sample_layout_rule(shape, layout, becomes):
    described, new_shape = sample_layout(shape)
    assert described.startswith(layout) and new_shape == becomes


def test_square_3d_npz_is_read_as_grey_images_and_says_so(tmp_path, caplog):
    rng = np.random.default_rng(0)
    x = rng.random((20, 8, 8)).astype(np.float32)
    path = tmp_path / "grey.npz"
    np.savez(path, x=x, y=np.arange(20) % 2, x_test=x[:4], y_test=np.arange(4) % 2)
    with caplog.at_level(logging.INFO, logger="adaprune"):
        data = load_data(f"npz:{path}")
    assert data.x.shape == (20, 1, 8, 8) and data.x_test.shape == (4, 1, 8, 8)
    np.testing.assert_array_equal(data.x[3, 0], x[3])
    assert "as grey images (N, H, W), H == W" in caplog.text
    assert ClassificationTask(data=data).new_model(0)(torch.from_numpy(data.x)).shape == (20, 2)


# ---------------------------------------------------------------- per-class counts
def test_class_counts_and_the_starved_rule():
    labels = np.array([0] * 100 + [1] * 100)
    kept = np.concatenate([np.arange(100), np.arange(100, 140)])  # LFW at 30% pruned: 100/100 and 40/100
    counts = count_classes(kept, labels)
    assert [(c.label, c.total, c.kept) for c in counts] == [(0, 100, 100), (1, 100, 40)]
    assert [c.label for c in starved_classes(counts, 0.7)] == [1]  # 40 < 0.6 * 70
    assert starved_classes(count_classes(np.arange(0, 200, 2), labels), 0.5) == ()


def _one_class_easy(seed: int = 0) -> Dataset:
    """Class 0 is a far, tight blob (every sample easy); classes 1 and 2 overlap (hard)."""
    rng = np.random.default_rng(seed)
    y = np.arange(150) % 3
    centres = np.array([[20.0, 20.0], [0.0, 0.0], [0.5, 0.0]])
    x = (centres[y] + rng.normal(scale=np.where(y == 0, 0.1, 1.0)[:, None], size=(150, 2))).astype(np.float32)
    return Dataset(name="easy0", x=x, y=y)


def test_a_wiped_out_class_is_reported_and_balance_class_keeps_its_share(caplog):
    data = _one_class_easy()
    with caplog.at_level(logging.INFO, logger="adaprune"):
        sel = prune(data, "el2n", prune=0.5, epochs=3, params={"runs": 1}, balance="none", progress=False)
    counts = {c.label: c.kept for c in sel.class_counts}
    assert counts[0] < 0.6 * 25  # el2n keeps the hard classes: the easy class loses most of its share
    assert "kept per class: 0: " in caplog.text and "class 0 keeps" in caplog.text
    assert sel.metadata()["class_counts"][0] == {"label": 0, "total": 50, "kept": counts[0]}
    balanced = prune(data, "el2n", prune=0.5, epochs=3, params={"runs": 1}, balance="class", progress=False)
    assert [c.kept for c in balanced.class_counts] == [25, 25, 25]


def test_adapruner_balance_class_keeps_exact_class_quotas_and_other_selectors_refuse():
    x, y = make_blobs(n=100, d=4, classes=2)
    y = np.where(np.arange(100) < 80, 0, 1)  # 80 / 20 imbalance
    data = Dataset(name="imb", x=x, y=y)
    sel = prune(data, "adapruner", prune=0.3, epochs=2, balance="class",
                params={"warmup_epochs": 1, "max_extra_epochs": 0}, progress=False)
    assert sel.params["balance"] == "class"
    assert [(c.label, c.kept) for c in sel.class_counts] == [(0, 56), (1, 14)]
    with pytest.raises(ConfigError, match="no ranking to split by class"):
        prune(data, "semdedup", prune=0.3, balance="class", progress=False)


def test_selection_round_trips_class_counts(tmp_path):
    labels = np.array([0, 0, 1, 1])
    original = Selection(kept=np.array([0, 2]), n_total=4, method="m", params={}, seed=0, requested_keep=0.5,
                         class_counts=count_classes(np.array([0, 2]), labels))
    original.save(tmp_path / "s.csv")
    assert Selection.load(tmp_path / "s.csv").class_counts == original.class_counts


# ---------------------------------------------------------------- unwritable output
def test_unwritable_output_folders_are_found_in_one_line(tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_writable_folder(a_file)
    with pytest.raises(ConfigError, match="does not exist"):
        check_writable_folder(tmp_path / "missing")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_folder(a_file / "sub" / "deeper")
    check_output_folder(tmp_path / "new" / "deeper")  # created later by the writer: its parent is writable
    assert not (tmp_path / "new").exists()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ConfigError, match="not writable: No space left on device"):
        check_writable_folder(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no probe left behind


def test_a_folder_that_refuses_new_files_is_not_writable():
    # /proc refuses new files even to root, which chmod on a temporary folder would not.
    with pytest.raises(ConfigError, match="not writable"):
        check_writable_folder("/proc")


def test_cli_refuses_an_unwritable_output_before_any_work(tmp_path, capsys, blobs_npz):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file / "sel.csv", tmp_path / "missing" / "sel.csv"):
        code = main(["prune", f"npz:{blobs_npz}", "--method", "adapruner", "--prune", "0.3", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.strip().splitlines()[-1].startswith("adaprune: error: output folder")
    code = main(["benchmark", f"npz:{blobs_npz}", "--methods", "random", "--prune", "0.3",
                 "--out", str(a_file / "bench")])
    assert code == 2 and "is a file, not a folder" in capsys.readouterr().err


def test_cli_threads_flag_is_recorded(tmp_path, capsys, blobs_npz, monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")
    out = tmp_path / "sel.csv"
    code = main(["prune", f"npz:{blobs_npz}", "--method", "el2n", "--prune", "0.3", "--epochs", "1",
                 "--param", "runs=1", "--threads", "1", "--no-standardize", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "sel.csv.meta.json").read_text())
    assert meta["details"]["threads"] == 1 and meta["details"]["standardize"] is False
    assert sum(c["kept"] for c in meta["class_counts"]) == meta["n_kept"]
    assert main(["prune", f"npz:{blobs_npz}", "--method", "el2n", "--prune", "0.3", "--threads", "0",
                 "--out", str(out)]) == 2


def test_models_built_with_stats_check_the_size():
    with pytest.raises(ConfigError, match="features"):
        build_model("mlp", (3,), 2, input_stats=InputStats(mean=np.zeros(4, np.float32),
                                                           std=np.ones(4, np.float32)))
