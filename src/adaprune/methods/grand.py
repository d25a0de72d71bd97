"""GraNd (Paul, Ganguli and Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early
in Training", NeurIPS 2021).

GraNd_i = E_runs || grad_theta CE(f_theta(x_i), y_i) ||_2, the expected norm of a sample's loss gradient
over the parameters, at initialisation (epochs=0, the paper's GraNd at init, averaged over 10 inits)
or after a few epochs. Samples with large gradients are kept.

Per-sample gradients of all parameters come from torch.func (functional_call + grad + vmap) in
chunks, so at most `chunk_size` per-sample gradient copies are alive at once. The model is in eval
mode (batch norm uses its running statistics; a single sample has no batch statistics).

`last_layer=True` uses only the final linear layer z = W h + b, in closed form:
dL/dW = (p - e_y) h^T and dL/db = p - e_y, so the norm is ||p - e_y|| * sqrt(||h||^2 + 1)
(without the 1 when the layer has no bias). It needs a model with `.features(x)` and a
`.classifier` nn.Linear (every built-in model has both).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from adaprune.errors import ConfigError
from adaprune.methods.base import Scorer
from adaprune.params import Boolean, Interval, ParamSpec
from adaprune.registry import register_method
from adaprune.tasks.classification import ClassificationTask
from adaprune.training.loop import fit
from adaprune.training.trace import run_seeds

# Auto chunk: at most this many float elements of per-sample gradients per chunk (~256 MiB in float32).
_AUTO_GRAD_ELEMENTS = 2**26
_MAX_AUTO_CHUNK = 512


def auto_chunk_size(n_params: int) -> int:
    """Samples per vmap chunk so per-sample gradients stay within ~256 MiB (1..512)."""
    return int(max(1, min(_MAX_AUTO_CHUNK, _AUTO_GRAD_ELEMENTS // max(n_params, 1))))


@torch.no_grad()
def _norms_of(grads: dict[str, Tensor]) -> Tensor:
    return torch.sqrt(sum(g.double().pow(2).flatten(1).sum(1) for g in grads.values()))


def per_sample_grad_norms(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    chunk_size: int | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """||d CE(model(x_i), y_i) / d theta||_2 over all trainable parameters, per sample (float64, N).

    Evaluated with the model in eval mode; `chunk_size` samples per vmap call (None: auto)."""
    if len(x) != len(y):
        raise ConfigError(f"x has {len(x)} samples but y has {len(y)}")
    model.eval()
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ConfigError(f"model {type(model).__name__} has no trainable parameters")
    buffers = {k: b.detach() for k, b in model.named_buffers()}
    n_params = sum(p.numel() for p in params.values())
    chunk = chunk_size or auto_chunk_size(n_params)

    def loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    chunks = zip(x.split(chunk), y.split(chunk), strict=True)
    bar = tqdm(chunks, total=-(-len(x) // chunk), desc="grand: per-sample gradients", disable=not progress,
               leave=False, unit="chunk")
    out = [_norms_of(per_sample(params, xs.to(device), ys.to(device))).cpu() for xs, ys in bar]
    return torch.cat(out).numpy() if out else np.zeros(0)


def check_last_layer(model: nn.Module) -> nn.Linear:
    """The model's final linear layer, or a ConfigError saying what is missing."""
    classifier = getattr(model, "classifier", None)
    if not callable(getattr(model, "features", None)) or not isinstance(classifier, nn.Linear):
        raise ConfigError(
            f"grand with last_layer=True needs a model with .features(x) and a .classifier nn.Linear; "
            f"{type(model).__name__} lacks them (use last_layer=False, or a built-in model)"
        )
    return classifier


@torch.no_grad()
def last_layer_grad_norms(
    model: nn.Module, x: Tensor, y: Tensor, *, chunk_size: int = 1024, device: str = "cpu"
) -> np.ndarray:
    """Closed-form per-sample gradient norm of CE over the final linear layer only (float64, N):
    ||p - e_y|| * sqrt(||h||^2 + 1), h = model.features(x), p = softmax(model.classifier(h))."""
    classifier = check_last_layer(model)
    if len(x) != len(y):
        raise ConfigError(f"x has {len(x)} samples but y has {len(y)}")
    model.eval()
    bias = 1.0 if classifier.bias is not None else 0.0
    out = []
    for xs, ys in zip(x.split(chunk_size), y.split(chunk_size), strict=True):
        h = model.features(xs.to(device)).flatten(1)
        p = classifier(h).double().softmax(1)
        err = p - F.one_hot(ys.to(device).long(), p.shape[1]).double()
        h_sq = h.double().pow(2).sum(1)
        out.append((torch.linalg.vector_norm(err, dim=1) * torch.sqrt(h_sq + bias)).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


@register_method("grand")
class GraNd(Scorer):
    """GraNd (Paul et al. 2021, "Deep Learning on a Data Diet"): expected per-sample gradient norm; higher = keep.

    Score = mean over `runs` (default 3) models (seeds seed*1000+r), each trained `epochs` (default 0:
    at initialisation, as in the paper) epochs, of ||grad_theta CE(x, y)||_2 over all parameters
    (torch.func, `chunk_size` samples per vmap chunk, default None = auto, ~256 MiB of gradients) or,
    with `last_layer=True` (default False), over the final linear layer in closed form.

    Parameters:
        epochs: training epochs before the gradient norm is read (0: at initialisation)
        runs: independently seeded models averaged
        last_layer: gradient of the final linear layer only (closed form, fast)
        chunk_size: samples per vmap chunk (None: about 256 MiB of gradients)"""

    higher_is_keep = True
    # The hard end (CCS drops its hardest beta there): a large gradient norm is a hard sample.
    higher_is_hard: ClassVar[bool | None] = True
    trains_model = True
    param_spec = ParamSpec({"epochs": Interval(int, 0, None), "runs": Interval(int, 1, None),
                            "last_layer": Boolean(), "chunk_size": [Interval(int, 1, None), None]})

    def __init__(
        self, *, epochs: int = 0, runs: int = 3, last_layer: bool = False, chunk_size: int | None = None
    ) -> None:
        self.epochs = epochs
        self.runs = runs
        self.last_layer = last_layer
        self.chunk_size = chunk_size

    def score(self, task: ClassificationTask, *, seed: int, progress: bool) -> np.ndarray:
        x, y = task.train_tensors()
        total = np.zeros(task.data.n)
        for run_seed in run_seeds(seed, self.runs):
            model = task.new_model(run_seed)
            if self.last_layer:
                check_last_layer(model)  # before any training
            if self.epochs > 0:
                fit(model, task, seed=run_seed, epochs=self.epochs, progress=progress, desc="grand")
            if self.last_layer:
                total += last_layer_grad_norms(model, x, y, chunk_size=self.chunk_size or 1024, device=task.device)
            else:
                total += per_sample_grad_norms(
                    model, x, y, chunk_size=self.chunk_size, device=task.device, progress=progress
                )
        return total / self.runs
