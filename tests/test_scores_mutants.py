"""Behaviour of adaprune.scores pinned by hand-computed values: each test here kills mutants that
survived the suite before (benchmarks/results/mutation.md lists them). Public functions only."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import adaprune
from adaprune import scores
from adaprune.errors import ConfigError, DataError
from adaprune.scores import Direction, ScoreSet, keep_from_scores, select_scores
from adaprune.selection import Selection


def _set(**kw) -> ScoreSet:
    base = {"scores": np.array([4.0, 3.0, 2.0, 1.0]), "direction": Direction(True), "method": "m",
            "params": {"p": 2}, "seed": 11}
    return ScoreSet(**{**base, **kw})


def test_direction_describe():
    assert Direction(True).describe() == "higher score = keep"
    assert Direction(False).describe() == "lower score = keep"
    assert Direction(False, 0.4).describe() == "lower score = keep (flips when keep < 0.4)"


def test_score_set_dtype_shape_and_version():
    ints = _set(scores=np.array([3, 1, 2]))
    assert ints.scores.dtype == np.float64 and ints.scores.tolist() == [3.0, 1.0, 2.0]
    assert _set(scores=np.array([True, False])).scores.dtype == np.float64
    assert _set(scores=np.array([0.5])).n == 1  # a single score is a valid set
    assert _set().library_version == adaprune.__version__
    assert _set(library_version="0.0.7").library_version == "0.0.7"
    with pytest.raises(DataError, match=r"scores must be one value per sample, got shape \(2, 2\)"):
        _set(scores=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"got shape \(0,\)"):
        _set(scores=np.array([]))
    with pytest.raises(DataError, match="3 labels for 4 scores"):
        _set(labels=np.array([0, 1, 1]))


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_score_file_round_trip_keeps_every_field(tmp_path, suffix):
    s = _set(direction=Direction(False, 0.3), labels=np.array([1, 0, 1, 1]), balance="class",
             library_version="1.2.3", details={"epochs": [1, 2]})
    s.save(tmp_path / f"s{suffix}")
    back = ScoreSet.load(tmp_path / f"s{suffix}")
    assert back.metadata() == s.metadata() == {
        "kind": "scores", "method": "m", "params": {"p": 2}, "seed": 11, "higher_is_keep": False,
        "switch_keep": 0.3, "balance": "class", "n_total": 4, "library_version": "1.2.3",
        "details": {"epochs": [1, 2]},
    }
    assert back.scores.dtype == np.float64 and back.scores.tolist() == [4.0, 3.0, 2.0, 1.0]
    assert back.labels.dtype == np.int64 and back.labels.tolist() == [1, 0, 1, 1]
    assert back.direction == Direction(False, 0.3)


def test_score_file_with_minimal_metadata_fills_the_defaults(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("index,score\n0,0.5\n1,2\n")
    path.with_name("s.csv.meta.json").write_text(json.dumps({"kind": "scores", "higher_is_keep": 1}))
    back = ScoreSet.load(path)
    assert back.direction == Direction(True, None) and back.direction.higher_is_keep is True
    assert (back.method, back.params, back.seed, back.balance, back.library_version, back.details) == (
        "unknown", {}, None, "none", "unknown", {})
    assert back.labels is None and back.scores.tolist() == [0.5, 2.0]


@pytest.mark.parametrize(("text", "meta", "message"), [
    ("index,score\n0,0.5\n", {"higher_is_keep": True}, "is not a score file written by `adaprune score`"),
    ("score\n0.5\n", {"kind": "scores", "higher_is_keep": True}, "index column must be 0..N-1 in order"),
    ("index,score\n1,0.5\n0,1\n", {"kind": "scores", "higher_is_keep": True}, "index column must be 0..N-1"),
])
def test_score_load_refuses_other_files_naming_them(tmp_path, text, meta, message):
    path = tmp_path / "odd_name.csv"
    path.write_text(text)
    path.with_name("odd_name.csv.meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=f"odd_name.csv'.*{message}"):
        ScoreSet.load(path)


def test_a_selection_with_scores_is_not_a_score_file(tmp_path):
    Selection(kept=np.array([0]), n_total=2, method="m", params={}, seed=0, requested_keep=0.5,
              scores=np.array([1.0, 2.0])).save(tmp_path / "sel.csv")
    with pytest.raises(DataError, match="not a score file"):
        ScoreSet.load(tmp_path / "sel.csv")


def test_score_save_names_the_file_kind_and_refuses_inputs(tmp_path):
    with pytest.raises(ConfigError, match="scores file .* has extension"):
        _set().save(tmp_path / "s.txt")
    inp = tmp_path / "data.csv"
    inp.write_text("x")
    with pytest.raises(ConfigError, match="is an input"):
        _set().save(inp, inputs=[inp])
    assert inp.read_text() == "x"


def test_keep_from_scores_decides_direction_at_the_kept_fraction():
    s = _set(direction=Direction(True, switch_keep=0.5))
    kept, higher = keep_from_scores(s, 1)
    assert kept.tolist() == [3] and higher is False  # 1 of 4 < 0.5: flipped, the lowest kept
    kept, higher = keep_from_scores(s, 2)
    assert kept.tolist() == [0, 1] and higher is True  # 2 of 4 is not below the switch
    with pytest.raises(ConfigError, match="balance must be one of none, class, got 'bogus'"):
        keep_from_scores(s, 1, balance="bogus")


def test_select_scores_copies_every_field():
    s = _set(labels=np.array([0, 0, 1, 1]), balance="class", library_version="4.5", details={"x": 1})
    sel = select_scores(s, keep=0.5)
    assert sel.kept.tolist() == [0, 2]  # class quotas 1 + 1, the highest of each
    assert (sel.n_total, sel.method, sel.params, sel.seed, sel.requested_keep) == (4, "m", {"p": 2}, 11, 0.5)
    assert sel.higher_is_keep is True and sel.library_version == "4.5"
    assert sel.details == {"x": 1, "selection_balance": "class"}
    np.testing.assert_array_equal(sel.scores, s.scores)
    plain = select_scores(s, prune=0.25, balance="none")
    assert plain.kept.tolist() == [0, 1, 2] and plain.details["selection_balance"] == "none"
    assert plain.requested_keep == pytest.approx(0.75)


# ---------------------------------------------------------------- kernels
def test_matrix_shapes():
    np.testing.assert_allclose(scores.softmax([[2.0]]), [[1.0]])  # one class is a valid matrix
    for bad in (np.zeros((0, 3)), np.zeros((3, 0)), np.zeros(3)):
        with pytest.raises(ConfigError, match=r"logits must be an \(N, K\) array"):
            scores.softmax(bad)
        with pytest.raises(ConfigError, match=r"probs must be an \(N, K\) array"):
            scores.uncertainty(bad)
        with pytest.raises(ConfigError, match=r"probs must be an \(N, K\) array"):
            scores.el2n(bad, np.zeros(len(bad), dtype=np.int64))
        with pytest.raises(ConfigError, match=r"logits must be an \(N, K\) array"):
            scores.logit_margins(bad, np.zeros(len(bad), dtype=np.int64))


def test_softmax_is_stable_per_row():
    # Rows on very different scales: the max is taken per row, so neither row underflows to 0/0.
    np.testing.assert_allclose(scores.softmax([[1000.0, 0.0], [0.0, -1000.0]]), [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(scores.softmax(np.array([[0, 0]])), [[0.5, 0.5]])


def test_el2n_of_bool_and_int_probabilities():
    assert scores.el2n(np.array([[True, False]]), np.array([0])).tolist() == [0.0]
    np.testing.assert_allclose(scores.el2n(np.array([[0, 1]]), np.array([0])), [math.sqrt(2)])


def test_label_messages():
    with pytest.raises(ConfigError, match=r"labels must be 2 integers, got shape \(2,\) and dtype float64"):
        scores.el2n([[1.0, 0.0], [0.0, 1.0]], np.array([0.0, 1.0]))
    with pytest.raises(ConfigError, match=r"labels must lie in \[0, 2\) for 2 classes, got 0..2"):
        scores.el2n([[1.0, 0.0], [0.0, 1.0]], np.array([0, 2]))


def test_logit_margins_with_one_and_two_classes():
    np.testing.assert_allclose(scores.logit_margins([[2.0, 0.5], [2.0, 0.5]], np.array([0, 1])), [1.5, -1.5])
    np.testing.assert_allclose(scores.logit_margins([[2.0]], np.array([0])), [2.0])


def test_forgetting_events_with_t_not_equal_to_n():
    # T = 2, N = 3: column 0 right then wrong (1), column 1 never right (T = 2), column 2 wrong then right (0).
    got = scores.forgetting_events(np.array([[1, 0, 0], [0, 0, 1]], dtype=bool))
    assert got.tolist() == [1, 2, 0]
    assert scores.forgetting_events(np.array([[True, False]])).tolist() == [0, 1]  # T = 1 is allowed
    with pytest.raises(ConfigError, match=r"T >= 1, got shape \(0, 3\)"):
        scores.forgetting_events(np.zeros((0, 3), dtype=bool))
    assert scores.forgetting_events(np.zeros((2, 0), dtype=bool)).tolist() == []


def test_aum_shapes():
    np.testing.assert_allclose(scores.aum([[1.0, -2.0]]), [1.0, -2.0])  # T = 1 is allowed
    assert scores.aum(np.zeros((2, 0))).tolist() == []
    with pytest.raises(ConfigError, match=r"T >= 1, got shape \(0, 2\)"):
        scores.aum(np.zeros((0, 2)))


def test_uncertainty_by_hand_with_one_and_two_classes():
    np.testing.assert_allclose(scores.uncertainty([[0.6, 0.4]], "margin"), [0.8])  # 1 - (0.6 - 0.4)
    np.testing.assert_allclose(scores.uncertainty([[1.0]], "margin"), [0.0])  # no second class: 1 - (1 - 0)
    np.testing.assert_allclose(scores.uncertainty([[1.0]], "least_confidence"), [0.0])
    np.testing.assert_allclose(scores.uncertainty([[0.6, 0.4]], "entropy"),
                               [-(0.6 * math.log(0.6) + 0.4 * math.log(0.4))])
    with pytest.raises(ConfigError, match="measure must be one of least_confidence, margin, entropy, got 'x'"):
        scores.uncertainty([[1.0]], "x")


def test_uncertainty_of_zero_probabilities_raises_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = scores.uncertainty(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]), "entropy")
    np.testing.assert_allclose(got, [0.0, math.log(2.0)])


def test_uncertainty_from_top2_returns_float64():
    got = scores.uncertainty_from_top2(np.array([1]), np.array([0]), np.array([2]), measure="entropy")
    assert got.dtype == np.float64 and got.tolist() == [2.0]
    np.testing.assert_allclose(scores.uncertainty_from_top2([0.7], [0.2], [9.0], measure="margin"), [0.5])
    np.testing.assert_allclose(scores.uncertainty_from_top2([0.7], [0.2], [9.0], measure="least_confidence"), [0.3])
