from __future__ import annotations

import json

import numpy as np
import pytest

from adaprune.errors import ConfigError, DataError
from adaprune.selection import Budget, Selection, rank_for_keep, select_top_k, stratified_quotas


def test_budget_from_prune_and_keep_and_exact_count():
    assert Budget.from_args(prune=0.3).count(1000) == 700
    assert Budget.from_args(keep=0.25).count(10) == 3  # 2.5 rounds half up
    assert Budget.from_args(prune=0.3).count(4001) == 2801  # 2800.7
    assert Budget.from_args(keep=1.0).count(7) == 7


@pytest.mark.parametrize("kwargs", [{"keep": 0.0}, {"keep": 1.5}, {"prune": 1.0}, {"prune": -0.1},
                                    {"keep": float("nan")}, {}, {"keep": 0.5, "prune": 0.5}])
def test_budget_rejects_bad_fractions(kwargs):
    with pytest.raises(ConfigError):
        Budget.from_args(**kwargs)


def test_budget_that_keeps_nothing_is_an_error():
    with pytest.raises(ConfigError, match="keeps none"):
        Budget.from_args(keep=0.01).count(10)


def test_rank_breaks_ties_by_index_and_puts_nan_last():
    scores = np.array([1.0, 3.0, np.nan, 3.0, 0.5])
    assert rank_for_keep(scores, higher_is_keep=True).tolist() == [1, 3, 0, 4, 2]
    assert rank_for_keep(scores, higher_is_keep=False).tolist() == [4, 0, 1, 3, 2]


def test_select_top_k_hits_budget_exactly_in_both_directions():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=101)
    high = select_top_k(scores, 37, higher_is_keep=True)
    low = select_top_k(scores, 37, higher_is_keep=False)
    assert len(high) == len(low) == 37
    assert scores[high].min() >= np.sort(scores)[-37]
    assert scores[low].max() <= np.sort(scores)[36]


def test_stratified_quotas_sum_exactly_and_never_empty_a_class():
    q = stratified_quotas([100, 10, 1], 11)
    assert q.sum() == 11 and (q >= 1).all()
    assert stratified_quotas([50, 30, 20], 10).tolist() == [5, 3, 2]
    assert stratified_quotas([3, 3, 3], 2, min_per_stratum=1).sum() == 2  # cannot give each one
    q2 = stratified_quotas([7, 5, 3], 8)
    assert q2.sum() == 8 and (q2 <= [7, 5, 3]).all()


def test_stratified_selection_keeps_class_shares():
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    scores = np.where(y == 0, 10.0, 0.0) + np.arange(100) * 1e-3  # class 0 dominates the scores
    kept = select_top_k(scores, 50, higher_is_keep=True, strata=y)
    assert np.bincount(y[kept]).tolist() == [30, 15, 5]
    assert len(select_top_k(scores, 50, higher_is_keep=True)) == 50


def _selection(scores=True):
    rng = np.random.default_rng(1)
    return Selection(
        kept=np.array([4, 0, 2]), n_total=6, method="random", params={"stratified": False}, seed=3,
        requested_keep=0.5, scores=rng.normal(size=6) if scores else None, higher_is_keep=True,
        details={"note": [1, 2]},
    )


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
@pytest.mark.parametrize("with_scores", [True, False])
def test_selection_round_trip(tmp_path, suffix, with_scores):
    sel = _selection(with_scores)
    path = tmp_path / f"sel{suffix}"
    sel.save(path)
    back = Selection.load(path)
    assert back.kept.tolist() == [0, 2, 4]
    assert back.n_total == 6 and back.method == "random" and back.seed == 3
    assert back.params == {"stratified": False} and back.details == {"note": [1, 2]}
    if with_scores:
        np.testing.assert_array_equal(back.scores, sel.scores)  # repr round-trips floats exactly
    else:
        assert back.scores is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_csv_layout_and_sidecar(tmp_path):
    path = tmp_path / "sel.csv"
    _selection(False).save(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "index,kept,score"
    assert lines[1:] == ["0,1,", "1,0,", "2,1,", "3,0,", "4,1,", "5,0,"]
    meta = json.loads((tmp_path / "sel.csv.meta.json").read_text())
    assert meta["realised_keep"] == 0.5 and meta["n_kept"] == 3 and meta["library_version"]


def test_save_refuses_input_path_and_bad_extension(tmp_path):
    inp = tmp_path / "data.csv"
    inp.write_text("precious")
    with pytest.raises(ConfigError, match="is an input"):
        _selection().save(inp, inputs=[inp])
    assert inp.read_text() == "precious"
    with pytest.raises(ConfigError, match="extension"):
        _selection().save(tmp_path / "sel.txt")
    assert not (tmp_path / "sel.txt").exists()


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import adaprune.io_utils

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(adaprune.io_utils.os, "replace", boom)
    with pytest.raises(OSError):
        _selection().save(tmp_path / "sel.json")
    assert list(tmp_path.iterdir()) == []


def test_selection_validates_indices():
    with pytest.raises(DataError):
        Selection(kept=np.array([0, 0]), n_total=3, method="m", params={}, seed=0, requested_keep=0.5)
    with pytest.raises(DataError):
        Selection(kept=np.array([5]), n_total=3, method="m", params={}, seed=0, requested_keep=0.5)


def test_selection_module_does_not_import_torch():
    from pathlib import Path

    import adaprune.selection as module

    source = Path(module.__file__).read_text()
    assert "import torch" not in source and "from torch" not in source


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_files_honour_the_umask(tmp_path, umask, mode):
    import os
    import stat

    sel = Selection(kept=np.array([0, 2]), n_total=4, method="m", params={}, seed=0, requested_keep=0.5)
    old = os.umask(umask)
    try:
        for name in ("s.csv", "s.parquet", "s.json"):
            sel.save(tmp_path / name)
    finally:
        os.umask(old)
    for path in (tmp_path / "s.csv", tmp_path / "s.csv.meta.json", tmp_path / "s.parquet", tmp_path / "s.json"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name
