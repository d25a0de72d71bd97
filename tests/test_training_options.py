"""The training we do is configurable (optimizer, lr, batch size, weight decay), recorded, and
evaluation can match optimisation steps instead of epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adaprune.api import evaluate, prune, score, train_config
from adaprune.cli.main import main
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.evaluate.harness import matched_schedule
from adaprune.tasks import make_task
from adaprune.training.loop import TrainConfig, fit
from tests.conftest import blobs_dataset

EL2N = {"params": {"runs": 1}, "epochs": 1}
SGD = {"optimizer": "sgd", "lr": 0.05, "batch_size": 16, "weight_decay": 1e-3}


def test_training_options_reach_the_method_and_are_recorded():
    data = blobs_dataset()
    default = prune(data, "el2n", keep=0.5, progress=False, **EL2N)
    tuned = prune(data, "el2n", keep=0.5, progress=False, **EL2N, **SGD)
    assert tuned.details["training"] == SGD
    assert default.details["training"] == {"optimizer": "adam", "lr": 3e-3, "batch_size": 128, "weight_decay": 0.0}
    assert not np.allclose(default.scores, tuned.scores)  # the model was trained differently
    assert score(data, "el2n", progress=False, **EL2N, **SGD).details["training"] == SGD
    assert "training" not in prune(data, "random", keep=0.5, progress=False, **SGD).details  # trains nothing


@pytest.mark.parametrize("bad", [{"lr": 0.0}, {"lr": float("nan")}, {"weight_decay": -1.0}, {"batch_size": 0},
                                 {"optimizer": "lamb"}])
def test_bad_training_options(bad):
    with pytest.raises(ConfigError):
        train_config(**bad)


def test_cli_training_options_land_in_the_metadata(blobs_npz, tmp_path, capsys):
    out = tmp_path / "sel.csv"
    code = main(["prune", f"npz:{blobs_npz}", "--method", "el2n", "--keep", "0.5", "--epochs", "1", "--param",
                 "runs=1", "--optimizer", "sgd", "--lr", "0.05", "--batch-size", "16", "--weight-decay", "0.001",
                 "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "sel.csv.meta.json").read_text())
    assert meta["details"]["training"] == SGD
    code = main(["prune", f"npz:{blobs_npz}", "--method", "el2n", "--keep", "0.5", "--lr", "-1",
                 "--out", str(tmp_path / "bad.csv"), "--quiet"])
    assert code == 2 and "lr must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists()


class StepCounter:
    def __init__(self) -> None:
        self.steps = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self) -> None:
        self.steps += 1


def test_matched_schedule_and_max_steps():
    data = blobs_dataset(n=240)
    task = make_task(data, model="mlp", train=TrainConfig(epochs=3, batch_size=128))
    # full set: 3 epochs x ceil(240 / 128) = 6 steps; 60 samples take 1 step an epoch -> 6 epochs
    assert matched_schedule(task, 60) == (6, 6)
    # 200 samples: 2 steps an epoch -> 3 epochs; 100: 1 a epoch -> 6
    assert matched_schedule(task, 200) == (3, 6) and matched_schedule(task, 100) == (6, 6)
    counter = StepCounter()
    fit(task.new_model(0), task, seed=0, indices=torch.arange(150), epochs=5, max_steps=7,
        extra_optimizers=(counter,), progress=False)
    assert counter.steps == 7  # stopped mid-epoch: 5 epochs of 2 steps would be 10


def test_evaluate_says_which_protocol(tmp_path, capsys):
    data = blobs_dataset(n=120, with_test=True)
    sel = prune(data, "random", keep=0.25, progress=False)
    same = evaluate(data, sel, seeds=1, epochs=2, model="mlp", progress=False)
    matched = evaluate(data, sel, seeds=1, epochs=2, model="mlp", progress=False, match_steps=True)
    assert same.protocol == "epochs" and same.subset_epochs == 2
    # full set: 2 epochs x 1 step (120 <= 128); the 30 kept samples also take 1 step an epoch
    assert matched.protocol == "steps" and matched.subset_epochs == 2
    assert "matched steps" in matched.describe_protocol()
    path = tmp_path / "d.npz"
    np.savez(path, x=data.x, y=data.y, x_test=data.x_test, y_test=data.y_test)
    sel_path = tmp_path / "sel.csv"
    prune(Dataset(name="d", x=data.x, y=data.y), "random", keep=0.25, progress=False).save(sel_path)
    assert main(["evaluate", f"npz:{path}", "--selection", str(sel_path), "--seeds", "1", "--epochs", "2",
                 "--batch-size", "16", "--match-steps", "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    # full set: 2 epochs x ceil(120 / 16) = 16 steps; 30 kept samples: 2 steps an epoch -> 8 epochs
    assert out[-1] == ("# matched steps: the subset trained 8 epochs, as many optimisation steps as the full "
                       "set's 2 epochs")


@pytest.mark.slow
def test_benchmark_says_which_protocol(tmp_path):
    data = blobs_dataset(n=120, with_test=True)
    path = tmp_path / "d.npz"
    np.savez(path, x=data.x, y=data.y, x_test=data.x_test, y_test=data.y_test)
    out_dir = tmp_path / "bench"
    assert main(["benchmark", f"npz:{path}", "--methods", "random", "--prune", "0.5", "--seeds", "1",
                 "--epochs", "1", "--match-steps", "--optimizer", "sgd", "--out", str(out_dir), "--quiet"]) == 0
    doc = json.loads((out_dir / "results.json").read_text())
    assert doc["protocol"] == "steps" and doc["training"]["optimizer"] == "sgd"
    assert "matched steps" in (out_dir / "results.md").read_text().splitlines()[0]
