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


def _set_quiet(ctx, param, value):
    if value:
        from aerec import ui

        ui.set_quiet(True)


def _add_quiet(cmd: click.Command) -> None:
    """--quiet/-q works after the subcommand too (`aerec train ... -q`), as before it."""
    if not any("--quiet" in getattr(p, "opts", ()) for p in cmd.params):
        cmd.params.append(click.Option(["--quiet", "-q"], is_flag=True, expose_value=False, is_eager=True,
                                       callback=_set_quiet, help="No progress bars or status lines."))
    for sub in getattr(cmd, "commands", {}).values():
        _add_quiet(sub)


# one line per model for `aerec models` (the class docstrings hold the references and details)
DESCRIPTIONS = {
    "pop": "Popularity: ranks items by training count (a baseline)",
    "ease": "EASE (Steck 2019): closed-form item-item autoencoder",
    "slim": "SLIM (Ning & Karypis 2011): sparse item-item regression",
    "wmf": "WMF (Hu, Koren, Volinsky 2008): implicit ALS; counts feed its confidence",
    "cdae": "CDAE (Wu et al. 2016): denoising autoencoder with a user vector",
    "multdae": "Mult-DAE (Liang et al. 2018): denoising autoencoder, multinomial likelihood",
    "multvae": "Mult-VAE (Liang et al. 2018): variational autoencoder, multinomial likelihood",
    "recvae": "RecVAE (Shenbin et al. 2020): Mult-VAE with a composite prior",
    "ract": "RaCT (Lobel et al. 2020): Mult-VAE actor with a ranking critic",
    "warp": "Mult-VAE trained with the WARP loss (RaCT paper baseline)",
    "lambdanet": "Mult-VAE trained with a LambdaRank loss (RaCT paper baseline)",
    "svae": "SVAE (Sachdeva et al. 2019): sequential VAE over each user's time order",
    "autorec": "AutoRec (Sedhain et al. 2015): item-based autoencoder predicting ratings",
    "deeprec": "DeepRec (Kuchaiev & Ginsburg 2017): deep user autoencoder predicting ratings",
}


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
def models_cmd(as_json: bool) -> None:
    """List the models: name, task (ranking: top-N; rating: predicts ratings) and what each is."""
    import json

    from aerec import models

    rows = []
    for name in models.names():
        cls = models.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        text = DESCRIPTIONS.get(name) or (doc[0].strip() if doc else "")
        rows.append({"name": name, "task": cls.task, "description": text})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['task']:<7}  {r['description']}")


cli.add_command(models_cmd)

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"aerec.cli.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"aerec.cli.{_name}":
            raise
        continue
    for _cmd in _mod.commands:
        cli.add_command(_cmd)


for _cmd in list(cli.commands.values()):
    _add_quiet(_cmd)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"warning: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    import warnings

    from aerec import ui

    debug = os.environ.get("AEREC_DEBUG", "") not in ("", "0")
    if not debug:
        warnings.showwarning = _one_line_warning
    was_quiet = ui._quiet  # --quiet lasts for one command (main is called repeatedly in tests)
    try:
        return _main(argv, debug)
    finally:
        ui.set_quiet(was_quiet)


def _main(argv, debug: bool) -> int:
    from aerec.errors import cli_words

    try:
        with cli_words():
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
    except OSError as e:  # the file system refused: a path in a missing or read-only folder, a full disk
        if debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        click.echo(f"error: {where}{e.strerror or e}", err=True)
        return 2
    except Exception as e:  # internal error: still one line unless debugging
        if debug:
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (set AEREC_DEBUG=1 for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
