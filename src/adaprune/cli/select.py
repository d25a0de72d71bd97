"""adaprune select scores.parquet (--keep F | --prune F) [--balance class] --out sel.csv"""

from __future__ import annotations

import logging

import click

from adaprune.cli.options import balance_option, budget_options, quiet_option, setup_logging
from adaprune.errors import ConfigError

log = logging.getLogger("adaprune")


@click.command("select")
@click.argument("scores")
@budget_options
@balance_option
@click.option("--out", required=True, help="Selection file: .csv, .parquet or .json.")
@quiet_option
def command(scores, prune_fraction, keep_fraction, balance, out, quiet) -> None:
    """Turn a score file into a selection at a budget, by the score's declared direction."""
    from adaprune.api import select
    from adaprune.selection import Budget, Selection

    setup_logging(quiet)
    if prune_fraction is None and keep_fraction is None:
        raise ConfigError("give --prune F or --keep F")
    Budget.from_args(keep=keep_fraction, prune=prune_fraction)
    Selection.check_path(out, inputs=[scores])
    selection = select(scores, keep=keep_fraction, prune=prune_fraction, balance=balance)
    selection.save(out, inputs=[scores])
    log.info("kept %d of %d samples (%.1f%%) -> %s", selection.n_kept, selection.n_total,
             100 * selection.realised_keep, out)
