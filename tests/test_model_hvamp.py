"""H+Vamp (Gated): the VampPrior density against a hand-computed mixture, the gated unit,
shapes and gradients, the per-epoch beta warm-up, planted blocks."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.errors import ConfigError
from aerec.models import create
from aerec.models.hvamp import HVamp, HVampConfig, HVampNet, Unit, log_mixture, log_normal_diag
from aerec.models.layers import SparseBatch


def small(**kw):
    return create("hvamp", **{**HVamp.test_overrides, **kw})


def test_log_mixture_equals_hand_computed_gaussian_mixture():
    z = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-2.0, 3.0]], dtype=torch.float64)
    logvars = torch.tensor([[0.0, 0.0], [math.log(0.25), math.log(4.0)], [1.0, -1.0]], dtype=torch.float64)
    for r in range(2):
        dens = 0.0
        for c in range(3):
            p = 1.0
            for d in range(2):
                var = math.exp(logvars[c, d].item())
                p *= math.exp(-((z[r, d].item() - means[c, d].item()) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)
            dens += p / 3
        assert log_mixture(z, means, logvars)[r].item() == pytest.approx(math.log(dens), rel=1e-12)
    # one component: the plain diagonal Gaussian
    torch.testing.assert_close(log_mixture(z, means[1:2], logvars[1:2]), log_normal_diag(z, means[1:2], logvars[1:2]))


def test_vampprior_components_are_the_posterior_at_the_pseudo_inputs():
    torch.manual_seed(0)
    net = HVampNet(10, HVampConfig(hidden=8, z1=3, z2=3, components=4)).eval()
    means, logvars = net.prior_components()
    u = net.pseudo.clamp(0, 1)
    m, lv = net._q_z2_tail(net.q_z2_first.forward_dense(u))
    torch.testing.assert_close(means, m)
    z = torch.randn(5, 3)
    torch.testing.assert_close(net.log_p_z2(z), log_mixture(z, m, lv))


def test_gated_unit_is_linear_times_sigmoid_gate():
    torch.manual_seed(0)
    unit = Unit(4, 3, gated=True)
    x = torch.randn(2, 4)
    w, b = unit.lin.weight, unit.lin.bias
    expected = (x @ w[:3].T + b[:3]) * torch.sigmoid(x @ w[3:].T + b[3:])
    torch.testing.assert_close(unit(x), expected)
    plain = Unit(4, 3, gated=False)
    torch.testing.assert_close(plain(x), torch.tanh(plain.lin(x)))


def test_shapes_and_gradients_reach_every_part():
    torch.manual_seed(0)
    net = HVampNet(12, HVampConfig(hidden=8, z1=3, z2=4, components=5)).train()
    x, _ = block_data(n_users=6, n_blocks=2, block=6)
    logits, kl = net(SparseBatch.from_csr(x))
    assert logits.shape == (6, 12) and kl.shape == (6,) and torch.isfinite(kl).all()
    (logits.logsumexp(1) + kl).mean().backward()
    for p in [net.pseudo, net.q_z2_first.lin.weight, net.q_z1_x.lin.weight, net.p_z1_mean.weight, net.p_x_out.weight]:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_beta_warms_up_per_epoch():
    m = create("hvamp", max_beta=0.3, warmup=4)
    assert [m.beta_at(e) for e in range(6)] == pytest.approx([0.075, 0.15, 0.225, 0.3, 0.3, 0.3])
    assert create("hvamp", warmup=0, max_beta=0.2).beta_at(0) == 0.2


def test_no_early_stop_during_the_warm_up_and_patience_counted_after(monkeypatch):
    from aerec.models import training

    monkeypatch.setattr(training, "validation_score", lambda model, valid: 0.5)  # epoch 1 stays best
    x, _ = block_data(12)
    m = small(epochs=20, warmup=5, patience=2).fit(x, (x, x), progress=False)
    assert m.no_stop_before() == 5 and m.stop_floor == 5
    assert m.epochs_run == 7 and m.best_epoch == 1  # 5 warm-up epochs, then 2 without gain
    m = small(epochs=20, warmup=0, patience=2).fit(x, (x, x), progress=False)
    assert m.epochs_run == 3  # no warm-up: patience from epoch 1
    assert create("hvamp").no_stop_before() == 100  # the reference's warm-up


def test_ranks_planted_item_first_and_scores_empty_rows():
    x, held = block_data(n_users=60)
    model = small().fit(x, progress=False)
    top, _ = model.recommend(x, k=1)
    assert (top[:, 0] == held).mean() > 0.9
    assert np.isfinite(model.score(sp.csr_matrix((2, x.shape[1]), dtype=np.float32))).all()


def test_bad_config_is_one_line_error():
    for bad in ({"layers": 1}, {"components": 0}, {"dropout": 1.0}, {"max_beta": -1}):
        with pytest.raises(ConfigError):
            create("hvamp", **bad)
