"""Forgetting events (Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural
Network Learning", ICLR 2019).

A forgetting event is a transition of a sample from correctly to incorrectly classified between two
consecutive observations during training. Samples that are never forgotten ("unforgettable") are
the ones the paper prunes; samples never learned count as forgotten the maximum number of times.

Observations here are the end-of-epoch evaluations of the training trace (every sample is seen
once per epoch, with the model in eval mode), not the per-minibatch presentations of the paper:
the same event definition at epoch resolution, and every sample observed at the same moments.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from adaprune.methods.base import Scorer
from adaprune.params import Boolean, Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.scores import forgetting_events
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.trace import run_traces


def forgetting_counts(correct: np.ndarray) -> np.ndarray:
    """Forgetting events per sample from a (T, N) bool correctness history: `adaprune.scores.forgetting_events`."""
    return forgetting_events(correct)


def loss_tie_break(mean_loss: np.ndarray) -> np.ndarray:
    """A monotone map of the mean training loss into [0, 1): added to integer counts, it orders
    samples within a count (higher loss first) without ever crossing to another count."""
    m = np.maximum(np.nan_to_num(np.asarray(mean_loss, dtype=np.float64), nan=0.0, posinf=1e300), 0.0)
    return np.minimum(m / (1.0 + m), np.nextafter(1.0, 0.0))


@register_method("forgetting")
class Forgetting(Scorer):
    """Forgetting events (Toneva et al., ICLR 2019): prune the unforgettable; higher count = keep.

    Score = number of correct -> incorrect transitions between consecutive end-of-epoch evaluations
    over `epochs` (default 10) epochs; never-learned samples score `epochs`. Averaged over `runs`
    (default 1; seeds seed*1000+r). With `tie_break=True` (default) mean loss / (1 + mean loss) / runs,
    below one count step, is added so ties within a count (many zeros) go to the higher-loss sample,
    not to the lower index.

    Parameters:
        epochs: training epochs whose end-of-epoch predictions are compared
        runs: independently seeded models averaged
        tie_break: break ties within a count by mean loss (below one count step)"""

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): often-forgotten samples are hard.
    higher_is_hard: ClassVar[bool | None] = True
    trains_model = True

    # Two epochs at least: a forgetting event is a change between consecutive epochs.
    param_spec = ParamSpec({"epochs": Interval(int, 2, None), "runs": Interval(int, 1, None), "tie_break": Boolean()})

    def __init__(self, *, epochs: int = 10, runs: int = 1, tie_break: bool = True) -> None:
        self.epochs = epochs
        self.runs = runs
        self.tie_break = tie_break

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        counts = np.zeros(task.data.n)
        mean_loss = np.zeros(task.data.n)
        traces = run_traces(task, seed=seed, epochs=self.epochs, runs=self.runs, progress=progress, desc="forgetting")
        for trace in traces:
            counts += forgetting_counts(trace.correct)
            mean_loss += trace.loss.mean(axis=0)
        counts /= self.runs
        if not self.tie_break:
            return counts
        # Mean counts are multiples of 1/runs; a tie-break below 1/runs never reorders them.
        return counts + loss_tie_break(mean_loss / self.runs) / self.runs
