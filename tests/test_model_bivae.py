"""BiVAE: the three likelihoods against hand computations on a tiny matrix, the KL, the
alternating item/user epoch with stored codes, fold-in of new users, planted blocks."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.errors import ConfigError
from aerec.models import create
from aerec.models.bivae import EPS, BiVAE, gaussian_kl_std, log_likelihood
from aerec.models.layers import SparseBatch

X = np.array([[1, 0, 1], [0, 0, 0], [0, 2, 1]], dtype=np.float32)
P = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.3, 0.5], [0.4, 0.7, 0.05]], dtype=torch.float64)


def batch():
    b = SparseBatch.from_csr(sp.csr_matrix(X))
    return b.with_values(b.values.double())


def test_poisson_log_likelihood_by_hand():
    expected = [sum(float(X[r, j]) * math.log(P[r, j].item() + EPS) - P[r, j].item() for j in range(3)) for r in range(3)]
    # row 0 spelled out: log 0.9 + log 0.6 - (0.9 + 0.2 + 0.6)
    assert expected[0] == pytest.approx(math.log(0.9) + math.log(0.6) - 1.7, rel=1e-9)
    np.testing.assert_allclose(log_likelihood(batch(), P, "pois").numpy(), expected, rtol=1e-12)


def test_bernoulli_and_gaussian_log_likelihoods_equal_the_dense_formulas():
    x = torch.from_numpy(X).double()
    bern = (x * torch.log(P + EPS) + (1 - x) * torch.log(1 - P + EPS)).sum(1)
    gaus = -((x - P) ** 2).sum(1)
    torch.testing.assert_close(log_likelihood(batch(), P, "bern"), bern)
    torch.testing.assert_close(log_likelihood(batch(), P, "gaus"), gaus)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, std = torch.randn(4, 3, generator=g), torch.rand(4, 3, generator=g) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, std),
                                            torch.distributions.Normal(torch.zeros(3), torch.ones(3))).sum(1)
    torch.testing.assert_close(gaussian_kl_std(mu, std), ref)


def test_epoch_updates_stored_codes_and_scores_new_users_by_the_user_encoder():
    x, held = block_data(n_users=30)
    model = create("bivae", **{**BiVAE.test_overrides, "epochs": 1})
    model.fit(x, progress=False)
    net = model.net
    assert net.mu_beta.abs().sum() > 0 and net.mu_theta.abs().sum() > 0
    assert not torch.equal(net.theta, net.mu_theta)  # sampled codes differ from the means
    new = x[:4]
    with torch.no_grad():
        mu, _ = net.user(SparseBatch.from_csr(new))
    np.testing.assert_allclose(model.score(new), (mu @ net.mu_beta.T).numpy(), rtol=1e-6)
    # ratings are binarized as in Cornac: a history of 5s scores like one of 1s
    fives = new.copy()
    fives.data[:] = 5.0
    np.testing.assert_array_equal(model.score(fives), model.score(new))


def test_fit_ends_with_cornacs_final_pass_over_every_mean():
    x, _ = block_data(n_users=40)  # 40 users, 24 items: several user and item batches of 16
    model = create("bivae", **{**BiVAE.test_overrides, "epochs": 3, "batch_size": 16})
    model.fit(x, progress=False)
    net, ones = model.net, x.copy()
    ones.data[:] = 1.0
    with torch.no_grad():  # the final encoders' means of every item column and every user row
        items, _ = net.item(SparseBatch.from_csr(ones.T.tocsr()))
        users, _ = net.user(SparseBatch.from_csr(ones))
    torch.testing.assert_close(net.mu_beta, items, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.mu_theta, users, rtol=1e-5, atol=1e-6)


def test_ranks_planted_item_first_and_scores_empty_rows():
    x, held = block_data(n_users=60)
    model = create("bivae", **BiVAE.test_overrides).fit(x, progress=False)
    top, _ = model.recommend(x, k=1)
    assert (top[:, 0] == held).mean() > 0.9
    assert np.isfinite(model.score(sp.csr_matrix((2, x.shape[1]), dtype=np.float32))).all()


def test_bad_config_is_one_line_error():
    for bad in ({"k": 0}, {"likelihood": "mult"}, {"beta_kl": -1}):
        with pytest.raises(ConfigError):
            create("bivae", **bad)
