"""End to end through the installed console script, on real (generated) data, kept small."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def adaprune_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("adaprune")
    return [str(exe)] if exe.exists() else [shutil.which("adaprune") or "adaprune"]


def test_prune_evaluate_benchmark_on_mnist1d(tmp_path):
    sel = tmp_path / "sel.parquet"
    run = subprocess.run([*adaprune_cmd(), "prune", "mnist1d:400", "--method", "adapruner", "--prune", "0.3",
                          "--epochs", "4", "--out", str(sel), "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([*adaprune_cmd(), "evaluate", "mnist1d:400", "--selection", str(sel), "--seeds", "2",
                          "--epochs", "5", "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line.split() for line in run.stdout.strip().splitlines()[1:]}
    assert rows["subset"][1] == str(round(0.7 * 400)) and rows["full"][1] == "400"
    out = tmp_path / "bench"
    run = subprocess.run([*adaprune_cmd(), "benchmark", "digits", "--methods", "random,adapruner", "--prune",
                          "0.5", "--seeds", "1", "--epochs", "3", "--out", str(out), "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    doc = json.loads((out / "results.json").read_text())
    assert {r["n_kept"] for r in doc["runs"]} == {round(0.5 * 1347)}
    assert doc["metric"] == "accuracy" and all(0.3 < r["value"] <= 1.0 for r in doc["runs"])  # chance on digits is 0.1
