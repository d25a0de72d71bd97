"""adaprune evaluate DATA --selection FILE [--seeds N] [--epochs N]"""

from __future__ import annotations

import click

from adaprune.cli.options import (
    DATA_EPILOG,
    device_option,
    input_size_option,
    match_steps_option,
    model_option,
    no_standardize_option,
    quiet_option,
    setup_logging,
    test_option,
    threads_option,
    train_options,
)
from adaprune.defaults import DEFAULT_EVAL_EPOCHS


def format_evaluation(result) -> str:
    """One row per set: `set samples METRIC_mean METRIC_std [EXTRA_mean EXTRA_std ...] per_seed`
    (METRIC: accuracy for classification, map for detection; per_seed lists the primary metric).
    A single seed has no std: its cells show `-`."""
    from adaprune.evaluate.harness import mean_std

    extras = result.extra_names
    head = ["set", "samples", f"{result.metric}_mean", f"{result.metric}_std"]
    for name in extras:
        head += [f"{name}_mean", f"{name}_std"]
    rows = [tuple([*head, "per_seed"])]

    def std_cell(std: float, n_values: int) -> str:
        return f"{std:.4f}" if n_values > 1 else "-"

    def row(label: str, n: int, values, extra_dicts) -> tuple[str, ...]:
        mean, std = mean_std(values)
        cells = [label, str(n), f"{mean:.4f}", std_cell(std, len(values))]
        for name in extras:
            m, s = mean_std([d[name] for d in extra_dicts])
            cells += [f"{m:.4f}", std_cell(s, len(extra_dicts))]
        return tuple([*cells, ",".join(f"{a:.4f}" for a in values)])

    rows.append(row("subset", result.n_kept, result.subset, result.subset_extras))
    if result.full is not None:
        rows.append(row("full", result.n_total, result.full, result.full_extras or ()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return f"{table}\n# {result.describe_protocol()}"


@click.command("evaluate", epilog=DATA_EPILOG)
@click.argument("data")
@click.option("--selection", required=True,
              help="A selection file written by `adaprune prune`, or the pruned COCO file (.json) or YOLO folder "
                   "(DIR/) it wrote for a detection source.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Training seeds 0..N-1.")
@click.option("--epochs", type=int, default=DEFAULT_EVAL_EPOCHS, show_default=True)
@model_option
@device_option
@threads_option
@no_standardize_option
@train_options
@match_steps_option
@test_option
@input_size_option
@quiet_option
def command(data, selection, seeds, epochs, model, device, threads, no_standardize, optimizer, lr, batch_size,
            weight_decay, match_steps, test_spec, input_size, quiet) -> None:
    """Train fresh models on the kept subset and on the full set; print the test metric."""
    from adaprune.api import evaluate

    setup_logging(quiet)
    result = evaluate(data, selection, seeds=seeds, epochs=epochs, model=model, device=device,
                      test=test_spec, progress=not quiet, threads=threads, standardize=not no_standardize,
                      optimizer=optimizer, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                      match_steps=match_steps, input_size=input_size)
    click.echo(format_evaluation(result))
