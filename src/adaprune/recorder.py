"""Training dynamics from the user's own loop: EL2N, forgetting, AUM and uncertainty scores.

    recorder = TrainingRecorder(n_samples=len(train_set), num_classes=10)
    for epoch in range(E):
        for x, y, idx in loader:                 # train as usual
            logits = model(x)
            ...
            recorder.update(logits, y, idx)      # per batch (or per evaluation pass, see below)
        recorder.end_epoch()
    recorder.scores("el2n").save("el2n.csv")     # then: adaprune select el2n.csv --keep 0.7

Each call to `update` is an observation of those samples; within an epoch the last observation of a
sample counts. `end_epoch` folds the epoch into per-sample running summaries, so memory is a few
arrays of length N (on the logits' device), whatever the number of epochs:

    el2n         ||softmax - onehot(y)||_2 at the last observation
    forgetting   correct -> incorrect transitions between consecutive observations (never correct:
                 the number of observations), plus a tie-break by mean loss below one event
    aum          mean logit margin z_y - max_{k != y} z_k over the observations
    uncertainty  least_confidence / margin / entropy of the softmax at the last observation

adaprune's own scorers observe every sample once per epoch with the model in eval mode (an evaluation
pass after each epoch); recording such a pass gives exactly their scores for the same run. Recording
the training batches instead is cheaper (no extra forward pass) and follows the papers' per-presentation
definitions more closely, under augmentation and dropout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adaprune.errors import ConfigError, DataError
from adaprune.registry import get_method
from adaprune.scores import Direction, ScoreSet, check_uncertainty_measure, uncertainty_from_top2
from adaprune.training.trace import el2n_from_moments, logit_summary_tensors

log = logging.getLogger(__name__)

RECORDED_METHODS = ("el2n", "forgetting", "aum", "uncertainty")
# What one observation leaves per sample (float64).
_OBSERVED = ("loss", "correct", "p_true", "p_max", "p_second", "entropy", "sum_sq_prob", "logit_margin")
_COLUMN = {name: i for i, name in enumerate(_OBSERVED)}


class TrainingRecorder:
    """Per-sample training dynamics in bounded memory, from (logits, labels, sample ids) the user passes.

    `update(logits, labels, idx)` after a forward pass (training batch or evaluation pass; no gradient
    is taken), `end_epoch()` once per epoch, `scores(method)` for a ScoreSet: "el2n", "forgetting",
    "aum", "uncertainty" (`measure` = "entropy", "least_confidence" or "margin"). State lives on the
    device of the first logits it sees."""

    def __init__(self, n_samples: int, num_classes: int) -> None:
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.n_samples = int(n_samples)
        self.num_classes = int(num_classes)
        self.epochs = 0
        self._state: dict[str, Tensor] | None = None

    # ------------------------------------------------------------ state
    def _init_state(self, device: torch.device) -> dict[str, Tensor]:
        n = self.n_samples

        def zeros() -> Tensor:
            return torch.zeros(n, dtype=torch.float64, device=device)

        # This epoch's last observation of each sample, one column per summary (one indexed write a batch).
        state = {"now": torch.zeros(n, len(_OBSERVED), dtype=torch.float64, device=device)}
        state.update(
            seen_now=torch.zeros(n, dtype=torch.bool, device=device),
            labels=torch.full((n,), -1, dtype=torch.int64, device=device),
            observations=zeros(),
            loss_sum=zeros(),
            margin_sum=zeros(),
            forgetting=zeros(),
            prev_correct=torch.zeros(n, dtype=torch.bool, device=device),
            ever_correct=torch.zeros(n, dtype=torch.bool, device=device),
            **{f"last_{name}": torch.full((n,), float("nan"), dtype=torch.float64, device=device)
               for name in ("p_true", "p_max", "p_second", "entropy", "sum_sq_prob")},
        )
        return state

    @property
    def nbytes(self) -> int:
        """Memory the recorder holds (independent of the number of epochs)."""
        return 0 if self._state is None else sum(t.numel() * t.element_size() for t in self._state.values())

    # ------------------------------------------------------------ recording
    @torch.no_grad()
    def update(self, logits: Tensor, labels: Tensor | Sequence[int], idx: Tensor | Sequence[int]) -> None:
        """Record one observation of the samples `idx` (B,): their logits (B, K) and labels (B,)."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise DataError(f"logits must be (batch, {self.num_classes}), got shape {tuple(logits.shape)}")
        if self._state is None:
            self._state = self._init_state(logits.device)
        state = self._state
        device = state["labels"].device
        y = torch.as_tensor(labels, device=logits.device).long()
        idx_t = torch.as_tensor(idx, device=device).long()
        if y.shape != (len(logits),) or idx_t.shape != (len(logits),):
            raise DataError(f"{len(logits)} logits need as many labels and ids, got {tuple(y.shape)} "
                            f"and {tuple(idx_t.shape)}")
        if len(idx_t):
            low, high = (int(v) for v in torch.aminmax(idx_t))
            if low < 0 or high >= self.n_samples:
                raise DataError(f"sample ids must lie in [0, {self.n_samples}), got {low}..{high}")
        summaries = logit_summary_tensors(logits, y)
        state["now"][idx_t] = torch.stack([summaries[name].double() for name in _OBSERVED], 1).to(device)
        state["seen_now"][idx_t] = True
        state["labels"][idx_t] = y.to(device)

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Fold this epoch's observations into the running summaries."""
        if self._state is None:
            raise ConfigError("end_epoch() before any update(): record some logits first")
        s = self._state
        seen = s["seen_now"]
        now = {name: s["now"][:, i] for name, i in _COLUMN.items()}
        correct = now["correct"] > 0.5
        has_prev = s["observations"] > 0
        s["forgetting"] += (seen & has_prev & s["prev_correct"] & ~correct).double()
        s["prev_correct"] = torch.where(seen, correct, s["prev_correct"])
        s["ever_correct"] |= seen & correct
        s["observations"] += seen.double()
        s["loss_sum"] += torch.where(seen, now["loss"], 0.0)
        s["margin_sum"] += torch.where(seen, now["logit_margin"], 0.0)
        for name in ("p_true", "p_max", "p_second", "entropy", "sum_sq_prob"):
            s[f"last_{name}"] = torch.where(seen, now[name], s[f"last_{name}"])
        seen.zero_()
        self.epochs += 1

    # ------------------------------------------------------------ scores
    def _numpy(self, name: str) -> np.ndarray:
        assert self._state is not None
        return self._state[name].cpu().numpy()

    def scores(self, method: str, *, measure: str | None = None, tie_break: bool | None = None) -> ScoreSet:
        """A ScoreSet of the recorded run, for `adaprune select`. `measure` is uncertainty's
        (default "entropy"); `tie_break` is forgetting's (default True: mean loss / (1 + mean loss),
        below one event, orders samples within a count). Never-observed samples score NaN
        (pruned first)."""
        if method not in RECORDED_METHODS:
            raise ConfigError(f"the recorder gives {', '.join(RECORDED_METHODS)}; got {method!r}")
        if measure is not None and method != "uncertainty":
            raise ConfigError(f"measure applies to uncertainty, not {method}")
        if tie_break is not None and method != "forgetting":
            raise ConfigError(f"tie_break applies to forgetting, not {method}")
        if self._state is None or self.epochs == 0:
            raise ConfigError("no epoch recorded yet: call update() and end_epoch() during training")
        observations = self._numpy("observations")
        unseen = observations == 0
        if unseen.any():
            log.warning("%d of %d samples were never observed; they score NaN", int(unseen.sum()), self.n_samples)
        params: dict[str, Any] = {"epochs_recorded": self.epochs}
        with np.errstate(invalid="ignore", divide="ignore"):
            if method == "el2n":
                values = el2n_from_moments(self._numpy("last_sum_sq_prob"), self._numpy("last_p_true"))
            elif method == "aum":
                values = self._numpy("margin_sum") / observations
            elif method == "uncertainty":
                measure = "entropy" if measure is None else measure
                check_uncertainty_measure(measure)
                params["measure"] = measure
                values = uncertainty_from_top2(self._numpy("last_p_max"), self._numpy("last_p_second"),
                                               self._numpy("last_entropy"), measure=measure)
            else:
                from adaprune.methods.forgetting import loss_tie_break

                tie_break = True if tie_break is None else tie_break
                params["tie_break"] = tie_break
                values = np.where(self._numpy("ever_correct"), self._numpy("forgetting"), observations)
                if tie_break:
                    values = values + loss_tie_break(self._numpy("loss_sum") / observations)
        values = np.where(unseen, np.nan, values).astype(np.float64)
        labels = self._numpy("labels")
        return ScoreSet(
            scores=values, direction=Direction(bool(get_method(method).higher_is_keep)), method=method,
            params=params, seed=None,
            labels=None if (labels < 0).any() else labels, details={"source": "TrainingRecorder"},
        )
