"""Readers for the registered data sets' own file formats.

Each reader takes a root (the official zip, a folder holding the unpacked files, or the ratings
file itself) and returns `Interactions`. Titles come from the item file beside the ratings when
there is one.

| format  | ratings file                         | items file            | ids                    |
|---------|--------------------------------------|-----------------------|------------------------|
| ml-100k | u.data: user\\titem\\trating\\tts     | u.item ('|', latin-1) | GroupLens numeric      |
| ml-dat  | ratings.dat: user::item::rating::ts  | movies.dat ('::')     | GroupLens numeric      |
| ml-csv  | ratings.csv (header userId,movieId,..)| movies.csv            | GroupLens numeric      |
| netflix | combined_data_*.txt or mv_*.txt: "MovieID:" lines, then user,rating,YYYY-MM-DD | movie_titles.csv | Netflix numeric |
| msd     | train_triplets.txt: user\\tsong\\tplays | -                  | Echo Nest strings      |
| recbole | NAME.inter (header "user_id:token ...") | NAME.item          | see aerec.data.sources |

MSD is implicit: every (user, song) pair is an interaction and the play count is dropped
(Liang et al. keep every play), so `rating` is None.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from aerec.data.files import bomb_error
from aerec.data.interactions import Interactions
from aerec.data.readers import (
    build,
    check_regular,
    decompressed_cap,
    parse_ids,
    parse_ratings,
    parse_timestamps,
    read_table,
)
from aerec.errors import DataError


class Root:
    """A zip archive, a folder or a single file, searched for files by base name."""

    def __init__(self, path):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataError(f"{self.path}: no such file or folder")
        if not self.path.is_dir():
            check_regular(self.path, str(self.path))  # a FIFO or device would hang or never end
        self.zip = zipfile.is_zipfile(self.path) if self.path.is_file() else False

    def find(self, *names: str, pattern: bool = False) -> list[str]:
        """Members (zip) or paths (folder) whose base name matches, shortest path first."""
        from fnmatch import fnmatch

        hit = (lambda b: any(fnmatch(b, n) for n in names)) if pattern else (lambda b: b in names)
        if self.zip:
            with zipfile.ZipFile(self.path) as z:
                found = [m for m in z.namelist() if hit(m.rsplit("/", 1)[-1]) and "__MACOSX" not in m]
        elif self.path.is_dir():
            found = [str(p) for p in self.path.rglob("*") if p.is_file() and hit(p.name)]
        else:  # a single file is the ratings file; look for companions beside it
            found = [str(self.path)] if hit(self.path.name) else [
                str(p) for p in self.path.parent.iterdir() if p.is_file() and hit(p.name)]
        return sorted(found, key=lambda m: (m.count("/"), m))

    def open(self, member: str):
        if self.zip:
            with zipfile.ZipFile(self.path) as z:
                # read into memory (pandas' C reader wants a seekable file), at most the cap: a
                # member that expands beyond it is refused as a compression bomb
                cap = decompressed_cap(self.path.stat().st_size)
                if z.getinfo(member).file_size > cap:  # declared too big: refused before inflating
                    raise bomb_error(self.label(member), cap)
                with z.open(member) as f:
                    data = f.read(cap + 1)
                if len(data) > cap:
                    raise bomb_error(self.label(member), cap)
                return io.BytesIO(data)
        check_regular(Path(member), member)
        return open(member, "rb")

    def label(self, member: str) -> str:
        return f"{self.path}:{member}" if self.zip else member

    def ratings(self, *names: str) -> str:
        found = self.find(*names)
        if found:
            return found[0]
        if not self.zip and self.path.is_file():
            return str(self.path)  # the user pointed at the ratings file under another name
        raise DataError(f"{self.path}: no {' or '.join(names)} in it")


def _titles_frame(root: Root, names: tuple[str, ...], sep: str, encodings=("utf-8", "latin-1"),
                  header: bool = False, quoting: int = 3) -> pd.Series | None:
    """id -> title from an item file (first two columns), or None when there is no item file."""
    found = root.find(*names)
    if not found:
        return None
    member = found[0]
    for enc in encodings:
        try:
            df = read_table(root.open(member), root.label(member), sep=sep, header=header, usecols=[0, 1],
                            dtype=str, encoding=enc, quoting=quoting)
            break
        except DataError:
            if enc == encodings[-1]:
                raise
    ids = pd.to_numeric(df.iloc[:, 0], errors="coerce")
    ok = ids.notna().to_numpy()
    return pd.Series(df.iloc[:, 1].to_numpy()[ok], index=ids[ok].astype(np.int64).to_numpy())


def _from_frame(df: pd.DataFrame, label: str, name: str, titles=None, meta=None, numeric=True) -> Interactions:
    users = parse_ids(df, "user", label, "user", numeric=numeric)
    items = parse_ids(df, "item", label, "item", numeric=numeric)
    rating = parse_ratings(df, "rating", label) if "rating" in df else None
    ts = parse_timestamps(df, "timestamp", label) if "timestamp" in df else None
    return build(users, items, rating=rating, timestamp=ts, titles=titles, label=label, name=name, meta=meta)


COLS = ["user", "item", "rating", "timestamp"]


def read_ml100k(path, name: str = "ml-100k") -> Interactions:
    root = Root(path)
    member = root.ratings("u.data")
    df = read_table(root.open(member), root.label(member), sep="\t", header=False, names=COLS, quoting=3)
    titles = _titles_frame(root, ("u.item",), "|", encodings=("latin-1",))
    return _from_frame(df, root.label(member), name, titles,
                       {"source": f"GroupLens {root.path.name}", "ids": "GroupLens numeric user and movie ids"})


def read_ml_dat(path, name: str) -> Interactions:
    root = Root(path)
    member = root.ratings("ratings.dat")
    df = read_table(root.open(member), root.label(member), sep="::", header=False, names=COLS)
    titles = _titles_frame(root, ("movies.dat",), "::")
    return _from_frame(df, root.label(member), name, titles,
                       {"source": f"GroupLens {root.path.name}", "ids": "GroupLens numeric user and movie ids"})


def read_ml_csv(path, name: str) -> Interactions:
    root = Root(path)
    member = root.ratings("ratings.csv")
    df = read_table(root.open(member), root.label(member), sep=",", header=True)
    want = {"userid": "user", "movieid": "item", "rating": "rating", "timestamp": "timestamp"}
    df.columns = [want.get(str(c).strip().lower(), str(c)) for c in df.columns]
    for col in ("user", "item", "rating"):
        if col not in df:
            raise DataError(f"{root.label(member)} line 1: no column for {col} (expected header userId,movieId,rating,timestamp)")
    titles = _titles_frame(root, ("movies.csv",), ",", header=True, quoting=0)
    return _from_frame(df, root.label(member), name, titles,
                       {"source": f"GroupLens {root.path.name}", "ids": "GroupLens numeric user and movie ids"})


def _netflix_file(root: Root, member: str) -> tuple[np.ndarray, ...]:
    label = root.label(member)
    df = read_table(root.open(member), label, sep=",", header=False, names=["user", "rating", "date"],
                    dtype={"user": str}, quoting=3)
    head = df["rating"].isna().to_numpy() & df["user"].astype(str).str.endswith(":").to_numpy()
    if len(df) == 0 or not head[0]:
        raise DataError(f"{label} line {df.index[0] if len(df) else 1}: expected a 'MovieID:' line first")
    movie = df["user"].where(head).str.rstrip(":")
    df = df.assign(item=movie.ffill())[~head]
    if len(df) == 0:
        raise DataError(f"{label}: no ratings under the 'MovieID:' lines")
    uv, uc = parse_ids(df, "user", label, "user", numeric=True)
    iv, ic = parse_ids(df, "item", label, "movie", numeric=True)
    rating = parse_ratings(df, "rating", label)
    ts = parse_timestamps(df, "date", label)
    return uv[uc], iv[ic], rating, ts  # raw ids: files are joined before the vocabulary is built


def read_netflix(path, name: str = "netflix") -> Interactions:
    root = Root(path)
    members = root.find("combined_data_*.txt", "mv_*.txt", pattern=True)
    if not members:
        if root.path.is_file() and not root.zip:
            members = [str(root.path)]
        else:
            raise DataError(f"{root.path}: no combined_data_*.txt or training_set/mv_*.txt in it")
    from aerec import ui

    parts = [_netflix_file(root, m) for m in ui.progress(members, desc="netflix files", unit="file")]
    users, items, rating, ts = (np.concatenate(c) for c in zip(*parts))
    titles = None
    found = root.find("movie_titles.csv", "movie_titles.txt")
    if found:
        # "id,year,title" where the title may itself hold commas: split on the first two only
        text = root.open(found[0]).read().decode("latin-1").splitlines()
        parts = pd.Series(text).str.split(",", n=2, expand=True)
        if parts.shape[1] == 3:
            ids = pd.to_numeric(parts[0], errors="coerce")
            ok = ids.notna().to_numpy()
            titles = pd.Series(parts[2].to_numpy()[ok], index=ids[ok].astype(np.int64).to_numpy())
    return build(users, items, rating=rating, timestamp=ts, titles=titles, label=str(root.path), name=name,
                 meta={"source": f"Netflix Prize files in {root.path}", "ids": "Netflix numeric customer and movie ids"})


def read_msd(path, name: str = "msd") -> Interactions:
    root = Root(path)
    member = root.ratings("train_triplets.txt")
    label = root.label(member)
    df = read_table(root.open(member), label, sep="\t", header=False, names=["user", "item", "plays"], quoting=3)
    users = parse_ids(df, "user", label, "user", numeric=False)
    items = parse_ids(df, "item", label, "song", numeric=False)
    parse_ratings(df, "plays", label)  # validated, then dropped: MSD is implicit
    return build(users, items, label=label, name=name,
                 meta={"source": f"MSD taste profile {root.path.name}", "ids": "Echo Nest user and song ids",
                       "values": "implicit: every (user, song) with a play; play counts dropped"})


def read_recbole(inter, item, *, name: str, label: str, user_prefix: str = "", title_is_id: bool = False,
                 meta: dict | None = None) -> Interactions:
    """RecBole atomic files: inter/item are open binary files (header "name:type", tab-separated)."""
    df = read_table(inter, label, sep="\t", header=True, quoting=3)
    cols = {str(c).split(":")[0]: c for c in df.columns}
    need = {"user_id": "user", "item_id": "item", "rating": "rating", "timestamp": "timestamp"}
    missing = [k for k in need if k not in cols]
    if missing:
        raise DataError(f"{label} line 1: missing column(s) {', '.join(missing)}")
    df = df.rename(columns={cols[k]: v for k, v in need.items()})
    if user_prefix:
        df["user"] = df["user"].astype(str).str.removeprefix(user_prefix)
    numeric_items = not title_is_id
    users = parse_ids(df, "user", label, "user", numeric=True)
    items = parse_ids(df, "item", label, "item", numeric=numeric_items)
    rating = parse_ratings(df, "rating", label)
    ts = parse_timestamps(df, "timestamp", label)
    titles = None
    if title_is_id:
        titles = pd.Series(items[0], index=items[0])  # the vocabulary is the titles
    elif item is not None:
        it = read_table(item, f"{label} (item file)", sep="\t", header=True, dtype=str, quoting=3)
        icols = {str(c).split(":")[0]: c for c in it.columns}
        if "item_id" in icols and "movie_title" in icols:
            title = it[icols["movie_title"]].fillna("").str.strip()
            if "release_year" in icols:  # GroupLens titles end in "(year)"; RecBole split it off
                year = it[icols["release_year"]].fillna("").str.strip().str.replace(r"\.0$", "", regex=True)
                title = title.where(year == "", title + " (" + year + ")")
            ids = pd.to_numeric(it[icols["item_id"]], errors="coerce")
            ok = ids.notna().to_numpy()
            titles = pd.Series(title.to_numpy()[ok], index=ids[ok].astype(np.int64).to_numpy())
    return build(users, items, rating=rating, timestamp=ts, titles=titles, label=label, name=name, meta=meta)


READERS = {"ml-100k": read_ml100k, "ml-dat": read_ml_dat, "ml-csv": read_ml_csv,
           "netflix": read_netflix, "msd": read_msd}
