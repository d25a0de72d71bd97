"""The audit trail of dedup selections (twin, similarity) in CSV, Parquet and JSON: written as empty
cells where there is none, read back exactly; inconsistent trails are refused."""

from __future__ import annotations

import numpy as np
import pytest

from adaprune.errors import DataError
from adaprune.selection import Selection


def selection(n_removed: int = 3, *, with_twins: bool = True) -> Selection:
    n = 8
    kept = np.arange(n_removed, n)
    twin = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    twin[:n_removed] = [7, 3, 7][:n_removed]
    similarity[:n_removed] = [0.999123456789, 0.95, 1.0][:n_removed]
    return Selection(kept=kept, n_total=n, method="semdedup", params={}, seed=0, requested_keep=(n - n_removed) / n,
                     scores=np.linspace(0, 1, n), higher_is_keep=False,
                     twin=twin if with_twins else None, similarity=similarity if with_twins else None)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
@pytest.mark.parametrize("n_removed", [3, 0])
def test_twin_and_similarity_round_trip(tmp_path, suffix, n_removed):
    sel = selection(n_removed)
    path = tmp_path / f"sel{suffix}"
    sel.save(path)
    back = Selection.load(path)
    assert back.twin is not None and back.twin.dtype == np.int64
    np.testing.assert_array_equal(back.twin, sel.twin)
    np.testing.assert_array_equal(back.similarity, sel.similarity)  # NaN where none, exact floats elsewhere
    np.testing.assert_array_equal(back.kept, sel.kept)
    if suffix == ".csv":
        lines = path.read_text().splitlines()
        assert lines[0] == "index,kept,score,twin,similarity"
        assert lines[-1].endswith(",,")  # a kept sample: both empty
        if n_removed:
            assert lines[1].split(",")[3:] == ["7", "0.999123456789"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_selections_without_a_trail_keep_their_columns(tmp_path, suffix):
    path = tmp_path / f"sel{suffix}"
    selection(with_twins=False).save(path)
    back = Selection.load(path)
    assert back.twin is None and back.similarity is None
    if suffix == ".csv":
        assert path.read_text().splitlines()[0] == "index,kept,score"


def test_inconsistent_trails_are_refused():
    good = selection()
    for twin_row, sim_row, message in (
        (4, 0.9, "kept sample"),  # a kept sample with a twin
        (-1, 0.9, "exactly where"),  # a similarity without a twin
        (9, 0.9, r"\[0, 8\)"),
    ):
        twin, sim = good.twin.copy(), good.similarity.copy()
        row = 4 if twin_row == 4 else 0
        twin[row], sim[row] = twin_row, sim_row
        with pytest.raises(DataError, match=message):
            Selection(kept=good.kept, n_total=8, method="m", params={}, seed=0, requested_keep=0.5, twin=twin,
                      similarity=sim)
    twin = good.twin.copy()
    twin[0] = 1  # a removed sample as twin
    with pytest.raises(DataError, match="kept sample"):
        Selection(kept=good.kept, n_total=8, method="m", params={}, seed=0, requested_keep=0.5, twin=twin,
                  similarity=good.similarity)
    with pytest.raises(DataError, match="together"):
        Selection(kept=good.kept, n_total=8, method="m", params={}, seed=0, requested_keep=0.5, twin=good.twin)


def test_whole_groups_trim_the_trail_to_twins_that_stay_kept():
    """After whole groups move samples, a now-kept sample has no twin, and neither has a removed
    sample whose twin was dropped; the rest keep theirs."""
    from adaprune.api import _twins_within

    twin = np.array([-1, 0, 0, -1, 3])
    similarity = np.array([np.nan, 0.9, 0.8, np.nan, 0.7])
    t, s = _twins_within(np.array([0, 1, 3]), twin, similarity)
    assert t.tolist() == [-1, -1, 0, -1, 3]
    assert np.array_equal(s, [np.nan, np.nan, 0.8, np.nan, 0.7], equal_nan=True)
    t, s = _twins_within(np.array([1, 2]), twin, similarity)
    assert t.tolist() == [-1, -1, -1, -1, -1] and np.isnan(s).all()
