"""The classification dataset every method and the evaluation harness work on: arrays in memory, or
a lazy array-like (`adaprune.data.images.ImageFiles`) that decodes files when a batch asks."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from adaprune.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """Training samples (x, y) and an optional test split.

    Samples lie on axis 0 of `x`: vectors (N, D), sequences (N, C, L) or images (N, C, H, W),
    float32; `x` may also be a lazy array-like (shape, dtype, indexing by an index array) such as
    `ImageFiles`, read only when a batch asks. `y` holds integer class labels 0..K-1. The test split
    is only ever used to report accuracy, never to choose anything. `groups` (optional, one id per
    training sample) marks samples that must be kept or removed together (frames of one scene); methods that support
    it decide per group. `ids` (optional) names every training sample (a file path, an image id)
    so outputs can carry it."""

    task_kind: ClassVar[str] = "classification"

    name: str
    x: Any  # np.ndarray, or a lazy array-like (ImageFiles)
    y: np.ndarray
    x_test: Any = None
    y_test: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    source_paths: tuple[str, ...] = field(default_factory=tuple)
    groups: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate_arrays(self.x, self.y, what=self.name)
        if self.groups is not None:
            validate_groups(self.groups, len(self.y), what=self.name)
        if self.ids is not None and len(self.ids) != len(self.y):
            raise DataError(f"{self.name}: ids has {len(self.ids)} entries but there are {len(self.y)} samples")
        if (self.x_test is None) != (self.y_test is None):
            raise DataError(f"{self.name}: give both x_test and y_test, or neither")
        if self.x_test is not None:
            validate_arrays(self.x_test, self.y_test, what=f"{self.name} test split")
            if self.x_test.shape[1:] != self.x.shape[1:]:
                raise DataError(
                    f"{self.name}: test samples have shape {self.x_test.shape[1:]} "
                    f"but training samples have {self.x.shape[1:]}"
                )

    @property
    def n(self) -> int:
        return len(self.y)

    def describe(self) -> str:
        return f"dataset {self.name!r} ({self.n} samples of shape {self.sample_shape})"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        top = int(self.y.max())
        if self.y_test is not None and len(self.y_test):
            top = max(top, int(self.y_test.max()))
        if self.class_names is not None:
            top = max(top, len(self.class_names) - 1)
        return top + 1

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    def with_test(self, other: Dataset) -> Dataset:
        """This training set with `other`'s training arrays as its test split.

        Class names are part of the data: when both sides name their classes (`folder:` class
        folders, a `files:` manifest with named labels), the test labels are renumbered to the
        training numbering by name (`match_test_labels`). A test source may hold a subset of the
        training classes (it then scores exactly like the full test set restricted to those
        classes); a test class the training source lacks is refused in one line naming it."""
        y_test = match_test_labels(self, other)
        return dataclasses.replace(
            self,
            x_test=other.x,
            y_test=y_test,
            source_paths=self.source_paths + other.source_paths,
        )

    def class_map(self) -> dict[str, int] | None:
        """The name-to-number map of the classes (None when the source has no class names)."""
        return None if self.class_names is None else {n: i for i, n in enumerate(self.class_names)}


def match_test_labels(train: Dataset, test: Dataset) -> np.ndarray:
    """`test`'s labels in `train`'s numbering, matched by class name where both sides have names."""
    if train.class_names is None or test.class_names is None:
        if train.class_names is not None and len(test.y) and int(test.y.max()) >= len(train.class_names):
            raise DataError(
                f"test source {test.name!r} has label {int(test.y.max())} but {train.name!r} has "
                f"{len(train.class_names)} classes ({', '.join(train.class_names)}); expected labels "
                f"0..{len(train.class_names) - 1}"
            )
        if (train.class_names is None) != (test.class_names is None):
            named = train if train.class_names is not None else test
            log.warning("only %s names its classes; the test labels are taken as class numbers as they are",
                        named.name)
        return test.y
    index = train.class_map()
    assert index is not None
    unknown = [c for c in test.class_names if c not in index]
    if unknown:
        raise DataError(
            f"test source {test.name!r} has class {unknown[0]!r}, which the training source {train.name!r} "
            f"does not have (its classes: {', '.join(train.class_names)})"
        )
    mapping = np.array([index[c] for c in test.class_names], dtype=np.int64)
    missing = [c for c in train.class_names if c not in set(test.class_names)]
    if missing:
        log.warning("test source %s lacks %d of %d training classes (%s); its classes are matched by name, "
                    "so the test metric covers the %d classes it has", test.name, len(missing),
                    len(train.class_names), ", ".join(missing), len(test.class_names))
    elif tuple(test.class_names) != tuple(train.class_names):
        log.info("test classes matched to the training classes by name")
    return mapping[test.y]


def validate_groups(groups: np.ndarray, n: int, *, what: str) -> None:
    """One integer (or string) group id per training sample."""
    if not isinstance(groups, np.ndarray) or groups.ndim != 1:
        raise DataError(f"{what}: groups must be a 1-D array of one group id per sample")
    if len(groups) != n:
        raise DataError(f"{what}: groups has {len(groups)} entries but there are {n} samples")
    if not (np.issubdtype(groups.dtype, np.integer) or np.issubdtype(groups.dtype, np.str_)):
        raise DataError(f"{what}: group ids must be integers or strings, got dtype {groups.dtype}")


def validate_arrays(x: np.ndarray, y: np.ndarray | None, *, what: str) -> None:
    """Checks at the edge, each failing with one line that names the value and what was expected."""
    from adaprune.data.images import is_lazy

    if not (isinstance(x, np.ndarray) or is_lazy(x)) or not isinstance(y, np.ndarray):
        raise DataError(f"{what}: x and y must be numpy arrays (x may be a lazy array such as ImageFiles)")
    if x.ndim < 2:
        raise DataError(f"{what}: x must have samples on axis 0 and features after, got shape {x.shape}")
    if len(x) == 0:
        raise DataError(f"{what}: x is empty (0 samples)")
    if y.ndim != 1:
        raise DataError(f"{what}: y must be one label per sample (1-D), got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{what}: x has {len(x)} samples but y has {len(y)}")
    # A lazy source validates its own files: its values are not read here.
    if not is_lazy(x) and (not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating)):
        raise DataError(f"{what}: x must be real numbers, got dtype {x.dtype}")
    if not is_lazy(x) and np.issubdtype(x.dtype, np.floating):
        # In chunks: a memory-mapped array of 10 GB is checked with a few MB of memory.
        rows = max(1, 2**22 // max(1, int(np.prod(x.shape[1:]))))
        finite = np.concatenate([np.isfinite(x[s : s + rows].reshape(min(rows, len(x) - s), -1)).all(axis=1)
                                 for s in range(0, len(x), rows)])
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise DataError(
                f"{what}: x has NaN or inf in {len(bad)} samples (first at row {int(bad[0])}); "
                "expected finite values"
            )
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{what}: labels must be non-negative integers, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating) and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        bad = int(np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0])
        raise DataError(f"{what}: labels must be non-negative integers, got {y[bad].item()!r} at row {bad}")
    if (y < 0).any():
        bad = int(np.flatnonzero(y < 0)[0])
        raise DataError(f"{what}: labels must be non-negative integers, got {y[bad].item()!r} at row {bad}")
