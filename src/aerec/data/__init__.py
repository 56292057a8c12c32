"""The data layer: registered data sets, user files, the cache and synthetic data.

    from aerec import data
    ml = data.load("ml-100k")                       # fetched and cached on first use
    mine = data.load("ratings.csv", user_col="uid", item_col="sku", rating_col="stars")
    df_data = data.from_dataframe(df, user="uid", item="sku", rating="stars", time="ts",
                                  feedback="explicit", threshold=6.5)
    fake = data.synth(1000, 500, 20_000, seed=0)
    data.check_file(path, max_bytes=1 << 20)        # the guard every reader uses: regular file, size cap
    raw = data.read_bytes(path, max_bytes=1 << 20)  # a small file (an item list) behind that guard

`load` returns `Interactions` (CSR on demand, id vocabularies, timestamps, titles). What the
values mean (explicit ratings or implicit counts, and which rows a top-N model learns from) is
decided by `aerec.data.feedback` (`feedback.of(inter)`), never silently: ``feedback=`` and
``threshold=`` declare it on every entry point (load, from_dataframe, a model's fit), and
``print(inter)`` shows the decision in one line.
"""

from __future__ import annotations

from pathlib import Path

from aerec.data import cache, feedback, registry, sources
from aerec.data.columns import MAX_ID_CHARS
from aerec.data.files import check_file, open_input, read_bytes
from aerec.data.interactions import Interactions
from aerec.data.readers import DUPLICATES, DataWarning, from_frame, read_file
from aerec.data.synth import synth
from aerec.errors import FILE_WORDS, FRAME_WORDS, DataError, api_words

__all__ = ["Interactions", "DataError", "DataWarning", "feedback", "load", "fetch", "from_dataframe", "list_datasets",
           "read_file", "synth", "home", "check_file", "read_bytes", "open_input", "MAX_ID_CHARS", "DUPLICATES"]

home = cache.home


def fetch(name: str, path=None, *, force: bool = False) -> Interactions:
    """Make a registered data set available in the cache and return it.

    path: the user's copy (official zip, unpacked folder or ratings file); it replaces any
    cached copy. Without it, a cached copy is used unless force=True; otherwise the official
    download is tried, then (ML-100K, ML-1M) the PyPI-wheel fallback.
    """
    spec = registry.get(name)
    if path is None and not force:
        cached = cache.load(spec.name)
        if cached is not None:
            return sources.titles_as_ids(spec, cached)  # an entry cached before ml-1m was keyed by title
    inter, source = sources.fetch(spec, path)
    cache.save(inter, spec.name, source)
    return inter


def from_dataframe(df, user=None, item=None, rating=None, time=None, title=None, *, name: str = "dataframe",
                   feedback: str | None = None, threshold: float | None = None, duplicates: str | None = None,
                   trim_ids: bool = False, dayfirst: bool | None = None) -> Interactions:
    """Interactions from a pandas DataFrame, one row per interaction.

    user/item/rating/time/title name the columns (or give 0-based positions); unnamed user and
    item columns are guessed from common names (user_id, item_id, ...), and rating/time columns
    are used only when named or found under a common name. Ids keep their values: integer
    columns stay integers (uint64 too), text ids ("007", "A-12", "NaN", " x ") stay text
    exactly; only None/NaN/pd.NA values are missing ids. Duplicate (user, item) rows are merged
    by `duplicates` ("sum" for counts and "last" otherwise by default; "max", "first"), with a
    DataWarning giving the rule and the count. trim_ids trims spaces around ids (announced);
    dayfirst settles dates such as 01/02/2020.
    feedback ("explicit" or "implicit") and threshold (keep value > threshold) declare what the
    values mean, as for `load`; without them the meaning is guessed (see aerec.data.feedback).
    """
    import numpy as np
    import pandas as pd

    with api_words(FRAME_WORDS):
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"from_dataframe needs a pandas DataFrame, got {type(df).__name__}")
        frame = df.reset_index(drop=True)
        frame.index = np.arange(1, len(frame) + 1)
        inter = from_frame(frame, label=f"DataFrame {name!r}", name=name, user_col=user, item_col=item,
                           rating_col=rating, time_col=time, title_col=title, unit="row", source="pandas DataFrame",
                           duplicates=duplicates, trim_ids=trim_ids, dayfirst=dayfirst, feedback=feedback)
        return declare(inter, feedback, threshold)


def declare(inter: Interactions, feedback: str | None = None, threshold: float | None = None) -> Interactions:
    """`inter` with its feedback semantics declared (kept in ``meta``); a contradiction
    (explicit without ratings, a threshold that is not a number, ...) fails here."""
    from dataclasses import replace

    from aerec.data import feedback as fbmod

    semantics = {k: v for k, v in (("feedback", feedback), ("threshold", threshold)) if v is not None}
    if not semantics:
        return inter
    inter = replace(inter, meta={**inter.meta, **semantics})
    fbmod.of(inter)
    return inter


_FRAME_KEYS = {"user_col": "user", "item_col": "item", "rating_col": "rating", "time_col": "time",
               "title_col": "title", "user": "user", "item": "item", "rating": "rating", "time": "time",
               "title": "title", "name": "name", "duplicates": "duplicates", "trim_ids": "trim_ids",
               "dayfirst": "dayfirst", "feedback": "feedback"}


def load(name_or_path, **mapping) -> Interactions:
    """A registered data set by name (fetching it if not cached), a file with a column mapping,
    or a pandas DataFrame (see `from_dataframe`).

    mapping (files): user_col, item_col, rating_col, time_col, title_col, sep, header, encoding,
    name, duplicates, trim_ids, dayfirst; (DataFrames): the same keys but sep, header and
    encoding, or user/item/rating/time/title. For any source,
    feedback ("explicit" or "implicit") and threshold (keep value > threshold) declare what the
    values mean (see aerec.data.feedback); they are checked here and kept in ``meta``.
    """
    semantics = {k: mapping.pop(k, None) for k in ("feedback", "threshold")}
    mapping = {k: v for k, v in mapping.items() if v is not None}
    if semantics.get("feedback") is not None and not _is_registered(name_or_path, mapping):
        mapping["feedback"] = semantics["feedback"]  # counts are summed by default, ratings are not
    words = FRAME_WORDS if type(name_or_path).__name__ == "DataFrame" else FILE_WORDS
    with api_words(words):
        return declare(_load(name_or_path, mapping), **semantics)


def _load(name_or_path, mapping: dict) -> Interactions:
    try:
        import pandas as pd

        is_frame = isinstance(name_or_path, pd.DataFrame)
    except ImportError:  # pragma: no cover - pandas is a dependency
        is_frame = False
    if is_frame:
        bad = sorted(set(mapping) - set(_FRAME_KEYS))
        if bad:
            raise DataError(f"option(s) {', '.join(bad)} apply to files, not DataFrames")
        return from_dataframe(name_or_path, **{_FRAME_KEYS[k]: v for k, v in mapping.items()})
    if not isinstance(name_or_path, (str, Path)):
        raise DataError(f"load() takes a data set name, a file path or a DataFrame, got {type(name_or_path).__name__}")
    key = str(name_or_path)
    path = Path(key).expanduser()
    exists = _exists(path)
    if key.lower() in registry.REGISTRY and not exists:
        if mapping:
            raise DataError(f"{key} is a registered data set; column options ({', '.join(mapping)}) apply to files only")
        return fetch(key)
    if not exists:
        raise DataError(f"{key}: no such file, and not a registered data set ({', '.join(registry.names())})")
    return read_file(path, **mapping)


def _exists(path: Path) -> bool:
    """Whether something is there; a path that cannot be looked at counts, so that the file
    guard reports why (permission denied) instead of "no such file"."""
    import os

    try:
        os.stat(path)
        return True
    except FileNotFoundError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _is_registered(name_or_path, mapping: dict) -> bool:
    if not isinstance(name_or_path, (str, Path)):
        return False
    key = str(name_or_path)
    return key.lower() in registry.REGISTRY and not _exists(Path(key).expanduser())


def list_datasets() -> list[dict]:
    """Every registered data set with its cache status ('cached', 'absent' or 'damaged')."""
    out = []
    for spec in registry.REGISTRY.values():
        rec = cache.record(spec.name) or {}
        out.append({"name": spec.name, "status": cache.status(spec.name), "description": spec.description,
                    "interactions": rec.get("interactions"), "source": rec.get("source"),
                    "fallback": spec.wheel.requirement if spec.wheel else None,
                    "url": spec.urls[0] if spec.urls else None})
    return out
