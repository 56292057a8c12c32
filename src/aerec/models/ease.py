"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

Closed form:  G = X^T X + l2 * I,  P = G^-1,  B = I - P diag(1/diag(P)),  so diag(B) = 0 and
B_ij = -P_ij / P_jj off the diagonal. Scores are ``history @ B`` (sparse row block times the dense
items x items B), never a dense users x items matrix. ``l2`` (lambda) defaults to 500 (ML-20M);
the paper uses 1000 for Netflix and 200 for MSD.

Solvers: ``cholesky`` (default: G is symmetric positive definite; LAPACK potrf, then potri for
the inverse from the factor, both in place: n^3 flops and one n x n array) or ``inverse``
(LU-based ``scipy.linalg.inv`` in place, as the paper's ``np.linalg.inv``). The Gram matrix is
built sparsely (``X^T X[:, cols]`` for column blocks) and only the items x items result is dense.

Memory: before allocating, the peak is estimated as items^2 x bytes x live copies (cholesky 2,
kept conservative although potrf + potri work in one copy; inverse 1) plus the Gram column-block
temporaries, and a ``ResourceError`` naming the sizes is raised when it exceeds MemAvailable (or
``max_memory_gb``). ML-20M's 20,108 items need 1.62 GB per float32 copy.

Deviations from the paper's code (also in docs/models.md):
- ``dtype`` float32 by default (the paper's numpy code works in float64): half the memory, and
  rankings agree with float64 to float32 rounding; ``dtype="float64"`` reproduces it;
- Cholesky by default instead of a general inverse: same P, half the flops, more stable;
- X's stored values are used as they are (the protocols binarize before fitting, as the paper).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from aerec.errors import ConfigError, ResourceError
from aerec.models.base import BaseConfig, Recommender

GB = 1e9


@dataclasses.dataclass
class EASEConfig(BaseConfig):
    l2: float = 500.0
    dtype: Literal["float32", "float64"] = "float32"
    solver: Literal["cholesky", "inverse"] = "cholesky"
    max_memory_gb: float | None = None  # cap on the estimate; None: MemAvailable only

    def validate(self):
        if not self.l2 > 0:
            raise ConfigError("'l2' must be positive (it keeps X^T X + l2*I invertible)")
        if self.max_memory_gb is not None and self.max_memory_gb <= 0:
            raise ConfigError("'max_memory_gb' must be positive or none")


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes; None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gram_block(n_items: int, itemsize: int) -> int:
    """Columns per Gram block: its sparse result and dense copy (~16 B/entry) stay <= 1/4 copy."""
    return max(1, min(n_items, n_items * itemsize // 64))


def memory_estimate(n_items: int, nnz: int, dtype: str, solver: str) -> int:
    """Peak bytes of a fit: dense copies of items x items, Gram temporaries, X^T (CSC)."""
    itemsize = np.dtype(dtype).itemsize
    copies = 2 if solver == "cholesky" else 1
    block_tmp = 16 * n_items * gram_block(n_items, itemsize)
    return copies * n_items * n_items * itemsize + block_tmp + 3 * (itemsize + 4) * nnz


def check_memory(n_items: int, nnz: int, cfg, label: str = "EASE") -> None:
    """Refuse a fit whose dense items x items estimate exceeds MemAvailable or cfg.max_memory_gb."""
    need = memory_estimate(n_items, nnz, cfg.dtype, cfg.solver)
    avail = available_memory()
    limits = [(avail, "available (MemAvailable)")] if avail is not None else []
    if cfg.max_memory_gb is not None:
        limits.append((int(cfg.max_memory_gb * GB), "allowed by max_memory_gb"))
    for limit, what in limits:
        if need > limit:
            copy = n_items * n_items * np.dtype(cfg.dtype).itemsize
            raise ResourceError(
                f"{label} on {n_items} items needs about {need / GB:.2f} GB ({cfg.dtype}, {copy / GB:.2f} GB per "
                f"{n_items}x{n_items} copy, solver {cfg.solver}) but only {limit / GB:.2f} GB is {what}"
            )


def dense_gram(X: sp.csr_matrix, dtype: str) -> np.ndarray:
    """X^T X as a dense C-ordered array, computed sparsely one column block at a time."""
    n = X.shape[1]
    G = np.empty((n, n), dtype=dtype)
    X = X.astype(dtype)  # so float64 sums in float64
    Xt, Xc = X.T.tocsr(), X.tocsc()
    step = gram_block(n, G.itemsize)
    for s in range(0, n, step):
        G[:, s : s + step] = (Xt @ Xc[:, s : s + step]).toarray()
    return G


def _fill_lower_from_upper(P: np.ndarray, block: int = 1024) -> None:
    """Make a C-ordered square matrix symmetric from its upper triangle, in row blocks."""
    n = P.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        P[s:e, :s] = P[:s, s:e].T
        d = P[s:e, s:e]
        low = np.tril_indices(e - s, -1)
        d[low] = d.T[low]


def spd_inverse(G: np.ndarray, solver: str = "cholesky") -> np.ndarray:
    """The inverse of a symmetric positive definite C-ordered G, computed in G's memory (G is lost).

    Returns a C-ordered symmetric array. Raises LinAlgError when G is not positive definite.
    """
    # G is symmetric, so G.T is the same matrix in Fortran order: LAPACK then works in place.
    if solver == "cholesky":
        # potrf then potri, both in place: the inverse from the factor costs n^3 flops in all
        # (against 7n^3/3 for solving against an identity) and needs no second n x n copy
        potrf, potri = sla.get_lapack_funcs(("potrf", "potri"), (G,))
        c, info = potrf(G.T, lower=1, overwrite_a=1, clean=0)
        if info == 0:
            c, info = potri(c, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"the regularized Gram matrix is not positive definite (LAPACK info {info})")
        P = c.T if np.shares_memory(c, G) else np.ascontiguousarray(c.T)
        del c, G
        _fill_lower_from_upper(P)  # potri wrote one triangle (the upper one of this C view)
    else:
        P = sla.inv(G.T, overwrite_a=True, check_finite=False)
        del G
    # P is symmetric: whichever of P and P.T is C-ordered is the same numbers, with no copy
    return P if P.flags.c_contiguous else np.ascontiguousarray(P.T)


def zero_diagonal_weights(P: np.ndarray) -> np.ndarray:
    """B = I - P diag(1/diag P) in P's memory: B_ij = -P_ij / P_jj, diag(B) = 0."""
    B = P
    B /= -np.diag(B).copy()[None, :]
    B[np.diag_indices_from(B)] = 0.0
    return B


def ease_weights(X: sp.csr_matrix, l2: float, dtype: str = "float32", solver: str = "cholesky") -> np.ndarray:
    """B = I - P diag(1/diag P), P = (X^T X + l2 I)^-1, diag(B) = 0; C-ordered, in dtype."""
    G = dense_gram(X, dtype)
    G[np.diag_indices_from(G)] += l2
    try:
        P = spd_inverse(G, solver)
    except np.linalg.LinAlgError as e:
        raise ConfigError(f"ease: {e}; raise 'l2' (now {l2:g}) so that X^T X + l2 I stays invertible in "
                          f"{dtype}") from None
    return zero_diagonal_weights(P)


class EASE(Recommender):
    """EASE: closed-form item-item model. See the module docstring for defaults and deviations."""

    name = "ease"
    Config = EASEConfig
    test_overrides = {"l2": 10.0}
    space = {"l2": {"type": "float", "low": 1.0, "high": 1e4, "log": True}}

    def _fit(self, train: sp.csr_matrix, valid, **_) -> None:
        check_memory(self.n_items, train.nnz, self.config)
        self.B = ease_weights(train, self.config.l2, self.config.dtype, self.config.solver)
        self.epochs_run = 0

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history.astype(self.B.dtype) @ self.B, dtype=np.float32)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"B": self.B}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.B = np.ascontiguousarray(arrays["B"], dtype=self.config.dtype)
