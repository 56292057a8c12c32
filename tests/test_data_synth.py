"""Synthetic data: determinism, sizes, valid values and real (learnable) signal."""

import numpy as np
import pytest

from aerec.data import synth
from aerec.errors import DataError


def test_same_seed_same_data_and_sizes():
    a, b = synth(300, 200, 6000, seed=3), synth(300, 200, 6000, seed=3)
    for f in ("user", "item", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.item, synth(300, 200, 6000, seed=4).item)
    assert (a.n_users, a.n_items) == (300, 200) and abs(len(a) - 6000) <= 60
    assert set(np.unique(a.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    key = a.user.astype(np.int64) * a.n_items + a.item
    assert len(np.unique(key)) == len(key)  # no duplicate (user, item)
    assert np.all(np.diff(a.user) >= 0)  # sorted by user, then time


def test_large_catalogue_path_and_popularity_skew():
    d = synth(2000, 5000, 40_000, seed=0)  # light users take the candidate-sampling path
    counts = np.sort(np.bincount(d.item, minlength=d.n_items))[::-1]
    assert counts[: d.n_items // 10].sum() > 0.3 * len(d)  # power-law popularity
    assert len(d) >= 0.99 * 40_000


def test_signal_is_learnable():
    """A rank-16 SVD of the training matrix ranks held-out items better than popularity."""
    d = synth(600, 300, 30_000, seed=1, rank=8)
    rng = np.random.default_rng(0)
    test = rng.random(len(d)) < 0.2
    X = d.select(~test).csr("ones").toarray()
    Y = d.select(test).csr("ones").toarray()
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    scores = {"svd": (u[:, :16] * s[:16]) @ vt[:16], "pop": np.tile(X.sum(0), (X.shape[0], 1))}
    hits = {}
    for name, sc in scores.items():
        sc = np.where(X > 0, -np.inf, sc)
        top = np.argsort(-sc, axis=1)[:, :10]
        hits[name] = np.take_along_axis(Y, top, axis=1).sum()
    assert hits["svd"] > 1.2 * hits["pop"]
    # explicit signal too: ratings correlate with the user's mean on other items
    assert np.corrcoef(d.rating, np.bincount(d.user, d.rating)[d.user] / np.bincount(d.user)[d.user])[0, 1] > 0.2


def test_tiny_and_invalid():
    d = synth(5, 3, 15, seed=0)  # every cell
    assert len(d) == 15
    assert len(synth(10, 10, 4, seed=0)) == 4  # fewer interactions than users
    with pytest.raises(DataError, match="do not fit"):
        synth(2, 2, 5)
    with pytest.raises(DataError, match="at least 1"):
        synth(0, 2, 1)
