"""AdaPrunerMask's pieces pinned by hand-computed values and by direction (which way the mask moves),
for the mutants that survived tests/test_adapruner_mask.py (benchmarks/results/mutation.md). Fast: tiny
tensors, no training loop."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from adaprune.adapruner_mask import (
    AdaPrunerMask,
    IndexedDataset,
    MaskSGD,
    Reshuffle,
    adapruner_loss,
    adaptive_lambda,
    alpha_at,
    with_indices,
)
from adaprune.errors import ConfigError, DataError


def test_alpha_ramp_by_hand():
    got = [alpha_at(e, epochs=5, alpha_start=1.0, alpha_max=5.0) for e in range(7)]
    assert got == [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0]
    assert alpha_at(0, epochs=1, alpha_start=1.0, alpha_max=5.0) == 5.0  # one pruning epoch: at the max
    assert [alpha_at(e, epochs=2, alpha_start=0.5, alpha_max=3.0) for e in (0, 1)] == [0.5, 3.0]


def test_lambda_rules_by_hand():
    assert adaptive_lambda(0.3, 0.5, lambda_scale=10.0) == pytest.approx(2.0)
    assert adaptive_lambda(0.7, 0.5, lambda_scale=10.0) == pytest.approx(2.0)  # |r - c_r|: either side
    assert adaptive_lambda(0.3, 0.5, lambda_scale=10.0, rule="constant") == 10.0


def test_loss_terms_by_hand():
    # alpha 2, batch mask [0, ln3 / 2] -> w [1/2, 3/4]; losses [2, 1]; sel_eps 0.
    half_ln3 = math.log(3.0) / 2
    terms = adapruner_loss(torch.tensor([2.0, 1.0], dtype=torch.float64),
                           torch.tensor([0.0, half_ln3], dtype=torch.float64),
                           torch.tensor([0.0, half_ln3, -half_ln3, 0.0], dtype=torch.float64),
                           alpha=2.0, keep=0.75, lambda_scale=4.0, sel_eps=0.0)
    assert float(terms.cls) == pytest.approx((0.5 * 2 + 0.75 * 1) / 2)  # 0.875
    assert float(terms.sel) == pytest.approx((0.5 * -math.log(2.0) + 0.75 * -math.log(1.0)) / 2)
    assert float(terms.comp) == pytest.approx((2.0 / 4 - 0.75) ** 2)  # w_all = .5 .75 .25 .5
    assert terms.r == 0.25 and terms.lam == pytest.approx(4.0 * 0.5)
    assert float(terms.total) == pytest.approx(0.875 - math.log(2.0) / 4 + 2.0 * 0.0625)
    const = adapruner_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.0, 0.0]), alpha=1.0,
                           keep=0.5, lambda_scale=3.0, lambda_rule="constant")
    assert const.lam == 3.0 and const.r == 0.0
    # sel_eps is added inside the log: a zero loss gives -log(eps), finite.
    eps = adapruner_loss(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), alpha=1.0, keep=0.5,
                         lambda_scale=0.0, sel_eps=1e-2)
    assert float(eps.sel) == pytest.approx(0.5 * -math.log(1e-2))


def _one_step(pruner: AdaPrunerMask, losses: list[float]) -> torch.Tensor:
    before = pruner.mask.detach().clone()
    pruner.loss(torch.tensor(losses), torch.arange(len(losses))).backward()
    pruner.step()
    return pruner.mask.detach() - before


def test_the_mask_prunes_easy_samples_and_moves_toward_the_budget():
    # No compression term: the easy sample (loss 0.01) loses more mask than the hard one (loss 3).
    pruner = AdaPrunerMask(2, keep=0.5, epochs=1, warmup_epochs=0, lambda_scale=0.0, mask_init=0.1,
                           mask_lr=1.0, mask_momentum=0.0)
    move = _one_step(pruner, [0.01, 3.0])
    assert move[0] < move[1] < 0
    # Everything kept (m = 1 > 0) against keep 0.2: the compression term pushes every entry down ...
    over = AdaPrunerMask(4, keep=0.2, epochs=1, warmup_epochs=0, lambda_scale=100.0, mask_init=0.2,
                         mask_lr=1.0, mask_momentum=0.0, alpha_max=1.0)
    plain = AdaPrunerMask(4, keep=0.2, epochs=1, warmup_epochs=0, lambda_scale=0.0, mask_init=0.2,
                          mask_lr=1.0, mask_momentum=0.0, alpha_max=1.0)
    assert (_one_step(over, [1.0, 1.0, 1.0, 1.0]) < _one_step(plain, [1.0, 1.0, 1.0, 1.0])).all()
    # ... and nothing kept (m = -1) against keep 0.8 pulls every entry up, past the selection terms.
    under = AdaPrunerMask(4, keep=0.8, epochs=1, warmup_epochs=0, lambda_scale=100.0, mask_init=-1.0,
                          mask_lr=1.0, mask_momentum=0.0, alpha_max=1.0)
    assert (_one_step(under, [1.0, 1.0, 1.0, 1.0]) > 0).all()


def test_mask_sgd_matches_torch_sgd():
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=gen, dtype=torch.float64) for _ in range(3)]
    for momentum, decay in ((0.9, 0.1), (0.0, 0.0), (0.5, 0.0), (0.0, 0.2)):
        ours = torch.linspace(-1, 1, 5, dtype=torch.float64).requires_grad_(True)
        ref = ours.detach().clone().requires_grad_(True)
        sgd = MaskSGD(ours, lr=0.5, momentum=momentum, weight_decay=decay)
        torch_sgd = torch.optim.SGD([ref], lr=0.5, momentum=momentum, weight_decay=decay)
        for g in grads:
            ours.grad, ref.grad = g.clone(), g.clone()
            sgd.step()
            torch_sgd.step()
            torch.testing.assert_close(ours.detach(), ref.detach())
    idle = torch.zeros(3, requires_grad=True)
    opt = MaskSGD(idle, lr=1.0, momentum=0.9, weight_decay=0.0)
    opt.step()  # no gradient: nothing moves and no momentum is started
    assert idle.detach().tolist() == [0.0, 0.0, 0.0] and opt.buffer is None
    idle.grad = torch.ones(3)
    opt.zero_grad()
    assert idle.grad is None


_OK = {"warmup_epochs": 0, "epochs": 1, "max_extra_epochs": 0, "alpha_start": 2.0, "alpha_max": 2.0,
       "lambda_scale": 0.0, "epsilon": 0.0, "mask_lr": 0.1, "binarize": "budget"}


def test_parameter_edges_accepted():
    AdaPrunerMask(4, keep=0.5, **_OK)  # every boundary value is allowed
    AdaPrunerMask(4, keep=0.5, labels=[0, 1, 0, 1], **_OK, balance="class", lambda_rule="constant")


# Each parameter's own range comes from ADAPRUNER_SPEC (one message shape); what relates two
# parameters is check_adapruner_params'.
@pytest.mark.parametrize(("change", "message"), [
    ({"warmup_epochs": -1}, r"^AdaPrunerMask: warmup_epochs must be an int >= 0, got -1$"),
    ({"epochs": 0}, r"^AdaPrunerMask: epochs must be an int >= 1, got 0$"),
    ({"max_extra_epochs": -1}, r"^AdaPrunerMask: max_extra_epochs must be an int >= 0, got -1$"),
    ({"alpha_start": 0.0}, r"^AdaPrunerMask: alpha_start must be a float > 0, got 0.0$"),
    ({"alpha_start": 3.0}, r"need alpha_start <= alpha_max, got 3.0 and 2.0"),
    ({"binarize": "median"}, r"binarize must be one of 'budget', 'threshold', got 'median'"),
    ({"balance": "x"}, r"balance must be one of 'auto', 'class', 'none', got 'x'"),
    ({"balance": "class", "binarize": "threshold"}, r"balance='class' needs binarize='budget'"),
    ({"lambda_rule": "x"}, r"lambda_rule must be one of 'adaptive', 'constant', got 'x'"),
    ({"mask_lr": 0.0}, r"mask_lr must be a float > 0, got 0.0"),
    ({"epsilon": -0.1}, r"epsilon must be a float in \[0, 1\], got -0.1"),
    ({"lambda_scale": -1.0}, r"lambda_scale must be a float >= 0, got -1.0"),
])
def test_parameter_errors_name_the_values(change, message):
    with pytest.raises(ConfigError, match=message):
        AdaPrunerMask(4, keep=0.5, labels=[0, 1, 0, 1], **{**_OK, **change})


def test_construction_checks_and_records_every_parameter():
    assert AdaPrunerMask(np.int64(3), keep=0.5).n_samples == 3
    for bad in (0, -1, 2.5):
        with pytest.raises(ConfigError, match=f"n_samples must be a positive integer, got {bad!r}"):
            AdaPrunerMask(bad, keep=0.5)
    with pytest.raises(ConfigError, match="balance='class' needs labels"):
        AdaPrunerMask(4, keep=0.5, balance="class")
    with pytest.raises(DataError, match=r"labels must have one entry per sample \(4\), got shape \(3,\)"):
        AdaPrunerMask(4, keep=0.5, balance="class", labels=[0, 1, 1])
    params = {"warmup_epochs": 2, "epochs": 3, "max_extra_epochs": 4, "alpha_start": 0.2, "alpha_max": 4.0,
              "lambda_scale": 7.0, "epsilon": 0.05, "mask_init": 0.5, "mask_lr": 3.0, "mask_momentum": 0.5,
              "mask_weight_decay": 0.01, "sel_eps": 1e-3, "binarize": "threshold", "balance": "none",
              "lambda_rule": "constant", "update": "exact",
              "sampling": "top", "beta_power": 2.0, "beta_mode_max": 0.5, "beta_concentration": 8.0, "beta_from": 0.25,
              "pick_epochs": 3, "pick_draws": 1, "pick_val_fraction": 0.3, "scarce_below": 0.6, "scarce_mode": 0.4,
              "scarce_concentration": 5.0}
    pruner = AdaPrunerMask(6, keep=0.5, labels=[0, 1, 0, 1, 0, 1], **params)
    assert pruner.params() == params
    assert pruner.labels is None  # labels are only kept for balance="class"
    assert pruner.total_epochs == 9 and pruner.mask.detach().tolist() == [0.5] * 6
    assert pruner.optimizer.lr == 3.0 and pruner.optimizer.momentum == 0.5
    assert pruner.optimizer.weight_decay == 0.01


def test_schedule_and_warm_up():
    pruner = AdaPrunerMask(2, keep=0.5, epochs=3, warmup_epochs=2, max_extra_epochs=0, alpha_start=1.0,
                           alpha_max=3.0)
    assert pruner.in_warmup and pruner.pruning_epoch == -2 and pruner.alpha == 1.0
    loss = pruner.loss(torch.tensor([1.0, 3.0], requires_grad=True), [0, 1])
    assert float(loss) == 2.0 and pruner.last_terms is None  # the plain mean
    before = pruner.mask.detach().clone()
    pruner.step()
    assert torch.equal(pruner.mask.detach(), before)
    assert [pruner.end_epoch() for _ in range(2)] == [False, False] and pruner.history["r"] == []
    assert not pruner.in_warmup and pruner.pruning_epoch == 0 and pruner.alpha == 1.0
    pruner.end_epoch()
    assert pruner.alpha == 2.0
    total = pruner.loss(torch.tensor([1.0, 3.0]), torch.tensor([1, 0]))
    ref = adapruner_loss(torch.tensor([1.0, 3.0]), pruner.mask[[1, 0]], pruner.mask, alpha=2.0, keep=0.5,
                         lambda_scale=pruner.lambda_scale, sel_eps=pruner.sel_eps)
    assert float(total) == pytest.approx(float(ref.total)) and pruner.last_terms.r == ref.r


def _set_mask(pruner: AdaPrunerMask, values: list[float]) -> None:
    with torch.no_grad():
        pruner.mask.copy_(torch.tensor(values))


def test_end_epoch_stops_at_the_budget_or_when_out_of_epochs():
    on = AdaPrunerMask(4, keep=0.5, epochs=2, warmup_epochs=1, max_extra_epochs=2, epsilon=0.1,
                       alpha_start=1.0, alpha_max=2.0, lambda_scale=10.0)
    _set_mask(on, [1.0, 1.0, -1.0, -1.0])  # r = 0.5, on budget
    assert [on.end_epoch() for _ in range(3)] == [False, False, True]  # warm-up, ramp, at alpha_max
    assert on.history["alpha"] == [1.0, 2.0] and on.history["r"] == [0.5, 0.5]
    assert on.history["lambda"] == [0.0, 0.0] and on.converged and on.done
    on.mask.data.copy_(torch.tensor([1.0, 0.5, -1.0, -1.0]))
    on.epoch, on.done = 2, False
    on.end_epoch()
    def sig(v):
        return 1 / (1 + math.exp(-v))
    assert on.history["mean_w"][-1] == pytest.approx((sig(2.0) + sig(1.0) + 2 * sig(-2.0)) / 4)  # alpha 2
    _set_mask(on, [0.0, 1.0, -1.0, -1.0])  # m = 0 is w = 0.5: not kept (w > 0.5 iff m > 0)
    on.end_epoch()
    assert on.history["r"][-1] == 0.25
    off = AdaPrunerMask(4, keep=0.5, epochs=2, warmup_epochs=1, max_extra_epochs=2, epsilon=0.1,
                        lambda_scale=10.0)
    _set_mask(off, [1.0, 1.0, 1.0, -1.0])  # r = 0.75, off budget
    assert [off.end_epoch() for _ in range(5)] == [False, False, False, False, True]  # ran out at 2 + 2
    assert off.history["lambda"] == [pytest.approx(2.5)] * 4 and not off.converged
    edge = AdaPrunerMask(4, keep=0.5, epochs=1, warmup_epochs=0, max_extra_epochs=3, epsilon=0.25)
    _set_mask(edge, [1.0, 1.0, 1.0, -1.0])  # |0.75 - 0.5| = epsilon: within
    assert edge.end_epoch() is True and edge.converged


def test_kept_by_budget_class_and_threshold():
    budget = AdaPrunerMask(5, keep=0.4, epochs=1, warmup_epochs=0)
    _set_mask(budget, [0.3, -2.0, 0.9, 0.1, 0.5])
    assert budget.kept().tolist() == [2, 4]
    assert budget.scores().dtype == np.float64
    by_class = AdaPrunerMask(6, keep=0.5, epochs=1, warmup_epochs=0, balance="class",
                             labels=[0, 0, 0, 0, 1, 1])
    _set_mask(by_class, [5.0, 4.0, 3.0, 2.0, -1.0, -2.0])  # quotas 2 + 1: class 1 keeps its best
    assert by_class.kept().tolist() == [0, 1, 4]
    threshold = AdaPrunerMask(4, keep=0.5, epochs=1, warmup_epochs=0, binarize="threshold")
    _set_mask(threshold, [0.2, 0.0, -0.1, 3.0])
    assert threshold.kept().tolist() == [0, 3]  # strictly above zero
    _set_mask(threshold, [0.0, -1.0, -1.0, -1.0])
    with pytest.raises(ConfigError, match="mask kept no sample"):
        threshold.kept()


def test_selection_fields_and_the_threshold_warning(caplog):
    pruner = AdaPrunerMask(4, keep=0.5, epochs=1, warmup_epochs=1, max_extra_epochs=0, binarize="threshold",
                           epsilon=0.1)
    with pytest.raises(ConfigError, match=r"no pruning epoch has ended yet \(0 of 1 warm-up epochs\)"):
        pruner.selection()
    pruner.end_epoch()
    _set_mask(pruner, [1.0, 1.0, 1.0, -1.0])
    pruner.end_epoch()
    with caplog.at_level(logging.DEBUG, logger="adaprune.adapruner_mask"):
        sel = pruner.selection(seed=9)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "adapruner: mask kept 0.750 of samples after 1 pruning epochs, target 0.500 (epsilon 0.100)"]
    assert sel.kept.tolist() == [0, 1, 2] and sel.method == "adapruner" and sel.seed == 9
    assert sel.requested_keep == 0.5 and sel.higher_is_keep is True and sel.params == pruner.params()
    assert sel.scores.tolist() == [1.0, 1.0, 1.0, -1.0]
    assert sel.details == {"pruning_epochs_run": 1, "converged": False, "mask_keep_fraction": 0.75,
                           "history": pruner.history}
    caplog.clear()
    budget = AdaPrunerMask(4, keep=0.5, epochs=1, warmup_epochs=0, epsilon=0.1, sampling="top")  # the top-k rule
    _set_mask(budget, [1.0, 1.0, 1.0, -1.0])
    budget.end_epoch()
    with caplog.at_level(logging.DEBUG, logger="adaprune.adapruner_mask"):
        assert budget.selection().kept.tolist() == [0, 1]
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]  # under budget with "budget": no warning


def test_state_dict_round_trip_and_mismatch():
    pruner = AdaPrunerMask(3, keep=0.5, epochs=2, warmup_epochs=0, mask_momentum=0.9)
    for _ in range(2):
        _one_step(pruner, [0.5, 1.0, 2.0])
    pruner.end_epoch()
    state = pruner.state_dict()
    assert state["n_samples"] == 3 and state["keep"] == 0.5 and state["params"] == pruner.params()
    assert state["epoch"] == 1 and state["done"] is False and state["history"] == pruner.history
    fresh = AdaPrunerMask(3, keep=0.5, epochs=2, warmup_epochs=0, mask_momentum=0.9)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.mask.detach(), pruner.mask.detach())
    assert torch.equal(fresh.optimizer.buffer, pruner.optimizer.buffer)
    assert fresh.optimizer.buffer is not state["momentum_buffer"]  # a copy: later steps leave state alone
    assert fresh.epoch == 1 and fresh.done is False and fresh.history == pruner.history
    assert fresh.mask.grad is None
    assert torch.equal(_one_step(fresh, [1.0, 1.0, 1.0]), _one_step(pruner, [1.0, 1.0, 1.0]))
    no_momentum = AdaPrunerMask(3, keep=0.5, epochs=2, warmup_epochs=0, mask_momentum=0.9)
    no_momentum.load_state_dict({**state, "momentum_buffer": None, "done": True, "epoch": 2})
    assert no_momentum.optimizer.buffer is None and no_momentum.done is True and no_momentum.epoch == 2
    for other in (AdaPrunerMask(4, keep=0.5, epochs=2, warmup_epochs=0, mask_momentum=0.9),
                  AdaPrunerMask(3, keep=0.6, epochs=2, warmup_epochs=0, mask_momentum=0.9),
                  AdaPrunerMask(3, keep=0.5, epochs=3, warmup_epochs=0, mask_momentum=0.9)):
        with pytest.raises(ConfigError, match=r"other settings \(n_samples=3, keep=0.5\)"):
            other.load_state_dict(state)


def test_indexed_dataset_and_reshuffle():
    pairs = with_indices([(10, "a"), (11, "b")])
    assert isinstance(pairs, IndexedDataset) and len(pairs) == 2
    assert pairs[1] == (11, "b", 1)
    assert with_indices([[1, 2]])[0] == (1, 2, 0)
    assert with_indices(["x", "y"])[1] == ("y", 1)
    with pytest.raises(ConfigError, match="with_indices needs a map-style dataset"):
        with_indices(iter([1, 2]))
    sampler = Reshuffle(6, seed=3)
    gen = torch.Generator().manual_seed(3)
    assert len(sampler) == 6
    assert list(sampler) == torch.randperm(6, generator=gen).tolist()
    assert list(sampler) == torch.randperm(6, generator=gen).tolist()  # the next epoch: the next draw


def test_more_edges_of_construction_and_the_loss():
    assert AdaPrunerMask(1, keep=1.0).n_samples == 1  # a single sample is a valid set
    with pytest.raises(ConfigError, match="balance='class' needs binarize='budget'"):
        AdaPrunerMask(4, keep=0.5, balance="class", labels=[0, 0, 1, 1], binarize="threshold")
    with pytest.raises(ConfigError, match="lambda_rule must be one of"):
        AdaPrunerMask(4, keep=0.5, lambda_rule="x")
    pruner = AdaPrunerMask(1, keep=1.0, epochs=1, warmup_epochs=0, mask_init=0.0, sel_eps=1e-2)
    pruner.loss(torch.tensor([0.0]), [0])
    assert float(pruner.last_terms.sel) == pytest.approx(0.5 * -math.log(1e-2))  # its own sel_eps

    class OnlyGetitem:
        def __getitem__(self, i):
            return i

    with pytest.raises(ConfigError, match="with_indices needs a map-style dataset"):
        with_indices(OnlyGetitem())
