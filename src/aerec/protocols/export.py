"""Write splits as plain CSV files so that another tool can run on the identical split.

Layout: ``DIR/fold-<f>/`` per fold, in the order ``protocol.split()`` yields (``aerec train``
iterates the same order), and ``DIR/split.json`` with the protocol, its options and counts.
Top-N folds have ``train.csv``, ``valid_in.csv``, ``valid_out.csv``, ``test_in.csv`` and
``test_out.csv`` with columns ``user,item``; rating folds have ``train.csv``, ``valid.csv`` and
``test.csv`` with ``user,item,rating``. Ids are the data set's original ids. Every file is
written atomically, and split.json last, so a folder with a split.json is a complete export.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aerec import __version__, fsutil
from aerec.errors import DataError

RANKING_FILES = ("train", "valid_in", "valid_out", "test_in", "test_out")
RATING_FILES = ("train", "valid", "test")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with fsutil.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


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


def export_split(protocol, data, out_dir: str | Path) -> dict:
    """Write every fold of ``protocol.split(data)`` under out_dir; return the split.json record."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "split.json").exists():
        raise DataError(f"{out}: folder is not empty and holds no earlier split; choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "split.json").unlink(missing_ok=True)  # an interrupted rewrite must not look complete

    folds = []
    for fold in protocol.split(data):
        fold.export(out / f"fold-{fold.index}")
        folds.append({"fold": fold.index, **fold.counts()})
    # an earlier export with more folds leaves fold directories that no longer belong
    for stale in out.glob("fold-*"):
        m = re.fullmatch(r"fold-(\d+)", stale.name)
        if m and int(m.group(1)) >= len(folds) and stale.is_dir():
            shutil.rmtree(stale)

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
    fsutil.write_json(out / "split.json", record)
    return record
