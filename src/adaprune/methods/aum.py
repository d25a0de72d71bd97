"""Area Under the Margin (Pleiss, Zhang, Elenberg and Weinberger, "Identifying Mislabeled Data using
the Area Under the Margin Ranking", NeurIPS 2020).

margin_t(i) = z_{y_i}(x_i) - max_{k != y_i} z_k(x_i)   (logits after epoch t)
AUM_i       = mean over the `epochs` training epochs of margin_t(i)

A low (negative) AUM marks a sample whose assigned label the network keeps arguing against:
likely mislabeled. Pruning the lowest AUM removes those first, so higher AUM = keep. (The paper
averages over every minibatch presentation and sets a threshold with planted "threshold samples";
here the margin is read at each end-of-epoch evaluation of the training trace and the shared
selection module applies the budget.)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adaprune.methods.base import Scorer
from adaprune.params import Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.scores import aum
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.trace import run_traces


def aum_from_margins(margins: np.ndarray) -> np.ndarray:
    """AUM per sample from a (T, N) array of per-epoch logit margins: `adaprune.scores.aum`."""
    return aum(margins)


@register_method("aum")
class AUM(Scorer):
    """AUM (Pleiss et al., NeurIPS 2020): mean logit margin over training; prune the lowest (likely mislabeled).

    Score = mean over `epochs` (default 10) end-of-epoch evaluations of z_y - max_{k != y} z_k; higher =
    keep. Mean over `runs` (default 1; seeds seed*1000+r).

    Parameters:
        epochs: training epochs; the margin is averaged over their end-of-epoch evaluations
        runs: independently seeded models averaged"""

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): a low (negative) margin is the hard end: the label is argued
    # against.
    higher_is_hard: ClassVar[bool | None] = False
    trains_model = True

    param_spec = ParamSpec({"epochs": Interval(int, 1, None), "runs": Interval(int, 1, None)})

    def __init__(self, *, epochs: int = 10, runs: int = 1) -> None:
        self.epochs = epochs
        self.runs = runs

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        total = np.zeros(task.data.n)
        for trace in run_traces(task, seed=seed, epochs=self.epochs, runs=self.runs, progress=progress, desc="aum"):
            total += aum_from_margins(trace.logit_margin)
        return total / self.runs
