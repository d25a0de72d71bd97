"""The engines (`adaprune.engine`): where the stages that grow with N run."""

from adaprune.components import register_component
from adaprune.params import AnyString, Interval

_WORKERS = [Interval(int, 1, None), None]

register_component("engine", "local", "adaprune.engine:_local_engine", spec={"workers": _WORKERS},
                   summary="in this process: a loop, or a pool of `workers` threads")
register_component("engine", "ray", "adaprune.engine:_ray_engine",
                   spec={"workers": _WORKERS, "address": [AnyString("a Ray cluster address"), None]},
                   summary="one Ray task per item, on a running cluster (`address`) or a local one; "
                   "needs adaprune[ray]")
