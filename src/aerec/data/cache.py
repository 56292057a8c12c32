"""The normalized data cache under $AEREC_HOME (default ~/.cache/aerec).

Layout:
    $AEREC_HOME/datasets/NAME.npz    arrays (allow_pickle=False; string ids as fixed-width unicode)
    $AEREC_HOME/datasets/NAME.json   name, source, meta, sizes and the sha256 of the npz
    $AEREC_HOME/downloads/           archives and wheels as downloaded, so a refetch is instant

The npz is written first and the JSON last, both atomically (temp file, then rename): a JSON
therefore vouches for a complete npz. An npz without its JSON (a crash between the two), a
missing npz, or a checksum mismatch is a damaged entry; `load` warns and returns None so the
caller rebuilds it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from aerec import fsutil
from aerec.data.interactions import Interactions
from aerec.data.notes import warn
from aerec.errors import DataError

FORMAT = 1
_ARRAYS = ("user", "item", "user_ids", "item_ids", "rating", "timestamp", "item_titles")


def home() -> Path:
    """$AEREC_HOME, read on every call so tests and users can redirect it."""
    return Path(os.environ.get("AEREC_HOME") or Path.home() / ".cache" / "aerec").expanduser()


def datasets_dir() -> Path:
    return home() / "datasets"


def downloads_dir() -> Path:
    d = home() / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def paths(name: str) -> tuple[Path, Path]:
    d = datasets_dir()
    return d / f"{name}.npz", d / f"{name}.json"


def _as_array(a: np.ndarray) -> np.ndarray:
    # object arrays would need pickle; store strings as fixed-width unicode instead
    if a.dtype == object:
        return a.astype(str)
    return a


def write_npz(inter: Interactions, path: Path) -> None:
    arrays = {k: _as_array(np.asarray(getattr(inter, k))) for k in _ARRAYS if getattr(inter, k) is not None}
    with fsutil.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object stops numpy from appending ".npz" to the temp name
            np.savez(f, **arrays)


def read_npz(path: Path, *, name: str, meta: dict | None = None) -> Interactions:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _ARRAYS if k in z.files}
    except Exception as e:  # zipfile/ValueError/EOFError for a truncated or foreign file
        raise DataError(f"{path}: not a readable aerec npz ({type(e).__name__})") from None
    missing = {"user", "item", "user_ids", "item_ids"} - set(arrays)
    if missing:
        raise DataError(f"{path}: not an aerec npz (missing arrays: {', '.join(sorted(missing))})")
    return Interactions(**arrays, name=name, meta=dict(meta or {}))


def save(inter: Interactions, name: str, source: str) -> Path:
    npz, js = paths(name)
    write_npz(inter, npz)
    record = {
        "format": FORMAT,
        "name": name,
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": len(inter),
        "npz_sha256": fsutil.sha256_file(npz),
        "npz_bytes": npz.stat().st_size,
        "meta": inter.meta,
    }
    fsutil.write_json(js, record)
    return npz


def record(name: str) -> dict | None:
    """The JSON record of a cached data set, or None."""
    _, js = paths(name)
    try:
        return json.loads(js.read_text())
    except (OSError, ValueError):
        return None


def status(name: str) -> str:
    """'cached', 'absent' or 'damaged' (cheap: sizes only, no checksum)."""
    npz, js = paths(name)
    rec = record(name)
    if rec is None:
        return "damaged" if npz.exists() or js.exists() else "absent"
    if not npz.exists() or npz.stat().st_size != rec.get("npz_bytes"):
        return "damaged"
    return "cached"


def load(name: str) -> Interactions | None:
    """The cached data set, or None when absent or damaged (damage is warned about)."""
    npz, js = paths(name)
    if not npz.exists() and not js.exists():
        return None
    rec = record(name)
    problem = None
    if rec is None:
        problem = "its JSON record is missing or unreadable (half-written cache)"
    elif rec.get("format") != FORMAT:
        problem = f"it has cache format {rec.get('format')}, expected {FORMAT}"
    elif not npz.exists():
        problem = "its npz file is missing"
    elif fsutil.sha256_file(npz) != rec.get("npz_sha256"):
        problem = "the npz checksum does not match (truncated or modified)"
    if problem is None:
        try:
            return read_npz(npz, name=name, meta=rec.get("meta"))
        except DataError as e:
            problem = str(e)
    warn(f"cache for {name} in {npz.parent}: {problem}; rebuilding it")
    for p in (npz, js):
        p.unlink(missing_ok=True)
    return None


def contents() -> dict:
    """What the cache holds: {datasets: {name: record}, downloads: {file: bytes}}."""
    out = {"home": str(home()), "datasets": {}, "downloads": {}}
    d = datasets_dir()
    if d.is_dir():
        for js in sorted(d.glob("*.json")):
            rec = record(js.stem) or {}
            out["datasets"][js.stem] = {"status": status(js.stem), "interactions": rec.get("interactions"),
                                        "bytes": rec.get("npz_bytes"), "source": rec.get("source")}
    dl = home() / "downloads"
    if dl.is_dir():
        for f in sorted(dl.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                out["downloads"][f.name] = f.stat().st_size
    return out
