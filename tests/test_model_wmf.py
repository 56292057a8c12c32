"""WMF: the closed-form fold-in against implicit's own solve and the trained user factors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import sampled_blocks

from aerec.errors import ConfigError, DataError

pytest.importorskip("implicit")

from aerec.models.wmf import WMF, fold_in  # noqa: E402


def random_matrix(n_users=40, n_items=30, density=0.3, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))


def test_fold_in_matches_implicit_recalculate_user():
    from implicit.cpu.als import AlternatingLeastSquares

    X = random_matrix()
    X.data *= np.random.default_rng(1).integers(1, 4, X.nnz).astype(np.float32)  # graded strengths
    conf = X.copy()
    conf.data = 1.0 + 10.0 * conf.data  # implicit reads the matrix values as confidences
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=6, regularization=0.5, alpha=1.0, use_cg=False, iterations=5,
                                      num_threads=1, random_state=0)
        als.fit(conf, show_progress=False)
    ref = als.recalculate_user(np.arange(X.shape[0]), conf)
    # a tiny budget forces many padded blocks of different widths
    mine = fold_in(als.item_factors, X, 0.5, 10.0, budget=40)
    np.testing.assert_allclose(mine, ref, rtol=1e-4, atol=1e-5)


def test_fold_in_reproduces_trained_user_factors():
    X = random_matrix()
    m = WMF(factors=4, regularization=5.0, alpha=10.0, iterations=100, num_threads=1).fit(X)
    again = m.user_vectors(X)  # re-solve every training row with the item factors held fixed
    scale = np.abs(m.user_factors).max()
    assert np.abs(again - m.user_factors).max() < 1e-4 * scale


def test_fold_in_of_empty_row_is_zero_and_order_free():
    X = random_matrix()
    m = WMF(factors=4, regularization=1.0, iterations=5, num_threads=1).fit(X)
    empty = sp.csr_matrix((2, X.shape[1]), dtype=np.float32)
    assert np.all(m.score(empty) == 0)
    perm = np.random.default_rng(3).permutation(X.shape[0])
    np.testing.assert_allclose(m.score(X[perm]), m.score(X)[perm], rtol=1e-6, atol=1e-6)


def test_planted_item_ranks_first_and_same_seed_same_scores():
    X = sampled_blocks(n_users=60, block=10, n_blocks=3, per_user=7, seed=0, dtype=np.float32)
    hist = sp.csr_matrix((np.ones(9, np.float32), ([0] * 9, list(range(11, 20)))), shape=(1, 30))
    kw = dict(WMF.test_overrides)
    a, b = WMF(**kw).fit(X), WMF(**kw).fit(X)
    assert a.recommend(hist, k=1)[0][0, 0] == 10
    assert np.array_equal(a.score(hist), b.score(hist))


def test_bad_input_and_config():
    with pytest.raises(DataError, match="negative"):
        WMF(iterations=1).fit(sp.csr_matrix(np.array([[1.0, -1.0]], dtype=np.float32)))
    with pytest.raises(ConfigError):
        WMF(alpha=-1.0)
    with pytest.raises(ConfigError):
        WMF(solver="lu")


def test_log_confidence_is_hu_et_al_formula():
    from aerec.models.wmf import excess_confidence

    r = np.array([1.0, 9.0, 99.0])
    # c - 1 = alpha * log(1 + r / eps): alpha 2, eps 1 -> 2 ln 2, 2 ln 10, 2 ln 100
    np.testing.assert_allclose(excess_confidence(r, 2.0, "log", 1.0), 2 * np.log([2.0, 10.0, 100.0]))
    np.testing.assert_allclose(excess_confidence(r, 2.0, "log", 0.5), 2 * np.log([3.0, 19.0, 199.0]))
    np.testing.assert_allclose(excess_confidence(r, 2.0, "linear"), [2.0, 18.0, 198.0])
    with pytest.raises(ConfigError, match="epsilon"):
        WMF(confidence="log", epsilon=0.0)
    with pytest.raises(ConfigError):
        WMF(confidence="sqrt")


def test_log_confidence_fits_and_folds_in_as_linear_on_log_counts():
    """WMF(log) on counts R is WMF(linear) on log(1 + R / eps): the same confidences, both in the
    ALS fit (through implicit) and in our fold-in."""
    X = random_matrix(seed=4)
    X.data *= np.random.default_rng(5).pareto(1.0, X.nnz).astype(np.float32) * 50 + 1  # heavy-tailed plays
    eps = 2.0
    logged = X.copy()
    logged.data = np.log1p(logged.data / np.float32(eps))
    kw = dict(factors=5, regularization=1.0, alpha=3.0, iterations=8, num_threads=1, seed=7)
    a = WMF(confidence="log", epsilon=eps, **kw).fit(X)
    b = WMF(confidence="linear", **kw).fit(logged)
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.score(X[:10]), b.score(logged[:10]), rtol=1e-4, atol=1e-5)
    linear = WMF(confidence="linear", **kw).fit(X)  # and it is not the linear model on raw counts
    assert np.abs(linear.item_factors - a.item_factors).max() > 1e-3
def test_wmf_with_more_factors_than_items_names_factors():
    rng = np.random.default_rng(0)
    x = sp.random(60, 12, density=0.5, random_state=0, format="csr")
    x.data = rng.integers(1, 300, size=x.nnz).astype(np.float32)
    with pytest.raises(ConfigError, match="lower 'factors' below 12"):
        WMF(factors=40, iterations=3, seed=0).fit(x)
