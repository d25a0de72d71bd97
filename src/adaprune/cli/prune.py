"""adaprune prune DATA --method NAME (--prune F | --keep F | --threshold COS) --out FILE"""

from __future__ import annotations

import logging

import click

from adaprune.cli.options import (
    DATA_EPILOG,
    ENCODER_SPECS,
    balance_option,
    budget_options,
    engine_options,
    input_size_option,
    method_run_options,
    on_bad_file_option,
    parse_params,
    quiet_option,
    setup_logging,
)
from adaprune.errors import ConfigError

log = logging.getLogger("adaprune")


def engine_params(method: str, engine: str, ray_address: str | None, work_dir: str | None) -> dict:
    """--engine / --ray-address / --work-dir as the method's parameters; refused by methods without them."""
    given = {key: value for key, value, default in (("engine", engine, "local"), ("ray_address", ray_address, None),
                                                    ("work_dir", work_dir, None)) if value != default}
    if not given:
        return {}
    from adaprune.registry import list_methods

    declared = next((info.parameters for info in list_methods() if info.name == method), {})
    for key in given:
        if key not in declared:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"method {method!r} takes no {flag}; it applies to semdedup")
    return given


@click.command("prune", epilog=DATA_EPILOG)
@click.argument("data")
@click.option("--method", required=True, help="A registered method (see `adaprune methods`).")
@budget_options
@click.option("--threshold", type=float, default=None, metavar="COS",
              help="Instead of --prune/--keep (semdedup): remove every sample whose cosine to an earlier sample "
                   "it is compared with is above COS; the realised fraction is reported.")
@click.option("--out", required=True,
              help="Selection file: .csv, .parquet or .json; for a coco: source a .json is the pruned COCO file, "
                   "for a yolo: source a folder (DIR/) gets train.txt and a DATA.yaml.")
@method_run_options
@balance_option
@click.option("--encoder", default=None, metavar="NAME",
              help=f"Embedding for semdedup/adadedup, one of: {ENCODER_SPECS} (contrastive is learned from the "
                   "data: moved copies land near their source; text: `adaprune embed text:FILE --encoder minilm`, "
                   "then prune embeddings:OUT).")
@click.option("--embeddings", default=None, metavar="EMB.npy",
              help="Reuse embeddings (one row per sample, e.g. from `adaprune embed`) instead of --encoder.")
@click.option("--group-by", "group_by", default=None, metavar="FIELD",
              help="Keep or drop images together: a COCO image field (a scene id) or, for yolo:, a regular "
                   "expression over the file name (its first group is the group id).")
@on_bad_file_option
@input_size_option
@engine_options
@click.option("--work-dir", default=None, metavar="DIR",
              help="semdedup: keep each finished stage (clustering, per-cluster M) here, so a killed run resumes.")
@quiet_option
def command(data, method, prune_fraction, keep_fraction, threshold, out, seed, model, epochs, device, threads,
            no_standardize, params, optimizer, lr, batch_size, weight_decay, balance, encoder, embeddings, group_by,
            on_bad_file, input_size, engine, ray_address, work_dir, quiet) -> None:
    """Choose which samples of DATA to keep and write the selection to --out."""
    from adaprune.data import load_data
    from adaprune.registry import get_method
    from adaprune.selection import Budget, Selection, check_threshold

    setup_logging(quiet)
    if threshold is not None:
        if prune_fraction is not None or keep_fraction is not None:
            raise ConfigError("give either --threshold or --prune/--keep, not both")
        check_threshold(threshold)
        if not get_method(method).has_threshold:
            raise ConfigError(f"method {method!r} has no similarity threshold; give --prune F or --keep F")
    elif prune_fraction is None and keep_fraction is None:
        raise ConfigError("give --prune F or --keep F (or, for semdedup, --threshold COS)")
    else:
        Budget.from_args(keep=keep_fraction, prune=prune_fraction)  # validate before any work
    method_params = parse_params(method, params)
    method_params.update(engine_params(method, engine, ray_address, work_dir))
    dataset = load_data(data, group_by=group_by, on_bad_file=on_bad_file, size=input_size)
    inputs = (*dataset.source_paths, *([embeddings] if embeddings else []))
    own_format = getattr(dataset, "writes_own_format", lambda _out: False)(out)
    if own_format:
        dataset.check_output(out)  # a pruned COCO file or YOLO list, in the source's own format
    else:
        Selection.check_path(out, inputs=inputs)
    from adaprune.api import prune  # torch: only once the inputs are known to be good

    selection = prune(
        dataset, method, keep=keep_fraction, prune=prune_fraction, seed=seed, model=model,
        epochs=epochs, device=device, params=method_params, balance=balance, progress=not quiet,
        encoder=encoder, embeddings=embeddings, threads=threads, standardize=not no_standardize, threshold=threshold,
        optimizer=optimizer, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
    )
    if own_format:
        from adaprune.data.detection import provenance_of

        dataset.write(selection.kept, out, provenance=provenance_of(selection, dataset))
    else:
        selection.save(out, inputs=inputs)
    log.info("kept %d of %d samples (%.1f%%) -> %s", selection.n_kept, selection.n_total,
             100 * selection.realised_keep, out)
