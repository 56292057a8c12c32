"""AutoRec (I- and U-AutoRec) on a tiny planted low-rank rating matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import lowrank_ratings

from aerec import models
from aerec.errors import ConfigError, DataError
from aerec.models.layers import SparseBatch

SMALL = {"hidden": 16, "epochs": 40, "lam": 1.0, "lr": 0.03, "batch_size": 64, "patience": 0}


@pytest.fixture(scope="module")
def data():
    return lowrank_ratings()


def rmse_on(model, test):
    t = test.tocoo()
    pred = model.predict(t.row, t.col)
    return float(np.sqrt(np.mean((pred - t.data) ** 2)))


@pytest.mark.parametrize("variant", ["item", "user"])
def test_fits_low_rank_far_better_than_global_mean(data, variant):
    train, test = data
    m = models.create("autorec", variant=variant, **SMALL).fit(train, progress=False)
    base = float(np.sqrt(np.mean((test.data - train.data.mean()) ** 2)))
    assert rmse_on(m, test) < 0.8 * base


@pytest.mark.parametrize("variant", ["item", "user"])
def test_same_seed_same_predictions(data, variant):
    train, test = data
    t = test.tocoo()
    a = models.create("autorec", variant=variant, **SMALL).fit(train, progress=False).predict(t.row, t.col)
    b = models.create("autorec", variant=variant, **SMALL).fit(train, progress=False).predict(t.row, t.col)
    c = models.create("autorec", variant=variant, **{**SMALL, "seed": 1}).fit(train, progress=False).predict(t.row, t.col)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_loss_reads_only_observed_entries(data):
    train, _ = data
    m = models.create("autorec", **{**SMALL, "lam": 0.0, "epochs": 1}).fit(train, progress=False)
    block = train.T.tocsr()[:5]  # I-AutoRec rows are items
    batch = SparseBatch.from_csr(block)
    m.net.zero_grad()
    loss = m.batch_loss(batch, 1.0)
    loss.backward()
    unobserved = np.setdiff1d(np.arange(train.shape[0]), block.indices)
    grad = m.net.decoder_weight.grad
    assert len(unobserved) and torch.all(grad[unobserved] == 0) and grad.abs().sum() > 0
    with torch.no_grad():  # perturbing outputs at unobserved positions leaves the loss unchanged
        m.net.decoder_weight[unobserved] += 5.0
        m.net.decoder_bias[unobserved] -= 3.0
        assert torch.equal(m.batch_loss(batch, 1.0), loss.detach())


def test_explicit_zeros_are_unobserved(data):
    train, test = data
    coo = train.tocoo()
    free = [np.flatnonzero(train[r].toarray()[0] == 0)[0] for r in range(3)]  # an unrated cell per row
    padded = sp.csr_matrix((np.r_[coo.data, [0.0, 0.0, 0.0]], (np.r_[coo.row, [0, 1, 2]], np.r_[coo.col, free])),
                           shape=train.shape)
    assert padded.nnz == train.nnz + 3
    t = test.tocoo()
    a = models.create("autorec", **SMALL).fit(train, progress=False).predict(t.row, t.col)
    b = models.create("autorec", **SMALL).fit(padded, progress=False).predict(t.row, t.col)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("variant", ["item", "user"])
@pytest.mark.parametrize("default", ["three", "mean"])
def test_unseen_users_and_items_get_the_default_and_are_counted(data, variant, default):
    train, _ = data
    train = train.tolil()
    train[3, :] = 0  # user 3 and item 5 have no training rating
    train[:, 5] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    m = models.create("autorec", variant=variant, unseen_default=default, **SMALL).fit(train, progress=False)
    users, items = np.array([3, 3, 0, 1]), np.array([0, 5, 5, 1])
    pred = m.predict(users, items)
    expect = 3.0 if default == "three" else train.data.mean()
    assert np.allclose(pred[:3], expect) and np.isfinite(pred).all()
    assert m.unseen_counts() == {"pairs": 4, "unseen_users": 2, "unseen_items": 2, "defaulted": 3}
    assert m.unseen_counts(users, items)["defaulted"] == 3


def test_predictions_are_clipped_to_the_rating_range(data):
    train, _ = data
    m = models.create("autorec", rating_min=2.0, rating_max=4.0, **SMALL).fit(train, progress=False)
    u, i = np.repeat(np.arange(train.shape[0]), train.shape[1]), np.tile(np.arange(train.shape[1]), train.shape[0])
    pred = m.predict(u, i)
    assert pred.min() >= 2.0 and pred.max() <= 4.0 and (pred == 4.0).any()


def test_user_autorec_score_is_fold_in_and_matches_predict(data):
    train, _ = data
    m = models.create("autorec", variant="user", **SMALL).fit(train, progress=False)
    s = m.score(train[:4])
    p = m.predict(np.repeat(np.arange(4), train.shape[1]), np.tile(np.arange(train.shape[1]), 4))
    assert np.allclose(s.ravel(), p, atol=1e-5)
    assert np.allclose(m.score_users([0, 1, 2, 3]), s, atol=1e-5)


def test_item_autorec_score_users_and_fold_in(data):
    train, test = data
    m = models.create("autorec", **SMALL).fit(train, progress=False)
    s = m.score_users([2, 7])
    p = m.predict(np.repeat([2, 7], train.shape[1]), np.tile(np.arange(train.shape[1]), 2))
    assert np.allclose(s.ravel(), p, atol=1e-5)
    folded = m.score(train)  # ridge fold-in of each row; new users work the same way
    assert folded.shape == train.shape and np.isfinite(folded).all()
    t = test.tocoo()
    base = float(np.sqrt(np.mean((t.data - train.data.mean()) ** 2)))
    assert np.sqrt(np.mean((folded[t.row, t.col] - t.data) ** 2)) < base
    bad = models.create("autorec", output_activation="relu", **SMALL).fit(train, progress=False)
    with pytest.raises(DataError, match="fold"):
        bad.score(train[:2])


def test_rprop_full_batch_takes_one_step_per_epoch(data):
    train, _ = data
    m = models.create("autorec", **{**SMALL, "optimizer": "rprop", "lr": 0.01, "epochs": 15}).fit(train, progress=False)
    assert m.optimizer_steps == 15
    assert m.history[-1]["loss"] < m.history[0]["loss"]


def test_validation_selects_the_best_epoch(data):
    train, test = data
    m = models.create("autorec", **{**SMALL, "epochs": 8}).fit(train, test, progress=False)
    values = [h["valid_rmse"] for h in m.history]
    assert m.best_epoch == int(np.argmin(values)) + 1
    assert abs(rmse_on(m, test) - min(values)) < 1e-5


def test_bad_input_and_config():
    with pytest.raises(ConfigError):
        models.create("autorec", hidden=0)
    with pytest.raises(ConfigError):
        models.create("autorec", variant="both")
    with pytest.raises(ConfigError):
        models.create("autorec", rating_min=5, rating_max=1)
    train, _ = lowrank_ratings(n_users=10, n_items=8)
    m = models.create("autorec", **{**SMALL, "epochs": 1}).fit(train, progress=False)
    with pytest.raises(DataError, match="out of range"):
        m.predict([0, 10], [0, 1])
    with pytest.raises(DataError):
        m.predict([0.5], [1])
    with pytest.raises(DataError, match="not fitted"):
        models.create("autorec").predict([0], [0])
