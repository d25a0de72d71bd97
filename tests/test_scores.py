from __future__ import annotations

import numpy as np
import pytest

from adaprune.api import prune, score, select
from adaprune.cli.main import main
from adaprune.errors import ConfigError
from adaprune.scores import Direction, ScoreSet, select_scores
from adaprune.selection import Selection


def test_direction_switch():
    d = Direction(higher_is_keep=True, switch_keep=0.5)
    assert d.at(0.8) is True and d.at(0.5) is True and d.at(0.3) is False
    assert Direction(False).at(0.1) is False


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".json"])
def test_score_file_round_trip(tmp_path, suffix):
    s = ScoreSet(scores=np.array([0.5, -1.0, 2.25]), direction=Direction(False, 0.4), method="m",
                 params={"a": 1}, seed=7, labels=np.array([0, 1, 1]))
    s.save(tmp_path / f"s{suffix}")
    back = ScoreSet.load(tmp_path / f"s{suffix}")
    np.testing.assert_array_equal(back.scores, s.scores)
    np.testing.assert_array_equal(back.labels, s.labels)
    assert back.direction == s.direction and back.seed == 7 and back.params == {"a": 1}


def test_selection_file_is_not_a_score_file(tmp_path):
    Selection(kept=np.array([0]), n_total=2, method="m", params={}, seed=0, requested_keep=0.5).save(
        tmp_path / "sel.json")
    with pytest.raises(Exception, match="not a score file"):
        ScoreSet.load(tmp_path / "sel.json")


def test_select_follows_direction_and_balance():
    s = ScoreSet(scores=np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]), direction=Direction(True), method="m",
                 params={}, seed=0, labels=np.array([0, 0, 0, 0, 1, 1]))
    assert select_scores(s, keep=0.5).kept.tolist() == [0, 1, 2]
    assert select_scores(s, keep=0.5, balance="class").kept.tolist() == [0, 1, 4]
    low = ScoreSet(scores=s.scores, direction=Direction(False), method="m", params={}, seed=0)
    assert select_scores(low, prune=0.5).kept.tolist() == [3, 4, 5]
    with pytest.raises(ConfigError, match="needs labels"):
        select_scores(low, keep=0.5, balance="class")


def test_score_then_select_equals_prune_at_two_budgets(blobs_npz):
    data = f"npz:{blobs_npz}"
    scores = score(data, "random", seed=4, progress=False)
    for frac in (0.2, 0.6):
        a = select(scores, prune=frac)
        b = prune(data, "random", prune=frac, seed=4, progress=False)
        np.testing.assert_array_equal(a.kept, b.kept)
    balanced = prune(data, "random", prune=0.5, seed=4, balance="class", progress=False)
    assert np.bincount(np.asarray(scores.labels)[balanced.kept]).tolist() == [40, 40, 40]


def test_score_refuses_selectors(blobs_npz):
    with pytest.raises(ConfigError, match="no reusable score"):
        score(f"npz:{blobs_npz}", "adapruner", progress=False)


def test_cli_score_then_select(blobs_npz, tmp_path, capsys):
    sc = tmp_path / "scores.parquet"
    assert main(["score", f"npz:{blobs_npz}", "--method", "random", "--seed", "2", "--out", str(sc), "--quiet"]) == 0
    for frac in ("0.3", "0.7"):
        sel = tmp_path / f"sel{frac}.csv"
        direct = tmp_path / f"direct{frac}.csv"
        assert main(["select", str(sc), "--prune", frac, "--out", str(sel)]) == 0
        assert main(["prune", f"npz:{blobs_npz}", "--method", "random", "--seed", "2", "--prune", frac,
                     "--out", str(direct), "--quiet"]) == 0
        assert sel.read_text() == direct.read_text()
    capsys.readouterr()
    assert main(["select", str(sc), "--keep", "0.5", "--out", str(sc)]) == 2
    assert "is an input" in capsys.readouterr().err


def test_a_score_file_carries_its_methods_balance_rule(tmp_path):
    s = ScoreSet(scores=np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]), direction=Direction(True), method="m",
                 params={}, seed=0, labels=np.array([0, 0, 0, 0, 1, 1]), balance="class")
    s.save(tmp_path / "s.json")
    back = ScoreSet.load(tmp_path / "s.json")
    assert back.balance == "class"
    assert select_scores(back, keep=0.5).kept.tolist() == [0, 1, 4]  # the method's own rule
    assert select_scores(back, keep=0.5, balance="none").kept.tolist() == [0, 1, 2]  # overridden


def test_scorer_run_and_select_scores_decide_the_same_kept_set_at_the_switch():
    # prototypes flips direction below keep 0.5; with N = 121, keep 0.5 keeps round-half-up(60.5) = 61.
    # Scorer.run (given the count) and select_scores (given the fraction) must use one rule.
    from adaprune.data import Dataset
    from adaprune.registry import build_method
    from adaprune.selection import Budget
    from adaprune.tasks import ClassificationTask
    from tests.conftest import make_blobs

    x, y = make_blobs(n=121, d=6)
    data = Dataset(name="b121", x=x, y=y)
    method = build_method("prototypes", {"n_clusters": 3})
    task = ClassificationTask(data=data)
    for keep in (0.5, 0.3, 0.8):
        via_select = select_scores(method.score_set(task, seed=0, progress=False), keep=keep)
        via_run = method.run(task, Budget.from_args(keep=keep).count(121), seed=0, progress=False)
        np.testing.assert_array_equal(via_run.kept, via_select.kept)
