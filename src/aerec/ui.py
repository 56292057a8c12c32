"""Progress bars and console output that respect --quiet and non-interactive runs."""

from __future__ import annotations

import os
import sys

_quiet = False
_batch_bars = False  # set by the trainer while a fit with progress runs
BATCH_DELAY = 2.0  # seconds an epoch runs before its bar of batches appears


def set_quiet(flag: bool) -> None:
    global _quiet
    _quiet = flag


def quiet() -> bool:
    return _quiet or os.environ.get("AEREC_QUIET", "") not in ("", "0")


def _terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress(iterable=None, **kwargs):
    """A tqdm bar on stderr, disabled under --quiet.

    Off a terminal (a pipe, a log file, a captured stream) bars do not nest: nesting moves the
    cursor with escape codes a log keeps as garbage, so a bar opened while another is showing is
    not drawn, and no bar takes a position below the first line."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    notebook = tqdm.__module__ == "tqdm.auto"  # tqdm.auto defines a class of its own only for widgets
    if not kwargs["disable"] and not _terminal(kwargs["file"]) and not notebook:
        kwargs.pop("position", None)
        if any(not getattr(bar, "disable", True) for bar in list(tqdm._instances)):
            kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def info(message: str) -> None:
    if not quiet():
        print(message, file=sys.stderr)


class batch_bars:
    """While active (and not quiet), `batches` shows a bar of the batches within an epoch."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        global _batch_bars
        self.before, _batch_bars = _batch_bars, self.enabled
        return self

    def __exit__(self, *exc):
        global _batch_bars
        _batch_bars = self.before
        return False


def batches(iterable, total: int | None = None, desc: str = "batches"):
    """Batches within one epoch. The bar appears only when the epoch lasts more than 2 seconds
    (a long SVAE epoch shows its progress; short epochs print nothing extra)."""
    if not _batch_bars or quiet():
        return iterable
    return progress(iterable, total=total, desc=desc, unit="batch", leave=False, delay=BATCH_DELAY)
