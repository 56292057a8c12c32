"""EASE: closed form vs a direct least-squares solve, solvers, dtypes, memory refusal, ranking."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import sampled_blocks

from aerec.errors import ConfigError, ResourceError
from aerec.models import ease as ease_mod
from aerec.models.ease import EASE, memory_estimate

X6 = np.array(
    [
        [1, 1, 0, 0, 1],
        [0, 1, 1, 0, 0],
        [1, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
        [1, 1, 1, 0, 0],
        [0, 1, 0, 1, 1],
    ],
    dtype=np.float64,
)


def lstsq_reference(X: np.ndarray, lam: float) -> np.ndarray:
    """min ||X - XB||^2 + lam ||B||^2 with diag(B) = 0, one ridge problem per column."""
    n = X.shape[1]
    B = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        A = np.vstack([X[:, others], np.sqrt(lam) * np.eye(n - 1)])
        y = np.concatenate([X[:, j], np.zeros(n - 1)])
        B[others, j] = np.linalg.lstsq(A, y, rcond=None)[0]
    return B


@pytest.mark.parametrize("solver", ["cholesky", "inverse"])
@pytest.mark.parametrize("lam", [0.5, 3.0])
def test_matches_direct_least_squares(solver, lam):
    m = EASE(l2=lam, dtype="float64", solver=solver).fit(sp.csr_matrix(X6))
    np.testing.assert_allclose(m.B, lstsq_reference(X6, lam), atol=1e-10)
    assert np.all(np.diag(m.B) == 0)


def test_solvers_and_dtypes_agree():
    X = sampled_blocks(seed=1)
    ref = EASE(l2=5.0, dtype="float64", solver="inverse").fit(X).B
    for solver in ["cholesky", "inverse"]:
        np.testing.assert_allclose(EASE(l2=5.0, dtype="float64", solver=solver).fit(X).B, ref, atol=1e-12)
        b32 = EASE(l2=5.0, dtype="float32", solver=solver).fit(X).B
        assert b32.dtype == np.float32 and b32.flags.c_contiguous
        np.testing.assert_allclose(b32, ref, atol=1e-5)


def test_planted_held_out_item_ranks_first():
    X = sampled_blocks()
    m = EASE(**EASE.test_overrides).fit(X)
    # one fold-in row per block: all of the block but one item, which must come first
    hist = sp.csr_matrix(([1.0] * 27, ([0] * 9 + [1] * 9 + [2] * 9, [*range(9), *range(11, 20), *range(20, 29)])),
                         shape=(3, 30))
    idx, _ = m.recommend(hist, k=1)
    assert idx[:, 0].tolist() == [9, 10, 29]


def test_scores_are_history_times_b_and_state_round_trip():
    X = sampled_blocks()
    m = EASE(l2=10.0).fit(X)
    hist = X[:5]
    np.testing.assert_allclose(m.score(hist), hist.toarray() @ m.B, rtol=1e-5, atol=1e-6)
    again = EASE(**m.config_dict())
    again.n_users, again.n_items, again.fitted = m.n_users, m.n_items, True
    again.load_state_arrays(m.state_arrays())
    np.testing.assert_array_equal(again.score(hist), m.score(hist))


def test_memory_refusal_names_the_sizes():
    X = sampled_blocks()
    with pytest.raises(ResourceError) as e:
        EASE(max_memory_gb=1e-9).fit(X)
    msg = str(e.value)
    assert "\n" not in msg
    assert "30 items" in msg and "30x30" in msg and "float32" in msg and "max_memory_gb" in msg


def test_memory_refusal_against_available(monkeypatch):
    monkeypatch.setattr(ease_mod, "available_memory", lambda: 1000)
    with pytest.raises(ResourceError, match="MemAvailable"):
        EASE().fit(sampled_blocks())


def test_memory_estimate_sizes():
    n = 20_108  # ML-20M after Liang's filter: 1.62 GB per float32 copy
    copy32 = n * n * 4
    assert copy32 == pytest.approx(1.617e9, rel=1e-3)
    est = memory_estimate(n, 10_000_000, "float32", "cholesky")
    assert 2 * copy32 < est < 2.5 * copy32
    assert memory_estimate(n, 0, "float64", "inverse") < memory_estimate(n, 0, "float64", "cholesky")


def test_config_errors():
    with pytest.raises(ConfigError):
        EASE(l2=0)
    with pytest.raises(ConfigError):
        EASE(solver="qr")
    with pytest.raises(ConfigError):
        EASE(max_memory_gb=-1)
