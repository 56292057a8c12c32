"""Options shared by every command that reads data or evaluates, so they are spelled alike.

`data_options` adds the data section (``--user-col ... --threshold``); `data_mapping` merges it
with a TOML ``[data]`` section into the keyword arguments of ``aerec.data.load``. `ks_option`
adds ``--ks``. Commands keep their own ``-d/--dataset`` and ``-p/--protocol`` with the same names.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import click

from aerec.config import RANKING_KS as DEFAULT_KS  # what runs without --ks, so the help says what happens


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and infinity (FloatRange lets nan through: every comparison
    with it is false)."""

    name = "number"

    def convert(self, value, param, ctx):
        import math

        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(rv, param, ctx)


def seconds_option(*names, **kwargs):
    """A positive, finite number of seconds."""
    return click.option(*names, type=FiniteFloat(0, min_open=True), **kwargs)


def data_options(f):
    """The data section: column mapping, separator, header and feedback semantics."""
    opts = [
        click.option("--user-col", help="User column: a header name or a 0-based position."),
        click.option("--item-col", help="Item column: a header name or a 0-based position."),
        click.option("--rating-col", help="Value column (ratings, counts, plays; optional)."),
        click.option("--time-col", help="Timestamp column (optional): seconds or dates."),
        click.option("--title-col", help="Item title column (optional)."),
        click.option("--sep", help="Field separator (default: from the extension or the first line; '\\t' for tab)."),
        click.option("--no-header", is_flag=True, default=None, help="The file has no header line."),
        click.option("--duplicates", type=click.Choice(["sum", "last", "max", "first"]),
                     help="Rule for repeated (user, item) rows: sum their values, keep the last (latest) or first, "
                          "or the highest. Default: sum for counts, last for ratings; the rule used is printed."),
        click.option("--trim-ids", is_flag=True, default=None,
                     help="Trim spaces around ids (default: ids are kept exactly as written); prints how many changed."),
        click.option("--dayfirst/--monthfirst", default=None,
                     help="Order of numeric dates such as 01/02/2020 (refused as ambiguous without it)."),
        click.option("--feedback", type=click.Choice(["explicit", "implicit"]),
                     help="explicit: ratings (top-N models learn from those above --threshold); implicit: counts, "
                          "plays, clicks or pairs (every row kept). Default: guessed, and the guess is printed."),
        click.option("--threshold", type=FiniteFloat(),
                     help="Keep interactions whose value is above this (default for star ratings: 0.7 x the "
                          "scale's top, 3.5 of 5, 4.9 of 7, 7 of 10; none for implicit feedback)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def data_mapping(params: dict, section: dict | None = None, where: str = "[data]") -> dict:
    """Keyword arguments for aerec.data.load: the TOML [data] section, overridden by the command line."""
    from aerec.data import options

    given = {k: params.get(k) for k in options.KEYS if k != "header"}
    if params.get("no_header"):
        given["header"] = False
    return options.merge(section, given, where)


def ks_option(f):
    return click.option("--ks", "ks", metavar="K,K,...", callback=_parse_ks, default=None,
                        help=f"Cutoffs for the ranking metrics (default {','.join(map(str, DEFAULT_KS))}).")(f)


def _parse_ks(ctx, param, value):
    if value is None:
        return None
    try:
        ks = tuple(sorted({int(x) for x in str(value).split(",") if x.strip()}))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give positive whole numbers separated by commas") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter(f"{value!r}: give positive whole numbers separated by commas")
    return ks


@contextmanager
def warnings_as_lines():
    """Show data-cleaning warnings as one 'warning: ...' line each on stderr (even with --quiet).

    Other warnings are passed on only after the recorder is gone: re-issuing them inside it would
    append to the list being walked, and the loop would never end.
    """
    from aerec.data import DataWarning

    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            yield
    finally:
        for w in list(caught):
            if issubclass(w.category, DataWarning):
                click.echo(f"warning: {w.message}", err=True)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def device_options(f):
    """--device and --precision, spelled alike on every command that trains or scores."""
    f = click.option("--precision", default=None, callback=check_precision_option, metavar="fp32|tf32|bf16",
                     help="fp32 (default): true float32; tf32: TF32 tensor cores for float32 matmuls; bf16: bf16 "
                          "autocast in training (neural models). tf32 and bf16 need a CUDA device.")(f)
    return click.option("--device", default=None, callback=check_device_option, metavar="cpu|cuda|cuda:N|auto",
                        help="Where models train and score (default auto: the GPU when there is one). "
                             "The chosen device is printed.")(f)


def check_device_option(ctx, param, value):
    """A bad --device is a one-line error (ConfigError), not click's usage block."""
    if value is None:
        return None
    from aerec.devices import check_device
    from aerec.errors import ConfigError

    try:
        check_device(value)
    except ConfigError as e:
        raise ConfigError(f"--device: {e}") from None
    return value


def check_precision_option(ctx, param, value):
    from aerec.devices import PRECISIONS
    from aerec.errors import ConfigError

    if value is not None and value not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value
