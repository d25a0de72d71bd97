"""adaprune methods: the registered methods, one line each."""

from __future__ import annotations

import click


@click.command("methods")
@click.option("-v", "--verbose", is_flag=True, help="Also list each method's parameters and defaults.")
def command(verbose: bool) -> None:
    """List the registered pruning methods."""
    from adaprune.registry import list_methods

    infos = list_methods()
    width = max(len(i.name) for i in infos)
    for info in infos:
        click.echo(f"{info.name.ljust(width)}  {info.kind:8}  {info.direction:22}  {info.summary}")
        if verbose:
            for key, default in info.parameters.items():
                click.echo(f"{'':{width}}    {key}={default!r}")
