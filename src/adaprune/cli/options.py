"""Options several commands share, and parsing of --param KEY=VALUE."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from adaprune.errors import ConfigError
from adaprune.models import MODEL_NAMES
from adaprune.registry import get_method, method_parameters


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="adaprune: %(message)s",
        stream=sys.stderr,
        force=True,
    )


model_option = click.option("--model", default="auto", show_default=True, type=click.Choice(MODEL_NAMES),
                            help="Network to train (auto: by input shape).")
device_option = click.option("--device", default="cpu", show_default=True,
                             help="Torch device: cpu, cuda or cuda:N.")
quiet_option = click.option("--quiet", is_flag=True, help="No progress bars or info messages.")
test_option = click.option("--test", "test_spec", default=None, metavar="DATA",
                           help="A separate source for the test split (when DATA has none).")
balance_option = click.option(
    "--balance", default=None, type=click.Choice(["none", "class"]),
    help="class: per-class quotas in proportion to class sizes; none: one global ranking "
    "(scoring methods; default: the method's own, class for herding, k-center and Moderate-DS).",
)
param_option = click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                            help="A method parameter (repeatable); `adaprune methods -v` lists them.")


def _compose(*decorators):
    def apply(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


# How we train (every command that trains); unset: TrainConfig's defaults (adam, 3e-3, 128, 0).
train_options = _compose(
    click.option("--optimizer", default=None, type=click.Choice(["adam", "sgd"]),
                 help="Optimiser of the models we train (default adam; sgd has momentum 0.9)."),
    click.option("--lr", type=float, default=None, help="Learning rate (default 3e-3)."),
    click.option("--batch-size", type=int, default=None, help="Batch size (default 128)."),
    click.option("--weight-decay", type=float, default=None, help="Weight decay (default 0)."),
)
match_steps_option = click.option(
    "--match-steps", is_flag=True,
    help="Train each subset for as many optimisation steps as the full set (more epochs on a subset) "
    "instead of the same number of epochs.",
)


# Options of every command that runs a method: seed, model, epochs, device, method parameters, training.
method_run_options = _compose(
    click.option("--seed", type=int, default=0, show_default=True),
    model_option,
    click.option("--epochs", type=int, default=None, help="Training epochs of methods that train a model."),
    device_option,
    param_option,
    train_options,
)
# --prune F | --keep F (checked by Budget.from_args).
budget_options = _compose(
    click.option("--prune", "prune_fraction", type=float, default=None, help="Fraction of samples to remove."),
    click.option("--keep", "keep_fraction", type=float, default=None, help="Fraction of samples to keep."),
)


def parse_fraction_list(value: str, *, what: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers like 0.1,0.3, got {value!r}") from None
    if not out:
        raise ConfigError(f"{what} is empty")
    return out


def _coerce(raw: str, default: Any, *, key: str) -> Any:
    if isinstance(default, bool):
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"parameter {key} expects true or false, got {raw!r}")
    for typ in (int, float):
        if isinstance(default, typ):
            try:
                return typ(raw)
            except ValueError:
                raise ConfigError(f"parameter {key} expects {typ.__name__}, got {raw!r}") from None
    if default is None or default is inspect.Parameter.empty:
        for typ in (int, float):
            try:
                return typ(raw)
            except ValueError:
                pass
    return raw


def parse_params(method: str, items: Sequence[str]) -> dict[str, Any]:
    """--param KEY=VALUE pairs, typed by the method's declared defaults."""
    declared = method_parameters(get_method(method))
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        if key not in declared:
            raise ConfigError(
                f"method {method!r} has no parameter {key!r}; it takes: {', '.join(declared) or 'none'}"
            )
        out[key] = _coerce(raw, declared[key].default, key=key)
    return out
