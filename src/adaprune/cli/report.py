"""adaprune report (SELECTION --data DATA | BENCHMARK_DIR) --out report.html"""

from __future__ import annotations

import logging

import click

from adaprune.cli.options import input_size_option, quiet_option, setup_logging

log = logging.getLogger("adaprune")


@click.command("report")
@click.argument("source")
@click.option("--data", default=None, metavar="DATA",
              help="The data a SELECTION was made on (per-class numbers and pictures need it).")
@click.option("--out", required=True, help="The HTML file to write (one self-contained page).")
@click.option("--group-by", "group_by", default=None, metavar="FIELD",
              help="Detection data: the share removed per group of this COCO image field (default: scene_id when "
                   "the images have one) or, for yolo:, per match of this regular expression over the file name.")
@input_size_option
@quiet_option
def command(source, data, out, group_by, input_size, quiet) -> None:
    """Write one self-contained HTML report of a SELECTION file or a BENCHMARK_DIR."""
    from adaprune.report import write_report

    setup_logging(quiet)
    path = write_report(source, out, data=data, group_by=group_by, input_size=input_size)
    log.info("wrote %s", path)
