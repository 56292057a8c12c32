"""Progress bars and console output that respect --quiet and non-interactive runs."""

from __future__ import annotations

import os
import sys

_quiet = False


def set_quiet(flag: bool) -> None:
    global _quiet
    _quiet = flag


def quiet() -> bool:
    return _quiet or os.environ.get("AEREC_QUIET", "") not in ("", "0")


def progress(iterable=None, **kwargs):
    """A tqdm bar on stderr, disabled under --quiet."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def info(message: str) -> None:
    if not quiet():
        print(message, file=sys.stderr)
