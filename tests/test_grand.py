from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adaprune.api import build_method, prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.grand import auto_chunk_size, last_layer_grad_norms, per_sample_grad_norms
from adaprune.models import FeatureClassifier
from adaprune.training.loop import seeded_model
from tests.conftest import flipped_blobs


def autograd_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, params=None) -> np.ndarray:
    """The naive reference: one backward pass per sample, sum of squared gradients."""
    model.eval()
    params = list(model.parameters()) if params is None else list(params)
    out = []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        out.append(sum(float((p.grad.double() ** 2).sum()) for p in params if p.grad is not None) ** 0.5)
    return np.array(out)


def tiny_net(seed: int = 0, d: int = 5, k: int = 3) -> nn.Module:
    def build() -> FeatureClassifier:
        body = nn.Sequential(nn.Linear(d, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 6), nn.Tanh())
        net = FeatureClassifier(body, 6, k)
        with torch.no_grad():  # non-trivial batch-norm statistics, used in eval mode
            net.body[1].running_mean.uniform_(-0.5, 0.5)
            net.body[1].running_var.uniform_(0.5, 2.0)
        return net

    return seeded_model(build, seed, "cpu")


def test_two_parameter_model_by_hand():
    model = nn.Linear(1, 2, bias=False)  # parameters w0, w1; logits (w0 x, w1 x)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    x, y = torch.tensor([[2.0], [-1.0]]), torch.tensor([0, 1])
    # sample 0: logits (2, -2), p0 = sigmoid(4); dL/dw = (p - e_y) x = ((p0 - 1) 2, (1 - p0) 2)
    p0 = 1 / (1 + np.exp(-4.0))
    # sample 1: logits (-1, 1), p1 = sigmoid(2) for class 1; dL/dw = ((1 - p1)(-1), (p1 - 1)(-1))
    p1 = 1 / (1 + np.exp(-2.0))
    expected = [2 * np.sqrt(2) * (1 - p0), np.sqrt(2) * (1 - p1)]
    np.testing.assert_allclose(per_sample_grad_norms(model, x, y), expected, rtol=1e-6)
    np.testing.assert_allclose(autograd_norms(model, x, y), expected, rtol=1e-6)


def test_linear_head_with_bias_by_hand_both_ways():
    model = FeatureClassifier(nn.Identity(), 1, 2)  # logits = W x + b: four parameters
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor([[0.5], [-0.5]]))
        model.classifier.bias.copy_(torch.tensor([0.25, 0.0]))
    x, y = torch.tensor([[3.0]]), torch.tensor([1])
    z = np.array([1.75, -1.5])
    p = np.exp(z) / np.exp(z).sum()
    expected = np.linalg.norm(p - [0, 1]) * np.sqrt(3.0**2 + 1)  # ||p - e_y|| sqrt(x^2 + 1)
    np.testing.assert_allclose(per_sample_grad_norms(model, x, y), [expected], rtol=1e-6)
    np.testing.assert_allclose(last_layer_grad_norms(model, x, y), [expected], rtol=1e-6)


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_full_gradient_norms_match_autograd(chunk_size):
    model = tiny_net()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(10, 5, generator=g), torch.randint(0, 3, (10,), generator=g)
    fast = per_sample_grad_norms(model, x, y, chunk_size=chunk_size)
    np.testing.assert_allclose(fast, autograd_norms(model, x, y), rtol=1e-5)
    assert fast.dtype == np.float64 and fast.shape == (10,)


def test_last_layer_closed_form_matches_autograd_on_the_head_only():
    model = tiny_net(seed=2)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(9, 5, generator=g), torch.randint(0, 3, (9,), generator=g)
    reference = autograd_norms(model, x, y, params=model.classifier.parameters())
    np.testing.assert_allclose(last_layer_grad_norms(model, x, y, chunk_size=4), reference, rtol=1e-5)
    # the head is part of the full gradient, so its norm can only be smaller
    assert (reference <= per_sample_grad_norms(model, x, y) + 1e-9).all()


def test_last_layer_needs_features_and_a_linear_classifier():
    x, y = torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ConfigError, match="classifier"):
        last_layer_grad_norms(nn.Sequential(nn.Linear(4, 2)), x, y)
    data = Dataset(name="d", x=np.zeros((6, 4), np.float32), y=np.arange(6) % 2)
    with pytest.raises(ConfigError, match="last_layer=False"):
        prune(data, "grand", keep=0.5, model=lambda: nn.Sequential(nn.Linear(4, 2)),
              params={"last_layer": True}, progress=False)
    # the full-gradient path takes any model
    sel = prune(data, "grand", keep=0.5, model=lambda: nn.Sequential(nn.Linear(4, 2)), epochs=0, progress=False)
    assert sel.n_kept == 3


def test_auto_chunk_and_parameters():
    assert auto_chunk_size(10) == 512 and auto_chunk_size(11_000_000) == 6 and auto_chunk_size(10**9) == 1
    m = build_method("grand")
    assert m.params() == {"epochs": 0, "runs": 3, "last_layer": False, "chunk_size": None}
    assert m.trains_model and m.higher_is_keep
    for bad in ({"chunk_size": 0}, {"runs": 0}, {"epochs": -1}):
        with pytest.raises(ConfigError):
            build_method("grand", bad)


@pytest.mark.parametrize("last_layer", [False, True])
def test_prune_budget_determinism_and_flipped_labels_have_large_gradients(last_layer):
    ds, flip = flipped_blobs()
    params = {"last_layer": last_layer}
    a = prune(ds, "grand", prune=0.3, seed=0, epochs=2, params=params, progress=False)
    b = prune(ds, "grand", prune=0.3, seed=0, epochs=2, params=params, progress=False)
    assert a.n_kept == round(0.7 * ds.n) and np.array_equal(a.kept, b.kept)
    assert np.array_equal(a.scores, b.scores)
    sel = prune(ds, "grand", prune=0.3, seed=0, epochs=8, params={**params, "runs": 1}, progress=False)
    clean = np.setdiff1d(np.arange(ds.n), flip)
    assert sel.scores[flip].mean() > 3 * sel.scores[clean].mean()
    assert np.isin(flip, sel.kept).mean() >= 0.9
