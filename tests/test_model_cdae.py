"""CDAE: negative sampler, planted item, fold-in vs known users, determinism, dense equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import sampled_blocks

from aerec.errors import ConfigError, DataError
from aerec.models.cdae import CDAE, sample_negatives
from aerec.models.layers import SparseBatch

# one fold-in row per block: the whole block but one item, which must rank first
HELD_OUT = [9, 10, 29]
HIST = sp.csr_matrix(([1.0] * 27, ([0] * 9 + [1] * 9 + [2] * 9, [*range(9), *range(11, 20), *range(20, 29)])),
                     shape=(3, 30))


@pytest.fixture(scope="module")
def fitted() -> CDAE:
    return CDAE(**CDAE.test_overrides).fit(sampled_blocks(), progress=False)


def test_sampler_never_samples_a_positive_and_is_uniform():
    rng = np.random.default_rng(0)
    n_items = 40
    X = sp.random(50, n_items, density=0.3, format="csr", random_state=1)
    X = sp.vstack([X, sp.csr_matrix(np.r_[np.ones(n_items - 1), 0.0][None, :]),  # one free item
                   sp.csr_matrix(np.ones((1, n_items)))]).tocsr()  # no free item
    coo = X.tocoo()
    rows, items = sample_negatives(coo.row, coo.col, X.shape[0], n_items, 5, rng)
    assert not np.asarray(X[rows, items]).any()
    counts = np.bincount(rows, minlength=X.shape[0])
    np.testing.assert_array_equal(counts[:-1], 5 * np.diff(X.indptr)[:-1])
    assert counts[-1] == 0 and set(items[rows == 50]) == {n_items - 1}
    # uniform over one row's free items: many draws, each free item within 20% of its share
    n = 2000  # rows with the same positives
    r, i = sample_negatives(np.repeat(np.arange(n), 4), np.tile([3, 4, 17, 30], n), n, n_items, 5, rng)
    freq = np.bincount(i, minlength=n_items)
    assert freq[[3, 4, 17, 30]].sum() == 0
    free = np.delete(freq, [3, 4, 17, 30])
    assert abs(free / free.mean() - 1).max() < 0.2


@pytest.mark.parametrize("loss", ["logistic_neg", "logistic", "square"])
def test_planted_held_out_item_ranks_first(loss, fitted):
    if loss == "logistic_neg":
        m = fitted
    else:
        m = CDAE(**CDAE.test_overrides, loss=loss).fit(sampled_blocks(), progress=False)
    idx, _ = m.recommend(HIST, k=1)
    assert idx[:, 0].tolist() == HELD_OUT


def test_score_users_uses_learned_vectors(fitted):
    users = np.array([0, 1, 2])  # training users of blocks 0, 1, 2
    with_v = fitted.score_users(users, HIST)
    assert with_v.shape == (3, 30) and not np.allclose(with_v, fitted.score(HIST))
    masked = np.where(HIST.toarray() > 0, -np.inf, with_v)
    assert masked.argmax(1).tolist() == HELD_OUT
    with pytest.raises(DataError):
        fitted.score_users([0, 60, 1], HIST)
    with pytest.raises(DataError):
        fitted.score_users([0], HIST)


def test_unseen_users_and_recommend_excludes_seen(fitted):
    hist = sp.vstack([HIST, sp.csr_matrix((2, 30))]).tocsr()  # rows past any training user
    idx, scores = fitted.recommend(hist, k=21)  # every unseen item of the fuller rows
    assert np.isfinite(scores).all()
    for r in range(3):
        assert not set(idx[r]) & set(HIST[r].indices)


def test_same_seed_same_scores(fitted):
    again = CDAE(**CDAE.test_overrides).fit(sampled_blocks(), progress=False)
    np.testing.assert_array_equal(again.score(HIST), fitted.score(HIST))
    other = CDAE(**CDAE.test_overrides, seed=1).fit(sampled_blocks(), progress=False)
    assert not np.array_equal(other.score(HIST), fitted.score(HIST))


def test_sparse_and_dense_forward_agree(fitted):
    net = fitted.net.eval()
    x = sp.random(7, 30, density=0.3, format="csr", random_state=3, dtype=np.float32)
    batch = SparseBatch.from_csr(x)
    uvec = net.user(torch.arange(7))
    dense = torch.from_numpy(x.toarray())
    with torch.no_grad():
        for v in (None, uvec):
            torch.testing.assert_close(net(batch, v), net.forward_dense(dense, v), atol=1e-5, rtol=1e-5)


def test_state_round_trip(fitted):
    again = CDAE(**fitted.config_dict())
    again.n_users, again.n_items = fitted.n_users, fitted.n_items
    again.init_network()
    again.load_state_tensors(fitted.state_tensors())
    again.fitted = True
    np.testing.assert_array_equal(again.score(HIST), fitted.score(HIST))
    np.testing.assert_array_equal(again.score_users([0, 1, 2], HIST), fitted.score_users([0, 1, 2], HIST))


def test_resume_matches_uninterrupted_run(tmp_path):
    cfg = {**CDAE.test_overrides, "epochs": 4, "tied": True}
    full = CDAE(**cfg).fit(sampled_blocks(), progress=False)

    def stop(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        CDAE(**cfg).fit(sampled_blocks(), progress=False, checkpoint_dir=tmp_path, on_epoch_end=stop)
    resumed = CDAE(**cfg).fit(sampled_blocks(), progress=False, checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(resumed.score(HIST), full.score(HIST))


def test_config():
    assert CDAE().config.learning_rate == 0.1
    assert CDAE(optimizer="adam").config.learning_rate == 1e-3
    assert CDAE(optimizer="adam", lr=0.01).config.learning_rate == 0.01
    for bad in ({"lr": 0}, {"dropout": 1.0}, {"loss": "hinge"}, {"negatives": 0}, {"hidden": 0}, {"epochs": 0}):
        with pytest.raises(ConfigError):
            CDAE(**bad)


def test_adagrad_step_divides_by_one_plus_root_accumulator():
    """The authors' AdaGrad: theta -= lr * g / (beta + sqrt(acc)), acc = 1e-4 + sum g^2, beta = 1."""
    m = CDAE(hidden=2, adagrad_beta=1.0)
    m.n_users, m.n_items = 3, 4
    m.init_network()
    opt = m.optimizers["main"]
    b = m.net.out_bias
    before = b.detach().clone()
    g = torch.tensor([0.5, -2.0, 0.0, 3.0])
    for p in m.net.parameters():
        p.grad = None
    b.grad = g.clone()
    opt.step()
    want = before - 0.1 * g / (1.0 + torch.sqrt(1e-4 + g * g))
    assert torch.allclose(b.detach(), want, atol=1e-7)
    b.grad = g.clone()  # the second step sees the accumulated squares
    opt.step()
    want = want - 0.1 * g / (1.0 + torch.sqrt(1e-4 + 2 * g * g))
    assert torch.allclose(b.detach(), want, atol=1e-7)


def test_adagrad_default_is_the_authors_beta_and_torchs_eps_an_option():
    assert CDAE().config.adagrad_beta == 1.0  # the authors' scripts (issue 22: no default from test folds)
    m = CDAE(hidden=2, adagrad_beta=1e-10)
    m.n_users, m.n_items = 3, 4
    m.init_network()
    b = m.net.out_bias
    before = b.detach().clone()
    g = torch.tensor([0.5, -2.0, 0.0, 3.0])
    b.grad = g.clone()
    m.optimizers["main"].step()
    assert torch.allclose(b.detach(), before - 0.1 * g / (1e-10 + torch.sqrt(1e-4 + g * g)), atol=1e-7)
