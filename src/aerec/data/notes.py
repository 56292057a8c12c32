"""DataWarning: a data-cleaning policy was applied. The bottom of the data layer (imports nothing
of aerec.data), so the cache, the readers and the sources can all warn without import circles."""

from __future__ import annotations

import warnings


class DataWarning(UserWarning):
    """A data-cleaning policy was applied (e.g. duplicates dropped); the message gives counts."""


def warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)
