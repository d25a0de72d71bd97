"""adaprune benchmark DATA --methods a,b --prune 0.1,0.3 --seeds N --out DIR"""

from __future__ import annotations

import logging
import sys

import click

from adaprune.cli.options import (
    DATA_EPILOG,
    device_option,
    input_size_option,
    match_steps_option,
    model_option,
    no_standardize_option,
    parse_fraction_list,
    parse_method_params,
    quiet_option,
    setup_logging,
    test_option,
    threads_option,
    train_options,
)
from adaprune.defaults import DEFAULT_EVAL_EPOCHS

log = logging.getLogger("adaprune")


@click.command("benchmark", epilog=DATA_EPILOG)
@click.argument("data")
@click.option("--methods", required=True, help="Comma-separated method names.")
@click.option("--prune", "prunes", required=True, help="Comma-separated fractions to prune, e.g. 0.1,0.3.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds 0..N-1 (pruning and training).")
@click.option("--out", required=True, help="Folder for results.json, results.md and results.png.")
@click.option("--epochs", type=int, default=DEFAULT_EVAL_EPOCHS, show_default=True,
              help="Epochs for each evaluation model.")
@click.option("--param", "params", multiple=True, metavar="[METHOD.]KEY=VALUE",
              help="A method parameter (repeatable): adapruner.epochs=3 sets one method's; a plain KEY=VALUE "
                   "sets it for every listed method that has KEY (an error when none has). "
                   "`adaprune methods -v` lists them.")
@model_option
@device_option
@threads_option
@no_standardize_option
@train_options
@match_steps_option
@test_option
@input_size_option
@quiet_option
def command(data, methods, prunes, seeds, out, epochs, params, model, device, threads, no_standardize,
            optimizer, lr, batch_size, weight_decay, match_steps, test_spec, input_size, quiet) -> None:
    """Prune DATA with each method at each fraction and seed; train and test a fresh model on each."""
    from adaprune.api import benchmark
    from adaprune.errors import ConfigError
    from adaprune.io_utils import check_output_folder

    setup_logging(quiet)
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    check_output_folder(out)
    method_params = parse_method_params(method_list, params)
    result = benchmark(
        data, method_list, parse_fraction_list(prunes, what="--prune"), seeds=seeds, epochs=epochs,
        model=model, device=device, method_params=method_params, test=test_spec, progress=not quiet,
        threads=threads, standardize=not no_standardize, optimizer=optimizer, lr=lr,
        batch_size=batch_size, weight_decay=weight_decay, match_steps=match_steps, input_size=input_size,
        command=" ".join(["adaprune", *sys.argv[1:]]) if sys.argv[0].endswith("adaprune") else None,
    )
    paths = result.save(out)
    click.echo(result.to_markdown())
    log.info("wrote %s, %s and the plot %s", paths["json"], paths["markdown"], paths["plot"])
