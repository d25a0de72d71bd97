"""The `adaprune` command: a thin layer over the library. One small module per command."""

from __future__ import annotations

import os
import sys

import click

from adaprune import __version__
from adaprune.errors import AdapruneError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="adaprune")  # no metadata scan of sys.path
def cli() -> None:
    """Adaptive dataset pruning: decide which training samples to keep."""


def _register_commands() -> None:
    from adaprune.cli import benchmark, embed, evaluate, export, methods, prune, report, score, select

    for module in (prune, score, select, embed, export, evaluate, benchmark, report, methods):
        cli.add_command(module.command)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: errors become one line `adaprune: error: ...` and exit code 2."""
    debug = os.environ.get("ADAPRUNE_DEBUG") == "1"
    from adaprune.naming import cli_context

    try:
        with cli_context():  # messages name CLI flags, not API arguments
            cli.main(args=argv, prog_name="adaprune", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort (after printing a newline).
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo(f"adaprune: error: {'interrupted' if interrupted else 'aborted'}", err=True)
        return _interrupted(argv)
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"adaprune: error: {exc.format_message()}", err=True)
        return 2
    except AdapruneError as exc:
        if debug:
            raise
        click.echo(f"adaprune: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("adaprune: error: interrupted", err=True)
        return _interrupted(argv)
    except Exception as exc:
        if debug:
            raise
        click.echo(f"adaprune: error: unexpected {type(exc).__name__}: {exc} (ADAPRUNE_DEBUG=1 shows the traceback)",
                   err=True)
        return 1
    return 0


def _interrupted(argv: list[str] | None) -> int:
    """Exit code 130 after Ctrl-C. Run as the `adaprune` command (argv None), the process ends at
    once: every output is written atomically and every temporary was removed as the interrupt
    unwound, and the interpreter's own teardown (freeing large arrays, unloading torch) can take
    seconds on a busy machine, which would read as a Ctrl-C ignored. Called from Python, it returns."""
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return 130


if __name__ == "__main__":
    sys.exit(main())
