"""Mult-VAE: planted blocks, the KL annealing schedule (across epochs and a resume), the KL term,
sparse/dense agreement, zero-norm rows, determinism."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.errors import ConfigError
from aerec.models import create
from aerec.models.multvae import MultVAE, gaussian_kl


def small(**kw):
    return create("multvae", **{**MultVAE.test_overrides, **kw})


def traced(model):
    """Record the beta used at every gradient step."""
    trace, original = [], model.current_beta
    model.current_beta = lambda: trace.append(original()) or trace[-1]
    return trace


@pytest.fixture(scope="module")
def fitted():
    x, held = block_data(n_users=60)
    return small().fit(x, progress=False), x, held


def test_ranks_planted_item_first(fitted):
    model, x, held = fitted
    top, _ = model.recommend(x, k=1)
    assert (top[:, 0] == held).all()


def test_scoring_uses_mu_and_is_stable(fitted):
    model, x, _ = fitted
    np.testing.assert_array_equal(model.score(x[:5]), model.score(x[:5]))  # z = mu, no sampling


def test_zero_norm_rows_give_finite_scores_and_loss(fitted):
    model, x, _ = fitted
    empty = sp.csr_matrix((3, x.shape[1]), dtype=np.float32)
    assert np.isfinite(model.score(empty)).all()
    with_empty = sp.vstack([x[:10], empty]).tocsr()
    fresh = small(epochs=2).fit(with_empty, progress=False)
    assert all(np.isfinite(r["loss"]) for r in fresh.history)
    assert np.isfinite(fresh.score(with_empty)).all()


def test_annealing_reaches_cap_on_schedule_across_epochs():
    x, _ = block_data(n_users=40)  # batch 16 -> 3 steps per epoch
    model = small(epochs=5, total_anneal_steps=10, anneal_cap=0.3, schedule="reference")
    trace = traced(model)
    model.fit(x, progress=False)
    assert model.update_count == 15
    expected = [min(0.3, s / 10) for s in range(15)]  # beta uses the count before the step
    np.testing.assert_allclose(trace, expected)
    assert trace[2] < 0.3 and trace[3] == trace[-1] == pytest.approx(0.3)  # cap from step 3 = 0.3 * 10


def test_constant_beta_and_no_annealing():
    x, _ = block_data(n_users=20)
    model = small(epochs=2, beta=0.7)
    trace = traced(model)
    model.fit(x, progress=False)
    assert trace == [0.7] * 4
    model = small(epochs=1, total_anneal_steps=0)
    trace = traced(model)
    model.fit(x, progress=False)
    assert trace == [0.2] * 2


class Stop(Exception):
    pass


def test_anneal_counter_survives_checkpoint_resume(tmp_path):
    x, _ = block_data(n_users=40)
    cfg = {"epochs": 4, "total_anneal_steps": 20, "anneal_cap": 0.5, "schedule": "reference"}
    whole = small(**cfg)
    whole_trace = traced(whole)
    whole.fit(x, progress=False)

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        small(**cfg).fit(x, progress=False, checkpoint_dir=tmp_path, on_epoch_end=stop_after_two)
    resumed = small(**cfg)
    trace = traced(resumed)
    resumed.fit(x, progress=False, checkpoint_dir=tmp_path, resume=True)
    assert resumed.update_count == whole.update_count == 12
    np.testing.assert_allclose(trace, whole_trace[6:])  # goes on counting from step 6
    np.testing.assert_array_equal(resumed.score(x), whole.score(x))


def test_kl_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1))




def test_same_seed_same_scores():
    x, _ = block_data(n_users=60)
    a, b, c = (small(epochs=3, seed=s).fit(x, progress=False) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.score(x), b.score(x))
    assert not np.array_equal(a.score(x), c.score(x))


def test_save_load_round_trip(fitted):
    model, x, _ = fitted
    clone = create("multvae", model.config_dict())
    clone.n_users, clone.n_items = model.n_users, model.n_items
    clone.init_network()
    clone.load_state_tensors({k: v.clone() for k, v in model.state_tensors().items()})
    clone.fitted = True
    np.testing.assert_array_equal(model.score(x), clone.score(x))


def test_reference_architecture():
    model = create("multvae")
    model.n_users, model.n_items = 10, 300
    model.init_network()
    shapes = [tuple(p.shape) for n, p in model.net.named_parameters() if n.endswith("weight")]
    assert shapes == [(300, 600), (400, 600), (600, 200), (300, 600)]  # nn.Linear stores [out, in]


def test_bad_config_is_one_line_error():
    with pytest.raises(ConfigError):
        create("multvae", total_anneal_steps=-1)
    with pytest.raises(ConfigError):
        create("multvae", beta=-0.1)
    with pytest.raises(ConfigError):
        create("multvae", latent=0)
