from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from adaprune.api import prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.evaluate import train_and_test
from adaprune.models import auto_model_name, build_model
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig


@pytest.mark.parametrize(
    "name, shape",
    [("mlp", (7,)), ("cnn1d", (1, 40)), ("cnn", (1, 8, 8)), ("cnn", (3, 12, 12)), ("resnet18", (3, 16, 16))],
)
def test_models_give_logits_and_features(name, shape):
    model = build_model(name, shape, 4).eval()
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 4)
    assert model.features(x).shape == (2, model.feature_dim)


def test_auto_picks_by_shape_and_bad_layouts_fail():
    assert [auto_model_name(s) for s in [(5,), (1, 9), (3, 4, 4)]] == ["mlp", "cnn1d", "cnn"]
    with pytest.raises(ConfigError, match="needs"):
        build_model("cnn", (5,), 2)
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("vgg", (5,), 2)


def test_same_seed_same_initial_weights_without_touching_global_rng():
    data = Dataset(name="d", x=np.zeros((4, 3), np.float32), y=np.array([0, 1, 0, 1]))
    task = ClassificationTask(data=data, model="mlp")
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    a, b = task.new_model(3), task.new_model(3)
    assert torch.rand(1) == expected
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_any_torch_module_through_the_api():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    data = Dataset(name="d", x=x, y=y, x_test=x[:20], y_test=y[:20])
    sel = prune(data, "adapruner", keep=0.5, model=lambda: nn.Linear(4, 2), epochs=2,
                params={"warmup_epochs": 1}, progress=False)
    assert sel.n_kept == 40
    task = ClassificationTask(data=data, model=lambda: nn.Linear(4, 2), train=TrainConfig(epochs=20, lr=0.05))
    assert train_and_test(task, sel.kept, seed=0, progress=False).value > 0.8
