"""Turn tabular files into `Interactions`, with one-line errors for bad input.

Two layers:
- `read_table` wraps pandas' reader so that every parse failure becomes a `DataError` naming the
  file and line; `frame_to_interactions` validates the columns (ids, ratings, timestamps),
  applies the duplicate policy and builds the vocabularies. The data-set formats in
  `aerec.data.formats` use both.
- `read_file` reads a user's CSV/TSV/Parquet (or an `.npz` written by aerec) with a column
  mapping.

Line numbers: frames keep the file's 1-based line number as their index, so any row-level
problem is reported as "FILE line N: problem". Blank lines are skipped (they are not data).
Duplicate (user, item) pairs are not an error: the latest by timestamp is kept (the last
occurrence in the file when there are no timestamps), with a `DataWarning` giving the count.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from aerec.data.interactions import Interactions
from aerec.data.notes import DataWarning, warn  # noqa: F401  (re-exported)
from aerec.errors import DataError

_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_INT_RE = r"[+-]?\d+"
# integer text that converts to an int and back unchanged ("007", "+1", "-0" do not)
_CANONICAL_INT_RE = r"0|-?[1-9]\d*"

# Column names tried, in order, when the caller does not name a column (case-insensitive;
# RecBole's "name:type" headers are matched on the part before the colon).
GUESS = {
    "user": ("user", "user_id", "userid", "uid", "user id", "customer_id", "customer"),
    "item": ("item", "item_id", "itemid", "iid", "movie_id", "movieid", "movie", "song", "song_id", "product_id"),
    "rating": ("rating", "ratings", "score", "stars", "value", "plays", "count"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime", "unix_time"),
    "title": ("title", "name", "item_name", "movie_title"),
}


# ------------------------------------------------------------------------------------------
# reading text tables


def read_table(src, label: str, *, sep: str, header: bool = True, names=None, usecols=None,
               dtype=None, encoding: str = "utf-8", quoting: int | None = None,
               first_line: int | None = None) -> pd.DataFrame:
    """pandas.read_csv with errors as DataError and the file line number as the index.

    src is a path or an open binary file; label names it in messages. Blank lines are dropped.
    sep="::" (MovieLens .dat) is read fast by splitting on ":" and checking that every other
    field is empty, which holds for the numeric ratings files it is used for.
    """
    colon_pairs = sep == "::" and names is not None
    if colon_pairs:
        width = len(names)
        names = [n for k in names for n in (k, f"_gap{k}")][: 2 * width - 1]
        sep = ":"
    engine = "python" if (len(sep) > 1 and sep != r"\s+") else "c"
    if quoting is None:
        quoting = 3 if engine == "python" else 0  # 3 = csv.QUOTE_NONE
    try:
        df = pd.read_csv(src, sep=sep, header=0 if header else None, names=names, usecols=usecols,
                         dtype=dtype, encoding=encoding, engine=engine, skip_blank_lines=False,
                         quoting=quoting, on_bad_lines="error")
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: the file is empty") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{label}: not valid {encoding} text near byte {e.start}") from None
    except (pd.errors.ParserError, ValueError, csv_error()) as e:
        m = _FIELDS.search(str(e))
        if m:
            want, line, saw = (int(g) for g in m.groups())
            if colon_pairs:
                want, saw = (want + 1) // 2, (saw + 1) // 2
            raise DataError(f"{label} line {line}: malformed row, expected {want} fields, found {saw}") from None
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{label}: cannot parse the file ({msg})") from None
    start = first_line if first_line is not None else (2 if header else 1)
    df.index = np.arange(start, start + len(df))
    # a blank line reads as a row of NaN; drop those but keep every other line number
    blank = df.isna().all(axis=1)
    if blank.any():
        df = df[~blank.to_numpy()]
    if colon_pairs:
        gaps = [c for c in df.columns if str(c).startswith("_gap")]
        bad = df[gaps].notna().any(axis=1).to_numpy()
        if bad.any():
            raise DataError(f"{label} {_where(df, bad)}: malformed row, fields must be separated by '::'{_count(bad)}")
        df = df.drop(columns=gaps)
    return df


def csv_error():
    import csv

    return csv.Error


def sniff_sep(path: Path, first: str) -> str:
    ext = path.suffix.lower()
    if ext in (".tsv", ".tab", ".inter"):
        return "\t"
    if "\t" in first:
        return "\t"
    if "::" in first:
        return "::"
    if ext == ".csv" or "," in first:
        return ","
    if ";" in first:
        return ";"
    if "|" in first:
        return "|"
    return r"\s+"


# ------------------------------------------------------------------------------------------
# validation and building


def _where(df: pd.DataFrame, mask: np.ndarray, unit: str = "line") -> str:
    return f"{unit} {int(df.index[np.flatnonzero(mask)[0]])}"


def _count(mask: np.ndarray) -> str:
    n = int(mask.sum())
    return f" ({n} bad rows in all)" if n > 1 else ""


def parse_ids(df: pd.DataFrame, col: str, label: str, what: str, *, numeric: bool,
              unit: str = "line") -> tuple[np.ndarray, np.ndarray]:
    """(sorted vocabulary, int32 codes) for an id column.

    Ids round-trip exactly: text ids become int64 only when every distinct value converts to an
    integer and back to the same text ("007", "+1", "1e3" and "1.0" keep the whole column as
    strings); surrounding whitespace is dropped. numeric=True (the registered formats, whose ids
    are numeric by definition) demands integers and accepts any integer spelling. Strings are
    factorized first and checked per distinct value, which keeps a column of a million titles fast.
    """
    s = df[col]
    missing = s.isna().to_numpy()
    if missing.any():
        raise DataError(f"{label} {_where(df, missing, unit)}: missing {what} id (too few fields?){_count(missing)}")
    if pd.api.types.is_integer_dtype(s.dtype):
        return _vocab(s.to_numpy(dtype=np.int64))
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**62)
        if whole.all():
            return _vocab(v.astype(np.int64))
        if numeric:
            raise DataError(f"{label} {_where(df, ~whole, unit)}: {what} id {v[~whole][0]!r} is not an integer{_count(~whole)}")
        s = s.astype(str)
    raw_codes, raw = pd.factorize(s.astype(str))
    stripped = pd.Series(np.asarray(raw, dtype=object), dtype=object).str.strip()
    merge, vocab = pd.factorize(stripped, sort=True)  # " 7" and "7" are one id
    codes = merge[raw_codes]
    vocab = pd.Series(np.asarray(vocab, dtype=object), dtype=object)
    is_int = vocab.str.fullmatch(_INT_RE).to_numpy(dtype=bool)
    exact = is_int if numeric else vocab.str.fullmatch(_CANONICAL_INT_RE).to_numpy(dtype=bool)
    if exact.all() and len(exact):
        try:
            ints = vocab.astype(np.int64).to_numpy()
        except (OverflowError, ValueError):
            ints = None  # beyond int64: keep them as strings
        if ints is not None:
            order = np.argsort(ints, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            return ints[order], rank[codes].astype(np.int32)
    if numeric:
        bad = ~is_int[codes]
        raise DataError(f"{label} {_where(df, bad, unit)}: {what} id {s[bad].iloc[0]!r} is not an integer{_count(bad)}")
    empty = (vocab == "").to_numpy()[codes]
    if empty.any():
        raise DataError(f"{label} {_where(df, empty, unit)}: empty {what} id{_count(empty)}")
    return vocab.to_numpy(dtype=str), codes.astype(np.int32)


def parse_ratings(df: pd.DataFrame, col: str, label: str, unit: str = "line") -> np.ndarray:
    s = df[col]
    missing = s.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        v = pd.to_numeric(s.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(v) & ~missing
        if bad.any():
            raise DataError(f"{label} {_where(df, bad, unit)}: rating {s[bad].iloc[0]!r} is not a number{_count(bad)}")
    if missing.any() or np.isnan(v).any():
        bad = missing | np.isnan(v)
        raise DataError(f"{label} {_where(df, bad, unit)}: rating is missing or NaN{_count(bad)}")
    inf = ~np.isfinite(v)
    if inf.any():
        raise DataError(f"{label} {_where(df, inf, unit)}: rating {v[inf][0]} is not finite{_count(inf)}")
    return v.astype(np.float32)


def _epoch_seconds(dates: pd.Series) -> np.ndarray:
    # pandas 3 may store datetimes in s/ms/us/ns: go through Timedelta rather than raw int64
    return ((dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def parse_timestamps(df: pd.DataFrame, col: str, label: str, unit: str = "line") -> np.ndarray:
    """Seconds since the epoch (int64) from numbers or date strings."""
    s = df[col]
    missing = s.isna().to_numpy()
    if missing.any():
        raise DataError(f"{label} {_where(df, missing, unit)}: missing timestamp{_count(missing)}")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _epoch_seconds(pd.to_datetime(s, utc=True))
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64)
    else:
        text = s.astype(str).str.strip()
        v = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(v).any():
            dates = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
            bad = (dates.isna() & np.isnan(v)).to_numpy()
            if bad.any():
                raise DataError(f"{label} {_where(df, bad, unit)}: timestamp {text[bad].iloc[0]!r} is neither a number nor a date{_count(bad)}")
            mixed = dates.isna().to_numpy()
            if mixed.any():
                raise DataError(f"{label} {_where(df, mixed, unit)}: timestamp {text[mixed].iloc[0]!r} is a number but other rows hold dates{_count(mixed)}")
            return _epoch_seconds(dates)
    bad = ~np.isfinite(v) | (np.abs(v) > 2**62)
    if bad.any():
        raise DataError(f"{label} {_where(df, bad, unit)}: timestamp {v[bad][0]} is not a finite number{_count(bad)}")
    return v.astype(np.int64)


def _vocab(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted vocabulary and int32 codes (int ids sort numerically, strings lexically)."""
    codes, uniques = pd.factorize(ids, sort=True)  # hashing: much faster than np.unique on strings
    uniques = np.asarray(uniques)
    if uniques.dtype == object:
        uniques = uniques.astype(str)
    return uniques, codes.astype(np.int32)


def build(user_ids, item_ids, *, rating=None, timestamp=None, titles=None,
          label: str, name: str, meta: dict | None = None) -> Interactions:
    """Validated columns -> Interactions, applying the duplicate policy.

    user_ids/item_ids: raw id arrays, or (vocabulary, codes) pairs from parse_ids.
    titles: optional mapping {item id: title} (a dict or a pandas Series indexed by item id).
    """
    uvocab, u = user_ids if isinstance(user_ids, tuple) else _vocab(user_ids)
    ivocab, i = item_ids if isinstance(item_ids, tuple) else _vocab(item_ids)
    if len(u) == 0:
        raise DataError(f"{label}: no interactions (the file has no data rows)")
    key = u.astype(np.int64) * len(ivocab) + i
    order = np.argsort(timestamp, kind="stable") if timestamp is not None else np.arange(len(key))
    # the last occurrence in `order` wins: unique over the reversed order keeps first hits
    _, first = np.unique(key[order][::-1], return_index=True)
    meta = dict(meta or {})
    if len(first) < len(key):
        keep = np.sort(order[::-1][first])
        dups = len(key) - len(keep)
        policy = "kept the latest by timestamp" if timestamp is not None else "kept the last occurrence in the file (no timestamps)"
        warn(f"{label}: {dups} duplicate (user, item) pairs; {policy}")
        meta["duplicates_dropped"] = int(dups)
        u, i = u[keep], i[keep]
        rating = None if rating is None else rating[keep]
        timestamp = None if timestamp is None else timestamp[keep]
    item_titles = None
    if titles is not None:
        t = pd.Series(titles)
        t = t[~t.index.duplicated(keep="first")]
        item_titles = t.reindex(pd.Index(ivocab)).fillna("").astype(str).to_numpy(dtype=str)
    return Interactions(user=u, item=i, user_ids=uvocab, item_ids=ivocab, rating=rating,
                        timestamp=timestamp, item_titles=item_titles, name=name, meta=meta)


# ------------------------------------------------------------------------------------------
# user files


_FLAG = {"timestamp": "time"}


def _resolve(columns: list, wanted, role: str, label: str, required: bool):
    """Find the column for a role: an explicit name, a position, or a guess from GUESS."""
    if wanted is not None:
        if wanted in columns:
            return wanted
        if isinstance(wanted, str) and wanted.lstrip("-").isdigit():
            wanted = int(wanted)
        if isinstance(wanted, int) and not isinstance(wanted, bool):
            if -len(columns) <= wanted < len(columns):
                return columns[wanted]
            raise DataError(f"{label}: no column {wanted} for {role} (the file has {len(columns)} columns)")
        bare = {str(c).split(":")[0].strip().lower(): c for c in columns}
        if str(wanted).lower() in bare:
            return bare[str(wanted).lower()]
        shown = ", ".join(map(str, columns[:12]))
        raise DataError(f"{label}: no column '{wanted}' for {role} (columns: {shown})")
    bare = {str(c).split(":")[0].strip().lower(): c for c in columns}
    for guess in GUESS[role]:
        if guess in bare:
            return bare[guess]
    if required:
        shown = ", ".join(map(str, columns[:12]))
        raise DataError(f"{label}: cannot tell which column holds the {role} ids (columns: {shown}); name it with --{_FLAG.get(role, role)}-col")
    return None


# compressed files are streamed through this cap so that a zip or gzip bomb is refused, not loaded
COMPRESSED = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
MIN_CAP = 256 << 20  # bytes: a small archive may always expand this far
MAX_RATIO = 100  # beyond that expansion ratio a compressed file is taken for a bomb


def decompressed_cap(compressed_bytes: int) -> int:
    """The most bytes a compressed input may expand to ($AEREC_MAX_DECOMPRESSED overrides)."""
    import os

    env = os.environ.get("AEREC_MAX_DECOMPRESSED", "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise DataError(f"AEREC_MAX_DECOMPRESSED={env!r} is not a number of bytes") from None
    return max(MIN_CAP, MAX_RATIO * compressed_bytes)


class CappedStream(io.RawIOBase):
    """A read-only stream that stops at `cap` bytes and remembers why it stopped.

    Errors of the underlying decompressor (not gzip, truncated, ...) are kept in `error` and the
    stream ends; the caller turns them into one DataError naming the file.
    """

    def __init__(self, raw, cap: int):
        self.raw, self.cap, self.seen = raw, cap, 0
        self.exceeded = False
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.exceeded or self.error:
            return 0
        try:
            data = self.raw.read(len(buf))
        except (OSError, EOFError, ValueError, *zlib_errors()) as e:
            self.error = str(e) or type(e).__name__
            return 0
        self.seen += len(data)
        if self.seen > self.cap:
            self.exceeded = True
            return 0
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


def zlib_errors():
    import lzma
    import zlib

    return (zlib.error, lzma.LZMAError)


def check_regular(path: Path, label: str) -> None:
    """Refuse folders, FIFOs, devices and sockets: reading them hangs or never ends."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{label}: no such file") from None
    except OSError as e:
        raise DataError(f"{label}: cannot open ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{label}: is a folder, expected a CSV, TSV or Parquet file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise DataError(f"{label}: is {kind}, not a regular file")


def open_input(path: Path, label: str):
    """A buffered binary stream of the file's (decompressed, size-capped) bytes."""
    check_regular(path, label)
    kind = COMPRESSED.get(path.suffix.lower())
    try:
        if kind is None:
            return open(path, "rb")
        size = path.stat().st_size
        if kind == "gzip":
            import gzip

            raw = gzip.open(path, "rb")
        elif kind == "bz2":
            import bz2

            raw = bz2.open(path, "rb")
        elif kind == "xz":
            import lzma

            raw = lzma.open(path, "rb")
        else:
            import zipfile

            try:
                z = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise DataError(f"{label}: not a zip archive") from None
            members = [m for m in z.infolist() if not m.is_dir() and "__MACOSX" not in m.filename]
            if len(members) != 1:
                z.close()
                names = ", ".join(m.filename for m in members[:5]) or "none"
                raise DataError(f"{label}: a zip must hold exactly one data file (it holds {len(members)}: {names})")
            raw = z.open(members[0])
        return io.BufferedReader(CappedStream(raw, decompressed_cap(size)), buffer_size=1 << 20)
    except OSError as e:
        raise DataError(f"{label}: cannot open ({e.strerror or e})") from None


def _stream_problem(stream, label: str, kind: str | None) -> DataError | None:
    capped = getattr(stream, "raw", None)
    if not isinstance(capped, CappedStream):
        return None
    if capped.error:
        return DataError(f"{label}: not a readable {kind or 'compressed'} file ({capped.error})")
    if capped.exceeded:
        return DataError(f"{label}: decompresses to more than {capped.cap:,} bytes; refused as a possible "
                         f"compression bomb (set AEREC_MAX_DECOMPRESSED=BYTES to allow more)")
    return None


def check_sep(sep: str) -> str:
    if sep in ("\\t", "tab", "TAB"):
        return "\t"
    if sep == "":
        raise DataError("--sep is empty; give a separator such as ',' or '\\t'")
    if len(sep) > 1 and sep not in ("::", r"\s+"):
        try:
            re.compile(sep)
        except re.error as e:
            raise DataError(f"--sep {sep!r} is not a valid regular expression ({e})") from None
    return sep


def _probe_columns(head: bytes, sep: str, header: bool, encoding: str) -> list | None:
    """The column names (or positions) from the first bytes of a file, or None if unsure."""
    try:
        engine = "python" if (len(sep) > 1 and sep != r"\s+") else "c"
        probe = pd.read_csv(io.BytesIO(head), sep=sep, header=0 if header else None, nrows=0 if header else 1,
                            encoding=encoding, engine=engine, quoting=3 if engine == "python" else 0)
        return list(probe.columns)
    except Exception:  # the full read reports the problem properly
        return None


def read_frame(path, *, sep: str | None = None, header: bool = True, encoding: str = "utf-8", text_columns=None):
    """A user's CSV/TSV/Parquet file (plain or .gz/.bz2/.xz/.zip) as a DataFrame.

    text_columns(columns) -> the columns to read as text (the ids, so "007" stays "007"); the
    others are parsed as numbers where they are numbers. Without it every column is text.
    Returns (frame, unit) where unit names the index ("line" numbers or Parquet "row"s).
    """
    path = Path(path).expanduser()
    label = str(path)
    check_regular(path, label)
    inner = path.with_suffix("") if path.suffix.lower() in COMPRESSED else path
    ext = inner.suffix.lower()
    if ext in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a damaged file
            raise DataError(f"{label}: cannot read as Parquet ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        df.index = np.arange(1, len(df) + 1)
        return df, "row"
    stream = open_input(path, label)
    kind = COMPRESSED.get(path.suffix.lower())
    try:
        try:
            head = stream.peek(1 << 16)[: 1 << 16]
        except (OSError, EOFError, ValueError) as e:
            raise DataError(f"{label}: cannot read ({e})") from None
        problem = _stream_problem(stream, label, kind)
        if problem is not None:
            raise problem
        if b"\0" in head:
            raise DataError(f"{label}: holds NUL bytes; not a text table (a binary file?)")
        first = head.decode(encoding, errors="replace").splitlines()[0] if head else ""
        sep = check_sep(sep) if sep is not None else sniff_sep(inner, first)
        dtype = str
        if text_columns is not None:
            columns = _probe_columns(head, sep, header, encoding)
            if columns is not None:
                dtype = dict.fromkeys(c for c in text_columns(columns) if c is not None)
                dtype = {c: str for c in dtype}
        try:
            # id columns as text: ids keep their exact spelling ("007" stays "007")
            df = read_table(stream, label, sep=sep, header=header, encoding=encoding, dtype=dtype)
        except DataError:
            problem = _stream_problem(stream, label, kind)
            if problem is not None:
                raise problem from None
            raise
        problem = _stream_problem(stream, label, kind)
        if problem is not None:
            raise problem
    finally:
        stream.close()
    return df, "line"


def read_file(path, *, user_col=None, item_col=None, rating_col=None, time_col=None, title_col=None,
              sep: str | None = None, header: bool = True, encoding: str = "utf-8",
              name: str | None = None) -> Interactions:
    """Read a CSV/TSV/Parquet file of interactions (or an aerec `.npz`).

    Columns are named (header) or 0-based positions. Without a header and without a mapping the
    columns are user, item[, rating[, timestamp]]. With a header, unnamed roles are guessed from
    common names (user_id, movieId, rating, timestamp, ...); a rating or time column that is not
    found is simply absent. title_col names a column of item titles (the first title seen for
    an item wins). Compressed files (.gz, .bz2, .xz, a .zip of one file) are streamed with a
    size cap; anything that is not a regular file is refused.
    """
    path = Path(path).expanduser()
    label = str(path)
    check_regular(path, label)
    name = name or (path.with_suffix("").stem if path.suffix.lower() in COMPRESSED else path.stem)
    if path.suffix.lower() == ".npz":
        from aerec.data import cache

        return cache.read_npz(path, name=name)
    def id_columns(columns):
        try:
            if not header:
                return [0 if user_col is None else _position(user_col), 1 if item_col is None else _position(item_col),
                        None if title_col is None else _position(title_col)]
            return [_resolve(columns, user_col, "user", label, True), _resolve(columns, item_col, "item", label, True),
                    None if title_col is None else _resolve(columns, title_col, "title", label, True)]
        except (DataError, ValueError):
            return list(columns)  # unsure: read every column as text; from_frame reports the problem

    df, unit = read_frame(path, sep=sep, header=header, encoding=encoding, text_columns=id_columns)
    if not header and unit == "line":
        df.columns = list(range(df.shape[1]))
        # positional defaults: user, item[, rating[, timestamp]] for the roles not named
        if all(r is None for r in (rating_col, time_col, title_col)):
            rating_col = 2 if df.shape[1] > 2 and 2 not in (user_col, item_col) else None
            time_col = 3 if df.shape[1] > 3 and 3 not in (user_col, item_col) else None
        user_col = 0 if user_col is None else user_col
        item_col = 1 if item_col is None else item_col
    return from_frame(df, label=label, name=name, user_col=user_col, item_col=item_col, rating_col=rating_col,
                      time_col=time_col, title_col=title_col, unit=unit, source=f"file {label}")


def _position(col):
    return int(col) if isinstance(col, str) and col.lstrip("-").isdigit() else col


def from_frame(df: pd.DataFrame, *, label: str, name: str, user_col=None, item_col=None, rating_col=None,
               time_col=None, title_col=None, unit: str = "line", source: str | None = None) -> Interactions:
    """Validate a frame's columns and build Interactions (shared by files and DataFrames)."""
    columns = list(df.columns)
    ucol = _resolve(columns, user_col, "user", label, True)
    icol = _resolve(columns, item_col, "item", label, True)
    rcol = _resolve(columns, rating_col, "rating", label, rating_col is not None)
    tcol = _resolve(columns, time_col, "timestamp", label, time_col is not None)
    ncol = _resolve(columns, title_col, "title", label, True) if title_col is not None else None
    roles = [c for c in (ucol, icol, rcol, tcol, None if ncol == icol else ncol) if c is not None]
    if len(set(roles)) < len(roles):
        raise DataError(f"{label}: one column is mapped to two roles (user={ucol}, item={icol}, rating={rcol}, "
                        f"time={tcol}, title={ncol})")
    if len(df) == 0:
        raise DataError(f"{label}: no interactions (the file has no data rows)")
    users = parse_ids(df, ucol, label, "user", numeric=False, unit=unit)
    items = parse_ids(df, icol, label, "item", numeric=False, unit=unit)
    rating = parse_ratings(df, rcol, label, unit) if rcol is not None else None
    ts = parse_timestamps(df, tcol, label, unit) if tcol is not None else None
    titles = None
    if ncol is not None:
        vocab, codes = items
        text = df[ncol].fillna("").astype(str).str.strip().to_numpy()
        titles = pd.Series(text, index=pd.Index(np.asarray(vocab)[codes]))
    meta = {"source": source or label, "columns": {"user": str(ucol), "item": str(icol),
            "rating": None if rcol is None else str(rcol), "timestamp": None if tcol is None else str(tcol)}}
    if ncol is not None:
        meta["columns"]["title"] = str(ncol)
    return build(users, items, rating=rating, timestamp=ts, titles=titles, label=label, name=name, meta=meta)
