"""Weak generalization: every user trains; a per-user random part of their items is held out.

The defaults are RecBole's ml-1m recipe, so numbers can sit next to RecBole's table (never next
to strong-generalization numbers):
- keep ratings >= 3 (``min_rating``; or ``threshold`` for rating > t, as strong uses);
- 10-core: drop users and items with fewer than 10 interactions, repeated until stable;
- per user, a random 8:1:1 split with RecBole's counts: valid and test get int(r * n) items,
  train the rest, and a part whose share r * n lies in (0, 1) still gets one item while train
  keeps more than one (RecBole's ``_calcu_split_ids``).

The fold reuses ``RankingFold`` with the same users everywhere: ``train`` is all users,
``valid_in`` and ``test_in`` are those same train rows (the model's input and the items excluded
from ranking), ``valid_out``/``test_out`` the held-out items, and ``test_exclude`` the validation
items, which RecBole also excludes when ranking for the test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aerec import config as cfgmod
from aerec.data.interactions import Interactions
from aerec.errors import ConfigError, DataError
from aerec.protocols.base import Protocol, RankingFold, csr, dedupe, fold_rng, rank_within_group


@dataclass(frozen=True)
class WeakGeneralization(Protocol):
    ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    min_rating: float | None = 3.0  # keep rating >= min_rating
    threshold: float | None = None  # keep rating > threshold (use one of the two)
    k_core: int = 10
    seed: int = cfgmod.seed_field()

    name = "weak"
    trains_on_test_users = True

    def __post_init__(self):
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        self.validate()

    @classmethod
    def recbole(cls, seed: int = 0) -> WeakGeneralization:
        """RecBole's ml-1m recipe: ratings >= 3, 10-core, per-user random 8:1:1 (@10 metrics)."""
        return cls(ratios=(0.8, 0.1, 0.1), min_rating=3.0, threshold=None, k_core=10, seed=seed)

    def validate(self) -> None:
        if len(self.ratios) != 3 or min(self.ratios) < 0 or self.ratios[0] <= 0 or self.ratios[2] <= 0:
            raise ConfigError(f"ratios must be three numbers (train, valid, test), train and test > 0, got {self.ratios}")
        if self.min_rating is not None and self.threshold is not None:
            raise ConfigError("choose either min_rating or threshold, not both")
        if self.k_core < 0:
            raise ConfigError(f"k_core must be >= 0, got {self.k_core}")

    @property
    def n_folds(self) -> int:
        return 1

    def prepare(self, data: Interactions) -> Interactions:
        data = dedupe(data)
        if data.rating is not None:
            if self.min_rating is not None:
                data = data.select(data.rating >= self.min_rating)
            elif self.threshold is not None:
                data = data.select(data.rating > self.threshold)
        if len(data) == 0:
            raise DataError(f"{data.name}: no interactions left after the rating filter")
        return k_core(data, self.k_core)

    def split(self, data: Interactions):
        data = self.prepare(data)
        rng = fold_rng(self.seed, 0)
        n_u = np.bincount(data.user, minlength=data.n_users)
        n_train, n_valid, _ = split_counts(n_u, self.ratios)
        order, rank = rank_within_group(data.user, rng.random(len(data)))
        part = np.empty(len(data), dtype=np.int8)  # 0 train, 1 valid, 2 test
        u = data.user[order]
        part[order] = np.where(rank < n_train[u], 0, np.where(rank < n_train[u] + n_valid[u], 1, 2))

        shape = (data.n_users, data.n_items)
        train, valid, test = (csr(data.user[part == p], data.item[part == p], shape) for p in range(3))
        yield RankingFold(
            index=0, train=train, valid_in=train, valid_out=valid, test_in=train, test_out=test,
            item_ids=data.item_ids, train_user_ids=data.user_ids, valid_user_ids=data.user_ids,
            test_user_ids=data.user_ids, test_exclude=valid,
        )


def split_counts(n: np.ndarray, ratios) -> tuple[np.ndarray, ...]:
    """Per-group part sizes exactly as RecBole's _calcu_split_ids, vectorized over groups."""
    total = sum(ratios)
    r = [x / total for x in ratios]
    n = n.astype(np.int64)
    cnt = [np.floor(ri * n).astype(np.int64) for ri in r]
    cnt[0] = n - sum(cnt[1:])
    active = np.ones(len(n), dtype=bool)
    for i in range(1, len(r)):  # from the last part backwards, as RecBole does
        active &= cnt[0] > 1
        share = r[-i] * n
        bump = active & (share > 0) & (share < 1)
        cnt[-i] = cnt[-i] + bump
        cnt[0] = cnt[0] - bump
    return tuple(cnt)


def k_core(data: Interactions, k: int) -> Interactions:
    """Drop users and items with fewer than k interactions, repeated until none is dropped."""
    if k <= 1:
        return data.compact()
    keep = np.ones(len(data), dtype=bool)
    while True:
        u = np.bincount(data.user[keep], minlength=data.n_users)
        i = np.bincount(data.item[keep], minlength=data.n_items)
        new = keep & (u[data.user] >= k) & (i[data.item] >= k)
        if (new == keep).all():
            break
        keep = new
    if not keep.any():
        raise DataError(f"{data.name}: nothing is left after the {k}-core filter")
    return data.select(keep).compact()
