"""The tasks (`adaprune.tasks`): what a method trains for, picked by the data's `task_kind`."""

from adaprune.components import register_component

register_component("task", "classification", "adaprune.tasks.classification:ClassificationTask",
                   summary="a classifier on (x, y) samples")
register_component("task", "detection", "adaprune.tasks.detection:DetectionTask",
                   summary="a box detector on images with labelled boxes")
