"""Temporal protocols: nothing from the future leaks into training.

``mode="global"``: one global time cut. With timestamps sorted, the latest ``test_frac`` of the
interactions is the test window and the ``valid_frac`` before it the validation window
(interactions at exactly a cut's timestamp fall on the later side, so the fractions are
approximate under ties). Train is everything before the validation window; the vocabulary is
the training items. A validation row is a user with training history and vocabulary items in the
validation window: input = their training history, target = those items. A test row likewise
has input = everything before the test window and target = the test-window items. Users with no
earlier history (cold-start) are not evaluated. One fold. Train, valid and test users overlap:
these are the same people at later times.

``mode="user"``: held-out users as in strong generalization (same options: ``n_folds`` or
``n_heldout``, ``n_valid``/``valid_frac``, ``min_items``), but each held-out user's target is
their *latest* ``n - int((1 - target_frac) * n)`` items by time (the SVAE reference's count), the
input the earlier ones: the split for sequential models. Ties in time are broken at random with the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from aerec import config as cfgmod
from aerec.data.interactions import Interactions
from aerec.errors import ConfigError, DataError
from aerec.protocols.base import Protocol, RankingFold, check_fraction, csr
from aerec.protocols.strong import StrongGeneralization, prepare_implicit, rank_within_group


class _LatestTarget(StrongGeneralization):
    """Strong generalization whose fold-in target is the latest items by time.

    A user with n items gets n - floor((1 - target_frac) * n) of them as target, as the SVAE
    reference (its input is the first int(0.8 n) items, the rest is the target): for n = 7 that is
    2 items where int(0.2 n) would give 1."""

    def target_keys(self, data, idx, rng):
        return (-data.timestamp[idx], rng.random(len(idx)))

    def _pick_target(self, data, idx, rows, n_rows, rng) -> np.ndarray:
        n_u = np.bincount(rows, minlength=n_rows)
        n_target = np.where(n_u >= self.min_items, n_u - np.floor((1.0 - self.target_frac) * n_u), 0).astype(np.int64)
        order, rank = rank_within_group(rows, *self.target_keys(data, idx, rng))
        target = np.zeros(len(idx), dtype=bool)
        target[order] = rank < n_target[rows[order]]
        return target


@dataclass(frozen=True)
class Temporal(Protocol):
    mode: Literal["global", "user"] = "global"
    test_frac: float = 0.1  # global mode
    valid_frac: float | None = None  # global: share of interactions (None: 0.1); user: as in strong
    target_frac: float = 0.2  # user mode
    n_folds: int | None = None  # user mode (None: 1 with n_heldout, else 5)
    n_heldout: int | None = None
    n_valid: int | None = None
    min_items: int = 5
    min_user_count: int = 5
    threshold: float | None = 3.5
    seed: int = cfgmod.seed_field()

    name = "temporal"

    @property
    def trains_on_test_users(self) -> bool:  # global: the test users' earlier items are training rows
        return self.mode == "global"

    def __post_init__(self):
        if self.n_folds is None:
            object.__setattr__(self, "n_folds", 1 if self.mode == "global" or self.n_heldout is not None else 5)
        self.validate()

    def validate(self) -> None:
        if self.mode not in ("global", "user"):
            raise ConfigError(f"mode must be 'global' or 'user', got {self.mode!r}")
        if self.mode == "global":
            check_fraction("test_frac", self.test_frac, allow_zero=False)
            check_fraction("valid_frac", self._global_valid_frac)
            if self.test_frac + self._global_valid_frac >= 1:
                raise ConfigError("test_frac + valid_frac must be below 1")
            if self.n_folds != 1 or self.n_heldout is not None or self.n_valid is not None:
                raise ConfigError("mode='global' makes one fold; n_folds, n_heldout and n_valid apply to mode='user'")
        else:
            self._user_protocol()  # validates the shared options

    @property
    def _global_valid_frac(self) -> float:
        return 0.1 if self.valid_frac is None else self.valid_frac

    def _user_protocol(self) -> StrongGeneralization:
        return _LatestTarget(n_folds=self.n_folds, n_heldout=self.n_heldout, n_valid=self.n_valid,
                             valid_frac=self.valid_frac, target_frac=self.target_frac, min_items=self.min_items,
                             min_user_count=self.min_user_count, threshold=self.threshold, seed=self.seed)

    def split(self, data: Interactions):
        if data.timestamp is None:
            raise DataError(f"{data.name}: the temporal protocol needs timestamps; this data set has none")
        if self.mode == "user":
            yield from self._user_protocol().split(data)
            return
        yield self._global(data)

    def _global(self, data: Interactions) -> RankingFold:
        data = prepare_implicit(data, self.threshold, self.min_user_count)  # the same steps as strong
        n = len(data)
        ts = np.sort(data.timestamp)
        n_test = int(round(self.test_frac * n))
        n_valid = int(round(self._global_valid_frac * n))
        if n_test < 1 or n - n_test - n_valid < 1:
            raise DataError(f"{n} interactions are too few for the temporal cut")
        t_test = ts[n - n_test]
        t_valid = ts[n - n_test - n_valid] if n_valid else t_test
        period = np.where(data.timestamp >= t_test, 2, np.where(data.timestamp >= t_valid, 1, 0))

        is_train = period == 0
        vocab = np.unique(data.item[is_train])
        if len(vocab) == 0:
            raise DataError(f"{data.name}: no training interactions before the temporal cut")
        col = np.full(data.n_items, -1, dtype=np.int64)
        col[vocab] = np.arange(len(vocab))
        train_u = np.unique(data.user[is_train])
        row = np.full(data.n_users, -1, dtype=np.int64)
        row[train_u] = np.arange(len(train_u))
        train = csr(row[data.user[is_train]], col[data.item[is_train]], (len(train_u), len(vocab)))

        in_vocab = col[data.item] >= 0
        parts, users = [], []
        for p_out in (1, 2):
            before = in_vocab & (period < p_out)
            after = in_vocab & (period == p_out)
            # evaluated users: a target in this window and some history before it
            has_hist = np.zeros(data.n_users, dtype=bool)
            has_hist[data.user[before]] = True
            u = np.unique(data.user[after])
            u = u[has_hist[u]]
            r = np.full(data.n_users, -1, dtype=np.int64)
            r[u] = np.arange(len(u))
            shape = (len(u), len(vocab))
            m_in = before & (r[data.user] >= 0)
            m_out = after & (r[data.user] >= 0)
            parts += [csr(r[data.user[m_in]], col[data.item[m_in]], shape),
                      csr(r[data.user[m_out]], col[data.item[m_out]], shape)]
            users.append(u)
        return RankingFold(
            index=0, train=train, valid_in=parts[0], valid_out=parts[1], test_in=parts[2], test_out=parts[3],
            item_ids=data.item_ids[vocab], train_user_ids=data.user_ids[train_u],
            valid_user_ids=data.user_ids[users[0]], test_user_ids=data.user_ids[users[1]],
        )
