"""RecVAE: planted blocks, the composite prior and loss against a direct dense formula, the old
encoder's refresh schedule, sparse/dense agreement, zero-norm rows, determinism."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.errors import ConfigError
from aerec.models import create
from aerec.models.layers import SparseBatch
from aerec.models.recvae import RecVAE


def small(**kw):
    return create("recvae", **{**RecVAE.test_overrides, **kw})


def built(x, **kw):
    model = small(**kw)
    model.n_users, model.n_items = x.shape
    model.init_network()
    return model


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def fitted():
    x, held = block_data(n_users=60)
    return small().fit(x, progress=False), x, held


def test_ranks_planted_item_first(fitted):
    model, x, held = fitted
    top, _ = model.recommend(x, k=1)
    assert (top[:, 0] == held).all()


def test_prior_weights_sum_to_one_and_are_checked():
    cfg = create("recvae").config
    assert sum(cfg.mixture_weights) == pytest.approx(1.0)
    assert cfg.mixture_weights == pytest.approx((3 / 20, 3 / 4, 1 / 10))
    for bad in [(0.5, 0.5, 0.5), (0.5, 0.5), (1.0, 0.0, 0.0)]:
        with pytest.raises(ConfigError):
            create("recvae", mixture_weights=bad)


def test_old_encoder_changes_only_at_refresh():
    x, _ = block_data(n_users=20)
    model = built(x)
    rng = np.random.default_rng(0)
    old, enc, dec = snapshot(model.net.encoder_old), snapshot(model.net.encoder), snapshot(model.net.decoder)
    model._pass(x, rng, 0.5, encoder_phase=True)  # encoder phase: only the encoder moves
    assert same(old, snapshot(model.net.encoder_old)) and same(dec, snapshot(model.net.decoder))
    assert not same(enc, snapshot(model.net.encoder))
    model.net.refresh_old_encoder()
    enc = snapshot(model.net.encoder)
    assert same(enc, snapshot(model.net.encoder_old))
    model._pass(x, rng, 0.0, encoder_phase=False)  # decoder phase: only the decoder moves
    assert same(enc, snapshot(model.net.encoder)) and same(enc, snapshot(model.net.encoder_old))
    assert not same(dec, snapshot(model.net.decoder))
    assert all(not p.requires_grad for p in model.net.encoder_old.parameters())


def test_epoch_is_three_encoder_passes_then_refresh_then_decoder_pass(monkeypatch):
    x, _ = block_data(n_users=20)
    model = built(x)
    calls = []
    monkeypatch.setattr(model, "_pass", lambda train, rng, p, encoder_phase, total=None:
                        calls.append((p, encoder_phase)) or (torch.zeros((), dtype=torch.float64), 1))
    monkeypatch.setattr(model.net, "refresh_old_encoder", lambda: calls.append("refresh"))
    model._train_epoch(x, 0, np.random.default_rng(0))
    assert calls == [(0.5, True)] * 3 + ["refresh", (0.0, False)]


def dense_reference_loss(net, x, eps, gamma, weights=(3 / 20, 3 / 4, 1 / 10)):
    """The reference loss written directly on a dense block with torch.distributions."""
    mu, logvar = net.encoder.forward_dense(x)
    z = mu + eps * torch.exp(0.5 * logvar)
    mll = (torch.log_softmax(net.decoder(z), 1) * x).sum(1).mean()
    mu_old, logvar_old = net.encoder_old.forward_dense(x)
    normal = torch.distributions.Normal
    comps = [normal(0.0, 1.0).log_prob(z), normal(mu_old, torch.exp(0.5 * logvar_old)).log_prob(z),
             normal(0.0, math.exp(5.0)).log_prob(z)]
    log_p = torch.logsumexp(torch.stack([c + math.log(w) for c, w in zip(comps, weights)]), 0)
    log_q = normal(mu, torch.exp(0.5 * logvar)).log_prob(z)
    kl = ((log_q - log_p).sum(1) * gamma * x.sum(1)).mean()
    return -(mll - kl)


def test_loss_matches_dense_reference_formula():
    x, _ = block_data(n_users=12)
    x = x.multiply(2.0).tocsr()  # |x_u| = 14, so the per-user KL weight is not trivial
    model = built(x, gamma=0.05)
    model.net.train()
    model.net.refresh_old_encoder()
    with torch.no_grad():
        for p in model.net.encoder_old.parameters():
            p.add_(0.01 * torch.randn_like(p))  # an old posterior that differs from the current one
    torch.manual_seed(3)
    ours = model._loss(SparseBatch.from_csr(x), 0.0, encoder_phase=True)
    torch.manual_seed(3)
    eps = torch.randn(x.shape[0], model.config.latent)
    with torch.no_grad():
        ref = dense_reference_loss(model.net, torch.from_numpy(x.toarray()), eps, 0.05)
    torch.testing.assert_close(ours.detach(), ref, atol=1e-4, rtol=1e-5)


def test_constant_beta_replaces_gamma():
    x, _ = block_data(n_users=12)
    model = built(x, beta=0.0, gamma=5.0)
    torch.manual_seed(0)
    with_beta0 = model._loss(SparseBatch.from_csr(x), 0.0, True)
    model.config.beta, model.config.gamma = None, 0.0
    torch.manual_seed(0)
    with_gamma0 = model._loss(SparseBatch.from_csr(x), 0.0, True)
    torch.testing.assert_close(with_beta0, with_gamma0)




def test_zero_norm_rows_give_finite_scores_and_loss(fitted):
    model, x, _ = fitted
    empty = sp.csr_matrix((3, x.shape[1]), dtype=np.float32)
    assert np.isfinite(model.score(empty)).all()
    with_empty = sp.vstack([x[:10], empty]).tocsr()
    fresh = small(epochs=1).fit(with_empty, progress=False)
    assert np.isfinite(fresh.history[0]["loss"])


def test_same_seed_same_scores():
    x, _ = block_data(n_users=60)
    a, b, c = (small(epochs=1, seed=s).fit(x, progress=False) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.score(x), b.score(x))
    assert not np.array_equal(a.score(x), c.score(x))


def test_save_load_round_trip_includes_old_encoder(fitted):
    model, x, _ = fitted
    state = model.state_tensors()
    assert any(k.startswith("encoder_old.") for k in state)
    clone = create("recvae", model.config_dict())
    clone.n_users, clone.n_items = model.n_users, model.n_items
    clone.init_network()
    clone.load_state_tensors({k: v.clone() for k, v in state.items()})
    clone.fitted = True
    np.testing.assert_array_equal(model.score(x), clone.score(x))
    assert same(snapshot(model.net.encoder_old), snapshot(clone.net.encoder_old))


def test_bad_config_is_one_line_error():
    with pytest.raises(ConfigError):
        create("recvae", layers=0)
    with pytest.raises(ConfigError):
        create("recvae", gamma=-1)
    with pytest.raises(ConfigError):
        create("recvae", enc_epochs=0)
