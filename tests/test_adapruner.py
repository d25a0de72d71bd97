from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaprune.adapruner_mask import adapruner_loss, adaptive_lambda, alpha_at
from adaprune.api import prune
from adaprune.data import Dataset
from adaprune.errors import ConfigError
from adaprune.methods.adapruner import AdaPruner
from adaprune.tasks import ClassificationTask
from adaprune.training import TrainConfig
from tests.conftest import make_blobs


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_loss_terms_against_hand_computed_values():
    ce = torch.tensor([0.5, 2.0])
    full = torch.tensor([1.0, -1.0, 0.5, 2.0], requires_grad=True)
    batch_idx = torch.tensor([0, 1])
    terms = adapruner_loss(ce, full[batch_idx], full, alpha=2.0, keep=0.5, lambda_scale=100.0, sel_eps=1e-5)
    w0, w1 = sig(2.0), sig(-2.0)  # 0.880797, 0.119203
    assert terms.cls.item() == pytest.approx((w0 * 0.5 + w1 * 2.0) / 2, rel=1e-6)
    assert terms.sel.item() == pytest.approx((-w0 * math.log(0.50001) - w1 * math.log(2.00001)) / 2, rel=1e-6)
    mean_w = (sig(2.0) + sig(-2.0) + sig(1.0) + sig(4.0)) / 4  # 0.678268
    assert terms.comp.item() == pytest.approx((mean_w - 0.5) ** 2, rel=1e-6)  # 0.031780
    assert terms.r == 0.75  # three of four entries have w > 0.5
    assert terms.lam == pytest.approx(25.0)  # 100 * |0.75 - 0.5|
    assert terms.total.item() == pytest.approx(
        terms.cls.item() + terms.sel.item() + 25.0 * terms.comp.item(), rel=1e-6
    )
    # L_sel trains the mask only: no gradient flows back into the losses through CE.
    ce_req = ce.clone().requires_grad_(True)
    t2 = adapruner_loss(ce_req, full[batch_idx], full, alpha=2.0, keep=0.5, lambda_scale=100.0)
    t2.sel.backward()
    assert ce_req.grad is None or torch.all(ce_req.grad == 0)


def test_lambda_rule():
    assert adaptive_lambda(0.9, 0.7, lambda_scale=100) == pytest.approx(20.0)
    assert adaptive_lambda(0.5, 0.7, lambda_scale=100) == pytest.approx(20.0)
    assert adaptive_lambda(0.7, 0.7, lambda_scale=100) == 0.0


def test_alpha_schedule_rises_uniformly_then_holds():
    got = [alpha_at(e, epochs=5, alpha_start=0.1, alpha_max=5.0) for e in range(7)]
    assert got == pytest.approx([0.1, 1.325, 2.55, 3.775, 5.0, 5.0, 5.0])
    assert alpha_at(0, epochs=1, alpha_start=0.1, alpha_max=5.0) == 5.0


def test_mask_entry_follows_its_sample_under_a_shuffled_loader():
    """Frozen network (lr 0), no compression, plain SGD on the mask, one epoch: each m_i moves by
    exactly the gradient of *its own* sample's loss. A mask bound to loader positions would get
    another sample's loss, since the loader shuffles."""
    x, y = make_blobs(n=96, d=5, classes=3, seed=4)
    data = Dataset(name="blobs", x=x, y=y)
    batch = 32
    task = ClassificationTask(data=data, model="mlp", train=TrainConfig(lr=0.0, batch_size=batch))
    alpha, m0, lr, eps = 3.0, 0.3, 0.7, 1e-5
    method = AdaPruner(warmup_epochs=0, epochs=1, max_extra_epochs=0, alpha_max=alpha, lambda_scale=0.0,
                       mask_init=m0, mask_lr=lr, mask_momentum=0.0, sel_eps=eps)
    mask = method.train_mask(task, 0.5, seed=11, progress=False).mask.detach()

    model = task.new_model(11)  # the same initial weights the method trained (frozen) from
    with torch.no_grad():
        ce = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y), reduction="none").double()
    w = sig(alpha * m0)
    grad = alpha * w * (1 - w) * (ce - torch.log(ce + eps)) / batch
    expected = m0 - lr * grad
    assert ce.std() > 0.05  # the samples' losses differ, so a mix-up would show
    torch.testing.assert_close(mask.double(), expected, rtol=1e-5, atol=1e-6)


def test_budget_is_exact_and_runs_are_deterministic():
    x, y = make_blobs(n=150, d=6)
    data = Dataset(name="blobs", x=x, y=y)
    params = {"warmup_epochs": 1, "max_extra_epochs": 2, "sampling": "top", "balance": "none"}
    a = prune(data, "adapruner", prune=0.3, seed=5, epochs=4, params=params, progress=False)
    b = prune(data, "adapruner", prune=0.3, seed=5, epochs=4, params=params, progress=False)
    assert a.n_kept == round(0.7 * 150)
    np.testing.assert_array_equal(a.kept, b.kept)
    np.testing.assert_array_equal(a.scores, b.scores)
    # The kept set is the top of the mask ranking.
    assert a.scores[a.kept].min() >= a.scores[~a.mask].max()
    assert a.details["pruning_epochs_run"] >= 4 and len(a.details["history"]["alpha"]) >= 4


def test_threshold_binarisation_keeps_positive_mask_entries():
    x, y = make_blobs(n=120, d=6)
    data = Dataset(name="blobs", x=x, y=y)
    sel = prune(data, "adapruner", keep=0.6, seed=0, epochs=3,
                params={"warmup_epochs": 1, "binarize": "threshold", "mask_lr": 1.0}, progress=False)
    np.testing.assert_array_equal(sel.kept, np.flatnonzero(sel.scores > 0))
    assert sel.realised_keep == pytest.approx(sel.details["mask_keep_fraction"])


def test_mask_moves_hard_to_learn_samples_differently_from_easy_ones():
    """Planted signal: the last 20% of samples have random labels. The ones that came out wrong
    keep a high loss, so their mask entries end up ranked differently from the clean samples'."""
    x, y_true = make_blobs(n=200, d=6, classes=2, seed=2)
    rng = np.random.default_rng(0)
    y = y_true.copy()
    y[160:] = rng.integers(0, 2, size=40)
    flipped = np.flatnonzero(y != y_true)
    assert len(flipped) > 10
    data = Dataset(name="blobs", x=x, y=y)
    sel = prune(data, "adapruner", prune=0.2, seed=0, epochs=8, params={"warmup_epochs": 3}, progress=False)
    clean_mean = sel.scores[:160].mean()
    noisy_mean = sel.scores[flipped].mean()
    assert abs(clean_mean - noisy_mean) > 0.1


@pytest.mark.parametrize("kwargs", [{"binarize": "median"}, {"alpha_start": 0.0}, {"epochs": 0}, {"mask_lr": -1.0}])
def test_bad_parameters(kwargs):
    with pytest.raises(ConfigError):
        AdaPruner(**kwargs)


def test_loss_gradient_matches_autograd_of_the_written_formula():
    torch.manual_seed(0)
    full = torch.randn(50, dtype=torch.float64, requires_grad=True)
    ce = torch.rand(8, dtype=torch.float64) + 0.1
    idx = torch.arange(0, 50, 7)[:8]
    terms = adapruner_loss(ce, full[idx], full, alpha=1.7, keep=0.6, lambda_scale=100.0)
    terms.total.backward()
    ref = full.detach().clone().requires_grad_(True)
    w = torch.sigmoid(1.7 * ref[idx])
    l_cls = (w * ce).mean()
    l_sel = (w * -torch.log(ce + 1e-5)).mean()
    l_comp = (torch.sigmoid(1.7 * ref).sum() / 50 - 0.6) ** 2
    (l_cls + l_sel + terms.lam * l_comp).backward()
    torch.testing.assert_close(full.grad, ref.grad)
    assert terms.comp.item() == pytest.approx(l_comp.item())


def test_mask_sgd_matches_torch_sgd():
    from adaprune.adapruner_mask import MaskSGD

    a = torch.linspace(-1, 1, 7, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ours = MaskSGD(a, lr=0.3, momentum=0.9, weight_decay=0.01)
    ref = torch.optim.SGD([b], lr=0.3, momentum=0.9, weight_decay=0.01)
    for step in range(4):
        for p, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            ((p - 0.1 * step) ** 2 * torch.arange(7.0)).sum().backward()
            opt.step()
    torch.testing.assert_close(a, b)


def test_budget_binarisation_does_not_report_an_off_budget_mask_as_a_problem(caplog):
    import logging

    from tests.conftest import blobs_dataset

    params = {"warmup_epochs": 0, "epochs": 1, "max_extra_epochs": 0}
    with caplog.at_level(logging.DEBUG, logger="adaprune"):
        sel = prune(blobs_dataset(), "adapruner", keep=0.7, seed=0, params=params, progress=False)
    assert sel.n_kept == 84 and not sel.details["converged"]
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "mask" in r.getMessage()]
    assert not loud, loud
    assert any("met exactly by ranking" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
