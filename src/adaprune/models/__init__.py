"""Small torch networks, chosen from the input shape. No torchvision.

Every built-in model is a `FeatureClassifier`: `features(x)` gives the penultimate layer (used
as an embedding) and `classifier` maps it to logits."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from adaprune.errors import ConfigError

MODEL_NAMES = ("auto", "mlp", "cnn1d", "cnn", "resnet18")


class FeatureClassifier(nn.Module):
    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.feature_dim = feature_dim
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.body(x))


def mlp(input_shape: Sequence[int], num_classes: int, hidden: int = 256) -> FeatureClassifier:
    d = 1
    for s in input_shape:
        d *= s
    body = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
    return FeatureClassifier(body, hidden, num_classes)


def cnn1d(input_shape: Sequence[int], num_classes: int, width: int = 32) -> FeatureClassifier:
    channels, length = input_shape
    body = nn.Sequential(
        nn.Conv1d(channels, width, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(min(8, length)),
        nn.Flatten(),
    )
    return FeatureClassifier(body, width * min(8, length), num_classes)


def cnn(input_shape: Sequence[int], num_classes: int, width: int = 32) -> FeatureClassifier:
    channels = input_shape[0]
    body = nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
    )
    return FeatureClassifier(body, 2 * width * 4, num_classes)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


def resnet18(input_shape: Sequence[int], num_classes: int) -> FeatureClassifier:
    """The CIFAR variant: a 3x3 stem and no max-pool, four stages of two basic blocks."""
    layers: list[nn.Module] = [
        nn.Conv2d(input_shape[0], 64, 3, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return FeatureClassifier(nn.Sequential(*layers), 512, num_classes)


def auto_model_name(input_shape: Sequence[int]) -> str:
    return {1: "mlp", 2: "cnn1d", 3: "cnn"}.get(len(input_shape), "mlp")


def build_model(name: str, input_shape: Sequence[int], num_classes: int) -> FeatureClassifier:
    if name == "auto":
        name = auto_model_name(input_shape)
    expected = {"mlp": None, "cnn1d": 2, "cnn": 3, "resnet18": 3}
    if name not in expected:
        raise ConfigError(f"unknown model {name!r}; expected one of: {', '.join(MODEL_NAMES)}")
    need = expected[name]
    if need is not None and len(input_shape) != need:
        layout = {2: "(C, L) sequences", 3: "(C, H, W) images"}[need]
        raise ConfigError(f"model {name!r} needs {layout}, but samples have shape {tuple(input_shape)}")
    return {"mlp": mlp, "cnn1d": cnn1d, "cnn": cnn, "resnet18": resnet18}[name](input_shape, num_classes)
