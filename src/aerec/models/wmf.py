"""WMF: weighted matrix factorization by alternating least squares (Hu, Koren, Volinsky 2008).

Training goes through the ``implicit`` library (optional extra ``aerec[peers]``); scoring is our own
closed-form fold-in, so any history row (a training user or not) is scored the same way.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from aerec import deps
from aerec.errors import ConfigError, DataError, ResourceError
from aerec.models.base import BaseConfig, Recommender


@dataclasses.dataclass
class WMFConfig(BaseConfig):
    factors: int = 100
    regularization: float = 0.01
    alpha: float = 40.0  # confidence c_ui = 1 + alpha * r_ui on observed entries, 1 elsewhere
    # "linear": c_ui = 1 + alpha * r_ui; "log": c_ui = 1 + alpha * log(1 + r_ui / epsilon), Hu et
    # al.'s alternative for raw counts (plays), where a few huge values would swamp the rest
    confidence: Literal["linear", "log"] = "linear"
    epsilon: float = 1.0  # the log confidence's scale: counts well below epsilon count little
    iterations: int = 15
    solver: Literal["cholesky", "cg"] = "cholesky"
    num_threads: int = 0  # implicit's threads while fitting; 0 = all cores
    fold_in_budget: int = 1 << 24  # float64 numbers per padded fold-in block (memory cap, ~128 MB)

    def validate(self):
        if self.factors < 1 or self.iterations < 1:
            raise ConfigError("'factors' and 'iterations' must be at least 1")
        if self.regularization < 0 or self.alpha < 0:
            raise ConfigError("'regularization' and 'alpha' must be non-negative")
        if not self.epsilon > 0:
            raise ConfigError(f"'epsilon' must be positive, got {self.epsilon}")
        if self.num_threads < 0 or self.fold_in_budget < 1:
            raise ConfigError("'num_threads' must be >= 0 and 'fold_in_budget' >= 1")


def _implicit_als():
    return deps.require("implicit.cpu.als", "peers", "model 'wmf'").AlternatingLeastSquares


def _check_values(x: sp.csr_matrix, name: str) -> None:
    if x.nnz and x.data.min() < 0:
        raise DataError(f"{name} holds negative values; WMF takes non-negative interaction strengths")


def excess_confidence(r: np.ndarray, alpha: float, confidence: str = "linear", epsilon: float = 1.0) -> np.ndarray:
    """c_ui - 1 for observed strengths r (in r's dtype): alpha * r, or alpha * log(1 + r / epsilon)."""
    r = np.asarray(r)
    if confidence == "log":
        return alpha * np.log1p(r / epsilon)
    return alpha * r


def check_memory(train: sp.csr_matrix, cfg) -> None:
    """Refuse a fit whose factor matrices cannot fit in MemAvailable, before implicit allocates them:
    user and item factors (float32, and a copy of each as the result), the confidence matrix in
    both orientations, and a factors x factors Gram per thread."""
    from aerec.models.ease import available_memory

    n_users, n_items = train.shape
    f = cfg.factors
    need = 2 * 4 * f * (n_users + n_items) + 2 * 12 * train.nnz + 8 * f * f * max(cfg.num_threads, os.cpu_count() or 1)
    avail = available_memory()
    if avail is not None and need > avail:
        raise ResourceError(f"wmf: {f:,} factors for {n_users:,} users and {n_items:,} items need about "
                            f"{need / 2**30:,.1f} GiB, more than the {avail / 2**30:,.1f} GiB available; "
                            "choose fewer factors")


def fold_in(Y: np.ndarray, history: sp.csr_matrix, regularization: float, alpha: float,
            budget: int = 1 << 24, confidence: str = "linear", epsilon: float = 1.0) -> np.ndarray:
    """User factors x_u = (Y^T C_u Y + lam I)^-1 Y^T C_u p_u for every history row, in float64.

    Y^T C_u Y = Y^T Y + Y^T (C_u - I) Y: Y^T Y once, plus a correction over the user's items only.
    Rows are sorted by length and padded in blocks (at most ``budget`` numbers each), then one
    batched matmul and one batched solve per block; an empty row gets x_u = 0.
    """
    Y = np.asarray(Y, dtype=np.float64)
    k = Y.shape[1]
    G = Y.T @ Y + regularization * np.eye(k)
    n = history.shape[0]
    X = np.zeros((n, k))
    counts = np.diff(history.indptr)
    order = np.argsort(counts, kind="stable")
    start = int(np.searchsorted(counts[order], 1))  # empty rows keep x_u = 0
    while start < n:
        stop = n
        while stop - start > 1 and (stop - start) * counts[order[stop - 1]] * k > budget:
            stop = start + (stop - start) // 2
        rows = order[start:stop]
        block = history[rows]
        c = np.diff(block.indptr)
        r = np.repeat(np.arange(len(rows)), c)
        pos = np.arange(block.nnz) - np.repeat(block.indptr[:-1], c)
        Yp = np.zeros((len(rows), int(c.max()), k))
        Yp[r, pos] = Y[block.indices]
        w = np.zeros(Yp.shape[:2])  # c_ui - 1 (alpha * r_ui, or its log form); 0 on the padding
        w[r, pos] = excess_confidence(block.data, alpha, confidence, epsilon)
        cp = np.zeros_like(w)  # c_ui * p_ui = c_ui; 0 on the padding
        cp[r, pos] = 1.0 + w[r, pos]
        A = G + np.matmul(Yp.transpose(0, 2, 1) * w[:, None, :], Yp)
        b = np.einsum("blk,bl->bk", Yp, cp)
        X[rows] = np.linalg.solve(A, b[..., None])[..., 0]
        start = stop
    return X



class WMF(Recommender):
    """WMF / implicit ALS (Hu, Koren, Volinsky, "Collaborative Filtering for Implicit Feedback
    Datasets", ICDM 2008), trained with ``implicit.cpu.als.AlternatingLeastSquares``.

    - Model: preferences p_ui = 1 where r_ui > 0, confidences c_ui = 1 + alpha * r_ui (paper eq.;
      ``alpha`` 40 as in the paper); loss sum_ui c_ui (p_ui - x_u.y_i)^2 + lam (|X|^2 + |Y|^2).
      ``confidence="log"`` takes the paper's other form, c_ui = 1 + alpha * log(1 + r_ui / epsilon),
      for raw counts whose long tail would otherwise dominate (plays, listens).
    - implicit >= 0.5 uses the *values of the matrix it is given* as c_ui (times its own ``alpha``
      argument) and 1 on missing entries, so we hand it 1 + alpha * X with its alpha = 1. That is
      exactly the paper's C (implicit's own ``alpha * X`` would give c = alpha, not 1 + alpha).
    - ``solver="cholesky"`` (default) is the paper's exact per-user/per-item solve;
      ``"cg"`` is implicit's 3-step conjugate gradient (faster for large ``factors``, approximate).
    - Seed: ``random_state=seed`` (implicit's uniform(0, 0.01) initialization); fitted on the CPU
      implementation even where a GPU exists, so results do not depend on the machine.
    - Scoring is fold-in for every row: x_u = (Y^T Y + Y^T (C_u - I) Y + lam I)^-1 Y^T C_u p_u with
      the trained item factors Y, vectorized in padded blocks with a batched solve; scores x_u Y^T.
      For a training user this reproduces implicit's ``recalculate_user``; it differs from the
      stored training user factor only by ALS not having fully converged (the last half-step
      updates Y after X). Only Y is kept (``state_arrays``); user factors are not needed.

    Deviations: none in the maths. Defaults ``factors=100`` (Liang et al. 2018 tuned 100/200),
    ``regularization=0.01`` and ``iterations=15`` (implicit's defaults); tune them per data set.
    """

    weighted = True  # implicit counts are kept as r_ui (confidence 1 + alpha * r_ui) where data has them
    name = "wmf"
    Config = WMFConfig
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("implicit", "peers"), ("threadpoolctl", "peers"))
    test_overrides = {"factors": 6, "regularization": 1.0, "alpha": 10.0, "iterations": 15, "num_threads": 1}
    space = {"factors": {"type": "int", "low": 16, "high": 256, "log": True},
             "regularization": {"type": "float", "low": 1e-3, "high": 1e2, "log": True},
             "alpha": {"type": "float", "low": 1.0, "high": 100.0, "log": True}}

    def _fit(self, train: sp.csr_matrix, valid, **_) -> None:
        threadpool_limits = deps.require("threadpoolctl", "peers", "model 'wmf'").threadpool_limits
        _check_values(train, "train")
        c = self.config
        check_memory(train, c)
        als_cls = _implicit_als()
        conf = train.copy()
        with np.errstate(over="ignore"):
            conf.data = 1.0 + excess_confidence(conf.data, c.alpha, c.confidence, c.epsilon)
        top = float(conf.data.max()) if conf.nnz else 1.0
        advice = ("raise 'regularization', lower 'alpha', use confidence='log', or scale the counts down "
                  "before training")
        if not np.isfinite(top):
            raise ConfigError(f"wmf: confidences 1 + alpha * value overflow float32 (alpha={c.alpha:g}, largest "
                              f"value {float(train.data.max()):g}); {advice}")
        with threadpool_limits(1, "blas"):  # implicit parallelizes over users; BLAS threads only contend
            als = als_cls(factors=c.factors, regularization=c.regularization, alpha=1.0, dtype=np.float32,
                          use_cg=c.solver == "cg", iterations=c.iterations, num_threads=c.num_threads,
                          random_state=c.seed)
            try:
                als.fit(conf, show_progress=False)
            except ValueError as e:  # implicit's Cholesky solve: confidences too large for the regularization
                if "posv" not in str(e):
                    raise
                # more factors than items (or users) leaves the float32 normal equations nearly singular
                small = min(conf.shape)
                if c.factors >= small:
                    advice = f"lower 'factors' below {small} (the smaller side of the data), or {advice}"
                raise ConfigError(f"wmf: the least-squares solve failed with confidences up to {top:.3g} "
                                  f"(alpha={c.alpha:g}, regularization={c.regularization:g}, factors={c.factors}); "
                                  f"{advice}") from None
        self.item_factors = np.ascontiguousarray(als.item_factors, dtype=np.float32)
        self.user_factors = np.asarray(als.user_factors, dtype=np.float32)  # kept for inspection only
        self.epochs_run = c.iterations

    def user_vectors(self, history: sp.csr_matrix) -> np.ndarray:
        _check_values(history, "history")
        c = self.config
        return fold_in(self.item_factors, history, c.regularization, c.alpha, c.fold_in_budget, c.confidence,
                       c.epsilon)

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return (self.user_vectors(history) @ self.item_factors.T.astype(np.float64)).astype(np.float32)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
