"""End to end through the installed console script, on real (generated) data, kept small."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def adaprune_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("adaprune")
    return [str(exe)] if exe.exists() else [shutil.which("adaprune") or "adaprune"]


# One thread per process: on a busy 2-core machine two spin-waiting threads are far slower.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_prune_evaluate_benchmark_on_mnist1d(tmp_path):
    sel = tmp_path / "sel.parquet"
    run = subprocess.run([*adaprune_cmd(), "prune", "mnist1d:400", "--method", "adapruner", "--prune", "0.3",
                          "--epochs", "2", "--param", "warmup_epochs=1", "--param", "max_extra_epochs=0",
                          "--out", str(sel), "--quiet"], capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr
    # `evaluate` runs in-process in test_cli.py; one interpreter fewer keeps this test short.
    out = tmp_path / "bench"
    run = subprocess.run([*adaprune_cmd(), "benchmark", "digits", "--methods", "random,adapruner", "--prune",
                          "0.5", "--seeds", "1", "--epochs", "5", "--model", "mlp", "--out", str(out), "--quiet",
                          # A short AdaPruner schedule: per method, and a plain key for every method that has it.
                          "--param", "adapruner.epochs=2", "--param", "warmup_epochs=1",
                          "--param", "adapruner.max_extra_epochs=0"],
                         capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr
    doc = json.loads((out / "results.json").read_text())
    assert {r["n_kept"] for r in doc["runs"]} == {round(0.5 * 1347)}
    assert doc["metric"] == "accuracy" and all(0.3 < r["value"] <= 1.0 for r in doc["runs"])  # chance on digits is 0.1
    report = tmp_path / "report.html"
    run = subprocess.run([*adaprune_cmd(), "report", str(out), "--out", str(report)], capture_output=True, text=True,
                         env=ENV)
    assert run.returncode == 0, run.stderr
    assert "<td>adapruner</td>" in report.read_text() and "<td>random</td>" in report.read_text()
