"""One seed has no standard deviation: evaluate prints `-`, a benchmark's table shows the mean alone
and its results.json holds std null, and the report reads that file back."""

from __future__ import annotations

from adaprune.cli.evaluate import format_evaluation
from adaprune.evaluate.benchmark import BenchmarkResult, BenchmarkRun
from adaprune.evaluate.harness import EvaluationResult
from adaprune.report import render_report


def result(seeds: tuple[int, ...]) -> EvaluationResult:
    values = (0.25, 0.35)[: len(seeds)]
    return EvaluationResult(dataset="synthdet", method="random", n_total=10, n_kept=5, epochs=2, seeds=seeds,
                            metric="map", subset=values, full=values, subset_extras=tuple({"map50": v} for v in values),
                            full_extras=tuple({"map50": v} for v in values), input_size=128)


def test_evaluate_prints_a_dash_for_the_std_of_one_seed():
    head, subset, full, protocol = format_evaluation(result((0,))).splitlines()
    assert subset.split() == ["subset", "5", "0.2500", "-", "0.2500", "-", "0.2500"]
    assert full.split()[3] == "-" and "letterboxed to 128 px" in protocol
    two = format_evaluation(result((0, 1))).splitlines()[1].split()
    assert two[2:4] == ["0.3000", "0.0707"]  # mean and sample std of (0.25, 0.35)


def test_a_one_seed_benchmark_shows_means_only_and_reads_back_into_the_report(tmp_path):
    runs = tuple(BenchmarkRun(m, 0.3, 0, 7, v, 1.0, {"map50": v + 0.1}) for m, v in (("random", 0.21),
                                                                                   ("adadedup", 0.25)))
    bench = BenchmarkResult(dataset="synthdet", n_train=10, n_test=5, model="auto", epochs=2,
                            methods=("adadedup", "random"), prunes=(0.3,), seeds=(0,), metric="map",
                            full_values=(0.3,), runs=runs, machine={"summary": "test"}, command="adaprune benchmark",
                            full_extras=({"map50": 0.4},), input_size=128)
    md = bench.to_markdown()
    assert "±" not in md and "| adadedup | 25.00 |" in md and "| full data (0% pruned) | 30.00 |" in md
    assert "images letterboxed to 128 px" in md and "seed 0." in md
    doc = bench.to_dict()
    assert doc["full_data"]["std"] is None and all(row["std"] is None for row in doc["summary"])
    bench.save(tmp_path / "bench")
    html = render_report(tmp_path / "bench")
    assert "Test mAP@[.5:.95] against fraction pruned" in html and '<td class="better">25.00</td>' in html
