"""The built-in networks (`adaprune.models`); `auto` picks one by input shape."""

from adaprune.components import register_component

register_component("model", "auto", "adaprune.models:auto_model_name",
                   summary="mlp for vectors, cnn1d for sequences, cnn_small for images")
register_component("model", "mlp", "adaprune.models:mlp", summary="two hidden layers, any input", tags=("any",))
register_component("model", "cnn1d", "adaprune.models:cnn1d", summary="a small 1-D CNN for (C, L) sequences",
                   tags=("sequences",))
register_component("model", "cnn_small", "adaprune.models:cnn_small", summary="a small CNN for (C, H, W) images",
                   tags=("images",))
register_component("model", "cnn", "adaprune.models:cnn", summary="a wider CNN for (C, H, W) images",
                   tags=("images",))
register_component("model", "resnet18", "adaprune.models:resnet18", summary="ResNet-18 for (C, H, W) images",
                   tags=("images",))
