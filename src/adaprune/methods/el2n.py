"""EL2N (Paul, Ganguli and Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early
in Training", NeurIPS 2021).

EL2N_i = E_runs || softmax(f(x_i)) - onehot(y_i) ||_2, with f a model trained for a few epochs (the
paper scores after ~20 of 200 epochs and averages over 10 runs). Hard and atypical samples have a
large error norm and are kept; easy ones are pruned.

Here each run trains a fresh model (seed `seed * 1000 + r`, r = 0..runs-1) for `epochs` epochs with
the task's training config and reads the error norm after the last epoch from the training trace.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from adaprune.errors import ConfigError
from adaprune.methods.base import Scorer
from adaprune.params import Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.scores import el2n, softmax
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.trace import run_traces


def el2n_from_logits(logits: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> np.ndarray:
    """||softmax(logits_i) - onehot(y_i)||_2 for every row, in float64: `adaprune.scores.el2n`."""
    logits_np = torch.as_tensor(logits).detach().cpu().double().numpy()
    y_np = torch.as_tensor(y).cpu().long().numpy()
    if logits_np.ndim != 2 or y_np.shape != (len(logits_np),):
        raise ConfigError(f"need (N, K) logits and N labels, got {logits_np.shape} and {y_np.shape}")
    return el2n(softmax(logits_np), y_np)


@register_method("el2n")
class EL2N(Scorer):
    """EL2N (Paul et al. 2021, "Deep Learning on a Data Diet"): error L2-norm early in training; higher = keep.

    Score = mean over `runs` (default 3) models, each trained `epochs` (default 10) epochs from seed
    seed*1000+r, of ||softmax(f(x)) - onehot(y)||_2 after the last epoch (0 = learned, up to sqrt(2)).

    Parameters:
        epochs: training epochs before the error norm is read
        runs: independently seeded models averaged"""

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): a large error norm is a hard sample.
    higher_is_hard: ClassVar[bool | None] = True
    trains_model = True
    param_spec = ParamSpec({"epochs": Interval(int, 1, None), "runs": Interval(int, 1, None)})

    def __init__(self, *, epochs: int = 10, runs: int = 3) -> None:
        self.epochs = epochs
        self.runs = runs

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        total = np.zeros(task.data.n)
        for trace in run_traces(task, seed=seed, epochs=self.epochs, runs=self.runs, progress=progress, desc="el2n"):
            total += trace.at(-1).el2n
        return total / self.runs
