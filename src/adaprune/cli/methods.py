"""adaprune methods: the registered methods, one line each."""

from __future__ import annotations

import click

from adaprune.cli.options import quiet_option, setup_logging


@click.command("methods")
@click.option("-v", "--verbose", is_flag=True,
              help="Also list each method's parameters: default, what it accepts, a one-line description.")
@quiet_option
def command(verbose: bool, quiet: bool) -> None:
    """List the registered pruning methods."""
    from adaprune.registry import list_methods

    setup_logging(quiet)
    infos = list_methods()
    width = max(len(i.name) for i in infos)
    for info in infos:
        click.echo(f"{info.name.ljust(width)}  {info.kind:8}  {info.direction:22}  {info.summary}")
        if verbose:
            for key, default in info.parameters.items():
                accepts = info.parameter_types.get(key)
                text = " ".join(t for t in (f"[{accepts}]" if accepts else "", info.parameter_help.get(key, "")) if t)
                click.echo(f"{'':{width}}    {key}={default!r}" + (f"  {text}" if text else ""))
