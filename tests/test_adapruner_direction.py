"""AdaPruner's ranking direction, planted: the paper keeps the hard samples and prunes the easy ones.

L_sel = mean(w * -log(loss + eps)) is smallest when w is low where the loss is low, so with L_cls
each entry's gradient is proportional to loss - log(loss) (never below 1, largest for a loss near
zero): the easy samples' w fall fastest. With L_sel's sign flipped (w * +log(loss)) the gradient is
loss + log(loss), negative for an easy sample, whose w would rise instead."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adaprune.adapruner_mask import AdaPrunerMask
from tests.test_adapruner_lazy import user_loop


def planted(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Two separated Gaussian classes (120 typical samples), 60 near-copies of one clean class-0
    sample deep inside its class (easy), and 20 samples given the other class's label (hard)."""
    rng = np.random.default_rng(seed)
    centre = np.array([3.0, 0.0, 0.0, 0.0])
    y_typ = rng.integers(0, 2, 120)
    x_typ = rng.normal(size=(120, 4)) + np.where(y_typ[:, None] == 0, centre, -centre)
    x_easy = centre * 1.5 + rng.normal(scale=1e-3, size=(60, 4))
    y_easy = np.zeros(60, dtype=np.int64)
    y_hard_true = rng.integers(0, 2, 20)
    x_hard = rng.normal(size=(20, 4)) + np.where(y_hard_true[:, None] == 0, centre, -centre)
    x = np.concatenate([x_typ, x_easy, x_hard]).astype(np.float32)
    y = np.concatenate([y_typ, y_easy, 1 - y_hard_true]).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y), np.arange(120, 180), np.arange(180, 200)


def test_mask_keeps_hard_samples_over_easy_copies():
    x, y, easy, hard = planted()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    # A gentle mask step (no momentum, lr 1) so the ranking shows the objective's direction, not
    # the default step's noise.
    pruner = AdaPrunerMask(len(y), keep=0.5, warmup_epochs=3, epochs=4, max_extra_epochs=0, mask_lr=1.0,
                           mask_momentum=0.0)
    user_loop(pruner, model, x, y, batch=20, generator=torch.Generator().manual_seed(0), lr=0.1)
    with torch.no_grad():
        ce = F.cross_entropy(model(x), y, reduction="none")
    assert ce[easy].max() < 0.1 and ce[hard].median() > 1.0  # the plant took: copies easy, flipped hard
    sel = pruner.selection()
    # Measured: 85% of the hard samples kept, 22% of the easy copies (sign flipped: 0% and 80%).
    assert sel.mask[hard].mean() > 0.7 and sel.mask[easy].mean() < 0.4
    assert sel.scores[hard].mean() > sel.scores[easy].mean()
