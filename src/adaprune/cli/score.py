"""adaprune score DATA --method M --out scores.parquet"""

from __future__ import annotations

import logging

import click

from adaprune.cli.options import (
    DATA_EPILOG,
    input_size_option,
    method_run_options,
    parse_params,
    quiet_option,
    setup_logging,
)

log = logging.getLogger("adaprune")


@click.command("score", epilog=DATA_EPILOG)
@click.argument("data")
@click.option("--method", required=True, help="A scoring method (see `adaprune methods`).")
@click.option("--out", required=True, help="Score file: .parquet, .csv or .json.")
@method_run_options
@input_size_option
@quiet_option
def command(data, method, out, seed, model, epochs, device, threads, no_standardize, params, optimizer, lr,
            batch_size, weight_decay, input_size, quiet) -> None:
    """Compute one score per sample of DATA, to select from at any budget with `adaprune select`."""
    from adaprune.api import score
    from adaprune.data import load_data
    from adaprune.tables import check_output_path

    setup_logging(quiet)
    method_params = parse_params(method, params)
    dataset = load_data(data, size=input_size)
    check_output_path(out, inputs=dataset.source_paths, what="scores")
    scores = score(dataset, method, seed=seed, model=model, epochs=epochs, device=device, params=method_params,
                   progress=not quiet, threads=threads, standardize=not no_standardize, optimizer=optimizer, lr=lr,
                   batch_size=batch_size, weight_decay=weight_decay)
    scores.save(out, inputs=dataset.source_paths)
    log.info("wrote %d %s scores (%s) -> %s", scores.n, method, scores.direction.describe(), out)
