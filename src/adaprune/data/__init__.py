"""Data sources. `load_data(spec)` turns a spec string (the CLI's DATA) into a validated Dataset."""

from adaprune.data.dataset import Dataset, validate_arrays
from adaprune.data.sources import load_data

__all__ = ["Dataset", "load_data", "validate_arrays"]
