"""The "Bring your own loop" code in docs/own_loop.md and docs/bring_your_own_loop.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from adaprune.scores import ScoreSet
from adaprune.selection import Selection
from tests.conftest import make_blobs

ROOT = Path(__file__).resolve().parents[1]


def blocks(path: Path, tag: str) -> list[str]:
    text = path.read_text()
    found = re.findall(rf"<!-- readme-test: {tag} -->\n```python\n(.*?)```", text, flags=re.S)
    assert found, f"no block tagged {tag} in {path}"
    return found


def test_readme_own_loop_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = make_blobs(n=80, d=6, classes=10, seed=0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 10))
    logit_history = np.random.default_rng(0).normal(size=(4, 80, 10))
    namespace = {
        "train_set": TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        "model": model,
        "criterion": nn.CrossEntropyLoss(reduction="none"),
        "opt": torch.optim.SGD(model.parameters(), lr=0.05),
        "logit_history": logit_history,
        "labels": y,
        "X_train": x,
        "y_train": np.array(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])[y],
    }
    own_loop = blocks(ROOT / "docs" / "own_loop.md", "own-loop")
    assert len(own_loop) == 4
    for code in own_loop:
        exec(compile(code, "docs/own_loop.md", "exec"), namespace)
    # AdaPrunerMask: exactly 70% kept, written in the CLI's format
    sel = Selection.load(tmp_path / "adapruner.csv")
    assert sel.n_kept == 56 and sel.method == "adapruner"
    assert namespace["pruner"].epoch >= 5 + 20  # warm-up and the alpha ramp ran
    # recorder
    assert ScoreSet.load(tmp_path / "el2n.csv").method == "el2n"
    assert namespace["kept"].n_kept == 56
    # kernels
    for name in ("el2n", "entropy", "aum", "forgotten"):
        assert namespace[name].shape == (80,)
    # Pruner
    assert namespace["pipe"].named_steps["prune"].support_.sum() == 56
    assert len(namespace["X_kept"]) == 40


@pytest.mark.slow
def test_detection_example_runs(capsys):
    (code,) = blocks(ROOT / "docs" / "bring_your_own_loop.md", "detection")
    namespace: dict = {}
    exec(compile(code, "bring_your_own_loop.md", "exec"), namespace)
    assert namespace["selection"].n_kept == 32
    assert "32 of 64 images kept" in capsys.readouterr().out
    assert len(namespace["pruner"].history["r"]) == 4
