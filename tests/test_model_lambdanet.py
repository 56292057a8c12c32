"""LambdaNet: |delta NDCG| weights against a hand-computed 1x5 example and brute-force swaps, the
loss's gradient equals LambdaRank's lambdas, the Mult-VAE loss option, planted blocks."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.models import create
from aerec.models.lambdanet import LambdaNet
from aerec.models.layers import SparseBatch
from aerec.models.ranking_losses import lambdarank_from_candidates, ranks, swap_delta_ndcg

SCORES = [2.0, 1.0, 0.5, 3.0, -1.0]  # ranking: item 3, 0, 1, 2, 4
POS = [1, 2]
NEG = [0, 3, 4]


def example():
    target = SparseBatch.from_csr(sp.csr_matrix((np.ones(2, np.float32), ([0, 0], POS)), shape=(1, 5)))
    return torch.tensor([SCORES], requires_grad=True), target


def full_ndcg(scores, pos):
    order = np.argsort(-np.asarray(scores), kind="stable")
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(order) if i in pos)
    return dcg / sum(1 / math.log2(r + 2) for r in range(len(pos)))


def test_delta_ndcg_by_hand_on_1x5():
    logits, _ = example()
    r = ranks(logits)[0]
    assert r.tolist() == [2, 3, 4, 1, 5]
    idcg = 1 + 1 / math.log2(3)
    # positive 1 (rank 3) with negative 3 (rank 1): |1/log2(4) - 1/log2(2)| / IDCG
    got = swap_delta_ndcg(torch.tensor(3), torch.tensor(1), torch.tensor(2))
    assert got.item() == pytest.approx((1 - 1 / 2) / idcg)
    for p in POS:
        for n in NEG:
            swapped = list(SCORES)
            swapped[p], swapped[n] = swapped[n], swapped[p]
            brute = abs(full_ndcg(swapped, POS) - full_ndcg(SCORES, POS))
            assert swap_delta_ndcg(r[p], r[n], torch.tensor(2)).item() == pytest.approx(brute, abs=1e-6)


def test_loss_and_gradient_are_lambdarank():
    logits, target = example()
    cand = torch.tensor([NEG, NEG])  # every negative once per positive: the exact full-pair sum
    loss = lambdarank_from_candidates(logits, target, cand, torch.ones(2, 3, dtype=torch.bool)).sum()
    loss.backward()
    r = ranks(logits)[0]
    s = SCORES
    delta = {(p, n): swap_delta_ndcg(r[p], r[n], torch.tensor(2)).item() for p in POS for n in NEG}
    expected = sum(d * math.log1p(math.exp(-(s[p] - s[n]))) for (p, n), d in delta.items())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the reference's lambdas: dL/ds_i = -sum_j |dNDCG_ij| / (1 + exp(s_i - s_j)) for a positive i
    sig = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    grad = [0.0] * 5
    for (p, n), d in delta.items():
        grad[p] -= d * sig(s[n] - s[p])
        grad[n] += d * sig(s[n] - s[p])
    torch.testing.assert_close(logits.grad[0], torch.tensor(grad), rtol=1e-5, atol=1e-6)


def test_sampled_negatives_are_rescaled_to_the_full_sum():
    logits, target = example()
    cand = torch.tensor([[0, 2, 0], [3, 3, 1]])  # positives drawn are invalid; repeats are fine
    valid = torch.tensor([[True, False, True], [True, True, False]])
    got = lambdarank_from_candidates(logits, target, cand, valid).item()
    r, s = ranks(logits)[0], SCORES

    def pair(p, n):
        return swap_delta_ndcg(r[p], r[n], torch.tensor(2)).item() * math.log1p(math.exp(s[n] - s[p]))

    # 3 negatives per user; each positive's mean over its valid draws, times 3
    assert got == pytest.approx(3 * pair(1, 0) + 3 * pair(2, 3), rel=1e-5)


def test_model_ranks_planted_item_first_and_is_deterministic():
    x, held = block_data(n_users=48)
    a = create("lambdanet", LambdaNet.test_overrides).fit(x, progress=False)
    assert (a.recommend(x, k=1)[0][:, 0] == held).all()
    b = create("lambdanet", LambdaNet.test_overrides).fit(x, progress=False)
    np.testing.assert_array_equal(a.score(x), b.score(x))


def test_named_model_is_the_multvae_loss_option():
    x, _ = block_data(n_users=24)
    cfg = {**LambdaNet.test_overrides, "epochs": 3}
    named = create("lambdanet", cfg).fit(x, progress=False)
    option = create("multvae", {**cfg, "loss": "lambdarank"}).fit(x, progress=False)
    np.testing.assert_array_equal(named.score(x), option.score(x))
