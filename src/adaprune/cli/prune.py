"""adaprune prune DATA --method NAME (--prune F | --keep F) --out FILE"""

from __future__ import annotations

import logging

import click

from adaprune.cli.options import (
    balance_option,
    budget_options,
    method_run_options,
    parse_params,
    quiet_option,
    setup_logging,
)
from adaprune.errors import ConfigError

log = logging.getLogger("adaprune")


@click.command("prune")
@click.argument("data")
@click.option("--method", required=True, help="A registered method (see `adaprune methods`).")
@budget_options
@click.option("--out", required=True, help="Selection file: .csv, .parquet or .json.")
@method_run_options
@balance_option
@click.option("--encoder", default=None, metavar="NAME",
              help="Embedding for semdedup/adadedup: auto, identity, pixels[:DIM], model[:EPOCHS] or clip:PATH "
                   "(text: `adaprune embed text:FILE --encoder minilm`, then prune embeddings:OUT).")
@click.option("--embeddings", default=None, metavar="EMB.npy",
              help="Reuse embeddings (one row per sample, e.g. from `adaprune embed`) instead of --encoder.")
@quiet_option
def command(data, method, prune_fraction, keep_fraction, out, seed, model, epochs, device, params, optimizer, lr,
            batch_size, weight_decay, balance, encoder, embeddings, quiet) -> None:
    """Choose which samples of DATA to keep and write the selection to --out."""
    from adaprune.api import prune
    from adaprune.data import load_data
    from adaprune.selection import Budget, Selection

    setup_logging(quiet)
    if prune_fraction is None and keep_fraction is None:
        raise ConfigError("give --prune F or --keep F")
    Budget.from_args(keep=keep_fraction, prune=prune_fraction)  # validate before any work
    method_params = parse_params(method, params)
    dataset = load_data(data)
    inputs = (*dataset.source_paths, *([embeddings] if embeddings else []))
    Selection.check_path(out, inputs=inputs)
    selection = prune(
        dataset, method, keep=keep_fraction, prune=prune_fraction, seed=seed, model=model,
        epochs=epochs, device=device, params=method_params, balance=balance, progress=not quiet,
        encoder=encoder, embeddings=embeddings, optimizer=optimizer, lr=lr, batch_size=batch_size,
        weight_decay=weight_decay,
    )
    selection.save(out, inputs=inputs)
    log.info("kept %d of %d samples (%.1f%%) -> %s", selection.n_kept, selection.n_total,
             100 * selection.realised_keep, out)
