"""One file per method; each registers itself with `adaprune.registry.register_method`."""
