"""EDLAE / DLAE: least squares at zero dropout, closed form against the exact expected dropout
objective (every dropout mask enumerated), the EASE special case, refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import sampled_blocks

from aerec.errors import ConfigError, ResourceError
from aerec.models.ease import EASE
from aerec.models.edlae import EDLAE

# 6 users x 4 items, X^T X full rank
X = np.array(
    [
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [1, 0, 1, 1],
        [0, 0, 0, 1],
        [1, 1, 1, 0],
        [0, 1, 0, 1],
    ],
    dtype=np.float64,
)


def fit(**kw) -> np.ndarray:
    return EDLAE(dtype="float64", **kw).fit(sp.csr_matrix(X)).B


def test_zero_dropout_is_unregularized_least_squares():
    assert np.linalg.matrix_rank(X.T @ X) == 4
    # DLAE: min ||X - XB||^2 has the identity as its solution
    np.testing.assert_allclose(fit(variant="dlae", dropout=0.0, l2=0.0), np.linalg.lstsq(X, X, rcond=None)[0],
                               atol=1e-10)
    # EDLAE: each item regressed on the others by plain least squares (zero diagonal)
    B = fit(variant="edlae", dropout=0.0, l2=0.0)
    for j in range(4):
        others = [i for i in range(4) if i != j]
        np.testing.assert_allclose(B[others, j], np.linalg.lstsq(X[:, others], X[:, j], rcond=None)[0], atol=1e-10)
        assert B[j, j] == 0


def expected_moments(p: float, emphasized_item: int | None):
    """E[X~^T X~] and E[X~^T X] over every dropout mask (X~ = M o X / (1-p)), optionally only over
    the masks that drop ``emphasized_item`` (weighted by their probability)."""
    n = X.shape[1]
    q = 1.0 - p
    A, b = np.zeros((n, n)), np.zeros((n, n))
    for mask in itertools.product([0, 1], repeat=n):
        m = np.array(mask, dtype=float)
        if emphasized_item is not None and m[emphasized_item] == 1:
            continue
        prob = np.prod(np.where(m == 1, q, p))
        Xt = X * m / q
        A += prob * Xt.T @ Xt
        b += prob * Xt.T @ X
    return A, b


@pytest.mark.parametrize("p,lam", [(0.25, 0.0), (0.5, 2.0)])
def test_dlae_closed_form_minimizes_expected_dropout_loss(p, lam):
    A, b = expected_moments(p, None)
    direct = np.linalg.solve(A + lam * np.eye(4), b)  # normal equations of E||X - X~B||^2 + lam||B||^2
    np.testing.assert_allclose(fit(variant="dlae", dropout=p, l2=lam), direct, atol=1e-10)


@pytest.mark.parametrize("p,lam", [(0.25, 0.5), (0.5, 2.0)])
def test_edlae_closed_form_minimizes_emphasized_loss(p, lam):
    B = fit(variant="edlae", dropout=p, l2=lam)
    for j in range(4):
        # column j: (1/p) E[(1 - M_j)(x_j - X~ b)^2] + lam ||b||^2, X~_j = 0 whenever M_j = 0
        A, c = expected_moments(p, j)
        others = [i for i in range(4) if i != j]
        direct = np.linalg.solve(A[np.ix_(others, others)] / p + lam * np.eye(3), c[others, j] / p)
        np.testing.assert_allclose(B[others, j], direct, atol=1e-10)
        assert B[j, j] == 0


def test_zero_dropout_edlae_is_ease_and_dropout_changes_it():
    Xs = sampled_blocks(seed=2)
    ease = EASE(l2=7.0, dtype="float64").fit(Xs).B
    np.testing.assert_allclose(EDLAE(l2=7.0, dropout=0.0, dtype="float64").fit(Xs).B, ease, atol=1e-12)
    assert not np.allclose(EDLAE(l2=7.0, dropout=0.3, dtype="float64").fit(Xs).B, ease, atol=1e-3)


def test_float32_and_inverse_solver_agree():
    Xs = sampled_blocks(seed=3)
    ref = EDLAE(dtype="float64", solver="inverse").fit(Xs).B
    np.testing.assert_allclose(EDLAE(dtype="float64").fit(Xs).B, ref, atol=1e-12)
    b32 = EDLAE().fit(Xs).B
    assert b32.dtype == np.float32 and b32.flags.c_contiguous
    np.testing.assert_allclose(b32, ref, atol=1e-5)


def test_refusals():
    with pytest.raises(ResourceError, match="EDLAE on 30 items"):
        EDLAE(max_memory_gb=1e-9).fit(sampled_blocks())
    with pytest.raises(ConfigError):
        EDLAE(dropout=1.0)
    with pytest.raises(ConfigError):
        EDLAE(l2=-1)
    with pytest.raises(ConfigError):
        EDLAE(variant="lowrank")
    empty_item = sp.csr_matrix(np.hstack([X, np.zeros((6, 1))]))
    with pytest.raises(ConfigError, match="l2 > 0"):
        EDLAE(l2=0.0, dropout=0.3).fit(empty_item)
