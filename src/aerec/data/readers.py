"""Turn tabular files and DataFrames into `Interactions`, with one-line errors for bad input.

The work is shared out:
- `aerec.data.files`: the file guard (regular files only, size and decompression caps);
- `aerec.data.text`: reading text tables exactly (RFC quoting, line numbers, hints);
- `aerec.data.columns`: which column holds what, and ids, values and dates checked on entry;
- here: `read_file` (a user's CSV/TSV/Parquet or aerec `.npz`), `from_frame` (shared with
  DataFrames) and `build`, which applies the duplicate rule and builds the vocabularies. The
  data-set formats in `aerec.data.formats` use the same pieces.

Duplicate (user, item) rows are merged by a rule (`duplicates=`): "sum" adds their values (the
default for counts: implicit feedback with a value column), "last" keeps the latest by
timestamp, or the last in the file without timestamps (the default for ratings and plain
pairs), "max" keeps the highest value, "first" the earliest. The rule used and the number of
rows merged are announced with a `DataWarning`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aerec import ui
from aerec.data.columns import (
    GUESS,
    MAX_ID_CHARS,
    check_labels,
    parse_ids,
    parse_ratings,
    parse_timestamps,
    resolve,
)
from aerec.data.columns import vocab as _vocab
from aerec.data.files import COMPRESSED, CappedStream, check_file, decompressed_cap, open_input  # noqa: F401
from aerec.data.interactions import Interactions
from aerec.data.notes import DataWarning, warn  # noqa: F401  (re-exported)
from aerec.data.text import (
    check_sep,
    first_row_is_data,
    peek,
    read_frame,
    read_table,
    sep_that_parses,
    shown_sep,
    sniff_sep,  # noqa: F401
)
from aerec.errors import DataError

__all__ = ["GUESS", "MAX_ID_CHARS", "DUPLICATES", "build", "read_file", "from_frame", "read_table", "parse_ids",
           "parse_ratings", "parse_timestamps", "check_file", "check_regular", "open_input", "decompressed_cap"]

DUPLICATES = ("sum", "last", "max", "first")
_RATING_NAMES = {"rating", "ratings", "stars", "score", "grade"}


def check_regular(path: Path, label: str) -> None:
    """The shared file guard (kept under its old name for the format readers)."""
    check_file(path, label)


# ------------------------------------------------------------------------------------------
# duplicates


def default_duplicates(inter: Interactions, feedback: str | None = None) -> str:
    """'sum' for counts (implicit feedback with a value column), else 'last'."""
    if inter.rating is None or len(inter) == 0:
        return "last"
    col = str((inter.meta.get("columns") or {}).get("rating") or "rating").split(":")[0].strip().lower()
    if feedback is None and col in _RATING_NAMES:
        return "last"
    from aerec.data import feedback as fb

    try:
        kind = fb.decide(inter, feedback).kind
    except Exception:  # a contradiction is reported where the semantics are checked
        return "last"
    return "sum" if kind == "implicit" else "last"


def _rule_words(rule: str, timestamps: bool) -> str:
    if rule == "sum":
        return "values summed (counts)"
    if rule == "max":
        return "kept the highest value"
    latest = "latest" if rule == "last" else "earliest"
    if timestamps:
        return f"kept the {latest} by timestamp"
    return f"kept the {'last' if rule == 'last' else 'first'} occurrence in the file (no timestamps)"


def merge_duplicates(inter: Interactions, rule: str, label: str) -> Interactions:
    """One row per (user, item) by `rule`, announced with the number of rows merged."""
    if rule not in DUPLICATES:
        raise DataError(f"duplicates must be one of {', '.join(DUPLICATES)}, got {rule!r}")
    n = len(inter)
    key = inter.user.astype(np.int64) * max(inter.n_items, 1) + inter.item
    rank = np.empty(n, dtype=np.int64)  # recency: by timestamp, then by position in the file
    rank[np.argsort(inter.timestamp, kind="stable") if inter.timestamp is not None else np.arange(n)] = np.arange(n)
    value = inter.rating
    if rule == "max" and value is not None:
        perm = np.lexsort((rank, value, key))  # within a key: highest value, ties to the latest, last
    elif int(key.max(initial=0)) < 2**62 // max(n, 1):
        perm = np.argsort(key * n + rank)  # one sort of a combined key: faster than lexsort
    else:
        perm = np.lexsort((rank, key))
    ks = key[perm]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    if len(starts) == n:
        return inter
    ends = np.r_[starts[1:], n] - 1
    pick = perm[starts] if rule == "first" else perm[ends]
    meta = dict(inter.meta)
    rating = None if value is None else value[pick]
    if rule == "sum" and value is not None:
        rating = np.add.reduceat(value[perm].astype(np.float64), starts)
        if not np.isfinite(rating).all() or np.abs(rating).max(initial=0) > np.finfo(np.float32).max:
            raise DataError(f"{label}: summing duplicate rows overflows the value column; "
                            "choose another rule with --duplicates last|max|first")
        rating = rating.astype(np.float32)
    keep = np.argsort(pick, kind="stable")  # rows stay in file order
    merged = n - len(pick)
    words = _rule_words(rule if value is not None or rule == "first" else "last", inter.timestamp is not None)
    if value is None and rule in ("sum", "max"):
        words += f" (no value column to {rule})"
    warn(f"{label}: {merged:,} duplicate (user, item) rows merged, {words}; "
         f"choose with --duplicates {'|'.join(DUPLICATES)}")
    meta["duplicates"] = {"rule": rule, "merged_rows": int(merged)}
    meta["duplicates_dropped"] = int(merged)
    pick = pick[keep]
    return Interactions(user=inter.user[pick], item=inter.item[pick], user_ids=inter.user_ids,
                        item_ids=inter.item_ids, rating=None if rating is None else rating[keep],
                        timestamp=None if inter.timestamp is None else inter.timestamp[pick],
                        item_titles=inter.item_titles, name=inter.name, meta=meta)


# ------------------------------------------------------------------------------------------
# building


def build(user_ids, item_ids, *, rating=None, timestamp=None, titles=None, label: str, name: str,
          meta: dict | None = None, duplicates: str | None = None, feedback: str | None = None) -> Interactions:
    """Validated columns -> Interactions, applying the duplicate rule.

    user_ids/item_ids: raw id arrays, or (vocabulary, codes) pairs from parse_ids.
    titles: optional mapping {item id: title} (a dict or a pandas Series indexed by item id).
    duplicates: a rule of DUPLICATES, or None for the default (see default_duplicates, which
    reads the declared `feedback` when there is one).
    """
    uvocab, u = user_ids if isinstance(user_ids, tuple) else _vocab(user_ids)
    ivocab, i = item_ids if isinstance(item_ids, tuple) else _vocab(item_ids)
    if len(u) == 0:
        raise DataError(f"{label}: no interactions (the file has no data rows)")
    if duplicates is not None and duplicates not in DUPLICATES:
        raise DataError(f"duplicates must be one of {', '.join(DUPLICATES)}, got {duplicates!r}")
    item_titles = None
    if titles is not None:
        t = pd.Series(titles)
        t = t[~t.index.duplicated(keep="first")]
        item_titles = t.reindex(pd.Index(ivocab)).fillna("").astype(str).to_numpy(dtype=str)
    inter = Interactions(user=u, item=i, user_ids=uvocab, item_ids=ivocab, rating=rating, timestamp=timestamp,
                         item_titles=item_titles, name=name, meta=dict(meta or {}))
    return merge_duplicates(inter, duplicates or default_duplicates(inter, feedback), label)


# ------------------------------------------------------------------------------------------
# user files


def _position(col):
    return int(col) if isinstance(col, str) and col.lstrip("-").isdigit() else col


def read_file(path, *, user_col=None, item_col=None, rating_col=None, time_col=None, title_col=None,
              sep: str | None = None, header: bool = True, encoding: str = "utf-8",
              name: str | None = None, duplicates: str | None = None, trim_ids: bool = False,
              dayfirst: bool | None = None, feedback: str | None = None) -> Interactions:
    """Read a CSV/TSV/Parquet file of interactions (or an aerec `.npz`).

    Columns are named (header) or 0-based positions. Without a header and without a mapping the
    columns are user, item[, rating[, timestamp]]. With a header, unnamed roles are guessed from
    common names (user_id, sku, quantity, order_date, ...); a rating or time column that is not
    found is simply absent, and the columns left unused are listed. title_col names a column of
    item titles (the first title seen for an item wins). Compressed files (.gz, .bz2, .xz, a
    .zip of one file) are streamed with a size cap; anything that is not a regular file is
    refused. duplicates, trim_ids, dayfirst: see `build`, `columns.parse_ids` and
    `columns.parse_timestamps`; feedback (declared semantics) sets the default duplicate rule.
    """
    path = Path(path).expanduser()
    label = str(path)
    check_file(path, label)
    name = name or (path.with_suffix("").stem if path.suffix.lower() in COMPRESSED else path.stem)
    if path.suffix.lower() == ".npz":
        from aerec.data import cache

        return cache.read_npz(path, name=name)

    def id_columns(columns):
        try:
            if not header:
                return [0 if user_col is None else _position(user_col), 1 if item_col is None else _position(item_col),
                        None if title_col is None else _position(title_col)]
            return [resolve(columns, user_col, "user", label, True), resolve(columns, item_col, "item", label, True),
                    None if title_col is None else resolve(columns, title_col, "title", label, True)]
        except (DataError, ValueError):
            return list(columns)  # unsure: read every column as text; from_frame reports the problem

    try:
        df, unit, used_sep = read_frame(path, sep=sep, header=header, encoding=encoding, text_columns=id_columns)
        if not header and unit == "line":
            df.columns = list(range(df.shape[1]))
            # positional defaults: user, item[, rating[, timestamp]] for the roles not named
            if all(r is None for r in (rating_col, time_col, title_col)):
                rating_col = 2 if df.shape[1] > 2 and 2 not in (user_col, item_col) else None
                time_col = 3 if df.shape[1] > 3 and 3 not in (user_col, item_col) else None
            user_col = 0 if user_col is None else user_col
            item_col = 1 if item_col is None else item_col
        return from_frame(df, label=label, name=name, user_col=user_col, item_col=item_col, rating_col=rating_col,
                          time_col=time_col, title_col=title_col, unit=unit, source=f"file {label}",
                          duplicates=duplicates, trim_ids=trim_ids, dayfirst=dayfirst, feedback=feedback)
    except DataError as e:
        hint = _hint(path, str(e), sep, header, encoding)
        if hint:
            raise DataError(f"{e}; {hint}") from None
        raise


def _hint(path: Path, message: str, sep: str | None, header: bool, encoding: str) -> str:
    """A likely fix for a table that did not parse: another separator, or --no-header."""
    if "malformed row" not in message and "cannot tell which column" not in message and \
            "no column" not in message:
        return ""
    inner = path.with_suffix("") if path.suffix.lower() in COMPRESSED else path
    if inner.suffix.lower() in (".parquet", ".pq"):
        return ""
    head = peek(path).decode(encoding, errors="replace")
    if not head:
        return ""
    first = head.splitlines()[0] if head.splitlines() else ""
    try:
        used = check_sep(sep) if sep is not None else sniff_sep(inner, first)
    except DataError:
        return ""
    better = sep_that_parses(head, used)
    if better is not None:
        tried = f"not --sep {shown_sep(used)}" if sep is not None else f"{shown_sep(used)} was guessed"
        return f"the file parses with --sep {shown_sep(better)} ({tried})"
    if header and "cannot tell which column" in message and first_row_is_data(head, used):
        return "the first line looks like data, not a header: add --no-header"
    return ""


def from_frame(df: pd.DataFrame, *, label: str, name: str, user_col=None, item_col=None, rating_col=None,
               time_col=None, title_col=None, unit: str = "line", source: str | None = None,
               duplicates: str | None = None, trim_ids: bool = False, dayfirst: bool | None = None,
               feedback: str | None = None) -> Interactions:
    """Validate a frame's columns and build Interactions (shared by files and DataFrames)."""
    columns = list(df.columns)
    check_labels(columns, label)
    ucol = resolve(columns, user_col, "user", label, True)
    icol = resolve(columns, item_col, "item", label, True)
    rcol = resolve(columns, rating_col, "rating", label, rating_col is not None)
    tcol = resolve(columns, time_col, "timestamp", label, time_col is not None)
    ncol = resolve(columns, title_col, "title", label, True) if title_col is not None else None
    roles = [c for c in (ucol, icol, rcol, tcol, None if ncol == icol else ncol) if c is not None]
    if len(set(roles)) < len(roles):
        raise DataError(f"{label}: one column is mapped to two roles (user={ucol}, item={icol}, rating={rcol}, "
                        f"time={tcol}, title={ncol})")
    if len(df) == 0:
        raise DataError(f"{label}: no interactions (the file has no data rows)")
    users = parse_ids(df, ucol, label, "user", numeric=False, unit=unit, trim=trim_ids)
    items = parse_ids(df, icol, label, "item", numeric=False, unit=unit, trim=trim_ids)
    rating = parse_ratings(df, rcol, label, unit) if rcol is not None else None
    ts = parse_timestamps(df, tcol, label, unit, dayfirst=dayfirst) if tcol is not None else None
    titles = None
    if ncol is not None:
        vocab, codes = items
        text = df[ncol].fillna("").astype(str).str.strip().to_numpy()
        titles = pd.Series(text, index=pd.Index(np.asarray(vocab)[codes]))
    unused = [str(c) for c in columns if c not in roles and c != ncol]
    meta = {"source": source or label, "columns": {"user": str(ucol), "item": str(icol),
            "rating": None if rcol is None else str(rcol), "timestamp": None if tcol is None else str(tcol)}}
    if ncol is not None:
        meta["columns"]["title"] = str(ncol)
    if unused:
        meta["unused_columns"] = unused
    guessed = [r for r, given in (("user", user_col), ("item", item_col), ("value", rating_col),
                                  ("time", time_col)) if given is None]
    if guessed or unused:
        ui.info(_columns_line(label, meta["columns"], unused))
    return build(users, items, rating=rating, timestamp=ts, titles=titles, label=label, name=name, meta=meta,
                 duplicates=duplicates, feedback=feedback)


def _columns_line(label: str, cols: dict, unused: list[str]) -> str:
    shown = [f"user={cols['user']}", f"item={cols['item']}", f"value={cols['rating'] or '-'}",
             f"time={cols['timestamp'] or '-'}"]
    if cols.get("title"):
        shown.append(f"title={cols['title']}")
    tail = f"; unused: {', '.join(unused[:12])}{' ...' if len(unused) > 12 else ''}" if unused else "; none unused"
    return f"{label}: columns {', '.join(shown)}{tail} (name others with --rating-col, --time-col, ...)"
