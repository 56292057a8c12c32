"""Reading text tables (CSV, TSV, ...) into DataFrames, exactly and with one-line errors.

Quoting follows RFC 4180, read leniently: a field that is quoted from its first character to a
separator or line end keeps what is inside the quotes ("" is one quote); any other field is
taken as written, quote characters included (`"Weird Al" Yankovic` stays as it is). pandas'
C reader would instead glue such a field into `Weird Al Yankovic`, so a file holding such a
field is re-quoted before pandas reads it. Only an empty field is missing: "NA", "None" and
"NaN" are values like any other.

Line numbers: frames keep the file's 1-based line number as their index, so any row-level
problem is reported as "FILE line N: problem". Blank lines are skipped (they are not data).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from aerec.data import files
from aerec.data.columns import count, where
from aerec.errors import DataError

_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
SEPARATORS = (",", "\t", ";", "|")


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
                         quoting=quoting, on_bad_lines="error", keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: the file is empty") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{label}: not valid {encoding} text near byte {e.start}") from None
    except (pd.errors.ParserError, ValueError, csv.Error) as e:
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
            raise DataError(f"{label} {where(df, bad)}: malformed row, fields must be separated by '::'{count(bad)}")
        df = df.drop(columns=gaps)
    return df


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


# ------------------------------------------------------------------------------------------
# exact quoting


def _field_class(sep: str) -> bytes | None:
    """The separator as a regex character class body, for the seps the C reader handles."""
    if sep == r"\s+":
        return rb" \t"
    if len(sep) == 1:
        return re.escape(sep.encode())
    return None  # multi-character seps are read with quoting off: quotes are always kept


def _glued(data: bytes, sep: str) -> bool:
    """Whether some field starts with a quote that closes before the field ends."""
    s = _field_class(sep)
    if s is None or data.find(b'"') < 0:
        return False
    # starts with the quote itself (fast scanning); the lookbehind keeps quotes that open a field
    # possessive: a quoted part ends at its first lone quote, as in the RFC
    pattern = rb'"(?<![^' + s + rb'\r\n]")(?:[^"]|"")*+"(?![' + s + rb'\r\n]|\Z)'
    return re.search(pattern, data) is not None


def requote(data: bytes, sep: str, line_bound: bool = False) -> bytes:
    """The same table with every field that is not properly quoted quoted, so pandas keeps it
    as written. A quoted field ends at its first lone quote (possessive match, as in the RFC)
    and may span lines; with line_bound it must close on its own line, which reads a quote that
    opens a field and never closes as a character of the id."""
    s = _field_class(sep)
    inside = rb'[^"\r\n]' if line_bound else rb'[^"]'
    field = re.compile(rb'(?P<q>"(?:' + inside + rb'|"")*+"(?=[' + s + rb'\r\n]|\Z))|(?P<u>[^' + s + rb'\r\n]+)')

    def fix(m: re.Match) -> bytes:
        u = m.group("u")
        if u is None or b'"' not in u:
            return m.group(0)
        return b'"' + u.replace(b'"', b'""') + b'"'

    return field.sub(fix, data)


# ------------------------------------------------------------------------------------------
# hints for a wrong separator or a missing --no-header


def _rows(head: str, sep: str, limit: int = 50) -> list[list[str]]:
    lines = [ln for ln in head.splitlines()[:limit] if ln.strip()]
    if len(lines) > 1 and len(head.splitlines()) > limit:
        lines = lines[:-1]  # the last line of a peek may be cut
    try:
        return list(csv.reader(lines, delimiter=sep))
    except csv.Error:
        return []


def sep_that_parses(head: str, tried: str) -> str | None:
    """The separator under which the first lines split into the same number (2+) of fields."""
    best, width = None, 1
    for sep in SEPARATORS:
        if sep == tried:
            continue
        rows = _rows(head, sep)
        widths = {len(r) for r in rows}
        if rows and len(widths) == 1 and widths.pop() > width:
            best, width = sep, len(rows[0])
    return best


def first_row_is_data(head: str, sep: str) -> bool:
    """Whether the first line looks like data rather than a header: a field is a number."""
    rows = _rows(head, sep if len(sep) == 1 else ",", limit=2)
    return bool(rows) and any(_NUMBER.fullmatch(f.strip()) for f in rows[0])


def shown_sep(sep: str) -> str:
    return {"\t": "\\t", " ": "' '"}.get(sep, repr(sep))


# ------------------------------------------------------------------------------------------
# a user's file


def _probe_columns(head: bytes, sep: str, header: bool, encoding: str) -> list | None:
    """The column names (or positions) from the first bytes of a file, or None if unsure."""
    try:
        engine = "python" if (len(sep) > 1 and sep != r"\s+") else "c"
        probe = pd.read_csv(io.BytesIO(head), sep=sep, header=0 if header else None, nrows=0 if header else 1,
                            encoding=encoding, engine=engine, quoting=3 if engine == "python" else 0)
        return list(probe.columns)
    except Exception:  # the full read reports the problem properly
        return None


def peek(path, n: int = 1 << 16) -> bytes:
    """The first n bytes of a (possibly compressed) data file, for hints; b'' if unreadable."""
    path = Path(path)
    kind = files.COMPRESSED.get(path.suffix.lower())
    try:
        if kind is None:
            with open(path, "rb") as f:
                return f.read(n)
        raw, _ = files._decompressor(path, kind, str(path))
        with raw:
            return raw.read(n)
    except Exception:  # only a hint: the real read reports the problem
        return b""


def read_frame(path, *, sep: str | None = None, header: bool = True, encoding: str = "utf-8", text_columns=None):
    """A user's CSV/TSV/Parquet file (plain or .gz/.bz2/.xz/.zip) as a DataFrame.

    text_columns(columns) -> the columns to read as text (the ids, so "007" stays "007"); the
    others are parsed as numbers where they are numbers. Without it every column is text.
    Returns (frame, unit, sep) where unit names the index ("line" numbers or Parquet "row"s)
    and sep is the separator used (None for Parquet).
    """
    path = Path(path).expanduser()
    label = str(path)
    files.check_file(path, label)
    inner = path.with_suffix("") if path.suffix.lower() in files.COMPRESSED else path
    ext = inner.suffix.lower()
    if ext in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a damaged file
            raise DataError(f"{label}: cannot read as Parquet ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        df.index = np.arange(1, len(df) + 1)
        return df, "row", None
    kind = files.COMPRESSED.get(path.suffix.lower())
    data = _plain_bytes(path, label) if kind is None else _decompressed_bytes(path, label, kind)
    head = bytes(data[: 1 << 16])
    if b"\0" in head:
        raise DataError(f"{label}: holds NUL bytes; not a text table (a binary file?)")
    first = head.decode(encoding, errors="replace").splitlines()[0] if head else ""
    sep = check_sep(sep) if sep is not None else sniff_sep(inner, first)
    glued = _glued(data, sep)
    if glued:
        data = requote(bytes(data), sep)
    dtype = str
    if text_columns is not None:
        columns = _probe_columns(bytes(data[: 1 << 16]), sep, header, encoding)
        if columns is not None:
            dtype = {c: str for c in dict.fromkeys(c for c in text_columns(columns) if c is not None)}
    # id columns as text: ids keep their exact spelling ("007" stays "007")
    src = io.BytesIO(data) if isinstance(data, bytes) else path
    try:
        df = read_table(src, label, sep=sep, header=header, encoding=encoding, dtype=dtype)
    except DataError as e:
        # a quote that opens a field and never closes swallows the next lines: read it literally
        unclosed = "malformed row" in str(e) or "EOF inside string" in str(e)
        if glued or not unclosed or _field_class(sep) is None or data.find(b'"') < 0:
            raise
        try:
            df = read_table(io.BytesIO(requote(bytes(data), sep, line_bound=True)), label, sep=sep,
                            header=header, encoding=encoding, dtype=dtype)
        except DataError:
            raise e from None
    finally:
        if not isinstance(data, bytes):
            data.close()
    return df, "line", sep


def _plain_bytes(path: Path, label: str):
    """The file mapped in memory (read lazily by the OS), or b'' when it is empty."""
    import mmap

    try:
        with open(path, "rb") as f:
            if files.check_file(path, label) == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except PermissionError:
        raise DataError(f"{label}: permission denied") from None
    except OSError as e:
        raise DataError(f"{label}: cannot read ({e.strerror or e})") from None


def _decompressed_bytes(path: Path, label: str, kind: str) -> bytes:
    stream = files.open_input(path, label)
    try:
        try:
            data = stream.read()
        except (OSError, EOFError, ValueError) as e:
            raise DataError(f"{label}: cannot read ({e})") from None
        problem = files.stream_problem(stream, label, kind)
        if problem is not None:
            raise problem
    finally:
        stream.close()
    return data
