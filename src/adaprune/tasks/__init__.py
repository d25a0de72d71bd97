from adaprune.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
