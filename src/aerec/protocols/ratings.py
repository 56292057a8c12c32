"""Rating protocols (REFERENCE §3): k-fold CV over ratings, and AutoRec's repeated 90/10.

Every matrix of a ``RatingFold`` has the data set's full shape (all users x all items), so a
rating model addresses users and items by the same indices in train, valid and test. A user or
item with no training rating stays in the shape; the evaluator can count such test cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aerec import config as cfgmod
from aerec.data.interactions import Interactions
from aerec.errors import ConfigError, DataError
from aerec.protocols.base import Protocol, RatingFold, check_fraction, csr, dedupe, fold_rng


def _prepare(data: Interactions) -> Interactions:
    if data.rating is None:
        raise DataError(f"{data.name}: rating protocols need explicit ratings; this data set has none")
    return dedupe(data)


def _fold(data: Interactions, index: int, train: np.ndarray, valid: np.ndarray, test: np.ndarray) -> RatingFold:
    shape = (data.n_users, data.n_items)
    make = lambda idx: csr(data.user[idx], data.item[idx], shape, data.rating[idx])  # noqa: E731
    return RatingFold(index=index, train=make(np.sort(train)), valid=make(np.sort(valid)),
                      test=make(np.sort(test)), user_ids=data.user_ids, item_ids=data.item_ids)


@dataclass(frozen=True)
class RatingKFold(Protocol):
    """k random folds over ratings; fold f tests one fold, and ``valid_frac`` of the remaining
    ratings (drawn per fold) are held out for validation (0 gives an empty valid matrix).
    Surprise's KFold has no validation part: use valid_frac=0 to compare with its tables."""

    n_folds: int = 5
    valid_frac: float = 0.1
    seed: int = cfgmod.seed_field()

    name = "ratings-kfold"
    task = "rating"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if self.n_folds < 2:
            raise ConfigError(f"n_folds must be at least 2, got {self.n_folds}")
        check_fraction("valid_frac", self.valid_frac)

    def split(self, data: Interactions):
        data = _prepare(data)
        n = len(data)
        if n < self.n_folds:
            raise DataError(f"{n} ratings cannot make {self.n_folds} folds")
        perm = fold_rng(self.seed, 0).permutation(n)
        bounds = np.linspace(0, n, self.n_folds + 1).round().astype(int)
        for f in range(self.n_folds):
            test = perm[bounds[f]:bounds[f + 1]]
            rest = np.concatenate([perm[:bounds[f]], perm[bounds[f + 1]:]])
            rest = rest[fold_rng(self.seed, 1, f).permutation(len(rest))]
            n_valid = int(round(self.valid_frac * len(rest)))
            yield _fold(data, f, rest[n_valid:], rest[:n_valid], test)


@dataclass(frozen=True)
class RatingHoldout(Protocol):
    """AutoRec's protocol: a random ``test_frac`` of ratings is test, ``valid_frac`` of the rest
    validation; repeated ``repeats`` times with independent draws (each repeat is a fold)."""

    test_frac: float = 0.1
    repeats: int = 5
    valid_frac: float = 0.1
    seed: int = cfgmod.seed_field()

    name = "ratings-holdout"
    task = "rating"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if self.repeats < 1:
            raise ConfigError(f"repeats must be at least 1, got {self.repeats}")
        check_fraction("test_frac", self.test_frac, allow_zero=False)
        check_fraction("valid_frac", self.valid_frac)

    @property
    def n_folds(self) -> int:
        return self.repeats

    def split(self, data: Interactions):
        data = _prepare(data)
        n = len(data)
        n_test = int(round(self.test_frac * n))
        if n_test < 1 or n_test >= n:
            raise DataError(f"{n} ratings are too few for a {self.test_frac:g} test fraction")
        for r in range(self.repeats):
            perm = fold_rng(self.seed, 0, r).permutation(n)
            test, rest = perm[:n_test], perm[n_test:]
            n_valid = int(round(self.valid_frac * len(rest)))
            yield _fold(data, r, rest[n_valid:], rest[:n_valid], test)
