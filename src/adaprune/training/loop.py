"""One training loop for every method, every task and the evaluation.

The loop knows nothing of the task: it asks it for batches (each carrying its sample indices) and
per-sample losses, so per-sample state (a mask, a score, a trace) is indexed by sample, never by
loader position. This module imports no task (tasks depend on training, not the reverse)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from adaprune.errors import ConfigError

if TYPE_CHECKING:
    from adaprune.tasks.base import Task

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine")
# loss_fn(per_sample_loss, idx) -> scalar loss; idx are the batch's sample indices.
LossFn = Callable[[Tensor, Tensor], Tensor]


class Stepper(Protocol):
    """What `fit` steps after each backward pass: a torch optimizer, or anything shaped like one."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> object: ...


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained: shared by the evaluation harness and methods that train. `batch_size`
    None means the task's own default (a task resolves it when it is built: 128 samples for
    classification, 32 images for detection), so an explicit size is always honoured. `schedule`:
    "constant" keeps `lr` throughout; "cosine" decays the model's learning rate step by step from
    `lr` to 0 over the run's planned steps (half a cosine), which settles the final weights and so
    narrows the spread of the test metric over seeds."""

    epochs: int = 30
    batch_size: int | None = None
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    device: str = "cpu"
    schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise ConfigError(f"device must be cpu, cuda[:N] or mps, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r} asked for, but torch sees no CUDA device")


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def seeded_model(factory: Callable[[], nn.Module], seed: int, device: str) -> nn.Module:
    """Build a model with its initial weights drawn from `seed`, leaving global RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory()
    return model.to(device)


def batch_indices(indices: Tensor, batch_size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    """Sample ids `indices` batch by batch: shuffled by `generator`, in the given order when it is None."""
    order = indices if generator is None else indices[torch.randperm(len(indices), generator=generator)]
    yield from order.split(batch_size)


def fit(
    model: nn.Module,
    task: Task,
    *,
    seed: int,
    indices: Tensor | None = None,
    loss_fn: LossFn | None = None,
    extra_optimizers: tuple[Stepper, ...] = (),
    epochs: int | None = None,
    on_epoch_end: Callable[[int], bool | None] | None = None,
    progress: bool = True,
    desc: str = "train",
    max_steps: int | None = None,
) -> nn.Module:
    """Train `model` on the training samples `indices` (all by default) of `task`.

    Every batch carries its sample indices; `loss_fn(per_sample_loss, idx)` turns the task's
    per-sample losses into the scalar to minimise (default: their mean), so per-sample state (a
    mask, say) is indexed by sample. `extra_optimizers` step after the model's own.
    `on_epoch_end(epoch)` may return True to stop early. `max_steps` stops after that many
    optimisation steps, mid-epoch if need be (matched-steps evaluation)."""
    config = task.train
    if indices is None:
        indices = torch.arange(task.n)
    indices = torch.as_tensor(indices).to(torch.int64).cpu()
    gen = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model.parameters(), config)
    optimizers = (optimizer, *extra_optimizers)
    loss_fn = loss_fn or (lambda per_sample, idx: per_sample.mean())
    n_epochs = config.epochs if epochs is None else epochs
    scheduler = None
    if config.schedule == "cosine":
        planned = n_epochs * math.ceil(len(indices) / config.batch_size)
        planned = max(1, planned if max_steps is None else min(planned, max_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, planned) / planned)))
    model.train()
    bar = tqdm(range(n_epochs), desc=desc, disable=not progress, leave=False, unit="epoch")
    steps = 0
    for epoch in bar:
        for batch in task.batches(indices, config.batch_size, generator=gen):
            if max_steps is not None and steps >= max_steps:
                break
            loss = loss_fn(task.per_sample_loss(model, batch), batch.idx)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()
            if scheduler is not None:
                scheduler.step()
            steps += 1
        if on_epoch_end is not None and on_epoch_end(epoch):
            break
    bar.close()
    model.eval()
    return model


@torch.no_grad()
def per_sample_losses(model: nn.Module, task: Task, indices: Tensor | None = None, *,
                      batch_size: int = 512) -> np.ndarray:
    """The task's per-sample loss of every training sample in `indices` (all by default), in eval
    mode without gradients, as float64 in the order of `indices`."""
    if indices is None:
        indices = torch.arange(task.n)
    indices = torch.as_tensor(indices).to(torch.int64).cpu()
    was_training = model.training
    model.eval()
    parts = [task.per_sample_loss(model, batch).double().cpu()
             for batch in task.batches(indices, batch_size, generator=None)]
    model.train(was_training)
    return torch.cat(parts).numpy() if parts else np.zeros(0)


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, *, batch_size: int = 1024, device: str = "cpu") -> Tensor:
    model.eval()
    outs = [model(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, device: str = "cpu") -> float:
    logits = predict_logits(model, x, device=device)
    return float((logits.argmax(1) == y.cpu()).float().mean())
