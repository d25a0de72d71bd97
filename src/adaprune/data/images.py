"""Image files as a lazy array: pixels are decoded when a batch asks for them, not at load time.

`ImageFiles` behaves like a read-only float32 array of shape (N, C, H, W) in [0, 1]: indexing with
an int, a slice or an index array decodes just those files (in a thread pool; Pillow releases the
GIL while decoding) and resizes them to `size`. A data set of a million photos costs a list of
paths until something reads it."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from adaprune.errors import ConfigError, DataError, require

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def decode_image(path: str | Path | bytes, *, size: tuple[int, int] | None, channels: int,
                 name: str | None = None) -> np.ndarray:
    """One image (a file, or its encoded bytes) as float32 (C, H, W) in [0, 1], resized (bilinear) to
    `size` = (H, W) if given. `name` is what an error calls it (default: the path)."""
    image_mod = require("PIL.Image", "images")
    try:
        with image_mod.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if size is not None and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), image_mod.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except Exception as exc:  # Pillow raises several unrelated types for a bad file
        raise DataError(f"image {name or str(path)!r} is not readable: {exc}") from None
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


class ImageFiles:
    """A lazy (N, C, H, W) float32 array over image files.

    `size` = (H, W) resizes every image to it; with None every file must already have the size of
    the first one (checked when decoded). `channels` is 1 (grey) or 3 (RGB)."""

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        size: tuple[int, int] | None = None,
        channels: int = 3,
        workers: int | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {channels}")
        if len(paths) == 0:
            raise DataError("no image files")
        self.paths = tuple(str(p) for p in paths)
        self.channels = channels
        self.workers = workers or min(8, os.cpu_count() or 1)
        if size is None:
            first = decode_image(self.paths[0], size=None, channels=channels)
            size = (int(first.shape[1]), int(first.shape[2]))
            self._fixed_size = False
        else:
            self._fixed_size = True
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"size must be (height, width) of positive integers, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self._executor: ThreadPoolExecutor | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.channels, *self.size)

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, path: str, source: str | bytes | DataError) -> np.ndarray:
        if isinstance(source, DataError):
            raise source
        arr = decode_image(source, size=self.size if self._fixed_size else None, channels=self.channels, name=path)
        if arr.shape[1:] != self.size:
            raise DataError(
                f"image {path!r} is {arr.shape[2]}x{arr.shape[1]} but {self.paths[0]!r} is "
                f"{self.size[1]}x{self.size[0]}; expected one size for all images (or give a size to resize to)"
            )
        return arr

    def _decode_or_error(self, job: tuple[str, str | bytes | DataError]) -> np.ndarray | DataError:
        try:
            return self._decode(*job)
        except DataError as exc:
            return exc

    def _sources(self, rows: np.ndarray) -> list[str | bytes | DataError]:
        """What Pillow opens for each row: its file (a subclass gives encoded bytes read in bulk)."""
        return [self.paths[int(i)] for i in rows]

    def _pool(self) -> ThreadPoolExecutor:
        # One pool per array, made on first use (and not pickled: a Ray worker makes its own).
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        return self._executor

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_executor": None}

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode the files at `indices` into one (B, C, H, W) array, in a thread pool. Every file
        of the batch that fails is named in one error."""
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        jobs = list(zip([self.paths[int(i)] for i in rows], self._sources(rows), strict=True))
        out = np.empty((len(jobs), self.channels, *self.size), dtype=np.float32)
        if len(jobs) <= 2 or self.workers == 1:
            decoded = map(self._decode_or_error, jobs)
        else:
            decoded = self._pool().map(self._decode_or_error, jobs)
        errors = []
        for j, arr in enumerate(decoded):
            if isinstance(arr, DataError):
                errors.append(str(arr))
            else:
                out[j] = arr
        if len(errors) == 1:
            raise DataError(errors[0])
        if errors:
            raise DataError(f"{len(errors)} images failed to decode: " + "; ".join(errors[:20]))
        return out

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray | tuple) -> np.ndarray:
        if isinstance(key, tuple):  # x[i, c, h, w]: samples first, then the rest on the decoded pixels
            if not key:
                return self[slice(None)]
            head = self[key[0]]
            rest = key[1:]
            return head[rest] if isinstance(key[0], (int, np.integer)) else head[(slice(None), *rest)]
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"image index {i} out of range for {len(self)} images")
            return self.read([i % len(self)])[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self))[key])
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self.read(idx)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """Every image decoded: for small sets only (N x C x H x W x 4 bytes)."""
        arr = self.read(np.arange(len(self)))
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def subset(self, start: int, stop: int) -> ImageFiles:
        """The files start:stop, same size and channels (what one chunk's task needs to carry)."""
        return ImageFiles(self.paths[start:stop], size=self.size, channels=self.channels, workers=self.workers)

    def with_size(self, size: tuple[int, int]) -> ImageFiles:
        """The same files resized to `size` (what a consumer such as an encoder asks for)."""
        return ImageFiles(self.paths, size=size, channels=self.channels, workers=self.workers)


def is_lazy(x: object) -> bool:
    """True for an array-like that decodes on access (not an in-memory numpy array)."""
    return not isinstance(x, np.ndarray) and hasattr(x, "shape") and hasattr(x, "__getitem__")
