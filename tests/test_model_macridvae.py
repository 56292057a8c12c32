"""MacridVAE: item-to-concept assignments, the stacked sparse concept batch, shapes and
gradients, the mixture decoder, beta annealing per epoch of batches, planted blocks."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.errors import ConfigError
from aerec.models import create
from aerec.models.layers import SparseBatch, multinomial_nll
from aerec.models.macridvae import MacridNet, MacridVAE, concept_batch


def small(**kw):
    return create("macridvae", **{**MacridVAE.test_overrides, **kw})


def net(n_items=12, kfac=3, nogb=False):
    torch.manual_seed(0)
    return MacridNet(n_items, kfac, (16,), 4, 0.5, 0.1, 0.075, nogb)


def test_assignment_rows_sum_to_one_in_eval_and_gumbel_training():
    m = net()
    m.eval()
    c = m.log_assignments().exp()
    assert c.shape == (12, 3) and (c > 0).all()
    torch.testing.assert_close(c.sum(1), torch.ones(12))
    # eval: softmax over concepts of cosine / tau, by hand
    cos = torch.nn.functional.normalize(m.items, dim=1) @ torch.nn.functional.normalize(m.cores, dim=1).T
    torch.testing.assert_close(c, torch.softmax(cos / 0.1, dim=1))
    m.train()
    g1, g2 = m.log_assignments().exp(), m.log_assignments().exp()
    torch.testing.assert_close(g1.sum(1), torch.ones(12))
    assert not torch.equal(g1, g2)  # Gumbel samples differ from draw to draw
    m_nogb = net(nogb=True).train()
    torch.testing.assert_close(m_nogb.log_assignments(), m_nogb.eval().log_assignments())


def test_concept_batch_equals_dense_weighting():
    x = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 0, 0, 0], [0, 3, 0, 1]], dtype=np.float32))
    cates = torch.softmax(torch.randn(4, 2, generator=torch.Generator().manual_seed(1)), dim=1)
    stacked = concept_batch(SparseBatch.from_csr(x), cates).to_dense()
    dense = torch.from_numpy(x.toarray())
    expected = torch.cat([dense * cates[:, 0], dense * cates[:, 1]])
    torch.testing.assert_close(stacked, expected)


def test_first_layer_equals_sparse_linear_on_the_concept_batch():
    m = net().eval()
    x, _ = block_data(n_users=5, n_blocks=2, block=6)
    x = sp.vstack([x, sp.csr_matrix((1, x.shape[1]), dtype=np.float32)]).tocsr()  # an empty row too
    batch = SparseBatch.from_csr(x)
    cates = m.log_assignments().exp()
    with torch.no_grad():
        fast = m.first_layer(batch, cates)
        slow = m.first(concept_batch(batch, cates).l2_normalized())
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_shapes_gradients_and_mixture_decoder():
    m = net()
    x, _ = block_data(n_users=5, n_blocks=2, block=6)
    batch = SparseBatch.from_csr(x)
    m.train()
    logits, kl = m(batch)
    assert logits.shape == (5, 12) and kl.shape == (5,) and (kl >= 0).all()
    (multinomial_nll(logits, batch) + 0.2 * kl).mean().backward()
    for p in [m.items, m.cores, m.first.weight, m.q_rest[0].weight]:
        assert p.grad is not None and p.grad.abs().sum() > 0
    # eval logits are log sum_k c_ik exp(cos(mu_k, item_i) / tau)
    m.eval()
    with torch.no_grad():
        logits, _ = m(batch)
        log_c = m.log_assignments()
        mu, _, _ = m._encode_tail(m.first(concept_batch(batch, log_c.exp()).l2_normalized()))
        cos = mu.view(3, 5, 4) @ torch.nn.functional.normalize(m.items, dim=1).T  # [K, users, items]
        by_hand = torch.log((log_c.T[:, None, :].exp() * torch.exp(cos / 0.1)).sum(0))
    torch.testing.assert_close(logits, by_hand, atol=1e-4, rtol=1e-4)


def test_beta_reaches_cap_after_anneal_epochs():
    x, _ = block_data(n_users=40)  # batch 16 -> 3 steps per epoch
    model = small(epochs=3, anneal_epochs=2.0, anneal_cap=0.5)
    seen, original = [], model.current_beta
    model.current_beta = lambda per_epoch: seen.append(original(per_epoch)) or seen[-1]
    model.fit(x, progress=False)
    np.testing.assert_allclose(seen, [min(0.5, s / 6) for s in range(9)])


def test_ranks_planted_item_first_and_scores_empty_rows():
    x, held = block_data(n_users=60)
    model = small().fit(x, progress=False)
    top, _ = model.recommend(x, k=1)
    assert (top[:, 0] == held).mean() > 0.9
    assert np.isfinite(model.score(sp.csr_matrix((2, x.shape[1]), dtype=np.float32))).all()


def test_bad_config_is_one_line_error():
    for bad in ({"kfac": 0}, {"tau": 0}, {"std": -1}, {"dropout": 1.0}):
        with pytest.raises(ConfigError):
            create("macridvae", **bad)
