"""Spec strings: `npz:PATH`, `digits`, `mnist1d[:N]`, `folder:DIR`, `files:LIST`, `embeddings:PATH.npy`,
the container sources `webdataset:GLOB` (tar shards) and `parquet:GLOB[:COLUMN]`, and the detection
sources `coco:ANNOTATIONS.json[:IMAGES_DIR]`, `yolo:DATA.yaml`, `voc:DIR`, `synthdet[:N]`, `synthtraffic[:N[:val]]`."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from adaprune.components import get_component, list_components
from adaprune.data.dataset import Dataset
from adaprune.data.detection import DetectionDataset, load_coco, load_yolo
from adaprune.data.images import IMAGE_SUFFIXES  # noqa: F401 (where callers have found it)
from adaprune.errors import ConfigError, DataError, describe_value, require
from adaprune.naming import option

log = logging.getLogger(__name__)

def _spec_help() -> str:
    syntaxes = [c.syntax for c in list_components("source")]
    return ", ".join(syntaxes[:-1]) + " or " + syntaxes[-1]


# Every source scheme, from the registry (adaprune/components/sources.py): `--help` lists them.
SPEC_HELP = _spec_help()
DETECTION_KINDS = tuple(c.name for c in list_components("source") if "detection" in c.tags)
# (N, H, W) with H == W and at least this side is read as grey images, not as sequences.
MIN_GREY_SIDE = 8


def load_data(spec: str | Dataset | DetectionDataset, *, test: str | Dataset | DetectionDataset | None = None,
              group_by: str | None = None, on_bad_file: str = "stop",
              size: int | None = None) -> Dataset | DetectionDataset:
    """Load and validate a data source; `test` names a separate source (a spec or a loaded dataset)
    for the test split.

    `group_by` (detection sources) ties images kept or dropped together: a COCO image field (such
    as a scene id), or for YOLO a regular expression over the file name. `on_bad_file` (file
    sources): "stop" raises one error listing every unreadable file, "skip" leaves them out and
    records them in `Dataset.skipped`. `size` (detection sources): the side images are letterboxed
    to (None: the default, `adaprune.data.detection.DEFAULT_INPUT_SIZE`; synthdet 64); a test spec is
    loaded at the training data's size."""
    if isinstance(spec, (Dataset, DetectionDataset)):
        if group_by is not None:
            raise ConfigError("group_by applies to a data source given by its spec (coco:, yolo:, synthdet)")
        if size is not None and getattr(spec, "input_size", None) != size:
            raise ConfigError(f"size applies to a detection source given by its spec; {spec.describe()} is loaded "
                              "already (load it with size=N)")
        data = spec
    else:
        data = _load_spec(spec, group_by=group_by, on_bad_file=on_bad_file, size=size)
    if test is not None:
        if isinstance(test, (Dataset, DetectionDataset)):
            other = test
        else:
            test_size = getattr(data, "input_size", None) if isinstance(data, DetectionDataset) else None
            other = _load_spec(test, on_bad_file=on_bad_file, size=test_size)
        if other.task_kind != data.task_kind:
            raise ConfigError(f"the test source ({describe_value(other)}) is not the same kind of data as "
                              f"{describe_value(data)}")
        data = data.with_test(other)  # type: ignore[arg-type]
    return data


DETECTION_SPECS = ", ".join(f"{k}:" if k in ("coco", "yolo", "voc") else k for k in DETECTION_KINDS[:-1]) + \
    f" and {DETECTION_KINDS[-1]}"


def _load_spec(spec: str, *, group_by: str | None = None, on_bad_file: str = "stop",
               size: int | None = None) -> Dataset | DetectionDataset:
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"data source must be a spec string ({SPEC_HELP}) or a loaded dataset, got "
                          f"{describe_value(spec)}")
    kind, _, arg = spec.partition(":")
    source = get_component("source", kind)  # the registry (adaprune/components/sources.py) names the schemes
    if "detection" in source.tags:
        source.validate({"size": size})
        return load_detection(kind, arg, group_by=group_by, size=size)
    if group_by is not None:
        raise ConfigError(f"{option('group_by', '--group-by')} applies to the detection sources {DETECTION_SPECS}, "
                          f"not {spec!r}")
    if size is not None:
        raise ConfigError(f"--input-size applies to the detection sources {DETECTION_SPECS}, not {spec!r}")
    if kind in _NEED_ARG:
        _need_arg(spec, arg)
    return source.load()(**source.parse_arg(arg), on_bad_file=on_bad_file)


# The file sources that need a path after the colon (webdataset: and parquet: report a missing glob themselves).
_NEED_ARG = ("npz", "folder", "files", "embeddings")


def _source_npz(path: str, **_: object) -> Dataset:
    return load_npz(path)


def _source_digits(**_: object) -> Dataset:
    return load_digits()


def _source_mnist1d(n_train: int | None = None, **_: object) -> Dataset:
    return load_mnist1d() if n_train is None else load_mnist1d(n_train=n_train)


def _source_folder(path: str, *, on_bad_file: str = "stop", **_: object) -> Dataset:
    from adaprune.data.files import load_files

    return load_files("folder", path, on_bad_file=on_bad_file)


def _source_files(path: str, *, on_bad_file: str = "stop", **_: object) -> Dataset:
    from adaprune.data.files import load_files

    return load_files("files", path, on_bad_file=on_bad_file)


def _source_webdataset(path: str = "", *, on_bad_file: str = "stop", **_: object) -> Dataset:
    from adaprune.data.webdataset import load_webdataset

    return load_webdataset(path, on_bad_file=on_bad_file)


def _source_parquet(path: str = "", *, on_bad_file: str = "stop", **_: object) -> Dataset:
    from adaprune.data.parquet_images import load_parquet_images

    return load_parquet_images(path, on_bad_file=on_bad_file)


def _source_embeddings(path: str, **_: object) -> Dataset:
    from adaprune.data.embeddings import load_embeddings

    return load_embeddings(path)


def _need_arg(spec: str, arg: str) -> str:
    if not arg:
        raise ConfigError(f"data source {spec!r} needs a path after the colon")
    return arg


def sample_layout(shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """How an array of `shape` (samples on axis 0) is read: a description and the shape it becomes.

    (N, D) vectors; (N, C, H, W) images; (N, H, W, C) with C in 1, 3, 4 (and axis 1 not) images
    channels-last, moved to NCHW; (N, H, W) with H == W >= 8 grey images, given a channel axis
    (N, 1, H, W), the way Keras and most tutorials store them; any other 3-D array (N, C, L) sequences."""
    if len(shape) == 2:
        return "vectors (N, D)", shape
    if len(shape) == 3:
        if shape[1] == shape[2] and shape[1] >= MIN_GREY_SIDE:
            return "grey images (N, H, W), H == W", (shape[0], 1, shape[1], shape[2])
        return "sequences (N, C, L)", shape
    if len(shape) == 4:
        if shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
            return "images NHWC", (shape[0], shape[3], shape[1], shape[2])
        return "images NCHW", shape
    return "unsupported", shape


def _as_samples(x: np.ndarray, *, what: str) -> np.ndarray:
    """Float32 in the layout `sample_layout` names (NHWC and square (N, H, W) become NCHW)."""
    if x.ndim > 4:
        raise DataError(f"{what}: x must be (N, D), (N, C, L) or images (N, C, H, W), got shape {x.shape}")
    layout, shape = sample_layout(x.shape)
    if layout == "images NHWC":
        x = np.transpose(x, (0, 3, 1, 2))
    elif layout.startswith("grey images"):
        x = x.reshape(shape)
    return np.ascontiguousarray(x, dtype=np.float32) if np.issubdtype(x.dtype, np.number) else x


def _labels(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64) if np.issubdtype(y.dtype, np.number) else y


def load_npz(path: str) -> Dataset:
    """Arrays `x` and `y`, optionally `x_test`, `y_test` and `groups` (one group id per training sample)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"npz file {path!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        raise DataError(f"npz file {path!r} is not readable: expected a .npz archive of numeric arrays") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"npz file {path!r} has no array {key!r}; it has: {', '.join(arrays) or 'none'}")
    from adaprune.data.dataset import validate_arrays

    # Validate before converting, so a NaN or a float label is reported as the user wrote it.
    validate_arrays(arrays["x"], arrays["y"], what=path)
    x_test = arrays.get("x_test")
    y_test = arrays.get("y_test")
    if x_test is not None and y_test is not None:
        validate_arrays(x_test, y_test, what=f"{path} test split")
    layout, shape = sample_layout(arrays["x"].shape)
    log.info("read x %s of %s as %s -> samples of shape %s", tuple(arrays["x"].shape), p.name, layout,
             tuple(shape[1:]))
    return Dataset(
        name=p.stem,
        x=_as_samples(arrays["x"], what=path),
        y=_labels(arrays["y"]),
        x_test=None if x_test is None else _as_samples(x_test, what=path),
        y_test=None if y_test is None else _labels(y_test),
        source_paths=(str(p),),
        groups=arrays.get("groups"),
    )


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits as 1x8x8 images in [0, 1]; a fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images[:, None, :, :] / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return Dataset(name="digits", x=x_tr, y=y_tr, x_test=x_te, y_test=y_te)


def load_mnist1d(n_train: int = 4000) -> Dataset:
    """MNIST-1D generated offline by the mnist1d package (its paper's 4000/1000 split by default).

    Samples are 1x40 sequences. `n_train` scales the set, keeping the 80/20 split."""
    if n_train < 10:
        raise ConfigError(f"mnist1d needs at least 10 training samples, got {n_train}")
    data_mod = require("mnist1d.data", "mnist1d")
    args = data_mod.get_dataset_args()
    args.num_samples = int(round(n_train / args.train_split))
    # make_dataset seeds numpy's global generator; put the caller's state back afterwards.
    state = np.random.get_state()
    try:
        raw = data_mod.make_dataset(args)
    finally:
        np.random.set_state(state)
    return Dataset(
        name="mnist1d" if n_train == 4000 else f"mnist1d-{n_train}",
        x=raw["x"][:, None, :].astype(np.float32),
        y=raw["y"].astype(np.int64),
        x_test=raw["x_test"][:, None, :].astype(np.float32),
        y_test=raw["y_test"].astype(np.int64),
    )


# The detection formats: dispatched here, with the other sources (data/detection.py reads the files).
def load_detection(kind: str, arg: str, *, group_by: str | None = None, size: int | None = None) -> DetectionDataset:
    """`coco:ANNOTATIONS.json[:IMAGES_DIR]`, `yolo:DATA.yaml`, `voc:DIR`, `synthdet[:N]` or
    `synthtraffic[:N[:val]]`, letterboxed to `size` px (None: DEFAULT_INPUT_SIZE; the generated logs:
    their own 64 px frames)."""
    sized = {} if size is None else {"size": size}
    if kind == "coco":
        if not arg:
            raise ConfigError("data source 'coco' needs a path: coco:ANNOTATIONS.json[:IMAGES_DIR]")
        ann, sep, images_dir = arg.partition(".json:")
        ann = ann + ".json" if sep else arg
        return load_coco(ann, images_dir or None, group_by=group_by, **sized)
    if kind == "yolo":
        if not arg:
            raise ConfigError("data source 'yolo' needs a path: yolo:DATA.yaml")
        return load_yolo(arg, group_by=group_by, **sized)
    if kind == "voc":
        from adaprune.data.voc import load_voc

        return load_voc(arg, group_by=group_by, **sized)
    if kind == "synthdet":
        from adaprune.data.synthdet import load_synthdet

        if not arg:
            return load_synthdet(group_by=group_by, **sized)
        try:
            n = int(arg)
        except ValueError:
            raise ConfigError(f"synthdet size must be a whole number of training images, got {arg!r}") from None
        return load_synthdet(n, group_by=group_by, **sized)
    if kind == "synthtraffic":  # synthtraffic[:N[:val]]; `:val`: the validation scenes as the test split
        from adaprune.data.synthtraffic import SYNTHTRAFFIC_DEFAULT_N, load_synthtraffic

        if size is not None:
            raise ConfigError("synthtraffic is drawn at its own 64 px; --input-size applies to coco:, yolo:, voc: "
                              "and synthdet")
        count, _, split = arg.partition(":")
        try:
            n = int(count) if count else SYNTHTRAFFIC_DEFAULT_N
        except ValueError:
            raise ConfigError(f"synthtraffic size must be a whole number of training images, got {count!r}") from None
        if split not in ("", "val"):
            raise ConfigError(f"synthtraffic:N:SPLIT takes the held-out split 'val' (default: test), got {split!r}")
        return load_synthtraffic(n, group_by=group_by, test_split=split or "test")
    raise ConfigError(f"unknown detection source {kind!r}")
