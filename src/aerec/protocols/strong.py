"""Strong generalization (Liang et al. 2018, REFERENCE §2): held-out users, fold-in 80/20.

Steps, as in the reference preprocessing of Mult-VAE:
1. one interaction per (user, item); binarize: keep rating > ``threshold`` (None keeps all);
2. keep users with >= ``min_user_count`` interactions, one pass, no item filter;
3. permute users with ``seed``; either
   - ``n_heldout=N`` (ML-20M, Netflix, MSD recipe): the last N permuted users are test, the N
     before them validation (``n_valid`` overrides that N), the rest train; one fold; or
   - ``n_folds=k`` (small data): the permuted users are cut into k chunks; fold f tests chunk f.
     Validation takes the next users after that chunk (cyclically): by default as many as one
     fold holds (mirroring the equal valid and test sizes of the fixed recipe), or
     ``n_valid`` users, or ``valid_frac`` of the non-test users (with n_folds=2 the default is a
     quarter of the non-test users, since one fold's worth would leave none to train). The rest train;
4. the item vocabulary is the items of training users only; held-out interactions with other
   items are dropped;
5. fold-in: a held-out user with >= ``min_items`` items (after step 4) gets
   ``int(target_frac * n)`` random items as target, the rest as input (the reference's
   ``split_train_test_proportion``). Users with fewer items keep everything as input, have an
   empty target row, and are left out of the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aerec import config as cfgmod
from aerec.data.interactions import Interactions
from aerec.errors import ConfigError, DataError
from aerec.protocols.base import (
    Protocol,
    RankingFold,
    check_fraction,
    csr,
    dedupe,
    fold_rng,
    rank_within_group,
)

TWO_FOLD_VALID_FRAC = 0.25  # default validation share of the non-test users when n_folds=2

@dataclass(frozen=True)
class StrongGeneralization(Protocol):
    n_folds: int | None = None  # None: 5, or 1 when n_heldout is set
    n_heldout: int | None = None
    n_valid: int | None = None
    valid_frac: float | None = None
    target_frac: float = 0.2
    min_items: int = 5
    min_user_count: int = 5
    threshold: float | None = 3.5
    seed: int = cfgmod.seed_field()

    name = "strong"

    def __post_init__(self):
        if self.n_folds is None:  # frozen: the resolved count is stored once, so .n_folds is exact
            object.__setattr__(self, "n_folds", 1 if self.n_heldout is not None else 5)
        self.validate()

    def validate(self) -> None:
        if self.n_heldout is not None:
            if self.n_heldout < 1:
                raise ConfigError(f"n_heldout must be at least 1, got {self.n_heldout}")
            if self.n_folds != 1:
                raise ConfigError("choose either n_folds or n_heldout, not both")
        elif self.n_folds < 2:
            raise ConfigError(f"n_folds must be at least 2 (or set n_heldout), got {self.n_folds}")
        if self.n_valid is not None and self.valid_frac is not None:
            raise ConfigError("choose either n_valid or valid_frac, not both")
        if self.n_valid is not None and self.n_valid < 0:
            raise ConfigError(f"n_valid must be >= 0, got {self.n_valid}")
        if self.valid_frac is not None:
            check_fraction("valid_frac", self.valid_frac)
        check_fraction("target_frac", self.target_frac, allow_zero=False)
        if self.min_items < 1 or self.min_user_count < 1:
            raise ConfigError("min_items and min_user_count must be at least 1")

    @property
    def fixed(self) -> bool:
        return self.n_heldout is not None

    def prepare(self, data: Interactions) -> Interactions:
        return prepare_implicit(data, self.threshold, self.min_user_count)

    def user_groups(self, n_users: int, fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train, valid, test) user indices of one fold, each sorted."""
        perm = fold_rng(self.seed, 0).permutation(n_users)
        if self.fixed:
            n_test = self.n_heldout
            n_valid = self.n_heldout if self.n_valid is None and self.valid_frac is None else None
            rest = perm[: n_users - n_test][::-1]  # validation users sit just before the test users
            test = perm[n_users - n_test:]
        else:
            if n_users < self.n_folds:
                raise DataError(f"{n_users} users cannot make {self.n_folds} folds")
            bounds = np.linspace(0, n_users, self.n_folds + 1).round().astype(int)
            lo, hi = bounds[fold], bounds[fold + 1]
            test = perm[lo:hi]
            rest = np.concatenate([perm[hi:], perm[:lo]])  # continue after the test chunk, wrapping
            if self.n_valid is None and self.valid_frac is None:
                # one fold's worth, except with 2 folds, where that would leave no training users
                n_valid = len(test) if self.n_folds > 2 else int(round(TWO_FOLD_VALID_FRAC * len(rest)))
            else:
                n_valid = None
        if n_valid is None:
            n_valid = self.n_valid if self.n_valid is not None else int(round(self.valid_frac * len(rest)))
        if n_valid >= len(rest):
            raise DataError(f"{n_users} users leave no training users after {len(test)} test and {n_valid} validation users")
        valid, train = rest[:n_valid], rest[n_valid:]
        return np.sort(train), np.sort(valid), np.sort(test)

    def target_keys(self, data: Interactions, idx: np.ndarray, rng: np.random.Generator) -> tuple:
        """Sort keys (most significant first); within a user the first int(frac*n) are the target."""
        return (rng.random(len(idx)),)

    def split(self, data: Interactions):
        data = self.prepare(data)
        for f in range(self.n_folds):
            yield self._fold(data, f)

    def _fold(self, data: Interactions, f: int) -> RankingFold:
        train_u, valid_u, test_u = self.user_groups(data.n_users, f)
        role = np.zeros(data.n_users, dtype=np.int8)  # 0 train, 1 valid, 2 test
        role[valid_u], role[test_u] = 1, 2
        row = np.empty(data.n_users, dtype=np.int64)
        for users in (train_u, valid_u, test_u):
            row[users] = np.arange(len(users))
        u_role = role[data.user]

        is_train = u_role == 0
        vocab = np.unique(data.item[is_train])
        col = np.full(data.n_items, -1, dtype=np.int64)
        col[vocab] = np.arange(len(vocab))
        n_items = len(vocab)
        train = csr(row[data.user[is_train]], col[data.item[is_train]], (len(train_u), n_items))

        parts = []
        for r, users in ((1, valid_u), (2, test_u)):
            idx = np.flatnonzero((u_role == r) & (col[data.item] >= 0))
            rows, cols = row[data.user[idx]], col[data.item[idx]]
            target = self._pick_target(data, idx, rows, len(users), fold_rng(self.seed, 1, f, r))
            shape = (len(users), n_items)
            parts += [csr(rows[~target], cols[~target], shape), csr(rows[target], cols[target], shape)]

        return RankingFold(
            index=f, train=train, valid_in=parts[0], valid_out=parts[1], test_in=parts[2], test_out=parts[3],
            item_ids=data.item_ids[vocab], train_user_ids=data.user_ids[train_u],
            valid_user_ids=data.user_ids[valid_u], test_user_ids=data.user_ids[test_u],
        )

    def _pick_target(self, data, idx, rows, n_rows, rng) -> np.ndarray:
        n_u = np.bincount(rows, minlength=n_rows)
        # np.floor(frac * n) is int(frac * n) of the reference, float rounding included
        n_target = np.where(n_u >= self.min_items, np.floor(self.target_frac * n_u), 0).astype(np.int64)
        order, rank = rank_within_group(rows, *self.target_keys(data, idx, rng))
        target = np.zeros(len(idx), dtype=bool)
        target[order] = rank < n_target[rows[order]]
        return target


def prepare_implicit(data: Interactions, threshold: float | None, min_user_count: int) -> Interactions:
    """One interaction per (user, item), keep rating > threshold, one-pass user filter."""
    data = dedupe(data)
    if threshold is not None and data.rating is not None:
        data = data.binarize(threshold)
    if len(data) == 0:
        raise DataError(f"{data.name}: no interactions left after binarizing (rating > {threshold})")
    return data.filter_users(min_user_count)
