"""adaprune export SELECTION --to DIR [--mode link|copy|list]"""

from __future__ import annotations

import logging

import click

from adaprune.cli.options import quiet_option, setup_logging

log = logging.getLogger("adaprune")


@click.command("export")
@click.argument("selection")
@click.option("--to", "target", required=True, metavar="DIR",
              help="New folder for the kept files (link, copy), or the list file to write (list).")
@click.option("--mode", default="link", show_default=True, type=click.Choice(["link", "copy", "list"]),
              help="link: hard links (symlinks across devices); copy: copies; list: one kept path a line.")
@click.option("--data", default=None, metavar="DATA",
              help="The source SELECTION was made on: refuse a selection whose paths (or size, labels) differ.")
@quiet_option
def command(selection, target, mode, data, quiet) -> None:
    """Write the kept files of a file-source SELECTION under --to, keeping their relative layout.

    A selection of webdataset: or parquet: rows (shard+key, file+row columns) is written as new tar
    shards / Parquet files of the same names holding exactly the kept samples, bytes unchanged."""
    from adaprune.export import export_selection

    setup_logging(quiet)
    result = export_selection(selection, target, mode=mode, data=data)
    how = {"link": f"{result.hard_links} hard links, {result.symlinks} symlinks", "copy": "copies",
           "list": "paths"}[mode]
    if result.containers and mode != "list":
        how = f"inside {result.containers} new containers"
    log.info("exported %d kept files (%s) -> %s", result.n_files, how, result.target)
