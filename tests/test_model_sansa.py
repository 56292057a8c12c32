"""SANSA: exact factors give EASE exactly; the package's factors approach EASE; sparse state;
the optional dependency's message."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import sampled_blocks

from aerec import deps
from aerec.errors import AerecError, ConfigError
from aerec.models import sansa as sansa_mod
from aerec.models.ease import EASE
from aerec.models.sansa import SANSA, scaled_gram, weights_from_factors


def exact_factors(A: sp.csc_matrix, perm: np.ndarray):
    """Dense L D L^T of A[perm][:, perm] (unit lower L) and L^-1: no dropping anywhere."""
    C = np.linalg.cholesky(A.toarray()[np.ix_(perm, perm)])
    L = C / np.diag(C)[None, :]
    return sp.csr_matrix(np.linalg.inv(L)), np.diag(C) ** 2


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_factors_equal_ease(seed):
    X = sampled_blocks(seed=seed)
    lam = 4.0
    B = EASE(l2=lam, dtype="float64").fit(X).B
    A, s = scaled_gram(X, lam)
    np.testing.assert_allclose(A.diagonal(), 1.0)
    perm = np.random.default_rng(seed).permutation(X.shape[1])  # any ordering is exact
    Linv, d = exact_factors(A, perm)
    W1, W2 = weights_from_factors(Linv, d, perm, s, dtype=np.float64)
    # the model's scores x + x W1 W2 are x B: compare the implied items x items matrices
    implied = np.eye(X.shape[1]) + (W1 @ W2).toarray()
    np.testing.assert_allclose(implied, B, atol=1e-10)
    np.testing.assert_allclose(np.diag(implied), 0.0, atol=1e-12)


def test_exact_factors_need_the_right_permutation():
    X = sampled_blocks(seed=0)
    A, s = scaled_gram(X, 4.0)
    perm = np.arange(X.shape[1])[::-1]
    Linv, d = exact_factors(A, perm)
    W1, W2 = weights_from_factors(Linv, d, np.arange(X.shape[1]), s, dtype=np.float64)  # wrong order
    assert not np.allclose(np.eye(X.shape[1]) + (W1 @ W2).toarray(), EASE(l2=4.0, dtype="float64").fit(X).B,
                           atol=1e-3)


@pytest.mark.parametrize("factorizer", ["cholmod", "icf"])
def test_package_factors_at_full_density_approach_ease(factorizer):
    pytest.importorskip("sansa")
    X = sampled_blocks(seed=1)
    hist = X[:20]
    ref = EASE(l2=10.0, dtype="float64").fit(X).score(hist)
    m = SANSA(l2=10.0, density=1.0, factorizer=factorizer, scans=2, finetune_steps=50).fit(X)
    assert sp.issparse(m.W1) and sp.issparse(m.W2)
    np.testing.assert_allclose(m.score(hist), ref, atol=1e-5)
    # a sparser model drops weight and moves away from EASE, but still ranks the planted items
    sparse = SANSA(l2=10.0, density=0.1, factorizer=factorizer).fit(X)
    assert sparse.W1.nnz < m.W1.nnz


def test_state_round_trip_keeps_sparse_arrays():
    pytest.importorskip("sansa")
    X = sampled_blocks()
    m = SANSA(**SANSA.test_overrides).fit(X)
    arrays = m.state_arrays()
    assert {k.split(".")[1] for k in arrays} == {"data", "indices", "indptr"}
    again = SANSA(**m.config_dict())
    again.n_users, again.n_items, again.fitted = m.n_users, m.n_items, True
    again.load_state_arrays(arrays)
    np.testing.assert_array_equal(again.score(X[:5]), m.score(X[:5]))


def test_missing_package_is_a_one_line_config_error(monkeypatch):
    def missing(name):
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(sansa_mod.importlib, "import_module", missing)
    monkeypatch.setattr(deps.importlib, "import_module", missing)
    with pytest.raises(AerecError, match=r"pip install 'aerec\[sansa\]'") as e:
        SANSA().fit(sampled_blocks())
    assert "\n" not in str(e.value)


def test_config_errors():
    for bad in [{"l2": 0}, {"density": 0}, {"density": 1.5}, {"scans": -1}, {"factorizer": "lu"}]:
        with pytest.raises(ConfigError):
            SANSA(**bad)
