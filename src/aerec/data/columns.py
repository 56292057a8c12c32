"""Column roles and values: which column holds what, and its values checked once on entry.

Ids round-trip exactly, from every input (CSV, TSV, Parquet, DataFrame):
- text ids keep their spelling, whitespace included (`trim=True` trims, and says how many ids it
  changed and merged); a column becomes integers only when every distinct value is an ASCII
  integer that converts back to the same text ("007", "+1", "1２" stay text);
- integer columns keep their values: uint64 ids of 2^63 and above stay uint64, never wrap;
- a missing id is a missing value (an empty field, None, NaN, pd.NA); the texts "NA", "None"
  and "NaN" are ids like any other;
- an id is at most MAX_ID_CHARS characters and valid Unicode, the same limit the HTTP service
  applies, so anything the service returns it accepts back.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from aerec.data.notes import warn
from aerec.errors import DataError
from aerec.limits import MAX_ID_CHARS  # noqa: F401  (re-exported)

_INT_RE = r"[+-]?[0-9]+"  # ASCII digits only: "1٢" is text, not 12
# integer text that converts to an int and back unchanged ("007", "+1", "-0" do not)
_CANONICAL_INT_RE = r"0|-?[1-9][0-9]*"

# Column names tried, in order, when the caller does not name a column (case-insensitive;
# RecBole's "name:type" headers are matched on the part before the colon).
GUESS = {
    "user": ("user", "user_id", "userid", "uid", "user id", "customer_id", "customer", "customerid", "customer id",
             "client_id", "client", "member_id", "account_id", "buyer_id", "visitor_id", "listener_id", "reader_id"),
    "item": ("item", "item_id", "itemid", "iid", "movie_id", "movieid", "movie", "song", "song_id", "product_id",
             "productid", "product", "sku", "sku_id", "article_id", "article", "artist", "artist_id", "artist_name",
             "track_id", "track", "book_id", "isbn", "asin", "stockcode", "stock_code", "item_code", "product_code"),
    "rating": ("rating", "ratings", "score", "stars", "value", "plays", "play_count", "playcount", "count",
               "quantity", "qty", "units", "clicks", "views", "listens", "purchases"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime", "unix_time", "order_date", "orderdate",
                  "invoice_date", "invoicedate", "purchase_date", "created_at", "event_time", "event_date",
                  "rated_at", "played_at"),
    "title": ("title", "name", "item_name", "movie_title"),
}

_FLAG = {"timestamp": "time"}


def where(df: pd.DataFrame, mask: np.ndarray, unit: str = "line") -> str:
    return f"{unit} {int(df.index[np.flatnonzero(mask)[0]])}"


def count(mask: np.ndarray) -> str:
    n = int(mask.sum())
    return f" ({n} bad rows in all)" if n > 1 else ""


def check_labels(columns, label: str) -> None:
    """Column labels must be unique texts or integers, or a column cannot be named reliably."""
    for c in columns:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (str, int, np.integer)):
            raise DataError(f"{label}: column label {c!r} ({type(c).__name__}) is not a name or a number; "
                            "rename the columns to text")
    seen, dup = set(), []
    for c in columns:
        if c in seen:
            dup.append(c)
        seen.add(c)
    if dup:
        raise DataError(f"{label}: column {dup[0]!r} appears more than once; give each column its own name")


def resolve(columns: list, wanted, role: str, label: str, required: bool, hint: str = ""):
    """Find the column for a role: an explicit name, a position, or a guess from GUESS."""
    if wanted is not None:
        if isinstance(wanted, bool):
            raise DataError(f"{label}: {role} column {wanted!r} is not a column name or position")
        if wanted in columns:
            return wanted
        if isinstance(wanted, str) and wanted.lstrip("-").isdigit() and wanted.lstrip("-").isascii():
            wanted = int(wanted)
        if isinstance(wanted, (int, np.integer)):
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
        raise DataError(f"{label}: cannot tell which column holds the {role} ids (columns: {shown}); "
                        f"name it with --{_FLAG.get(role, role)}-col{hint}")
    return None


# ------------------------------------------------------------------------------------------
# ids


def _int_vocab(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(ids, sort=True)
    return np.asarray(uniques), codes.astype(np.int32)


def vocab(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted vocabulary and int32 codes (int ids sort numerically, strings lexically)."""
    codes, uniques = pd.factorize(ids, sort=True)  # hashing: much faster than np.unique on strings
    uniques = np.asarray(uniques)
    if uniques.dtype == object:
        uniques = uniques.astype(str)
    return uniques, codes.astype(np.int32)


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."


def _distinct_text(s: pd.Series, label: str, what: str, df: pd.DataFrame, unit: str):
    """(codes, distinct ids as text) of a text or object column, each distinct value checked:
    text or an integer (tuples, bytes, floats among text are refused), valid Unicode (no lone
    surrogate) and at most MAX_ID_CHARS characters."""
    codes, uniq = pd.factorize(s)
    values = list(np.asarray(uniq, dtype=object))
    problem = None
    for j, x in enumerate(values):
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (str, int, np.integer)):
            problem = j, f"{what} id {_short(x)} is a {type(x).__name__}; ids must be text or integers"
            break
        if not isinstance(x, str):
            values[j] = str(x)
            continue
        if len(x) > MAX_ID_CHARS:
            problem = j, f"{what} id of {len(x):,} characters; ids are at most {MAX_ID_CHARS}"
            break
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            problem = j, f"{what} id {_short(x)} holds a lone surrogate, not valid Unicode text"
            break
    if problem is None and len(set(values)) < len(values):  # 7 and "7" in one object column
        first = {}
        for j, x in enumerate(values):
            if x in first:
                problem = j, (f"{what} ids {_short(uniq[first[x]])} and {_short(uniq[j])} would be the same id; "
                              "give the column one type")
                break
            first[x] = j
    if problem is not None:
        j, why = problem
        bad = codes == j
        raise DataError(f"{label} {where(df, bad, unit)}: {why}{count(bad)}")
    return codes, pd.Series(values, dtype=object)


def parse_ids(df: pd.DataFrame, col, label: str, what: str, *, numeric: bool, unit: str = "line",
              trim: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(sorted vocabulary, int32 codes) for an id column (rules in the module docstring).

    numeric=True (the registered formats, whose ids are numeric by definition) demands integers
    and accepts any ASCII integer spelling. Strings are factorized first and checked per distinct
    value, which keeps a column of a million titles fast.
    """
    s = df[col]
    missing = s.isna().to_numpy()
    if missing.any():
        why = "an empty field?" if unit == "line" else "None, NaN or NA"
        raise DataError(f"{label} {where(df, missing, unit)}: missing {what} id ({why}){count(missing)}")
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(str)
    elif pd.api.types.is_integer_dtype(s.dtype):
        if pd.api.types.is_unsigned_integer_dtype(s.dtype) and len(s) and int(s.max()) >= 2**63:
            return _int_vocab(s.to_numpy(dtype=np.uint64))  # int64 would wrap them to negatives
        return _int_vocab(s.to_numpy(dtype=np.int64))
    elif pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64)
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**53)
        if whole.all():
            return _int_vocab(v.astype(np.int64))
        if numeric:
            raise DataError(f"{label} {where(df, ~whole, unit)}: {what} id {v[~whole][0]!r} is not an integer{count(~whole)}")
        s = s.astype(str)
    raw_codes, raw = _distinct_text(s, label, what, df, unit)
    if numeric:  # a registered format's numeric ids: spaces around them carry no meaning
        merge, uniq = pd.factorize(raw.str.strip(), sort=True)
        codes = merge[raw_codes]
    elif trim:
        stripped = raw.str.strip()
        merge, uniq = pd.factorize(stripped, sort=True)
        codes = merge[raw_codes]
        changed = int((stripped != raw).sum())
        if changed:
            merged = len(raw) - len(uniq)
            warn(f"{label}: trimmed spaces around {changed:,} {what} ids; {merged:,} of them merged with another id")
    else:
        merge, uniq = pd.factorize(raw, sort=True)
        codes = merge[raw_codes]
        spaced = int((raw.str.strip() != raw).sum())
        if spaced:
            warn(f"{label}: {spaced:,} {what} ids begin or end with spaces and are kept as written "
                 "(trim them with --trim-ids)")
    vocab_ = pd.Series(np.asarray(uniq, dtype=object), dtype=object)
    is_int = vocab_.str.fullmatch(_INT_RE).to_numpy(dtype=bool)
    exact = is_int if numeric else vocab_.str.fullmatch(_CANONICAL_INT_RE).to_numpy(dtype=bool)
    if exact.all() and len(exact):
        try:
            ints = vocab_.astype(np.int64).to_numpy()
        except (OverflowError, ValueError):  # beyond int64
            values = [int(x) for x in vocab_]
            # uint64, as a uint64 DataFrame column reads; beyond 64 bits they stay text
            ints = np.array(values, dtype=np.uint64) if all(0 <= x < 2**64 for x in values) else None
        if ints is not None:
            order = np.argsort(ints, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            return ints[order], rank[codes].astype(np.int32)
    if numeric:
        bad = ~is_int[codes]
        raise DataError(f"{label} {where(df, bad, unit)}: {what} id {s[bad].iloc[0]!r} is not an integer{count(bad)}")
    empty = (vocab_ == "").to_numpy()[codes]
    if empty.any():
        raise DataError(f"{label} {where(df, empty, unit)}: empty {what} id{count(empty)}")
    return vocab_.to_numpy(dtype=str), codes.astype(np.int32)


# ------------------------------------------------------------------------------------------
# values


_NA_TEXT = {"", "nan", "-nan", "na", "n/a", "null", "none", "<na>", "#n/a"}  # a missing value, not a typo


def parse_ratings(df: pd.DataFrame, col, label: str, unit: str = "line") -> np.ndarray:
    s = df[col]
    missing = s.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = s.astype(str).str.strip()
        missing = missing | text.str.lower().isin(_NA_TEXT).to_numpy(dtype=bool)
        v = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(v) & ~missing
        if bad.any():
            raise DataError(f"{label} {where(df, bad, unit)}: rating {s[bad].iloc[0]!r} is not a number{count(bad)}")
    if missing.any() or np.isnan(v).any():
        bad = missing | np.isnan(v)
        raise DataError(f"{label} {where(df, bad, unit)}: rating is missing or NaN{count(bad)}")
    inf = ~np.isfinite(v)
    if inf.any():
        raise DataError(f"{label} {where(df, inf, unit)}: rating {v[inf][0]} is not finite{count(inf)}")
    big = np.abs(v) > np.finfo(np.float32).max  # would become inf in float32
    if big.any():
        raise DataError(f"{label} {where(df, big, unit)}: rating {v[big][0]:g} is beyond the 32-bit float range "
                        f"(+-3.4e38){count(big)}")
    return v.astype(np.float32)


# ------------------------------------------------------------------------------------------
# timestamps

# day and month first, then the year: "01/02/2020", "1.2.2020", "31-12-99"
_DM = re.compile(r"^\s*([0-9]{1,2})[/.\-]([0-9]{1,2})[/.\-]([0-9]{2,4})(?![0-9])")


def epoch_seconds(dates) -> np.ndarray:
    """int64 seconds since 1970 (UTC) from tz-aware or naive datetimes of any unit and year."""
    dates = pd.Series(dates)
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    # numpy's datetime64[s] spans every year pandas can hold; its cast floors to whole seconds
    return dates.to_numpy().astype("datetime64[s]").astype(np.int64)


def _day_first(text: pd.Series, label: str, dayfirst: bool | None) -> bool | None:
    """Whether numeric dates put the day first: from the data when some day is above 12,
    else from `dayfirst`; ambiguous dates without it are refused."""
    parts = text.str.extract(_DM)
    rows = parts[0].notna().to_numpy()
    if not rows.any():
        return dayfirst
    a = parts[0][rows].astype(int).to_numpy()
    b = parts[1][rows].astype(int).to_numpy()
    day_sure, month_sure = bool((a > 12).any()), bool((b > 12).any())
    example = text[rows].iloc[0]
    if day_sure and month_sure:
        raise DataError(f"{label}: dates mix day-first and month-first orders (e.g. {text[rows][a > 12].iloc[0]!r} "
                        f"and {text[rows][b > 12].iloc[0]!r}); write them one way (ISO 2020-12-31 is safest)")
    if dayfirst is None:
        if day_sure or month_sure:
            return day_sure
        raise DataError(f"{label}: dates like {example!r} could be day-first or month-first; "
                        "pass --dayfirst or --monthfirst (dayfirst = true/false in a config)")
    if (dayfirst and month_sure) or (not dayfirst and day_sure):
        bad = text[rows][b > 12].iloc[0] if dayfirst else text[rows][a > 12].iloc[0]
        order = "day-first" if dayfirst else "month-first"
        raise DataError(f"{label}: date {bad!r} cannot be {order} as declared")
    return dayfirst


def parse_timestamps(df: pd.DataFrame, col, label: str, unit: str = "line",
                     dayfirst: bool | None = None) -> np.ndarray:
    """Seconds since the epoch (int64) from numbers (seconds) or dates of any year 1-9999.

    Dates and date-times may be mixed ("2020-01-01" beside "2020-01-01 23:59:59"); numeric dates
    such as 01/02/2020 need a known order (see _day_first). No date is clamped: the range of
    int64 seconds covers every year pandas can read.
    """
    s = df[col]
    missing = s.isna().to_numpy()
    if missing.any():
        raise DataError(f"{label} {where(df, missing, unit)}: missing timestamp{count(missing)}")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return epoch_seconds(s)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64)
    else:
        if s.dtype == object and len(s) and s.map(lambda x: isinstance(x, pd.Timestamp)).all():
            return epoch_seconds(pd.to_datetime(s, utc=True))
        text = s.astype(str).str.strip()
        v = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(v).any():
            codes, uniq = pd.factorize(text)
            uniq = pd.Series(np.asarray(uniq, dtype=object), dtype=object)
            first = _day_first(uniq, label, dayfirst)
            try:
                dates = pd.to_datetime(uniq, errors="coerce", utc=True, format="mixed", dayfirst=bool(first))
            except (ValueError, OverflowError) as e:
                raise DataError(f"{label}: cannot read the timestamps as dates ({str(e).splitlines()[0]})") from None
            number = pd.to_numeric(uniq, errors="coerce").notna().to_numpy()
            bad = (dates.isna().to_numpy() & ~number)[codes]
            if bad.any():
                raise DataError(f"{label} {where(df, bad, unit)}: timestamp {text[bad].iloc[0]!r} is neither a number nor a date{count(bad)}")
            mixed = number[codes]
            if mixed.any():
                raise DataError(f"{label} {where(df, mixed, unit)}: timestamp {text[mixed].iloc[0]!r} is a number but other rows hold dates{count(mixed)}")
            return epoch_seconds(dates)[codes]
    bad = ~np.isfinite(v) | (np.abs(v) > 2**62)
    if bad.any():
        raise DataError(f"{label} {where(df, bad, unit)}: timestamp {v[bad][0]} is not a finite number{count(bad)}")
    return v.astype(np.int64)
