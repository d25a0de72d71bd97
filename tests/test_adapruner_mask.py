from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from adaprune.adapruner_mask import AdaPrunerMask, Reshuffle, with_indices
from adaprune.errors import ConfigError, DataError
from adaprune.selection import Selection
from tests.conftest import make_blobs


def two_layer_net(d: int, classes: int, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return net


def test_mask_entries_follow_their_samples_in_a_user_loop_with_a_shuffled_loader():
    """A two-layer net trains (SGD) in a plain user loop over a shuffled DataLoader. With no
    compression term and no momentum, each m_i moves exactly once per epoch, by the gradient of its
    own sample's loss in the batch it came in: m_i = m0 - lr * alpha w (1 - w) (l_i - log(l_i + eps)) / B.
    A mask bound to loader positions would receive another sample's loss."""
    x, y = make_blobs(n=100, d=5, classes=3, seed=4)
    loader = DataLoader(with_indices(TensorDataset(torch.from_numpy(x), torch.from_numpy(y))), batch_size=32,
                        shuffle=True, generator=torch.Generator().manual_seed(3))
    model = two_layer_net(5, 3, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    alpha, m0, lr, eps = 3.0, 0.3, 0.7, 1e-5
    pruner = AdaPrunerMask(len(x), keep=0.5, epochs=1, warmup_epochs=0, max_extra_epochs=0, alpha_max=alpha,
                           lambda_scale=0.0, mask_init=m0, mask_lr=lr, mask_momentum=0.0, sel_eps=eps)
    seen = np.zeros(len(x), dtype=bool)
    expected = torch.full((len(x),), m0, dtype=torch.float64)
    w = 1 / (1 + math.exp(-alpha * m0))
    for xb, yb, idx in loader:
        per_sample = F.cross_entropy(model(xb), yb, reduction="none")
        loss = pruner.loss(per_sample, idx)
        ce = per_sample.detach().double()
        expected[idx] = m0 - lr * alpha * w * (1 - w) * (ce - torch.log(ce + eps)) / len(idx)
        seen[idx.numpy()] = True
        loss.backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
    assert pruner.end_epoch() is True  # one pruning epoch, no extra epochs: the schedule is over
    assert seen.all()
    assert not np.array_equal(next(iter(loader))[2].numpy(), np.arange(32))  # the loader did shuffle
    assert (expected - m0).std() > 1e-3  # the samples' updates differ, so a mix-up would show
    torch.testing.assert_close(pruner.mask.detach().double(), expected, rtol=1e-5, atol=1e-6)


def test_warm_up_is_the_plain_mean_and_leaves_the_mask_alone():
    pruner = AdaPrunerMask(10, keep=0.5, epochs=2, warmup_epochs=2)
    per_sample = torch.tensor([1.0, 3.0], requires_grad=True)
    loss = pruner.loss(per_sample, torch.tensor([4, 7]))
    assert loss.item() == 2.0
    loss.backward()
    pruner.step()
    assert torch.all(pruner.mask == 1.0)
    assert pruner.end_epoch() is False and pruner.end_epoch() is False
    assert pruner.history["r"] == [] and not pruner.in_warmup
    assert pruner.total_epochs == 2 + 2 + 10
    with pytest.raises(ConfigError, match="no pruning epoch"):
        pruner.selection()


def _train(pruner: AdaPrunerMask, x: torch.Tensor, y: torch.Tensor, model: nn.Module, *, epochs: int,
           seed: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(25):
            loss = pruner.loss(F.cross_entropy(model(x[idx]), y[idx], reduction="none"), idx)
            loss.backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
        if pruner.end_epoch():
            break


def test_selection_has_the_exact_budget_and_round_trips_through_the_cli_files(tmp_path):
    x, y = map(torch.from_numpy, make_blobs(n=90, d=4, classes=3, seed=1))
    pruner = AdaPrunerMask(90, keep=0.7, epochs=3, warmup_epochs=1, max_extra_epochs=1, sampling="top")
    _train(pruner, x, y, two_layer_net(4, 3, seed=1), epochs=pruner.total_epochs, seed=0)
    sel = pruner.selection(seed=7)
    assert sel.n_kept == 63 and sel.method == "adapruner" and sel.seed == 7
    assert sel.scores[sel.kept].min() >= sel.scores[~sel.mask].max()
    assert sel.params["epochs"] == 3 and sel.details["pruning_epochs_run"] == len(pruner.history["r"]) >= 3
    path = tmp_path / "sel.csv"
    sel.save(path)
    back = Selection.load(path)
    np.testing.assert_array_equal(back.kept, sel.kept)
    np.testing.assert_allclose(back.scores, sel.scores)


def test_checkpoint_resumes_to_the_same_mask():
    x, y = map(torch.from_numpy, make_blobs(n=60, d=4, classes=2, seed=2))
    params = {"keep": 0.5, "epochs": 3, "warmup_epochs": 1, "max_extra_epochs": 0}

    straight = AdaPrunerMask(60, **params)
    model = two_layer_net(4, 2, seed=0)
    _train(straight, x, y, model, epochs=2, seed=0)
    state, model_state = straight.state_dict(), {k: v.clone() for k, v in model.state_dict().items()}
    assert state["momentum_buffer"] is not None
    _train(straight, x, y, model, epochs=2, seed=1)

    resumed = AdaPrunerMask(60, **params)
    resumed.load_state_dict(state)
    model2 = two_layer_net(4, 2, seed=0)
    model2.load_state_dict(model_state)
    _train(resumed, x, y, model2, epochs=2, seed=1)
    torch.testing.assert_close(resumed.mask, straight.mask)
    assert resumed.history == straight.history and resumed.epoch == straight.epoch == 4
    with pytest.raises(ConfigError, match="other settings"):
        AdaPrunerMask(60, **{**params, "keep": 0.6}).load_state_dict(state)


def test_with_indices_appends_the_index():
    base = TensorDataset(torch.arange(5.0) * 10, torch.arange(5))
    wrapped = with_indices(base)
    assert len(wrapped) == 5
    assert wrapped[3] == (base[3][0], base[3][1], 3)
    assert with_indices([7.0, 8.0])[1] == (8.0, 1)  # a plain sequence of non-tuples
    xb, yb, idx = next(iter(DataLoader(wrapped, batch_size=5)))
    assert idx.dtype == torch.int64 and idx.tolist() == [0, 1, 2, 3, 4]


def test_bad_inputs_are_refused_in_one_line():
    with pytest.raises(ConfigError):
        AdaPrunerMask(0, keep=0.5)
    with pytest.raises(ConfigError):
        AdaPrunerMask(10, keep=1.5)
    with pytest.raises(ConfigError):
        AdaPrunerMask(10, keep=0.5, binarize="median")
    pruner = AdaPrunerMask(10, keep=0.5, warmup_epochs=0)
    with pytest.raises(DataError):
        pruner.loss(torch.ones(3, 2), torch.arange(3))
    with pytest.raises(DataError):
        pruner.loss(torch.ones(3), torch.arange(2))


def test_defaults_are_the_adapruner_methods():
    from adaprune.methods.adapruner import AdaPruner

    mask_defaults = {k: p.default for k, p in inspect.signature(AdaPrunerMask).parameters.items()
                     if p.default is not inspect.Parameter.empty}
    method_defaults = {k: p.default for k, p in inspect.signature(AdaPruner).parameters.items()}
    assert mask_defaults.pop("labels") is None  # data for balance="class", which the method takes from its task
    assert mask_defaults == method_defaults


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mask_follows_the_loss_to_cuda():
    x, y = map(torch.from_numpy, make_blobs(n=60, d=4, classes=2, seed=2))
    pruner = AdaPrunerMask(60, keep=0.5, epochs=2, warmup_epochs=1, max_extra_epochs=0)
    model = two_layer_net(4, 2, seed=0).cuda()
    _train(pruner, x.cuda(), y.cuda(), model, epochs=3, seed=0)
    assert pruner.mask.device.type == "cuda"
    assert pruner.selection().n_kept == 30


def test_our_loop_and_a_plain_user_loop_give_identical_masks():
    """The `adapruner` method is a user of AdaPrunerMask: the same seed and model through adaprune's
    loop and through a hand-written DataLoader loop give the same mask, bit for bit, on CPU."""
    from adaprune.data import Dataset
    from adaprune.methods.adapruner import AdaPruner
    from adaprune.tasks import ClassificationTask
    from adaprune.training import TrainConfig

    x, y = make_blobs(n=90, d=5, classes=3, seed=6)
    task = ClassificationTask(data=Dataset(name="blobs", x=x, y=y), model="mlp", train=TrainConfig(batch_size=16))
    method = AdaPruner(warmup_epochs=1, epochs=3, max_extra_epochs=1, sampling="top", balance="none")
    ours = method.train_mask(task, 0.6, seed=3, progress=False)

    dataset = with_indices(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)))
    loader = DataLoader(dataset, batch_size=16, sampler=Reshuffle(len(dataset), seed=3))
    model = task.new_model(3)  # the same initial weights
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    pruner = AdaPrunerMask(len(x), keep=0.6, warmup_epochs=1, epochs=3, max_extra_epochs=1, sampling="top")
    for _ in range(pruner.total_epochs):
        for xb, yb, idx in loader:
            loss = pruner.loss(F.cross_entropy(model(xb), yb, reduction="none"), idx)
            loss.backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
        if pruner.end_epoch():
            break
    assert torch.equal(pruner.mask.detach(), ours.mask.detach())
    assert pruner.history == ours.history
    np.testing.assert_array_equal(pruner.selection().kept,
                                  method.run(task, 54, seed=3, progress=False).kept)


def test_balance_class_keeps_per_class_quotas_and_constant_lambda():
    """Planted: class 1's mask entries are all below every other class's, so a global ranking keeps
    none of class 1; per-class quotas keep its proportional share (2 of 4 at keep 0.5)."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pruner = AdaPrunerMask(8, keep=0.5, warmup_epochs=0, epochs=1, max_extra_epochs=0, balance="class",
                           labels=labels, lambda_rule="constant", lambda_scale=7.0)
    with torch.no_grad():
        pruner.mask.copy_(torch.tensor([4.0, 3.0, 2.0, 1.0, -1.0, -2.0, -3.0, -4.0]))
    pruner.loss(torch.ones(2), torch.tensor([0, 4]))
    assert pruner.last_terms is not None and pruner.last_terms.lam == 7.0  # constant: s, whatever r is
    pruner.end_epoch()
    assert pruner.history["lambda"] == [7.0]
    assert sorted(pruner.kept().tolist()) == [0, 1, 4, 5]
    unbalanced = AdaPrunerMask(8, keep=0.5, warmup_epochs=0, epochs=1, max_extra_epochs=0)
    with torch.no_grad():
        unbalanced.mask.copy_(pruner.mask)
    assert sorted(unbalanced.kept().tolist()) == [0, 1, 2, 3]
    with pytest.raises(ConfigError):
        AdaPrunerMask(8, keep=0.5, balance="class")  # no labels
