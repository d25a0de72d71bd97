"""Defaults the CLI shows in --help, kept in a module that imports nothing heavy."""

DEFAULT_EVAL_EPOCHS = 30
# How tables and reports name each task's test metric.
METRIC_LABELS = {"accuracy": "accuracy", "map": "mAP@[.5:.95]", "map50": "mAP@.5"}
