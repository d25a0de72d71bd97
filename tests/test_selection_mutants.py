"""Behaviour of adaprune.selection pinned by hand-computed values: each test here kills mutants that
survived the suite before (benchmarks/results/mutation.md lists them). Public functions only."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import adaprune
from adaprune.errors import ConfigError, DataError
from adaprune.selection import (
    Budget,
    ClassCount,
    Selection,
    check_seed,
    count_classes,
    describe_class_counts,
    rank_for_keep,
    select_top_k,
    starved_classes,
    stratified_quotas,
)


# ---------------------------------------------------------------- budgets and seeds
def test_budget_edges_prune_zero_and_one_sample():
    assert Budget.from_args(prune=0.0).keep == 1.0  # prune 0 is allowed: keep everything
    assert Budget.from_args(keep=0.1).count(10) == 1  # exactly one kept is not "keeps none"
    assert Budget.from_args(keep=0.05).count(10) == 1  # 0.5 rounds half up to 1
    assert Budget.from_args(prune=0.25).prune == pytest.approx(0.25)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give exactly one of keep or prune"),
    ({"keep": 0.5, "prune": 0.5}, "give exactly one of keep or prune"),
    ({"keep": 1.5}, r"keep must be a fraction in \(0, 1\], got 1.5"),
    ({"prune": 1.0}, r"prune must be a fraction in \[0, 1\), got 1.0"),
    ({"keep": True}, "keep must be a fraction"),  # a bool is not a fraction
    ({"prune": False}, "prune must be a fraction"),
    ({"keep": "0.5"}, "keep must be a fraction"),  # a string is refused, not passed to math
])
def test_budget_messages_name_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Budget.from_args(**kwargs)


def test_check_seed_accepts_integers_only():
    assert check_seed(0) == 0
    got = check_seed(np.int64(7))
    assert got == 7 and type(got) is int
    with pytest.raises(ConfigError, match="seed must be an integer, got True"):
        check_seed(True)
    with pytest.raises(ConfigError, match="seed must be an integer, got 1.5"):
        check_seed(1.5)
    with pytest.raises(ConfigError, match="seed must be a non-negative integer, got -1"):
        check_seed(-1)


# ---------------------------------------------------------------- ranking
def test_rank_of_bool_and_int_scores():
    # bool scores are ranked as 0/1 (negating a bool array would raise): lower keeps the False ones.
    assert rank_for_keep(np.array([True, False, True, False]), higher_is_keep=False).tolist() == [1, 3, 0, 2]
    assert rank_for_keep(np.array([3, 1, 2]), higher_is_keep=False).tolist() == [1, 2, 0]
    assert rank_for_keep(np.array([3, 1, 2], dtype=np.uint8), higher_is_keep=False).tolist() == [1, 2, 0]


@pytest.mark.parametrize("higher", [True, False])
def test_nan_ranks_after_the_worst_infinite_score(higher):
    worst = -np.inf if higher else np.inf
    # NaN is pruned first even against a score at the worst end of the scale, whatever its index.
    assert rank_for_keep(np.array([np.nan, worst, 0.0]), higher_is_keep=higher).tolist() == [2, 1, 0]


# ---------------------------------------------------------------- quotas
def test_quotas_largest_remainder_by_hand():
    # 6 of [7, 3]: exact 4.2 and 1.8 -> floors 4 + 1, the one left goes to the larger remainder (0.8).
    assert stratified_quotas([7, 3], 6).tolist() == [4, 2]
    # 5 of [5, 3, 2]: exact 2.5, 1.5, 1.0 -> floors 2, 1, 1; the tie at 0.5 goes to the lower index.
    assert stratified_quotas([5, 3, 2], 5).tolist() == [3, 1, 1]
    # 1 of [3, 3]: the minimum cannot cover both, so none is guaranteed; the tie goes to index 0.
    assert stratified_quotas([3, 3], 1).tolist() == [1, 0]
    # 2 of [3, 3, 3]: exact 2/3 each, floors 0: the first two by index.
    q = stratified_quotas([3, 3, 3], 2)
    assert q.tolist() == [1, 1, 0] and q.dtype == np.int64


def test_quotas_skip_a_full_stratum_when_handing_out():
    # 4 of [1, 2, 2]: exact 0.8, 1.6, 1.6 -> floors 0, 1, 1 raised to the minimum 1 -> 3. The largest
    # remainder (0.8) is the stratum of size 1, already full: the one left goes to index 1.
    assert stratified_quotas([1, 2, 2], 4).tolist() == [1, 2, 1]


def test_quotas_floor_minimum_exactly_at_the_budget():
    # 3 of [1, 1, 8]: the minimum of one each costs exactly 3, so every class keeps one; without the
    # minimum the largest remainder (2.4) would take it: [0, 0, 3].
    assert stratified_quotas([1, 1, 8], 3).tolist() == [1, 1, 1]
    assert stratified_quotas([1, 1, 8], 3, min_per_stratum=0).tolist() == [0, 0, 3]
    assert stratified_quotas([1, 1, 8], 3, min_per_stratum=2).tolist() == [0, 0, 3]  # 1+1+2 > 3: dropped


def test_quotas_take_back_from_the_smallest_remainder():
    # 6 of [1, 1, 1, 7, 9] (N 19): exact .32 .32 .32 2.21 2.84 -> floors 0 0 0 2 2, raised to 1 1 1 2 2 = 7.
    # One too many: taken from the smallest remainder above its minimum (index 3, 0.21).
    assert stratified_quotas([1, 1, 1, 7, 9], 6).tolist() == [1, 1, 1, 1, 2]
    # 6 of [1, 1, 1, 1, 9, 9] (N 22): exact .27 x4, 2.45, 2.45 -> 1 1 1 1 2 2 = 8: two to take back,
    # one at a time from the end of the remainder order: indices 0-3 are at their minimum, then 5, 4.
    q = stratified_quotas([1, 1, 1, 1, 9, 9], 6)
    assert q.tolist() == [1, 1, 1, 1, 1, 1]
    # 7 of [1, 1, 1, 20, 20] (N 43): exact .16 x3, 3.26, 3.26 -> 1 1 1 3 3 = 9: two back, one from each.
    assert stratified_quotas([1, 1, 1, 20, 20], 7).tolist() == [1, 1, 1, 2, 2]
    # 8 of [1, 1, 1, 1, 1, 30, 5] (N 40): exact .2 x5, 6.0, 1.0 -> 1 x5, 6, 1 = 12: four back from the
    # only stratum above its minimum, so it goes from 6 to 2.
    assert stratified_quotas([1, 1, 1, 1, 1, 30, 5], 8).tolist() == [1, 1, 1, 1, 1, 2, 1]


def test_quotas_at_zero_and_at_total_and_outside():
    assert stratified_quotas([2, 3], 0).tolist() == [0, 0]
    assert stratified_quotas([2, 3], 5).tolist() == [2, 3]
    assert stratified_quotas([0, 0], 0).tolist() == [0, 0]  # no samples at all: nothing to divide
    assert stratified_quotas([0, 4], 2).tolist() == [0, 2]  # an empty stratum gets no minimum
    q = stratified_quotas([2.0, 3.0], 2)
    assert q.dtype == np.int64 and q.tolist() == [1, 1]
    with pytest.raises(ConfigError, match=r"budget 6 is outside \[0, 5\]"):
        stratified_quotas([2, 3], 6)
    with pytest.raises(ConfigError, match=r"budget -1 is outside \[0, 5\]"):
        stratified_quotas([2, 3], -1)


# ---------------------------------------------------------------- select_top_k
def test_select_top_k_at_one_and_at_n_and_refuses_zero():
    s = np.array([0.3, 0.9, 0.1])
    assert select_top_k(s, 1, higher_is_keep=True).tolist() == [1]
    assert select_top_k(s, 3, higher_is_keep=True).tolist() == [0, 1, 2]
    assert select_top_k(s, 1, higher_is_keep=False).tolist() == [2]
    with pytest.raises(ConfigError, match="cannot keep 0 of 3 samples"):
        select_top_k(s, 0, higher_is_keep=True)
    with pytest.raises(ConfigError, match="cannot keep 4 of 3 samples"):
        select_top_k(s, 4, higher_is_keep=True)


def test_select_top_k_stable_ties_and_dtype():
    got = select_top_k(np.array([1, 1, 1, 1]), 2, higher_is_keep=True)
    assert got.tolist() == [0, 1] and got.dtype == np.int64
    assert select_top_k(np.array([True, False, True]), 1, higher_is_keep=True).tolist() == [0]
    assert select_top_k(np.array([True, False, True]), 2, higher_is_keep=False).tolist() == [0, 1]


def test_select_top_k_warns_with_the_nan_count(caplog):
    s = np.array([np.nan, 2.0, np.nan, 1.0])
    with caplog.at_level(logging.WARNING, logger="adaprune.selection"):
        got = select_top_k(s, 3, higher_is_keep=True)
    assert got.tolist() == [0, 1, 3]  # both finite scores, then the NaN with the lower index
    assert [r.getMessage() for r in caplog.records] == ["2 scores are NaN; those samples are pruned first"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="adaprune.selection"):
        select_top_k(np.array([1.0, 2.0]), 1, higher_is_keep=True)
    assert caplog.records == []


def test_select_top_k_strata_use_the_minimum_per_stratum():
    # strata sizes [1, 1, 8] at k=3: one each by default (quotas [1, 1, 1]); with 0, the top 3 overall.
    strata = np.array([0, 1, 2, 2, 2, 2, 2, 2, 2, 2])
    scores = np.array([0.0, 0.0, 9.0, 8.0, 7.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert select_top_k(scores, 3, higher_is_keep=True, strata=strata).tolist() == [0, 1, 2]
    assert select_top_k(scores, 3, higher_is_keep=True, strata=strata, min_per_stratum=0).tolist() == [2, 3, 4]
    # string strata and the lower end of each stratum
    names = np.array(["b", "a", "b", "a"])
    assert select_top_k(np.array([4.0, 3.0, 2.0, 1.0]), 2, higher_is_keep=False, strata=names).tolist() == [2, 3]


# ---------------------------------------------------------------- class counts
def test_class_count_share_by_hand():
    c = ClassCount(label="a", total=10, kept=4)
    assert c.share(0.5) == pytest.approx(0.8)  # 4 of a share of 5
    assert c.share(1.0) == pytest.approx(0.4)
    assert c.share(0.0) == 1.0  # no budget: no share to fall short of
    assert ClassCount(label="e", total=0, kept=0).share(0.5) == 1.0


def test_starved_is_strictly_below_the_line():
    at_line = ClassCount(label=0, total=10, kept=3)  # share 3 / 5 = 0.6: on the line, not starved
    below = ClassCount(label=1, total=10, kept=2)  # 0.4
    assert starved_classes([at_line, below], 0.5) == (below,)


def test_count_classes_by_hand():
    got = count_classes(np.array([0, 2, 3]), np.array([5, 5, 7, 7, 9]))
    assert got == (ClassCount(5, 2, 1), ClassCount(7, 2, 2), ClassCount(9, 1, 0))  # last class kept none
    assert all(type(c.label) is int and type(c.total) is int and type(c.kept) is int for c in got)
    assert count_classes([], np.array([1, 1])) == (ClassCount(1, 2, 0),)
    assert count_classes([1], ["x", "y"]) == (ClassCount("x", 1, 0), ClassCount("y", 1, 1))
    objects = count_classes([0], np.array(["p", "q"], dtype=object))
    assert objects == (ClassCount("p", 1, 1), ClassCount("q", 1, 0)) and type(objects[0].label) is str


def test_describe_class_counts_lists_or_takes_the_extremes():
    counts = [ClassCount("a", 10, 0), ClassCount("b", 10, 1), ClassCount("c", 10, 3),
              ClassCount("d", 10, 7), ClassCount("e", 1, 1), ClassCount("f", 0, 0)]
    # by kept share: a 0.0, f 0/0 counted as 0.0 (after a, stable), b .1, c .3, d .7, e 1.0
    assert describe_class_counts(counts, limit=4) == (
        "kept per class (6 classes; the 2 least and most kept): a: 0/10, f: 0/0, d: 7/10, e: 1/1")
    assert describe_class_counts(counts[:4], limit=4) == "kept per class: a: 0/10, b: 1/10, c: 3/10, d: 7/10"
    many = [ClassCount(i, 100, i) for i in range(21)]
    text = describe_class_counts(many)  # the default limit is 20
    assert text == ("kept per class (21 classes; the 10 least and most kept): "
                    + ", ".join(f"{i}: {i}/100" for i in [*range(10), *range(11, 21)]))
    assert describe_class_counts(many[:20]).startswith("kept per class: 0: 0/100, 1: 1/100")


# ---------------------------------------------------------------- metadata and files
def _full_selection() -> Selection:
    return Selection(
        kept=np.array([3, 0]), n_total=4, method="m", params={"a": 1}, seed=5, requested_keep=0.4,
        scores=np.array([1.0, 2.0, np.nan, 0.5]), higher_is_keep=False, library_version="9.9",
        details={"d": [1]}, ids=np.array(["x/0.png", "x/1.png", "x/2.png", "x/3.png"]), id_column="path",
        id_root="/data", skipped=("bad.png",), class_counts=(ClassCount(0, 2, 1), ClassCount(1, 2, 1)),
        twin=np.array([-1, 0, 3, -1]), similarity=np.array([np.nan, 0.9, 0.8, np.nan]),
    )


def test_metadata_holds_every_field():
    assert _full_selection().metadata() == {
        "schema_version": 1, "method": "m", "params": {"a": 1}, "seed": 5, "n_total": 4, "n_kept": 2,
        "requested_keep": 0.4, "realised_keep": 0.5, "higher_is_keep": False, "library_version": "9.9",
        "details": {"d": [1]}, "ids": {"column": "path", "root": "/data"}, "skipped_files": ["bad.png"],
        "class_counts": [{"label": 0, "total": 2, "kept": 1}, {"label": 1, "total": 2, "kept": 1}],
    }
    bare = Selection(kept=np.array([1]), n_total=2, method="r", params={}, seed=None, requested_keep=0.5)
    assert bare.metadata() == {
        "schema_version": 1, "method": "r", "params": {}, "seed": None, "n_total": 2, "n_kept": 1,
        "requested_keep": 0.5, "realised_keep": 0.5, "higher_is_keep": None,
        "library_version": adaprune.__version__, "details": {}, "class_counts": None,
    }


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_round_trip_keeps_every_field(tmp_path, suffix):
    sel = _full_selection()
    sel.save(tmp_path / f"s{suffix}")
    back = Selection.load(tmp_path / f"s{suffix}")
    assert back.metadata() == sel.metadata()
    assert back.kept.tolist() == [0, 3] and back.kept.dtype == np.int64
    np.testing.assert_array_equal(back.scores, sel.scores)
    assert back.ids.tolist() == sel.ids.tolist() and back.id_column == "path" and back.id_root == "/data"
    assert back.twin.tolist() == [-1, 0, 3, -1] and back.twin.dtype == np.int64
    np.testing.assert_array_equal(back.similarity, sel.similarity)
    assert back.skipped == ("bad.png",) and back.class_counts == sel.class_counts


def test_load_of_a_bare_csv_fills_the_defaults(tmp_path):
    path = tmp_path / "hand.csv"
    path.write_text("index,kept,score\n0,1,0.5\n1,0,\n2,1,0.25\n3,0,1\n")
    back = Selection.load(path)
    assert back.kept.tolist() == [0, 2] and back.n_total == 4
    assert (back.method, back.params, back.seed, back.library_version, back.details) == (
        "unknown", {}, None, "unknown", {})
    assert back.requested_keep == 0.5 and back.higher_is_keep is None
    assert back.ids is None and back.id_column == "id" and back.twin is None and back.class_counts is None
    assert back.skipped == () and back.scores.dtype == np.float64
    np.testing.assert_array_equal(back.scores, [0.5, np.nan, 0.25, 1.0])


def test_load_reads_the_id_column_it_finds(tmp_path):
    (tmp_path / "ids.csv").write_text("index,kept,score,id\n0,1,,7\n1,0,,8\n")
    back = Selection.load(tmp_path / "ids.csv")
    assert back.id_column == "id" and back.ids.tolist() == [7, 8] and back.kept_ids.tolist() == [7]
    (tmp_path / "paths.csv").write_text("index,kept,score,path\n0,0,,a.png\n1,1,,b.png\n")
    back = Selection.load(tmp_path / "paths.csv")
    assert back.id_column == "path" and back.kept_ids.tolist() == ["b.png"]


def test_load_reads_twins_with_empty_cells(tmp_path):
    (tmp_path / "t.csv").write_text("index,kept,score,twin,similarity\n0,1,,,\n1,0,,0,0.75\n2,1,,,\n")
    back = Selection.load(tmp_path / "t.csv")
    assert back.twin.tolist() == [-1, 0, -1]
    np.testing.assert_array_equal(back.similarity, [np.nan, 0.75, np.nan])
    (tmp_path / "none.csv").write_text("index,kept,score,twin,similarity\n0,1,,,\n1,1,,,\n")
    back = Selection.load(tmp_path / "none.csv")
    assert back.twin.tolist() == [-1, -1] and np.isnan(back.similarity).all()


@pytest.mark.parametrize(("text", "message"), [
    ("index,kept\n0,1\n", "expected columns index, kept, score"),
    ("kept,score\n1,\n", "expected columns index, kept, score"),
    ("index,score\n0,\n", "expected columns index, kept, score"),
    ("index,kept,score\n1,1,\n0,0,\n", "index column must be 0..N-1 in order"),
    ("index,kept,score\n0,2,\n", "kept column must be 0 or 1"),
])
def test_load_refuses_malformed_files_naming_them(tmp_path, text, message):
    path = tmp_path / "bad_file.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=f"selection file '.*bad_file.csv': {message}"):
        Selection.load(path)


def test_load_and_check_path_name_the_selection(tmp_path):
    with pytest.raises(ConfigError, match="selection file"):
        Selection.load(tmp_path / "x.txt")
    with pytest.raises(ConfigError, match="selection file .* has extension"):
        Selection.check_path(tmp_path / "x.txt")
    inp = tmp_path / "in.csv"
    with pytest.raises(ConfigError, match="is an input"):
        Selection.check_path(inp, inputs=[inp])
    Selection.check_path(tmp_path / "ok.json", inputs=[inp])  # a fine path passes


def test_load_takes_the_id_column_from_the_metadata_when_the_file_has_none(tmp_path):
    (tmp_path / "m.csv").write_text("index,kept,score\n0,1,\n1,0,\n")
    (tmp_path / "m.csv.meta.json").write_text('{"ids": {"column": "path", "root": "/r"}}')
    back = Selection.load(tmp_path / "m.csv")
    assert back.id_column == "path" and back.ids is None and back.id_root == "/r"


def _with_twins(kept, twin, similarity, n=4):
    return Selection(kept=np.array(kept), n_total=n, method="d", params={}, seed=0, requested_keep=0.5,
                     twin=np.array(twin), similarity=np.array(similarity, dtype=float))


def test_kept_indices_and_twins_are_checked_at_their_edges():
    with pytest.raises(DataError, match=r"kept indices must lie in \[0, 3\)"):
        Selection(kept=np.array([3]), n_total=3, method="m", params={}, seed=0, requested_keep=0.5)
    nan = np.nan
    ok = _with_twins([0, 1], [-1, -1, 0, 1], [nan, nan, 0.9, 0.8])
    assert ok.twin.tolist() == [-1, -1, 0, 1] and ok.similarity.dtype == np.float64
    with pytest.raises(DataError, match="twin and similarity must have one value per sample"):
        _with_twins([0, 1], [-1, -1, 0], [nan, nan, 0.9, 0.8])
    with pytest.raises(DataError, match="twin and similarity must have one value per sample"):
        _with_twins([0, 1], [-1, -1, 0, 1], [nan, nan, 0.9])
    with pytest.raises(DataError, match=r"twin must hold sample indices in \[0, 4\) or -1 for none"):
        _with_twins([0, 1], [-1, -1, -2, 1], [nan, nan, 0.9, 0.8])
    with pytest.raises(DataError, match=r"twin must hold sample indices in \[0, 4\)"):
        _with_twins([0, 1], [-1, -1, 4, 1], [nan, nan, 0.9, 0.8])
    with pytest.raises(DataError, match="twin must name a kept sample for removed samples only"):
        _with_twins([0, 1], [-1, 0, 0, 1], [nan, 0.5, 0.9, 0.8])  # a kept sample with a twin
    with pytest.raises(DataError, match="twin must name a kept sample for removed samples only"):
        _with_twins([1, 3], [1, -1, 0, -1], [0.9, nan, 0.9, nan])  # removed 2 names removed 0


def test_construction_normalises_every_array_field():
    from pathlib import Path

    sel = Selection(kept=[4, 0, 2], n_total=5, method="m", params={}, seed=0, requested_keep=0.6,
                    scores=[1, 2, 3, 4, 5], ids=np.array([10, 11, 12, 13, 14]), id_column="path",
                    skipped=(Path("a/b.png"),), twin=[-1.0, 0.0, -1, 4.0, -1], similarity=[None, 0.5, None, 0.7, None])
    assert isinstance(sel.kept, np.ndarray) and sel.kept.dtype == np.int64 and sel.kept.tolist() == [0, 2, 4]
    assert sel.scores.dtype == np.float64 and sel.scores.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert sel.ids.dtype.kind == "U" and sel.ids.tolist() == ["10", "11", "12", "13", "14"]  # paths as text
    assert sel.skipped == ("a/b.png",)
    assert sel.twin.dtype == np.int64 and sel.twin.tolist() == [-1, 0, -1, 4, -1]
    assert sel.similarity.dtype == np.float64 and sel.similarity[1] == 0.5 and np.isnan(sel.similarity[0])
    ids = Selection(kept=[0], n_total=2, method="m", params={}, seed=0, requested_keep=0.5, ids=[7, 8])
    assert ids.ids.dtype == np.int64 and ids.kept_ids.tolist() == [7]  # "id" columns keep their type
