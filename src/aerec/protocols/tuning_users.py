"""Tuning-only users (issue 22): a seeded share of users set aside for hyperparameter search.

``set_aside(data, share, seed)`` splits the users in two: the tuning users, and the rest, on
which the evaluation protocol (k folds) then runs, so no tuning user is in any fold's training,
validation or test part. ``tuning_fold(protocol, tuning_data)`` cuts the tuning users alone into
one fold of the same protocol: ``VALID_SHARE`` of them are validation users (with the protocol's
own fold-in, 80/20 by default), the rest fit; it has no test part. A rating protocol's tuning fold
holds out ``VALID_SHARE`` of the tuning users' ratings instead.

One study per model runs on that fold, and its chosen setting is then trained and tested on every
fold of the rest: the test users never touch tuning, not even as training rows of a study, which
the per-fold mode (one study per fold, fitting on users that other folds test) cannot say.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from aerec.data.interactions import Interactions
from aerec.errors import ConfigError, DataError
from aerec.protocols.base import RankingFold, RatingFold, check_fraction, fold_rng

SHARE = 0.15  # of the users, set aside for tuning
VALID_SHARE = 0.3  # of the tuning users (ratings): the study's validation part


def set_aside(data: Interactions, share: float = SHARE, seed: int = 0) -> tuple[Interactions, Interactions]:
    """(tuning users' data, everyone else's data), each compacted; seeded, independent of folds."""
    check_fraction("tuning share", share, allow_zero=False)
    users = np.unique(data.user)
    if len(users) < 4:
        raise DataError(f"{data.name}: {len(users)} users are too few to set tuning users aside")
    n = max(2, int(round(share * len(users))))
    if n >= len(users) - 1:
        raise ConfigError(f"a tuning share of {share} leaves no users to evaluate on")
    chosen = users[fold_rng(seed, 22).permutation(len(users))[:n]]
    mask = np.isin(data.user, chosen)
    tuning, rest = data.select(mask).compact(), data.select(~mask).compact()
    meta = {"tuning_share": share, "tuning_users": int(n)}
    return (dataclasses.replace(tuning, name=f"{data.name} (tuning users)", meta={**data.meta, **meta}),
            dataclasses.replace(rest, meta={**data.meta, **meta}))


def tuning_fold(protocol, tuning: Interactions):
    """The tuning users as one fold of ``protocol``: validation = VALID_SHARE of them (or of their
    ratings), training = the rest, no test part."""
    from aerec.protocols.ratings import RatingHoldout, RatingKFold
    from aerec.protocols.strong import StrongGeneralization
    from aerec.protocols.temporal import Temporal

    if isinstance(protocol, (RatingKFold, RatingHoldout)):
        f = RatingHoldout(test_frac=VALID_SHARE, valid_frac=0.0, repeats=1, seed=protocol.seed).folds(tuning)[0]
        empty = sp.csr_matrix(f.test.shape, dtype=f.test.dtype)
        return RatingFold(index=0, train=f.train, valid=f.test, test=empty, user_ids=f.user_ids, item_ids=f.item_ids)
    if isinstance(protocol, Temporal) and protocol.mode == "user":
        user_protocol = protocol._user_protocol()
    elif isinstance(protocol, StrongGeneralization):
        user_protocol = protocol
    else:
        raise ConfigError(f"protocol '{protocol.name}' has no held-out users to set tuning users aside from")
    n_users = user_protocol.prepare(tuning).n_users
    n_valid = max(1, int(round(VALID_SHARE * n_users)))
    if n_valid >= n_users:
        raise DataError(f"{n_users} tuning users are too few to fit and validate")
    one = dataclasses.replace(user_protocol, n_folds=1, n_heldout=n_valid, n_valid=0, valid_frac=None)
    f = one.folds(tuning)[0]  # its "test" users are the study's validation users
    empty = sp.csr_matrix((0, f.n_items), dtype=np.float32)
    return RankingFold(index=0, train=f.train, valid_in=f.test_in, valid_out=f.test_out, test_in=empty,
                       test_out=empty, item_ids=f.item_ids, train_user_ids=f.train_user_ids,
                       valid_user_ids=f.test_user_ids, test_user_ids=f.test_user_ids[:0])
