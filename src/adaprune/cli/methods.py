"""adaprune methods: the registered methods, one line each."""

from __future__ import annotations

import click

from adaprune.cli.options import quiet_option, setup_logging
from adaprune.components import KINDS, list_components


def _list_components(kind: str, verbose: bool) -> None:
    components = list_components(kind)
    width = max(len(c.syntax) for c in components)
    for component in components:
        click.echo(f"{component.syntax.ljust(width)}  {component.summary}")
        if verbose:
            for key in component.spec:
                click.echo(f"{'':{width}}    {key}  [{component.spec.describe(key)}]")


@click.command("methods")
@click.option("-v", "--verbose", is_flag=True,
              help="Also list each method's parameters: default, what it accepts, a one-line description.")
@click.option("--kind", "kind", default="method", show_default=True,
              type=click.Choice(["method", *KINDS]),
              help="List another kind of component instead: tasks, engines, data sources, encoders, models.")
@quiet_option
def command(verbose: bool, quiet: bool, kind: str) -> None:
    """List the registered pruning methods (or, with --kind, the other registered components)."""
    from adaprune.registry import list_methods

    setup_logging(quiet)
    if kind != "method":
        _list_components(kind, verbose)
        return
    infos = list_methods()
    width = max(len(i.name) for i in infos)
    for info in infos:
        click.echo(f"{info.name.ljust(width)}  {info.kind:8}  {info.direction:22}  {info.summary}")
        if verbose:
            for key, default in info.parameters.items():
                accepts = info.parameter_types.get(key)
                text = " ".join(t for t in (f"[{accepts}]" if accepts else "", info.parameter_help.get(key, "")) if t)
                click.echo(f"{'':{width}}    {key}={default!r}" + (f"  {text}" if text else ""))
