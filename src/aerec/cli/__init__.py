"""The `aerec` command line. Thin: each command parses arguments and calls the library.

Exit codes: 0 success, 2 usage or input error, 1 internal error. Errors are one line; set
AEREC_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from aerec import __version__
from aerec.errors import AerecError

# Each module defines `commands`: a list of click commands or groups added to the top group.
COMMAND_MODULES = ["data", "doctor", "split", "train", "recommend", "bench", "serve", "tune", "export"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aerec")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines.")
def cli(quiet: bool) -> None:
    """aerec: autoencoder recommenders, leak-free protocols and reproducible benchmarks."""
    from aerec import ui

    ui.set_quiet(quiet)


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"aerec.cli.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"aerec.cli.{_name}":
            raise
        continue
    for _cmd in _mod.commands:
        cli.add_command(_cmd)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"warning: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    import warnings

    debug = os.environ.get("AEREC_DEBUG", "") not in ("", "0")
    if not debug:
        warnings.showwarning = _one_line_warning
    try:
        cli.main(args=argv, prog_name="aerec", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    except AerecError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as e:  # internal error: still one line unless debugging
        if debug:
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (set AEREC_DEBUG=1 for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
