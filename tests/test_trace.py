from __future__ import annotations

import numpy as np
import pytest
import torch

from adaprune.data import Dataset
from adaprune.tasks import ClassificationTask
from adaprune.training.trace import summarize_logits, train_with_trace
from tests.conftest import make_blobs


def test_summaries_on_fixed_logits():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    y = torch.tensor([0, 0])
    s = summarize_logits(logits, y)
    p0 = np.exp([2.0, 0.0, 0.0]) / np.exp([2.0, 0.0, 0.0]).sum()
    p1 = np.exp([0.0, 1.0, 1.0]) / np.exp([0.0, 1.0, 1.0]).sum()
    assert s.correct.tolist() == [True, False]
    np.testing.assert_allclose(s.p_true, [p0[0], p1[0]])
    np.testing.assert_allclose(s.loss, -np.log([p0[0], p1[0]]))
    np.testing.assert_allclose(s.el2n, [np.linalg.norm(p0 - [1, 0, 0]), np.linalg.norm(p1 - [1, 0, 0])])
    np.testing.assert_allclose(s.entropy, [-(p0 * np.log(p0)).sum(), -(p1 * np.log(p1)).sum()])
    np.testing.assert_allclose(s.p_second, [p0[1], p1[1]])
    np.testing.assert_allclose(s.logit_margin, [2.0, -1.0])


def test_trace_has_one_row_per_epoch_and_learns():
    x, y = make_blobs(n=90, d=4)
    task = ClassificationTask(data=Dataset(name="b", x=x, y=y), model="mlp")
    _, trace = train_with_trace(task, seed=0, epochs=4, progress=False)
    assert trace.loss.shape == (4, 90) and trace.correct.dtype == bool
    assert trace.loss[-1].mean() < trace.loss[0].mean()
    assert trace.at(-1).loss == pytest.approx(trace.loss[3])
