"""SLIM: zero diagonal, non-negative weights, the same W as a direct per-column fit, parallel = serial."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import sampled_blocks

from aerec.errors import ConfigError

pytest.importorskip("sklearn")

from aerec.models.slim import SLIM, sklearn_params, slim_weights  # noqa: E402


def random_matrix(n_users=30, n_items=12, density=0.35, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))


def test_diagonal_zero_and_weights_non_negative():
    W = slim_weights(random_matrix(), l1=0.1, l2=1.0, topk=0)
    assert np.all(W.diagonal() == 0)
    assert W.nnz > 0 and W.data.min() > 0


def test_matches_direct_per_column_fit():
    from sklearn.linear_model import ElasticNet

    X = random_matrix()
    l1, l2 = 0.1, 1.0
    W = slim_weights(X, l1, l2, topk=0, tol=1e-8, max_iter=10_000).toarray()
    A = X.toarray().astype(np.float64)
    n = A.shape[0]
    for j in range(A.shape[1]):
        others = [i for i in range(A.shape[1]) if i != j]
        # the paper's objective scaled by 1/n: alpha = (l1 + l2)/n, l1_ratio = l1/(l1 + l2)
        enet = ElasticNet(alpha=(l1 + l2) / n, l1_ratio=l1 / (l1 + l2), positive=True, fit_intercept=False,
                          tol=1e-8, max_iter=10_000).fit(A[:, others], A[:, j])
        np.testing.assert_allclose(W[others, j], enet.coef_, atol=1e-5)
    assert sklearn_params(1.0, 3.0, 8) == (0.5, 0.25)


def test_parallel_equals_serial_and_topk():
    X = random_matrix()
    serial = slim_weights(X, 0.1, 1.0, topk=0)
    parallel = slim_weights(X, 0.1, 1.0, topk=0, n_jobs=2, chunks_per_job=2)
    assert (serial != parallel).nnz == 0
    top = slim_weights(X, 0.1, 1.0, topk=2)
    assert np.diff(top.tocsc().indptr).max() <= 2
    dense = serial.toarray()
    for j in range(X.shape[1]):  # the kept ones are each column's largest
        kept = top[:, j].toarray().ravel()
        if kept.any():
            assert kept[kept > 0].min() >= np.sort(dense[:, j])[-2] - 1e-7


def test_planted_item_ranks_first_and_round_trip_arrays():
    X = sampled_blocks(n_users=45, block=6, n_blocks=3, per_user=4, seed=0, dtype=np.float32)
    m = SLIM(**SLIM.test_overrides).fit(X)
    hist = sp.csr_matrix((np.ones(5, np.float32), ([0] * 5, [7, 8, 9, 10, 11])), shape=(1, 18))
    assert m.recommend(hist, k=1)[0][0, 0] == 6
    again = SLIM(**SLIM.test_overrides)
    again.n_users, again.n_items = m.n_users, m.n_items
    again.load_state_arrays(m.state_arrays())
    assert np.array_equal(again._score(hist), m.score(hist))


def test_config_checks():
    with pytest.raises(ConfigError):
        SLIM(l1=0.0, l2=0.0)
    with pytest.raises(ConfigError):
        SLIM(n_jobs=0)
