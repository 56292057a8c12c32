"""SLIM: sparse linear item-item model (Ning & Karypis, ICDM 2011), one ElasticNet per item."""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from aerec.errors import ConfigError
from aerec.models.base import BaseConfig, Recommender


@dataclasses.dataclass
class SLIMConfig(BaseConfig):
    l1: float = 1.0  # lambda in 1/2|a_j - A w_j|^2 + beta/2 |w_j|^2 + lambda |w_j|_1
    l2: float = 10.0  # beta
    topk: int = 100  # keep the largest weights per item column; 0 keeps every nonzero
    max_iter: int = 1000  # coordinate-descent sweeps per item (scikit-learn's default)
    tol: float = 1e-4
    n_jobs: int = 1  # worker processes over item chunks; -1 = all cores
    chunks_per_job: int = 4  # item chunks per worker (each chunk ships one copy of X)

    def validate(self):
        if self.l1 < 0 or self.l2 < 0 or self.l1 + self.l2 <= 0:
            raise ConfigError("'l1' and 'l2' must be non-negative and not both zero")
        if self.topk < 0 or self.max_iter < 1 or self.tol <= 0:
            raise ConfigError("'topk' must be >= 0, 'max_iter' >= 1 and 'tol' positive")
        if self.n_jobs == 0 or self.n_jobs < -1 or self.chunks_per_job < 1:
            raise ConfigError("'n_jobs' must be -1 or at least 1, 'chunks_per_job' at least 1")


def sklearn_params(l1: float, l2: float, n_users: int) -> tuple[float, float]:
    """(alpha, l1_ratio) for scikit-learn's ElasticNet, whose objective is SLIM's divided by n_users.

    sklearn: 1/(2n)|y - Xw|^2 + alpha*l1_ratio*|w|_1 + alpha*(1 - l1_ratio)/2*|w|^2; times n this is
    SLIM's 1/2|y - Xw|^2 + l1*|w|_1 + l2/2*|w|^2 with l1 = n*alpha*l1_ratio, l2 = n*alpha*(1 - l1_ratio).
    """
    return (l1 + l2) / n_users, l1 / (l1 + l2)


def _fit_items(X: sp.csc_matrix, items: np.ndarray, alpha: float, l1_ratio: float, topk: int,
               max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of W's nonzeros for the given item columns; X is this worker's copy."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet

    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False, copy_X=False,
                       precompute=False, max_iter=max_iter, tol=tol, selection="cyclic")
    rows, cols, vals = [], [], []
    for j in items:
        y = X[:, j].toarray().ravel()
        lo, hi = X.indptr[j], X.indptr[j + 1]
        saved = X.data[lo:hi].copy()
        X.data[lo:hi] = 0.0  # zero diagonal: item j may not explain itself
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        X.data[lo:hi] = saved
        idx = np.flatnonzero(model.coef_ > 0)
        val = model.coef_[idx]
        if topk and len(val) > topk:
            top = np.argsort(-val, kind="stable")[:topk]
            idx, val = idx[top], val[top]
        rows.append(idx)
        cols.append(np.full(len(idx), j))
        vals.append(val)
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return cat(rows, np.int64), cat(cols, np.int64), cat(vals, np.float32)


def slim_weights(X: sp.csr_matrix, l1: float, l2: float, topk: int = 100, max_iter: int = 1000,
                 tol: float = 1e-4, n_jobs: int = 1, chunks_per_job: int = 4) -> sp.csr_matrix:
    """W (items x items, CSR, float32): column j = the non-negative ElasticNet fit of X[:, j] on X
    with column j removed; diag(W) = 0."""
    n_users, n_items = X.shape
    alpha, l1_ratio = sklearn_params(l1, l2, n_users)
    Xc = sp.csc_matrix(X, dtype=np.float64)
    Xc.sort_indices()
    args = (alpha, l1_ratio, topk, max_iter, tol)
    if n_jobs == 1:
        parts = [_fit_items(Xc.copy(), np.arange(n_items), *args)]
    else:
        from joblib import Parallel, cpu_count, delayed

        workers = cpu_count() if n_jobs == -1 else n_jobs
        chunks = [c for c in np.array_split(np.arange(n_items), workers * chunks_per_job) if len(c)]
        parts = Parallel(n_jobs=workers)(delayed(_fit_items)(Xc, c, *args) for c in chunks)
    rows, cols, vals = (np.concatenate(p) for p in zip(*parts))
    W = sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
    W.sort_indices()
    return W


class SLIM(Recommender):
    """SLIM (Ning & Karypis, "SLIM: Sparse Linear Methods for Top-N Recommender Systems", ICDM 2011).

    - For every item j: w_j = argmin 1/2 |a_j - A w_j|^2 + l2/2 |w_j|^2 + l1 |w_j|_1, w_j >= 0,
      w_jj = 0; scores = history @ W (sparse x sparse, densified per call only for those rows).
    - Solved with scikit-learn's ``ElasticNet(positive=True, fit_intercept=False)``, which
      minimizes the same objective divided by the number of users n:
      ``alpha = (l1 + l2) / n``, ``l1_ratio = l1 / (l1 + l2)`` (see ``sklearn_params``).
    - Zero diagonal by fitting column j on X with column j's entries set to 0 (the usual trick:
      the same problem as dropping the column, and w_jj stays 0).
    - Items are fitted in parallel (``n_jobs`` loky workers) over chunks of items; each chunk gets
      its own copy of X because the diagonal trick edits X in place. Results equal the serial fit.

    Deviations from the paper: ``topk`` (default 100) keeps only each column's largest weights,
    as common SLIM implementations do, to bound W's size (``topk=0`` keeps all); coordinate
    descent stops at scikit-learn's ``tol``/``max_iter`` (the paper used its own BCLS solver).
    Defaults l1=1, l2=10 are a starting point; the paper tunes both per data set.
    """

    name = "slim"
    Config = SLIMConfig
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("sklearn", "peers"),)
    test_overrides = {"l1": 0.1, "l2": 1.0, "topk": 0}
    space = {"l1": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},
             "l2": {"type": "float", "low": 1e-2, "high": 1e3, "log": True}}

    def _fit(self, train: sp.csr_matrix, valid, **_) -> None:
        c = self.config
        self.W = slim_weights(train, c.l1, c.l2, c.topk, c.max_iter, c.tol, c.n_jobs, c.chunks_per_job)
        self.epochs_run = 0

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray((history @ self.W).toarray(), dtype=np.float32)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"W_indptr": self.W.indptr.astype(np.int64), "W_indices": self.W.indices.astype(np.int64),
                "W_data": self.W.data.astype(np.float32)}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = self.n_items
        self.W = sp.csr_matrix((arrays["W_data"], arrays["W_indices"], arrays["W_indptr"]), shape=(n, n))
