"""adaprune report (SELECTION --data DATA | BENCHMARK_DIR) --out report.html"""

from __future__ import annotations

import logging

import click

from adaprune.cli.options import quiet_option, setup_logging

log = logging.getLogger("adaprune")


@click.command("report")
@click.argument("source")
@click.option("--data", default=None, metavar="DATA",
              help="The data a SELECTION was made on (per-class numbers and pictures need it).")
@click.option("--out", required=True, help="The HTML file to write (one self-contained page).")
@quiet_option
def command(source, data, out, quiet) -> None:
    """Write one self-contained HTML report of a SELECTION file or a BENCHMARK_DIR."""
    from adaprune.report import write_report

    setup_logging(quiet)
    path = write_report(source, out, data=data)
    log.info("wrote %s", path)
