"""WARP: the sampled WARP loss by hand (zero past the margin, first violator, rank weight), the
Mult-VAE loss option, and the model on planted blocks."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.errors import ConfigError
from aerec.models import create
from aerec.models.layers import SparseBatch
from aerec.models.ranking_losses import harmonic, warp_from_candidates, warp_loss
from aerec.models.warp import WARP


def one_row(items, n_items):
    return SparseBatch.from_csr(sp.csr_matrix((np.ones(len(items), np.float32), ([0] * len(items), items)),
                                              shape=(1, n_items)))


def test_zero_when_every_positive_clears_the_margin():
    torch.manual_seed(0)
    target = one_row([0, 3], 10)
    for gap in (1.0, 1.5, 4.0):  # a negative exactly `margin` below a positive does not violate
        logits = torch.zeros(1, 10)
        logits[0, [0, 3]] = gap
        assert warp_loss(logits, target, n_negatives=50, margin=1.0).item() == 0.0
    logits = torch.zeros(1, 10)
    logits[0, [0, 3]] = 0.5  # inside the margin: every draw violates
    assert warp_loss(logits, target, n_negatives=5, margin=1.0).item() > 0


def test_first_violator_and_rank_weight_by_hand():
    target = one_row([0], 10)  # one positive, 9 negatives
    logits = torch.full((1, 10), -5.0)
    logits[0, 0] = 0.0
    logits[0, 3] = 0.5  # the only violator
    valid = torch.ones(1, 4, dtype=torch.bool)
    # violator found on draw 3: rank estimate floor(9 / 3) = 3, weight L(3) = 1 + 1/2 + 1/3; hinge 1 + 0.5
    late = warp_from_candidates(logits, target, torch.tensor([[1, 2, 3, 4]]), valid)
    assert late.item() == pytest.approx((1 + 1 / 2 + 1 / 3) * 1.5)
    # found on draw 1: rank estimate 9, a larger weight for the same hinge
    early = warp_from_candidates(logits, target, torch.tensor([[3, 1, 2, 4]]), valid)
    assert early.item() == pytest.approx(float(harmonic(torch.tensor(9))) * 1.5)
    assert early > late
    # nothing violates among the draws: no loss
    assert warp_from_candidates(logits, target, torch.tensor([[1, 2, 4, 5]]), valid).item() == 0.0


def test_positive_draws_are_skipped_and_not_counted():
    target = one_row([0, 1], 10)  # 8 negatives
    logits = torch.full((1, 10), -5.0)
    logits[0, [0, 1]] = 0.0
    logits[0, 5] = 0.2
    cand = torch.tensor([[1, 5], [5, 0]])  # first positive draws a positive first; second draws 5 first
    valid = torch.tensor([[False, True], [True, False]])
    out = warp_from_candidates(logits, target, cand, valid)
    # both find item 5 on their first valid draw: weight L(8) each, hinge 1.2 each
    assert out.item() == pytest.approx(2 * float(harmonic(torch.tensor(8))) * 1.2, rel=1e-6)


def test_weight_grows_with_estimated_rank():
    w = harmonic(torch.arange(0, 50))
    assert w[0] == 0 and w[1] == 1 and (torch.diff(w) > 0).all()


def test_gradient_reaches_only_the_pair():
    target = one_row([0], 6)
    logits = torch.tensor([[0.0, -3, 0.4, -3, -3, -3]], requires_grad=True)
    warp_from_candidates(logits, target, torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.bool)).sum().backward()
    w = float(harmonic(torch.tensor(2)))  # 5 negatives, found on draw 2: floor(5 / 2) = 2
    torch.testing.assert_close(logits.grad, torch.tensor([[-w, 0, w, 0, 0, 0]]))


def test_model_ranks_planted_item_first_and_is_deterministic():
    x, held = block_data(n_users=48)
    a = create("warp", WARP.test_overrides).fit(x, progress=False)
    assert (a.recommend(x, k=1)[0][:, 0] == held).all()
    b = create("warp", WARP.test_overrides).fit(x, progress=False)
    np.testing.assert_array_equal(a.score(x), b.score(x))


def test_named_model_is_the_multvae_loss_option():
    x, _ = block_data(n_users=24)
    cfg = {**WARP.test_overrides, "epochs": 3}
    named = create("warp", cfg).fit(x, progress=False)
    option = create("multvae", {**cfg, "loss": "warp", "anneal_cap": 0.0, "lam": 0.005}).fit(x, progress=False)
    np.testing.assert_array_equal(named.score(x), option.score(x))
    assert create("multvae").config.loss == "multinomial"


def test_config_checks():
    with pytest.raises(ConfigError):
        create("warp", loss="multinomial")
    with pytest.raises(ConfigError):
        create("warp", n_negatives=0)
    with pytest.raises(ConfigError):
        create("multvae", loss="bpr")
