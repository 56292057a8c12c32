"""Write splits as plain CSV files so that another tool can run on the identical split.

Layout: ``DIR/fold-<f>/`` per fold, in the order ``protocol.split()`` yields (``aerec train``
iterates the same order), and ``DIR/split.json`` with the protocol, its options and counts.
Top-N folds have ``train.csv``, ``valid_in.csv``, ``valid_out.csv``, ``test_in.csv`` and
``test_out.csv`` with columns ``user,item``; rating folds have ``train.csv``, ``valid.csv`` and
``test.csv`` with ``user,item,rating``. Ids are the data set's original ids, quoted as RFC 4180
asks (a file whose ids hold a carriage return has all its text fields quoted). The folder is built
in a hidden sibling (``.DIR.partial``) and swapped in whole, split.json included, so a folder with
a split.json is a complete export and an interrupted export leaves the earlier one untouched.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aerec import __version__, fsutil
from aerec.errors import DataError

RANKING_FILES = ("train", "valid_in", "valid_out", "test_in", "test_out")
RATING_FILES = ("train", "valid", "test")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    # the csv writer quotes a "\n" but not a bare "\r", which pandas and csv readers take for a line
    # end: a file whose ids hold one has every text field quoted
    cr = any(frame[c].dtype.kind in "OUS" and frame[c].astype(str).str.contains("\r", regex=False).any()
             for c in ("user", "item"))
    with fsutil.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC if cr else csv.QUOTE_MINIMAL)


def _pairs(m: sp.csr_matrix, row_ids: np.ndarray, col_ids: np.ndarray, ratings: bool = False) -> pd.DataFrame:
    coo = m.tocoo()
    out = {"user": row_ids[coo.row], "item": col_ids[coo.col]}
    if ratings:
        out["rating"] = coo.data
    return pd.DataFrame(out)


def write_ranking_fold(fold, directory: str | Path) -> Path:
    d = Path(directory)
    rows = {"train": fold.train_user_ids, "valid_in": fold.valid_user_ids, "valid_out": fold.valid_user_ids,
            "test_in": fold.test_user_ids, "test_out": fold.test_user_ids}
    for name in RANKING_FILES:
        _write_csv(d / f"{name}.csv", _pairs(getattr(fold, name), rows[name], fold.item_ids))
    return d


def write_rating_fold(fold, directory: str | Path) -> Path:
    d = Path(directory)
    for name in RATING_FILES:
        _write_csv(d / f"{name}.csv", _pairs(getattr(fold, name), fold.user_ids, fold.item_ids, ratings=True))
    return d


def read_fold(directory: str | Path) -> dict[str, pd.DataFrame]:
    """The CSV files of one exported fold, by part name (ids keep the types pandas infers)."""
    d = Path(directory)
    out = {p.stem: pd.read_csv(p) for p in sorted(d.glob("*.csv"))}
    if not out:
        raise DataError(f"{d}: no split files here")
    return out


def export_split(protocol, data, out_dir: str | Path, *, overwrite: bool = False) -> dict:
    """Write every fold of ``protocol.split(data)`` under out_dir; return the split.json record.

    The export is built in a hidden sibling folder and swapped in whole when complete, so a
    failed or killed export leaves an earlier one as it was. An earlier export is replaced by
    the same split (same protocol, options and data set name) or with ``overwrite``.
    """
    out = Path(out_dir)
    check_target(out, protocol, data.name, overwrite)
    with fsutil.staged_dir(out) as tmp:
        folds = []
        for fold in protocol.split(data):
            fold.export(tmp / f"fold-{fold.index}")
            folds.append({"fold": fold.index, **fold.counts()})
        record = _record(protocol, data, folds)
        fsutil.write_json(tmp / "split.json", record)
    return record


def check_target(out: Path, protocol, dataset: str | None, overwrite: bool = False) -> None:
    """Refuse, before any work, a folder that an export must not replace."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if not out.exists() or fsutil.is_empty_dir(out):
        return
    marker = out / "split.json"
    if not marker.exists():
        # fold folders alone: an export that an older aerec left unfinished
        if all(p.is_dir() and re.fullmatch(r"fold-\d+", p.name) for p in out.iterdir()):
            return
        raise DataError(f"{out}: folder is not empty and holds no earlier split; choose an empty folder")
    if overwrite or dataset is None:  # dataset None: only the checks that need no data
        return
    try:
        old = json.loads(marker.read_text())
        same = old.get("protocol") == protocol.name and old.get("options") == _jsonable(protocol.options()) \
            and old.get("dataset") == dataset
    except (OSError, ValueError, AttributeError):
        same = False
    if not same:
        raise DataError(f"{out}: holds another split ({_describe(marker)}); pass --overwrite to replace it")


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=fsutil._json_default))


def _describe(marker: Path) -> str:
    try:
        old = json.loads(marker.read_text())
        return f"{old.get('protocol')} of {old.get('dataset')}, {old.get('n_folds')} fold(s)"
    except (OSError, ValueError, AttributeError):
        return "unreadable split.json"


def _record(protocol, data, folds: list[dict]) -> dict:
    record = {
        "protocol": protocol.name,
        "task": protocol.task,
        "options": protocol.options(),
        "dataset": data.name,
        "n_folds": len(folds),
        "files": list(RATING_FILES if protocol.task == "rating" else RANKING_FILES),
        "columns": ["user", "item", "rating"] if protocol.task == "rating" else ["user", "item"],
        "folds": folds,
        "aerec_version": __version__,
    }
    if protocol.name == "weak":
        record["note"] = "test_in = train rows; valid_out items are also excluded when ranking for the test"
    return record
