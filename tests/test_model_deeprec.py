"""DeepRec on a tiny planted low-rank rating matrix: fit, masked loss, re-feeding, schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import lowrank_ratings

from aerec import models
from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch

SMALL = {"layers": (16, 8), "dropout": 0.0, "epochs": 100, "optimizer": "adam", "lr": 0.01,
         "batch_size": 64, "last_layer_linear": True, "patience": 0}


@pytest.fixture(scope="module")
def data():
    return lowrank_ratings()


def rmse_on(model, test):
    t = test.tocoo()
    return float(np.sqrt(np.mean((model.predict(t.row, t.col) - t.data) ** 2)))


@pytest.mark.parametrize("constrained", [False, True])
def test_fits_low_rank_far_better_than_global_mean(data, constrained):
    train, test = data
    m = models.create("deeprec", constrained=constrained, **SMALL).fit(train, progress=False)
    base = float(np.sqrt(np.mean((test.data - train.data.mean()) ** 2)))
    # tied weights learn slower on this tiny set (the output layer reuses the input layer)
    assert rmse_on(m, test) < (0.95 if constrained else 0.8) * base
    names = dict(m.net.named_parameters())
    assert ("last_w" in names) != constrained and ("dec_w.0" in names) != constrained


def test_same_seed_same_predictions(data):
    train, test = data
    t = test.tocoo()
    cfg = {**SMALL, "dropout": 0.5, "optimizer": "sgd", "epochs": 5}
    a = models.create("deeprec", **cfg).fit(train, progress=False).predict(t.row, t.col)
    b = models.create("deeprec", **cfg).fit(train, progress=False).predict(t.row, t.col)
    c = models.create("deeprec", **{**cfg, "seed": 3}).fit(train, progress=False).predict(t.row, t.col)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("refeed", [0, 1, 2])
def test_refeeding_takes_the_extra_steps_and_keeps_the_last_partial_batch(data, refeed):
    train, _ = data  # 50 users with ratings, batch 16: 4 batches, the last of 2 rows is kept
    m = models.create("deeprec", **{**SMALL, "epochs": 3, "batch_size": 16, "refeed": refeed}).fit(train, progress=False)
    assert m.optimizer_steps == 3 * 4 * (1 + refeed)


def test_refeed_step_trains_on_the_dense_output(data):
    train, _ = data
    m = models.create("deeprec", **{**SMALL, "epochs": 1, "refeed": 1}).fit(train, progress=False)
    seen = []
    m._decode = (lambda orig: lambda codes, cols=None: seen.append(orig(codes, cols).shape) or orig(codes, cols))(m._decode)
    m.net.train()
    m._inputs = train
    m._train_epoch(train, 0, np.random.default_rng(0))
    m._inputs = None
    assert seen and all(s == (s[0], train.shape[1]) for s in seen)  # f(x), then f(f(x)): n-wide


def test_masked_loss_ignores_unobserved_outputs(data):
    train, _ = data
    m = models.create("deeprec", **{**SMALL, "epochs": 1}).fit(train, progress=False)
    block = train[:2]
    batch = SparseBatch.from_csr(block)
    m.net.zero_grad()
    loss, _ = m.batch_loss(batch)
    loss.backward()
    unobserved = np.setdiff1d(np.arange(train.shape[1]), block.indices)
    assert len(unobserved) and torch.all(m.net.last_w.grad[unobserved] == 0)
    with torch.no_grad():
        m.net.last_w[unobserved] += 4.0
        m.net.dec_b[-1][unobserved] -= 2.0
        assert torch.equal(m.batch_loss(batch)[0], loss.detach())


def test_sgd_schedule_halves_lr_at_the_milestones_without_shift(data):
    train, _ = data
    lrs = []
    m = models.create("deeprec", **{**SMALL, "optimizer": "sgd", "lr": 0.004, "epochs": 4,
                                    "lr_milestones": (1, 3), "refeed": 0, "schedule": "reference"})
    m.fit(train, progress=False, on_epoch_end=lambda rec: lrs.append(m.optimizers["main"].param_groups[0]["lr"]))
    assert lrs == [0.004, 0.002, 0.002, 0.001]


def test_unseen_users_and_items_get_the_default(data):
    train, _ = data
    train = train.tolil()
    train[4, :] = 0
    train[:, 2] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    m = models.create("deeprec", **{**SMALL, "epochs": 5}).fit(train, progress=False)
    pred = m.predict(np.array([4, 0, 1]), np.array([0, 2, 3]))
    assert np.allclose(pred[:2], 3.0) and 1.0 <= pred[2] <= 5.0
    assert m.unseen_counts() == {"pairs": 3, "unseen_users": 1, "unseen_items": 1, "defaulted": 2}
    s = m.score(train[:6])  # fold-in: the empty row and the unseen item get the default
    assert np.allclose(s[4], 3.0) and np.allclose(s[:, 2], 3.0)


def test_bad_config():
    for bad in ({"dropout": 1.0}, {"refeed": -1}, {"layers": ()}, {"optimizer": "adagrad"}, {"momentum": 1.0}):
        with pytest.raises(ConfigError):
            models.create("deeprec", **bad)
