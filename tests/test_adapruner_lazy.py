"""The lazy (O(batch)) mask step against the exact (O(N)) one, in a user loop with shuffled batches.

Without the compression term the two are the same update, done in a different order and precision
(float64 closed forms over the skipped steps against float32 steps, and a Newton solve to 4e-8),
so they agree to rounding, not bitwise. With it, the lazy step takes the compression term between an
entry's touches as a continuous flow, and sum(w) and r see an entry's drift only once it is touched:
close to the exact steps only where one step moves an entry little (small mask_lr, or large N, since
the compression gradient is O(1 / N))."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adaprune.adapruner_mask import AdaPrunerMask
from adaprune.errors import ConfigError
from tests.conftest import make_blobs


def run(update: str, n: int, batch: int, *, seed: int = 0, **params) -> AdaPrunerMask:
    x, y = map(torch.from_numpy, make_blobs(n=n, d=6, classes=3, seed=seed))
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    pruner = AdaPrunerMask(n, update=update, **params)
    user_loop(pruner, model, x, y, batch=batch, generator=gen, lr=0.05)
    return pruner


def user_loop(pruner: AdaPrunerMask, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int,
              generator: torch.Generator, lr: float) -> None:
    """A plain user loop (SGD with momentum, shuffled batches) for the pruner's whole schedule."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(pruner.total_epochs):
        for idx in torch.randperm(len(y), generator=generator).split(batch):
            loss = pruner.loss(F.cross_entropy(model(x[idx]), y[idx], reduction="none"), idx)
            loss.backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
        if pruner.end_epoch():
            break


SCHEDULE = {"warmup_epochs": 1, "epochs": 4, "max_extra_epochs": 0}


def test_without_compression_lazy_is_the_exact_update():
    """Momentum and weight decay over the skipped steps (up to 11 a gap here) in closed form."""
    params = {**SCHEDULE, "keep": 0.6, "lambda_scale": 0.0, "mask_weight_decay": 0.01}
    exact, lazy = run("exact", 300, 25, **params), run("lazy", 300, 25, **params)
    me, ml = exact.mask.detach(), lazy.mask.detach()
    assert me.std() > 1.0  # the mask did move, and apart
    torch.testing.assert_close(ml, me, rtol=0, atol=1e-3)  # measured: 3e-4 at most (mask in -17..11)
    assert lazy.history["r"] == exact.history["r"]
    np.testing.assert_array_equal(lazy.selection().kept, exact.selection().kept)


def test_with_compression_and_small_steps_lazy_is_close_to_the_exact_update():
    """A mask step small against the sigmoid's width (mask_lr 0.05, momentum 0.5; every entry touched
    once an epoch, in gaps of up to 11 steps): the lazy flow is close to the exact discrete steps and
    the controller's lag is small. Measured: max |difference| 3.4e-4 against a mask spread (std) of
    3.6e-3, kept sets 99.4% the same. At the default mask_lr (20) one step moves an entry by much of the
    sigmoid's width at this N, and the two updates part (kept sets 60-90% the same at N = 2000)."""
    params = {**SCHEDULE, "keep": 0.6, "mask_lr": 0.05, "mask_momentum": 0.5}
    exact, lazy = run("exact", 300, 25, **params), run("lazy", 300, 25, **params)
    me, ml = exact.mask.detach(), lazy.mask.detach()
    assert me.std() > 2e-3
    torch.testing.assert_close(ml, me, rtol=0, atol=2e-3)
    assert lazy.history["r"] == exact.history["r"]
    kept_e, kept_l = set(exact.selection().kept.tolist()), set(lazy.selection().kept.tolist())
    assert len(kept_e & kept_l) / len(kept_e) >= 0.97


def test_update_choice_is_checked():
    with pytest.raises(ConfigError, match="update"):
        AdaPrunerMask(10, keep=0.5, update="sometimes")


def test_auto_update_is_exact_below_lazy_from_and_lazy_from_it_on():
    from adaprune.adapruner_lazy import LazyMaskSGD
    from adaprune.adapruner_mask import LAZY_FROM, MaskSGD

    small, large = AdaPrunerMask(LAZY_FROM - 1, keep=0.5), AdaPrunerMask(LAZY_FROM, keep=0.5)
    assert small.update == large.update == "auto"
    assert type(small.optimizer) is MaskSGD and type(large.optimizer) is LazyMaskSGD
    assert type(AdaPrunerMask(10, keep=0.5, update="lazy").optimizer) is LazyMaskSGD


def test_the_numpy_batch_path_is_the_torch_path(monkeypatch):
    """On CPU the lazy step works on numpy views with the mask's gradient in closed form; the torch
    path (autograd through the mask, used on other devices) must give the same mask and history."""
    from adaprune.adapruner_lazy import LazyMaskSGD

    params = {**SCHEDULE, "keep": 0.6, "mask_weight_decay": 0.01}
    fast = run("lazy", 300, 25, **params)
    monkeypatch.setattr(LazyMaskSGD, "cpu", property(lambda self: False))
    slow = run("lazy", 300, 25, **params)
    assert fast.mask.std() > 1.0
    # float64 closed forms against float32 autograd, over 5 epochs of training: measured 4e-4 at most
    torch.testing.assert_close(fast.mask.detach(), slow.mask.detach(), rtol=0, atol=1e-3)
    assert fast.history["r"] == slow.history["r"]


def test_repeated_samples_scaled_losses_and_two_losses_before_a_step_match_the_torch_path(monkeypatch):
    """A sample twice in a batch, a loss scaled by 0.5 (as gradient accumulation does), and two loss()
    calls before one step: the closed-form gradient adds and scales as autograd's does."""
    from adaprune.adapruner_lazy import LazyMaskSGD

    def masks() -> torch.Tensor:
        pruner = AdaPrunerMask(8, keep=0.5, warmup_epochs=0, epochs=2, max_extra_epochs=0, update="lazy")
        gen = torch.Generator().manual_seed(0)
        for _ in range(3):
            for idx in (torch.tensor([0, 1, 1, 2]), torch.tensor([3, 4, 5, 5])):
                ce = (torch.rand(4, generator=gen) + 0.1).requires_grad_(True)
                (0.5 * pruner.loss(ce, idx)).backward()
            ce = (torch.rand(2, generator=gen) + 0.1).requires_grad_(True)
            pruner.loss(ce, torch.tensor([6, 7])).backward()  # no step between: gradients add
            pruner.step()
            ce = (torch.rand(2, generator=gen) + 0.1).requires_grad_(True)
            pruner.loss(ce, torch.tensor([0, 7]))  # no backward: the step must not move these
            pruner.step()
        return pruner.mask.detach().clone()

    fast = masks()
    monkeypatch.setattr(LazyMaskSGD, "cpu", property(lambda self: False))
    slow = masks()
    assert (fast != 0).any()
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)


def test_the_model_gradient_is_the_weighted_mean():
    """d loss / d ce_j = w_j / B on the numpy path, as through autograd."""
    pruner = AdaPrunerMask(4, keep=0.5, warmup_epochs=0, epochs=1, max_extra_epochs=0, update="lazy",
                           mask_init=0.5)
    ce = torch.tensor([0.2, 0.4, 0.6, 0.8], requires_grad=True)
    pruner.loss(ce, torch.arange(4)).backward()
    w = torch.sigmoid(torch.tensor(pruner.alpha * 0.5))
    torch.testing.assert_close(ce.grad, torch.full((4,), float(w) / 4))


# ---------------------------------------------------------------- the fused path (numba)
needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                 reason="the fused path needs numba (adaprune[fast])")


@pytest.fixture
def numpy_path(monkeypatch):
    """Run the lazy step without the compiled kernels (as without numba installed)."""
    import adaprune.adapruner_lazy as lazy_module

    monkeypatch.setattr(lazy_module, "_KERNELS", False)


@needs_numba
def test_the_fused_path_runs_in_a_user_loop():
    from adaprune.adapruner_lazy import kernels

    assert kernels() is not None
    pruner = run("lazy", 300, 25, **{**SCHEDULE, "keep": 0.6})
    # the fused path kept its buffers: it ran (the numpy path never makes them)
    assert pruner.optimizer._fused is not None and pruner.mask.std() > 0.1


@needs_numba
@pytest.mark.parametrize("params", [
    {"keep": 0.6, "mask_weight_decay": 0.01},
    {"keep": 0.3, "mask_lr": 5.0, "mask_momentum": 0.5, "lambda_rule": "constant", "lambda_scale": 3.0},
])
def test_the_fused_path_is_the_numpy_path(params, request):
    """One compiled call a batch (the armed step, the controller, the catch-up and the batch terms)
    against the numpy path's separate steps: the same mask, history and kept set."""
    fused = run("lazy", 300, 25, **{**SCHEDULE, **params})
    request.getfixturevalue("numpy_path")
    plain = run("lazy", 300, 25, **{**SCHEDULE, **params})
    assert plain.optimizer._fused is None and fused.mask.std() > 0.1
    # float64 in both, the same table for the flow; the compiled loop sums in another order
    torch.testing.assert_close(fused.mask.detach(), plain.mask.detach(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(fused.history["r"], plain.history["r"], atol=1e-9)
    np.testing.assert_allclose(fused.history["mean_w"], plain.history["mean_w"], rtol=1e-6)
    np.testing.assert_array_equal(fused.selection().kept, plain.selection().kept)


def _irregular_loop(pruner: AdaPrunerMask) -> list[float]:
    """A loop that leaves the usual one loss, one backward, one step: repeated ids, a loss without
    backward, two losses before a step, reads of the mask between loss and step, a scaled loss, a
    state_dict round trip mid-epoch. Returns the loss values."""
    gen = torch.Generator().manual_seed(3)
    values = []
    for _epoch in range(pruner.total_epochs):
        for step in range(12):
            idx = torch.randperm(40, generator=gen)[:8]
            if step % 5 == 1:
                idx[3] = idx[0]  # a sample twice in one batch
            ce = (torch.rand(8, generator=gen) + 0.05).requires_grad_(True)
            loss = pruner.loss(ce, idx)
            values.append(float(loss.detach()))
            if step % 6 == 2:
                pruner.step()  # no backward: nothing moves
                continue
            if step % 6 == 3:
                (0.5 * loss).backward()
                extra = (torch.rand(4, generator=gen) + 0.05).requires_grad_(True)
                pruner.loss(extra, torch.tensor([1, 2, 3, 4])).backward()  # a second loss before the step
            elif step % 6 == 4:
                loss.backward()
                _ = pruner.mask  # a read between backward and step
            else:
                loss.backward()
            pruner.step()
            if step == 7:
                pruner.load_state_dict(pruner.state_dict())
        if pruner.end_epoch():
            break
    return values


@needs_numba
def test_the_fused_path_keeps_the_numpy_paths_semantics_off_the_usual_loop(request):
    def make() -> AdaPrunerMask:
        return AdaPrunerMask(40, keep=0.5, warmup_epochs=0, epochs=3, max_extra_epochs=0, update="lazy")

    fused = make()
    fused_values = _irregular_loop(fused)
    request.getfixturevalue("numpy_path")
    plain = make()
    plain_values = _irregular_loop(plain)
    assert fused.optimizer._fused is not None and plain.optimizer._fused is None
    assert (fused.mask.detach() != 1.0).any()
    np.testing.assert_allclose(fused_values, plain_values, rtol=1e-5)
    # float32 storage, mask_lr 20: rounding differences grow to a few 1e-6 of the values (up to 4 here)
    torch.testing.assert_close(fused.mask.detach(), plain.mask.detach(), rtol=1e-5, atol=1e-5)
    assert fused.history["r"] == plain.history["r"]


@needs_numba
def test_the_fused_loss_terms_are_the_numpy_ones(request):
    def terms() -> tuple:
        pruner = AdaPrunerMask(20, keep=0.5, warmup_epochs=0, epochs=2, max_extra_epochs=0, update="lazy")
        gen = torch.Generator().manual_seed(0)
        for _ in range(3):
            ce = (torch.rand(5, generator=gen) + 0.1).requires_grad_(True)
            pruner.loss(ce, torch.randperm(20, generator=gen)[:5]).backward()
            pruner.step()
        t = pruner.last_terms
        return float(t.total.detach()), float(t.cls), float(t.sel), float(t.comp), t.lam, t.r

    fused = terms()
    request.getfixturevalue("numpy_path")
    np.testing.assert_allclose(fused, terms(), rtol=1e-6)
