"""A training trace: per sample, per epoch statistics from one training pass, so EL2N, forgetting,
uncertainty and AUM-style scores reuse one run instead of each retraining.

At the end of every epoch the model is evaluated (no grad, eval mode) on all training samples;
only per-sample summaries are kept, so memory is O(epochs x N), not O(epochs x N x classes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from adaprune.errors import ConfigError
from adaprune.training.loop import fit

if TYPE_CHECKING:  # tasks build on training, not the other way round
    from adaprune.tasks.classification import ClassificationTask


@dataclass(frozen=True)
class LogitSummary:
    """Per-sample summaries of one set of logits (each an array of length N; TrainingTrace stacks
    them over epochs)."""

    loss: np.ndarray
    correct: np.ndarray
    p_true: np.ndarray
    p_max: np.ndarray
    p_second: np.ndarray
    entropy: np.ndarray
    sum_sq_prob: np.ndarray
    logit_margin: np.ndarray

    @property
    def el2n(self) -> np.ndarray:
        return el2n_from_moments(self.sum_sq_prob, self.p_true)


def el2n_from_moments(sum_sq_prob: np.ndarray, p_true: np.ndarray) -> np.ndarray:
    """||softmax - onehot(y)||_2 = sqrt(sum p^2 - 2 p_y + 1), elementwise, from two per-sample
    summaries (so no epoch keeps the full probabilities)."""
    return np.sqrt(np.maximum(np.asarray(sum_sq_prob) - 2 * np.asarray(p_true) + 1, 0.0))


@torch.no_grad()
def logit_summary_tensors(logits: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The LogitSummary fields of (B, K) logits and (B,) labels as tensors on the logits' device,
    float64 (`correct` is bool): the one computation the trace and TrainingRecorder share."""
    logits = logits.detach().double()
    y = y.to(logits.device)
    probs = logits.softmax(1)
    log_probs = logits.log_softmax(1)
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    p_second = top2[:, 1] if top2.shape[1] > 1 else torch.zeros_like(top2[:, 0])
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf"))
    margin = true_logit - other.max(1).values if logits.shape[1] > 1 else true_logit
    return {
        "loss": F.nll_loss(log_probs, y, reduction="none"),
        "correct": logits.argmax(1) == y,
        "p_true": probs.gather(1, y[:, None]).squeeze(1),
        "p_max": top2[:, 0],
        "p_second": p_second,
        "entropy": -(probs * log_probs).nan_to_num().sum(1),
        "sum_sq_prob": (probs**2).sum(1),
        "logit_margin": margin,
    }


def summarize_logits(logits: Tensor, y: Tensor) -> LogitSummary:
    return LogitSummary(**{name: t.cpu().numpy() for name, t in logit_summary_tensors(logits, y).items()})


@dataclass(frozen=True)
class TrainingTrace(LogitSummary):
    """The per-epoch summaries stacked: every field is an array of shape (epochs, N)."""

    @property
    def epochs(self) -> int:
        return self.loss.shape[0]

    def at(self, epoch: int) -> LogitSummary:
        """The summaries after `epoch` (0-based; -1 for the last)."""
        return LogitSummary(**{name: getattr(self, name)[epoch] for name in LogitSummary.__dataclass_fields__})

    @staticmethod
    def stack(summaries: list[LogitSummary]) -> TrainingTrace:
        fields = LogitSummary.__dataclass_fields__
        return TrainingTrace(**{name: np.stack([getattr(s, name) for s in summaries]) for name in fields})


def train_with_trace(
    task: ClassificationTask, *, seed: int, epochs: int, progress: bool, desc: str = "trace"
) -> tuple[torch.nn.Module, TrainingTrace]:
    """Train a fresh model (seeded) for `epochs` on all samples, recording the trace."""
    if epochs < 1:
        raise ConfigError(f"a training trace needs at least one epoch, got {epochs}")
    y = torch.from_numpy(task.labels)
    model = task.new_model(seed)
    summaries: list[LogitSummary] = []

    def record(epoch: int) -> bool:
        summaries.append(summarize_logits(task.logits(model), y))
        model.train()
        return False

    fit(model, task, seed=seed, epochs=epochs, on_epoch_end=record, progress=progress, desc=desc)
    return model, TrainingTrace.stack(summaries)


def run_seeds(seed: int, runs: int) -> list[int]:
    """The seed of each independent run: seed * 1000 + r."""
    return [seed * 1000 + r for r in range(runs)]


def run_traces(
    task: ClassificationTask, *, seed: int, epochs: int, runs: int, progress: bool, desc: str
) -> Iterator[TrainingTrace]:
    """One trace per independent run, seeds seed * 1000 + r: what run-averaged scores iterate over."""
    for run_seed in run_seeds(seed, runs):
        yield train_with_trace(task, seed=run_seed, epochs=epochs, progress=progress, desc=desc)[1]
