"""The data sources (`adaprune.data.sources`): the scheme before a DATA spec's colon.

Each entry is a loader `f(arg, **options)`: `arg` is the text after the colon (already parsed by
the spec when `arg` names a parameter), options are what `load_data` was given (`on_bad_file`
for file sources; `group_by` and `size` for detection sources)."""

from adaprune.components import register_component
from adaprune.params import AnyString, Interval

_S = "adaprune.data.sources"
_PATH = {"path": AnyString("a path")}
# The detector's input side: the multiple-of-4 rule is checked where the images are letterboxed.
_SIZE = [Interval(int, 16, None), None]


def _classification(name: str, syntax: str, summary: str, **kw) -> None:
    register_component("source", name, f"{_S}:_source_{name}", syntax=syntax, summary=summary,
                       tags=("classification",), **kw)


def _detection(name: str, syntax: str, summary: str, spec: dict, arg: str | None = None) -> None:
    register_component("source", name, f"{_S}:load_detection", syntax=syntax, summary=summary,
                       spec={**spec, "size": _SIZE}, arg=arg, tags=("detection",))


_classification("npz", "npz:PATH", "arrays x, y (and x_test, y_test, groups) in a .npz", spec=_PATH, arg="path")
_classification("digits", "digits", "scikit-learn's 8x8 digits")
_classification("mnist1d", "mnist1d[:N]", "MNIST-1D with N (4000) training samples",
                spec={"n_train": Interval(int, 10, None)}, arg="n_train")
_classification("folder", "folder:DIR", "images in one folder per class", spec=_PATH, arg="path")
_classification("files", "files:LIST.csv|.parquet", "a table of image paths and labels", spec=_PATH, arg="path")
_classification("embeddings", "embeddings:PATH.npy", "embeddings (one row per sample) to prune directly",
                spec=_PATH, arg="path")
_classification("webdataset", "webdataset:GLOB.tar", "WebDataset tar shards", spec=_PATH, arg="path")
_classification("parquet", "parquet:GLOB.parquet[:COLUMN]", "images stored in Parquet files", spec=_PATH,
                arg="path")
_detection("coco", "coco:ANNOTATIONS.json[:IMAGES_DIR]", "a COCO annotation file", _PATH, "path")
_detection("yolo", "yolo:DATA.yaml", "a YOLO data.yaml", _PATH, "path")
_detection("voc", "voc:DIR", "a Pascal VOC folder", _PATH, "path")
_detection("synthdet", "synthdet[:N]", "generated boxes on noise, N training images",
           {"n": Interval(int, 1, None)}, "n")
_detection("synthtraffic", "synthtraffic[:N[:val]]", "generated traffic scenes (their own 64 px)",
           {"spec": AnyString("N[:val]")}, "spec")
