"""Options several commands share, and parsing of --param KEY=VALUE."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from adaprune.components import component_names, list_components
from adaprune.data.sources import SPEC_HELP
from adaprune.errors import ConfigError
from adaprune.registry import check_method_name, get_method, method_parameters


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="adaprune: %(message)s",
        stream=sys.stderr,
        force=True,
    )


# Choices and help from the component registry (adaprune/components/), which imports no torch.
ENCODER_SPECS = ", ".join(["auto"] + [c.syntax for c in list_components("encoder")])

model_option = click.option("--model", default="auto", show_default=True, type=click.Choice(component_names("model")),
                            help="Network to train (auto: by input shape).")
device_option = click.option("--device", default="cpu", show_default=True,
                             help="Torch device: cpu, cuda or cuda:N.")
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, metavar="N",
    help="Torch CPU threads (default: $ADAPRUNE_THREADS, else 1 for the built-in models, which one "
    "thread trains fastest; torch's default for resnet18).",
)
no_standardize_option = click.option(
    "--no-standardize", "no_standardize", is_flag=True,
    help="Feed vector (N, D) inputs to the model as they are (default: standardised with the training "
    "split's mean and std).",
)
# Every command takes --quiet (the common option; tests/test_cli.py checks each command has it).
quiet_option = click.option("--quiet", is_flag=True, help="No progress bars or info messages.")
# Shown under `--help` of every command that reads DATA.
DATA_EPILOG = f"DATA is one of: {SPEC_HELP}."
test_option = click.option("--test", "test_spec", default=None, metavar="DATA",
                           help="A separate source for the test split (when DATA has none).")
balance_option = click.option(
    "--balance", default=None, type=click.Choice(["none", "class"]),
    help="class: per-class quotas in proportion to class sizes; none: one global ranking "
    "(scoring methods and adapruner's budget ranking; default: the method's own, class for herding, k-center "
    "and Moderate-DS).",
)
on_bad_file_option = click.option(
    "--on-bad-file", default="stop", show_default=True, type=click.Choice(["stop", "skip"]),
    help="File sources: stop with one error listing every unreadable image (nothing is written), or skip "
    "them and list them in the output's metadata.",
)
engine_options_list = (
    click.option("--engine", default="local", show_default=True, type=click.Choice(component_names("engine")),
                 help="Where the stages that grow with N run: this process, or a Ray cluster (adaprune[ray])."),
    click.option("--ray-address", default=None, metavar="ADDRESS",
                 help="Ray cluster to join (auto, ray://HOST:10001); default: start a local one."),
)
input_size_option = click.option(
    "--input-size", "input_size", type=int, default=None, metavar="N",
    help="Detection sources (coco:, yolo:, synthdet): letterbox every image to N x N px, aspect ratio kept "
    "(default 64; synthdet is drawn at 64). evaluate: default the size the selection was made at.",
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
    click.option("--batch-size", type=int, default=None, help="Batch size (default: 128, or 32 images for detection)."),
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
    threads_option,
    no_standardize_option,
    param_option,
    train_options,
)
# --engine local|ray and --ray-address.
engine_options = _compose(*engine_options_list)
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


def _coerce(method: str, key: str, raw: str) -> Any:
    """--param text as a value of the method's parameter `key`, by its declared constraints."""
    return get_method(method).param_spec.parse(method, key, raw)


def _split_param(item: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
    return key, raw


def parse_params(method: str, items: Sequence[str]) -> dict[str, Any]:
    """--param KEY=VALUE pairs, typed by the method's parameter spec. Without any, only the name
    is checked (from the method index), so a bad input fails before torch is imported."""
    if not items:
        check_method_name(method)
        return {}
    declared = method_parameters(get_method(method))
    out: dict[str, Any] = {}
    for item in items:
        key, raw = _split_param(item)
        if key not in declared:
            raise ConfigError(
                f"method {method!r} has no parameter {key!r}; it takes: {', '.join(declared) or 'none'}"
            )
        out[key] = _coerce(method, key, raw)
    return out


def parse_method_params(methods: Sequence[str], items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """--param for several methods (`adaprune benchmark`): METHOD.KEY=VALUE sets one method's
    parameter; a plain KEY=VALUE sets it for every listed method that declares KEY, and is an error
    when none does. METHOD.KEY wins over a plain KEY, whatever the order."""
    declared = {m: method_parameters(get_method(m)) for m in methods}
    plain: dict[str, dict[str, Any]] = {m: {} for m in methods}
    scoped: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for item in items:
        key, raw = _split_param(item)
        method, dot, name = key.rpartition(".")
        if dot:
            if method not in declared:
                raise ConfigError(f"--param {item!r} names method {method!r}, which is not in --methods "
                                  f"({', '.join(methods)})")
            if name not in declared[method]:
                raise ConfigError(f"method {method!r} has no parameter {name!r}; it takes: "
                                  f"{', '.join(declared[method]) or 'none'}")
            scoped[method][name] = _coerce(method, name, raw)
            continue
        takers = [m for m in methods if key in declared[m]]
        if not takers:
            raise ConfigError(f"no method in --methods ({', '.join(methods)}) has a parameter {key!r}; "
                              f"`adaprune methods -v` lists them")
        for m in takers:
            plain[m][key] = _coerce(m, key, raw)
    return {m: {**plain[m], **scoped[m]} for m in methods if plain[m] or scoped[m]}
