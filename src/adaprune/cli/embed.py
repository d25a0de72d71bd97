"""adaprune embed DATA --encoder NAME --out emb.npy (a thin layer over `adaprune.embed.embed`)"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from adaprune.cli.options import (
    DATA_EPILOG,
    ENCODER_SPECS,
    device_option,
    engine_options,
    input_size_option,
    model_option,
    on_bad_file_option,
    quiet_option,
    setup_logging,
    threads_option,
)

log = logging.getLogger("adaprune")


@click.command("embed", epilog=DATA_EPILOG)
@click.argument("data")
@click.option("--encoder", default="auto", show_default=True, metavar="NAME",
              help=f"One of: {ENCODER_SPECS} (minilm: for text:PATH).")
@click.option("--out", required=True, help="Output .npy (N, D); labels go to OUT.labels.npy beside it.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16"]))
@click.option("--chunk-size", default=4096, show_default=True, type=int,
              help="Rows per chunk; finished chunks are skipped when a crashed run is repeated.")
@click.option("--seed", type=int, default=0, show_default=True)
@model_option
@device_option
@on_bad_file_option
@engine_options
@threads_option
@input_size_option
@quiet_option
def command(data, encoder, out, dtype, chunk_size, seed, model, device, on_bad_file, engine, ray_address, threads,
            input_size, quiet) -> None:
    """Embed every training sample of DATA (or text:PATH, one text per line) into a memory-mapped .npy.

    File sources (folder:DIR, files:LIST) and container sources (webdataset:GLOB, parquet:GLOB) stream:
    images are decoded chunk by chunk, and OUT.paths.txt names every row (a path, or SHARD<TAB>KEY)."""
    from adaprune.embed import embed
    from adaprune.io_utils import check_writable_folder
    from adaprune.threads import resolve_threads, torch_threads

    setup_logging(quiet)
    check_writable_folder(Path(out).parent)
    if input_size is not None:
        from adaprune.data import load_data

        data = load_data(data, on_bad_file=on_bad_file, size=input_size)
    with torch_threads(resolve_threads(threads, model=model, device=device)):
        result = embed(data, encoder, out, seed=seed, dtype=dtype, chunk_size=chunk_size, model=model,
                       device=device, progress=not quiet, on_bad_file=on_bad_file, engine=engine,
                       ray_address=ray_address)
    log.info("%d x %d embeddings (%s, %d chunks computed now) -> %s", result.n, result.dim, result.encoder,
             result.chunks_computed, result.path)
