"""SANSA (Spišák et al., "Scalable Approximate NonSymmetric Autoencoder for Collaborative
Filtering", RecSys 2023): EASE through a sparse approximate inverse, with no dense items x items.

EASE's P = (X^T X + l2 I)^-1 is replaced by a sparse product. Steps, each sparse:
1. A = X^T X + l2 I (sparse; its nnz bounds the memory), Jacobi-scaled to unit diagonal,
   A~ = S A S with S = diag(A)^-1/2, so that A^-1 = S A~^-1 S exactly;
2. A~ ~= L D L^T with a fill-reducing ordering (COLAMD) and at most ``density`` x items^2
   entries in L: ``factorizer = "icf"`` (incomplete Cholesky, for large sparse catalogues) or
   ``"cholmod"`` (exact Cholesky, then the smallest entries dropped);
3. W ~= L^-1 by the authors' UMR residual-minimization iterations at the same density;
4. with V = W P_perm S, P ~= V^T D^-1 V; diag(P) = column sums of V^2 / d;
   the model keeps W1 = V^T and W2 = D^-1 V diag(-1/diag P), both sparse.
Scores are ``history + (history @ W1) @ W2``: with exact factors this is history @ B_EASE
(B = I - P diag(1/diag P), zero diagonal), which the tests check.

Steps 2 and 3 call the authors' ``sansa`` package (optional extra: pip install 'aerec[sansa]';
it needs scikit-sparse < 0.5 and SuiteSparse, e.g. apt-get install libsuitesparse-dev).
Fitted models keep only scipy arrays, so loading and scoring do not need the package.

Departures from the package's own ``SANSA.fit`` (also in docs/models.md): the scaling is
symmetric on the whole of A (the package scales X's columns for ICF only, which regularizes the
scaled problem: a different model from EASE); the zero diagonal of B is kept exactly (the
package's product has -1 on its diagonal and relies on masking seen items).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import warnings
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from aerec.errors import ConfigError
from aerec.models.base import BaseConfig, Recommender

INSTALL = "SANSA needs the optional 'sansa' package: pip install 'aerec[sansa]' (it builds scikit-sparse " \
          "against SuiteSparse: apt-get install libsuitesparse-dev first)"


@dataclasses.dataclass
class SANSAConfig(BaseConfig):
    l2: float = 500.0
    density: float = 0.05  # target nnz / items^2 of L and of its inverse
    factorizer: Literal["cholmod", "icf"] = "cholmod"  # icf for catalogues whose exact factor is too big
    scans: int = 1  # UMR sweeps over all columns
    finetune_steps: int = 5  # UMR steps on the worst columns

    def validate(self):
        if not self.l2 > 0:
            raise ConfigError("'l2' must be positive (it keeps X^T X + l2*I invertible)")
        if not 0 < self.density <= 1:
            raise ConfigError("'density' must be in (0, 1]")
        if self.scans < 0 or self.finetune_steps < 0:
            raise ConfigError("'scans' and 'finetune_steps' must be >= 0")


def import_sansa():
    """The authors' package, imported without its import-time logging.basicConfig(INFO)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        mod = importlib.import_module("sansa")
    except ImportError as e:
        raise ConfigError(f"{INSTALL} ({e})") from None
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logging.getLogger("sansa").setLevel(logging.WARNING)
    return mod


def scaled_gram(X: sp.csr_matrix, l2: float, dtype=np.float64) -> tuple[sp.csc_matrix, np.ndarray]:
    """(S (X^T X + l2 I) S as CSC in dtype, s): unit diagonal, s = diag(X^T X + l2 I)^-1/2.

    Scaled in place on the Gram's own arrays: no dense array and no second sparse copy."""
    X = X.astype(dtype)
    A = sp.csc_matrix(X.T @ X)
    del X
    A.sort_indices()
    s = 1.0 / np.sqrt(np.asarray(A.diagonal(), dtype=np.float64) + l2)
    A.setdiag(A.diagonal() + l2)
    A.data *= s[A.indices].astype(dtype)
    A.data *= np.repeat(s, np.diff(A.indptr)).astype(dtype)
    return A, s


def memory_estimate(train: sp.csr_matrix, density: float) -> int:
    """Bytes that surely are allocated: the sparse Gram (at most sum of squared row counts
    entries, capped at items^2; the product and its CSC copy) and, at ``density`` x items^2
    entries each, L, its inverse and the factors W1, W2 (about 12 bytes per entry). CHOLMOD's exact
    factor can need more before its smallest entries are dropped."""
    n_items = train.shape[1]
    rows = np.diff(train.indptr).astype(np.float64)
    gram = min(float(n_items) ** 2, float((rows * rows).sum()))
    return int(12 * 2 * gram + 12 * 4 * density * float(n_items) ** 2)


def check_memory(train: sp.csr_matrix, cfg) -> None:
    from aerec.errors import ResourceError
    from aerec.models.ease import available_memory

    need, avail = memory_estimate(train, cfg.density), available_memory()
    if avail is not None and need > avail:
        raise ResourceError(f"sansa on {train.shape[1]:,} items at density {cfg.density:g} needs at least "
                            f"{need / 2**30:,.1f} GiB, more than the {avail / 2**30:,.1f} GiB available; "
                            "lower 'density'")


def weights_from_factors(Linv: sp.spmatrix, d: np.ndarray, perm: np.ndarray, s: np.ndarray,
                         dtype=np.float32) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(W1, W2) from A~[perm][:, perm] ~= L diag(d) L^T, Linv ~= L^-1, A = S^-1 A~ S^-1.

    A^-1 ~= V^T D^-1 V with V = Linv P S (P: the permutation back to item order), and
    W2 = D^-1 V diag(-1/diag(A^-1)), so that x + x W1 W2 = x (I - P diag(1/diag P)).
    """
    V = sp.csc_matrix(Linv, dtype=np.float64)[:, np.argsort(perm)]
    V = V @ sp.diags(s)  # columns scaled
    diagP = np.asarray(V.multiply(V).T @ (1.0 / d)).ravel()
    W2 = sp.diags(1.0 / d) @ V @ sp.diags(-1.0 / diagP)
    return sp.csr_matrix(V.T, dtype=dtype), sp.csr_matrix(W2, dtype=dtype)


class SANSA(Recommender):
    """SANSA on the authors' factorizer and inverter. See the module docstring."""

    name = "sansa"
    Config = SANSAConfig
    requires: ClassVar[tuple] = (("sansa", "sansa"),)
    test_overrides = {"l2": 10.0, "density": 0.5, "factorizer": "cholmod"}
    space: ClassVar[dict] = {
        "l2": {"type": "float", "low": 10.0, "high": 2000.0, "log": True},
        "density": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
    }

    def _fit(self, train: sp.csr_matrix, valid, **_) -> None:
        check_memory(train, self.config)
        pkg = import_sansa()
        c = self.config
        fcfg = pkg.CHOLMODGramianFactorizerConfig() if c.factorizer == "cholmod" else pkg.ICFGramianFactorizerConfig()
        factorizer = pkg.core.GramianFactorizer.from_config(fcfg)
        inverter = pkg.core.UnitLowerTriangleInverter.from_config(
            pkg.UMRUnitLowerTriangleInverterConfig(scans=c.scans, finetune_steps=c.finetune_steps))
        # the package's compiled ICF takes float32 values only
        A, s = scaled_gram(train, c.l2, np.float32 if c.factorizer == "icf" else np.float64)
        with warnings.catch_warnings():  # CHOLMOD's notes that it converts A^T to CSC
            warnings.simplefilter("ignore", category=Warning)
            L, D, perm = factorizer.approximate_ldlt(A, 0.0, c.density, compute_gramian=False)
        del A
        Linv = inverter.invert(L)
        del L
        self.W1, self.W2 = weights_from_factors(Linv, D.diagonal(), perm, s)
        self.epochs_run = 0

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        h = history.astype(np.float32)
        return np.asarray((h + (h @ self.W1) @ self.W2).toarray(), dtype=np.float32)

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for key, m in (("W1", self.W1), ("W2", self.W2)):
            out.update({f"{key}.data": m.data, f"{key}.indices": m.indices.astype(np.int64),
                        f"{key}.indptr": m.indptr.astype(np.int64)})
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        n = self.n_items
        self.W1, self.W2 = (sp.csr_matrix((arrays[f"{k}.data"].astype(np.float32), arrays[f"{k}.indices"],
                                           arrays[f"{k}.indptr"]), shape=(n, n)) for k in ("W1", "W2"))
