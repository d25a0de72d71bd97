"""The tasks (`adaprune.tasks`): what a method trains for, picked by the data's `task_kind`."""

from adaprune.components import register_component
from adaprune.params import AnyString, CallableValue, StrOptions

_FACTORY = CallableValue("a callable returning a torch.nn.Module")

register_component("task", "classification", "adaprune.tasks.classification:ClassificationTask",
                   spec={"model": [AnyString("a model name (adaprune methods --kind model)"), _FACTORY]},
                   summary="a classifier on (x, y) samples")
register_component("task", "detection", "adaprune.tasks.detection:DetectionTask",
                   spec={"model": [StrOptions({"auto", "centernet"}), _FACTORY]},
                   summary="a box detector on images with labelled boxes")
