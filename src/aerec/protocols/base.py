"""Fold containers and the small vectorized helpers every protocol shares.

A protocol (scenario) is a frozen dataclass with ``split(interactions)`` yielding folds in a
fixed order (fold 0, 1, ...) and ``n_folds``. Two fold shapes exist:

- ``RankingFold`` for top-N protocols: ``train`` is training users x vocabulary items; the
  held-out parts ``valid_in``/``valid_out`` and ``test_in``/``test_out`` have one row per
  held-out user over the same item columns. ``*_in`` is what the model sees (fold-in), ``*_out``
  the target. Users with an empty ``*_out`` row are left out of the metrics.
- ``RatingFold`` for rating protocols: ``train``, ``valid`` and ``test`` all have the full data
  set's shape (users x items) and hold ratings, so rating models use indices directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aerec import config as cfgmod
from aerec.data.interactions import Interactions
from aerec.errors import ConfigError, DataError


@dataclass
class RankingFold:
    index: int
    train: sp.csr_matrix  # train users x items, binary float32
    valid_in: sp.csr_matrix  # valid users x items
    valid_out: sp.csr_matrix
    test_in: sp.csr_matrix  # test users x items
    test_out: sp.csr_matrix
    item_ids: np.ndarray  # original item id per column
    train_user_ids: np.ndarray  # original user id per train row
    valid_user_ids: np.ndarray
    test_user_ids: np.ndarray
    # Items to exclude from ranking besides *_in (weak generalization: the validation items are
    # excluded at test time, as RecBole does, although the model's input is the train rows only).
    test_exclude: sp.csr_matrix | None = None
    kind: str = "ranking"

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def valid(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The (valid_in, valid_out) pair that ranking models take for early stopping."""
        return self.valid_in, self.valid_out

    def counts(self) -> dict:
        def part(m_in, m_out):
            out_rows = np.diff(m_out.indptr) > 0
            return {"users": int(m_in.shape[0]), "users_with_target": int(out_rows.sum()),
                    "input": int(m_in.nnz), "target": int(m_out.nnz)}

        return {"items": self.n_items, "train_users": int(self.train.shape[0]), "train": int(self.train.nnz),
                "valid": part(self.valid_in, self.valid_out), "test": part(self.test_in, self.test_out)}

    def export(self, directory: str | Path) -> Path:
        from aerec.protocols.export import write_ranking_fold

        return write_ranking_fold(self, directory)


@dataclass
class RatingFold:
    index: int
    train: sp.csr_matrix  # all users x all items, ratings
    valid: sp.csr_matrix  # same shape; may be empty (nnz 0)
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    kind: str = "rating"

    def counts(self) -> dict:
        return {"users": len(self.user_ids), "items": len(self.item_ids), "train": int(self.train.nnz),
                "valid": int(self.valid.nnz), "test": int(self.test.nnz)}

    def export(self, directory: str | Path) -> Path:
        from aerec.protocols.export import write_rating_fold

        return write_rating_fold(self, directory)


class Protocol:
    """Mixin for the scenario dataclasses: name, options, validation hook."""

    name = "protocol"
    task = "ranking"
    # True where the test users are also training users (weak, global temporal): a study on such a
    # split cannot leave its test users unread, so tuning refuses it (aerec.tune)
    trains_on_test_users = False

    @property
    def n_folds(self) -> int:  # overridden where the count depends on options
        return 1

    def options(self) -> dict:
        return cfgmod.to_dict(self)

    def validate(self) -> None:
        pass

    def split(self, data: Interactions):
        raise NotImplementedError

    def folds(self, data: Interactions) -> list:
        return list(self.split(data))


# helpers ---------------------------------------------------------------------------------------


def dedupe(data: Interactions) -> Interactions:
    """One interaction per (user, item): the latest by timestamp, else the last one listed.

    The CSR builder sums duplicates, which would double a rating or count a binary item twice.
    """
    if len(data) == 0:
        raise DataError(f"{data.name}: has no interactions")
    key = data.user.astype(np.int64) * max(data.n_items, 1) + data.item
    n = len(key)
    # order by key then recency; the last row of each key run is the one kept
    recency = data.timestamp if data.timestamp is not None else np.arange(n)
    order = np.lexsort((np.arange(n), recency, key))
    k_sorted = key[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = k_sorted[:-1] != k_sorted[1:]
    if last.all():
        return data
    keep = np.zeros(n, dtype=bool)
    keep[order[last]] = True
    return data.select(keep)


def rank_within_group(group: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order entries by group, then by keys (first key most significant); return (order, rank).

    rank[j] is the 0-based position of entry order[j] inside its group. Vectorized: one lexsort.
    """
    order = np.lexsort(tuple(reversed(keys)) + (group,))
    g = group[order]
    starts = np.ones(len(g), dtype=bool)
    starts[1:] = g[1:] != g[:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(g)), 0))
    return order, np.arange(len(g)) - first


def csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], values: np.ndarray | None = None) -> sp.csr_matrix:
    data = np.ones(len(rows), dtype=np.float32) if values is None else values.astype(np.float32)
    m = sp.csr_matrix((data, (rows, cols)), shape=shape, dtype=np.float32)
    m.sort_indices()
    return m


def fold_rng(seed: int, *tags: int) -> np.random.Generator:
    """Independent streams per (seed, purpose, fold): fold f never depends on folds before it."""
    return np.random.default_rng([int(seed), *map(int, tags)])


def check_fraction(name: str, value: float, allow_zero: bool = True) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        raise ConfigError(f"{name} must be in {'[0' if allow_zero else '(0'}, 1), got {value}")
