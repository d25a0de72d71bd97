from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaprune.api import prune
from adaprune.errors import ConfigError
from adaprune.methods.glister import Glister, glister_greedy, last_layer_factors, split_validation
from tests.conftest import blobs_dataset


def flat(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A flat gradient per row as the kernel's factors: err = g, feats = 1."""
    return np.asarray(g, dtype=float), np.ones((len(g), 1))


def naive_greedy(grads: np.ndarray, g_val: np.ndarray, k: int, eta: float, batch: int) -> list[int]:
    chosen: list[int] = []
    g_val = g_val.copy()
    while len(chosen) < k:
        rest = [i for i in range(len(grads)) if i not in chosen]
        gains = np.array([grads[i] @ g_val for i in rest])
        top = [rest[j] for j in np.lexsort((rest, -gains))[: min(batch, k - len(chosen))]]
        chosen += top
        g_val -= eta * grads[top].sum(0)
    return chosen


def test_prefers_gradients_aligned_with_the_validation_gradient():
    g_val = np.array([[1.0], [0.0]])
    grads = np.array([[0.0, 1.0], [2.0, 0.0], [-1.0, 0.0], [1.0, 0.5]])  # orthogonal, aligned, opposed, aligned
    order, gains = glister_greedy(*flat(grads), g_val, 2, eta=0.0)
    assert order.tolist() == [1, 3]
    assert gains.tolist() == [0.0, 2.0, -1.0, 1.0]


def test_taylor_update_moves_the_validation_gradient():
    # g_val = (1, 1). Two copies of (2, 0) have gain 2, (0, 1.5) has 1.5. With eta = 0.25 the first
    # pick moves g_val to (0.5, 1): the copy's gain drops to 1, so (0, 1.5) comes next.
    g_val = np.array([[1.0], [1.0]])
    grads = np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 1.5]])
    assert glister_greedy(*flat(grads), g_val, 2, eta=0.0)[0].tolist() == [0, 1]
    assert glister_greedy(*flat(grads), g_val, 2, eta=0.25)[0].tolist() == [0, 2]
    # In batches of 2 both copies are picked before the update.
    assert glister_greedy(*flat(grads), g_val, 2, eta=0.25, greedy_batch=2)[0].tolist() == [0, 1]


@pytest.mark.parametrize("batch", [1, 3])
def test_factorised_greedy_matches_a_flat_reference(batch):
    rng = np.random.default_rng(0)
    err, feats = rng.normal(size=(30, 3)), rng.normal(size=(30, 4))
    g_val = rng.normal(size=(3, 4))
    grads = np.einsum("ic,ip->icp", err, feats).reshape(30, -1)
    order, gains = glister_greedy(err, feats, g_val, 12, eta=0.05, greedy_batch=batch)
    np.testing.assert_allclose(gains, grads @ g_val.ravel())
    assert order.tolist() == naive_greedy(grads, g_val.ravel(), 12, 0.05, batch)


def test_leave_one_out_for_validation_samples():
    grads = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g_val = grads[[0, 1]].mean(0)[:, None]  # samples 0 and 1 are the validation set
    _, gains = glister_greedy(*flat(grads), g_val, 1, eta=0.0, self_weight=np.array([0.5, 0.5, 0.0]))
    # sample 0 is scored against sample 1's half only: <(1,0), (0, 0.5)> = 0
    np.testing.assert_allclose(gains, [0.0, 0.0, 1.0])


def test_last_layer_factors_match_autograd():
    gen = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(3, 5, generator=gen, dtype=torch.float64))
        layer.bias.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
    h = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    logits = layer(h)
    err, feats = last_layer_factors(logits.detach().numpy(), h.numpy(), y.numpy())
    for i in range(4):
        layer.zero_grad()
        F.cross_entropy(layer(h[i : i + 1]), y[i : i + 1]).backward()
        full = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1).numpy()
        np.testing.assert_allclose(np.outer(err[i], feats[i]), full, atol=1e-12)


def test_validation_split_is_seeded_stratified_and_disjoint():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 1)
    train, val = split_validation(labels, 0.1, np.random.default_rng(0))
    assert np.bincount(labels[val], minlength=3).tolist() == [5, 3, 0]  # the singleton class stays in training
    assert not set(train) & set(val) and len(train) + len(val) == 81
    train2, val2 = split_validation(labels, 0.1, np.random.default_rng(0))
    np.testing.assert_array_equal(val, val2)


def test_bad_parameters_are_errors():
    with pytest.raises(ConfigError, match="val_fraction"):
        Glister(val_fraction=1.0)
    with pytest.raises(ConfigError, match="greedy_batch"):
        Glister(greedy_batch=0)
    with pytest.raises(ConfigError, match="shapes"):
        glister_greedy(np.zeros((3, 2)), np.zeros((3, 4)), np.zeros((2, 3)), 1, eta=0.1)


def test_prune_end_to_end_exact_budget_and_deterministic():
    data = blobs_dataset()
    a = prune(data, "glister", prune=0.3, seed=0, epochs=2, progress=False)
    b = prune(data, "glister", prune=0.3, seed=0, epochs=2, progress=False)
    assert a.n_kept == 84
    np.testing.assert_array_equal(a.kept, b.kept)
    assert np.bincount(data.y[a.kept]).tolist() == [28, 28, 28]  # balance=True
    assert a.details["n_validation"] == 12
    # Budgets above the training part: validation samples are candidates too.
    c = prune(data, "glister", prune=0.05, seed=0, epochs=2, params={"balance": False}, progress=False)
    assert c.n_kept == 114


def test_test_split_is_never_used():
    a = prune(blobs_dataset(with_test=True), "glister", keep=0.5, seed=1, epochs=2, progress=False)
    b = prune(blobs_dataset(with_test=True, test_seed=7), "glister", keep=0.5, seed=1, epochs=2, progress=False)
    np.testing.assert_array_equal(a.kept, b.kept)
