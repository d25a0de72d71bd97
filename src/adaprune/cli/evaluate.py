"""adaprune evaluate DATA --selection FILE [--seeds N] [--epochs N]"""

from __future__ import annotations

import click

from adaprune.api import DEFAULT_EVAL_EPOCHS
from adaprune.cli.options import (
    device_option,
    model_option,
    no_standardize_option,
    quiet_option,
    setup_logging,
    test_option,
    threads_option,
)


def format_evaluation(result) -> str:
    rows = [("set", "samples", "accuracy_mean", "accuracy_std", "per_seed")]
    mean, std = result.subset_mean_std
    rows.append(("subset", str(result.n_kept), f"{mean:.4f}", f"{std:.4f}",
                 ",".join(f"{a:.4f}" for a in result.subset_accuracy)))
    if result.full_accuracy is not None:
        fmean, fstd = result.full_mean_std
        rows.append(("full", str(result.n_total), f"{fmean:.4f}", f"{fstd:.4f}",
                     ",".join(f"{a:.4f}" for a in result.full_accuracy)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@click.command("evaluate")
@click.argument("data")
@click.option("--selection", required=True, help="A selection file written by `adaprune prune`.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Training seeds 0..N-1.")
@click.option("--epochs", type=int, default=DEFAULT_EVAL_EPOCHS, show_default=True)
@model_option
@device_option
@threads_option
@no_standardize_option
@test_option
@quiet_option
def command(data, selection, seeds, epochs, model, device, threads, no_standardize, test_spec, quiet) -> None:
    """Train fresh models on the kept subset and on the full set; print test accuracy."""
    from adaprune.api import evaluate

    setup_logging(quiet)
    result = evaluate(data, selection, seeds=seeds, epochs=epochs, model=model, device=device,
                      test=test_spec, progress=not quiet, threads=threads, standardize=not no_standardize)
    click.echo(format_evaluation(result))
