"""Uncertainty sampling scores (Coleman et al., "Selection via Proxy: Efficient Data Selection for
Deep Learning", ICLR 2020; as in DeepCore, Guo et al. 2022), from a model trained on all samples.

Every measure is oriented the same way: HIGHER = MORE UNCERTAIN = KEEP.

    least_confidence   1 - p_max
    margin             1 - (p_max - p_second)     (the raw margin p_max - p_second is small when
                                                   uncertain, so it is flipped here)
    entropy            -sum_k p_k log p_k

p are the softmax probabilities of the model after its last training epoch; labels are not used.
(DeepCore keeps the lowest scores for one measure and the highest for another; here there is one
declared direction.)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adaprune.methods.base import Scorer
from adaprune.params import Interval, ParamSpec, StrOptions
from adaprune.registry import register_method
from adaprune.scores import UNCERTAINTY_MEASURES, check_uncertainty_measure, uncertainty_from_top2
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.trace import LogitSummary, run_traces

MEASURES = UNCERTAINTY_MEASURES
check_measure = check_uncertainty_measure


def uncertainty_scores(summary: LogitSummary, measure: str) -> np.ndarray:
    """Per-sample uncertainty (higher = more uncertain) from one set of logit summaries."""
    return uncertainty_from_top2(summary.p_max, summary.p_second, summary.entropy, measure=measure)


@register_method("uncertainty")
class Uncertainty(Scorer):
    """Uncertainty (Coleman et al. 2020; DeepCore): keep what the model is unsure of; higher = more uncertain = keep.

    `measure` (default "entropy"): "least_confidence" = 1 - p_max, "margin" = 1 - (p_max - p_second),
    "entropy" = -sum p log p, of the softmax after training `epochs` (default 10) epochs; mean over
    `runs` (default 1; seeds seed*1000+r).

    Parameters:
        measure: entropy, least_confidence or margin of the softmax
        epochs: training epochs before the softmax is read
        runs: independently seeded models averaged"""

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): an uncertain prediction is a hard sample.
    higher_is_hard: ClassVar[bool | None] = True
    trains_model = True
    param_spec = ParamSpec({"measure": StrOptions(UNCERTAINTY_MEASURES), "epochs": Interval(int, 1, None),
                            "runs": Interval(int, 1, None)})

    def __init__(self, *, measure: str = "entropy", epochs: int = 10, runs: int = 1) -> None:
        self.measure = measure
        self.epochs = epochs
        self.runs = runs

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        total = np.zeros(task.data.n)
        traces = run_traces(task, seed=seed, epochs=self.epochs, runs=self.runs, progress=progress, desc="uncertainty")
        for trace in traces:
            total += uncertainty_scores(trace.at(-1), self.measure)
        return total / self.runs
