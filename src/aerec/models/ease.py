"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

Closed form:  G = X^T X + l2 * I,  P = G^-1,  B = I - P diag(1/diag(P)),  so diag(B) = 0 and
B_ij = -P_ij / P_jj off the diagonal. Scores are ``history @ B`` (sparse row block times the dense
items x items B), never a dense users x items matrix. ``l2`` (lambda) defaults to 500 (ML-20M);
the paper uses 1000 for Netflix and 200 for MSD.

Solvers: ``cholesky`` (default: G is symmetric positive definite; LAPACK potrf, then potri for
the inverse from the factor, both in place: n^3 flops and one n x n array) or ``inverse``
(LU-based ``scipy.linalg.inv`` in place, as the paper's ``np.linalg.inv``). The Gram matrix is
built sparsely (``X^T X[:, cols]`` for column blocks) and only the items x items result is dense.

Device: ``device = "cpu"`` (default) runs the LAPACK path; ``cuda``/``cuda:N``/``auto`` builds the
Gram matrix, its Cholesky factor and the inverse through torch.linalg on that device (in
``dtype``; float64 is the paper's precision), then brings B back to the host, so the fitted model
saves, loads and scores like a CPU fit (scoring runs on the device while it is there).

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
import warnings
from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from aerec.devices import check_device, resolve_device
from aerec.errors import ConfigError, ResourceError
from aerec.models.base import BaseConfig, Recommender

GB = 1e9


@dataclasses.dataclass
class EASEConfig(BaseConfig):
    l2: float = 500.0
    dtype: Literal["float32", "float64"] = "float32"
    solver: Literal["cholesky", "inverse"] = "cholesky"
    max_memory_gb: float | None = None  # cap on the estimate; None: MemAvailable only
    # cpu: the LAPACK path below; cuda / cuda:N / auto: torch.linalg on that device (B comes back
    # to the host, so the model saves and loads as a CPU fit does)
    device: str = "cpu"

    def validate(self):
        if not self.l2 > 0:
            raise ConfigError("'l2' must be positive (it keeps X^T X + l2*I invertible)")
        if self.max_memory_gb is not None and self.max_memory_gb <= 0:
            raise ConfigError("'max_memory_gb' must be positive or none")
        check_device(self.device)


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


def check_memory(n_items: int, nnz: int, cfg, label: str = "EASE", device=None) -> None:
    """Refuse a fit whose dense items x items estimate exceeds MemAvailable (a GPU's free memory
    for a fit there) or cfg.max_memory_gb."""
    if device is not None and device.type == "cuda":
        import torch

        # torch.linalg keeps G, its factor and the inverse: three copies
        need = 3 * n_items * n_items * np.dtype(cfg.dtype).itemsize + 16 * n_items * gram_block(n_items, 4)
        avail, where = int(torch.cuda.mem_get_info(device)[0]), f"free on {device}"
    else:
        need = memory_estimate(n_items, nnz, cfg.dtype, cfg.solver)
        avail, where = available_memory(), "available (MemAvailable)"
    limits = [(avail, where)] if avail is not None else []
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


# torch.linalg on a device (GPU) ---------------------------------------------------------------
def gram_on(X: sp.csr_matrix, dtype: str, device):
    """X^T X as a dense tensor on ``device``: the sparse X^T there times dense column blocks of X
    (each block densified on the device from its entries), so only X's entries travel."""
    import torch

    tdt = getattr(torch, dtype)
    n = X.shape[1]
    Xt = X.T.tocsr().astype(dtype)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": said once per fit otherwise
        warnings.simplefilter("ignore", UserWarning)
        A = torch.sparse_csr_tensor(torch.from_numpy(Xt.indptr.astype(np.int64)),
                                    torch.from_numpy(Xt.indices.astype(np.int64)), torch.from_numpy(Xt.data),
                                    size=Xt.shape, dtype=tdt, check_invariants=False).to(device)
    Xc = X.tocsc().astype(dtype)
    G = torch.empty(n, n, dtype=tdt, device=device)
    step = gram_block(n, np.dtype(dtype).itemsize)
    for s in range(0, n, step):
        block = Xc[:, s : s + step].tocoo()
        dense = torch.zeros(X.shape[0], block.shape[1], dtype=tdt, device=device)
        rows = torch.from_numpy(block.row.astype(np.int64)).to(device)
        cols = torch.from_numpy(block.col.astype(np.int64)).to(device)
        dense.index_put_((rows, cols), torch.from_numpy(block.data).to(device), accumulate=True)
        G[:, s : s + step] = A @ dense
        del dense
    return G


def spd_inverse_on(G, solver: str = "cholesky"):
    """The inverse of a symmetric positive definite tensor, on its device (G is lost). Raises
    LinAlgError when G is not positive definite."""
    import torch

    if solver == "cholesky":
        L, info = torch.linalg.cholesky_ex(G)
        del G
        if int(info) != 0:
            raise np.linalg.LinAlgError(f"the regularized Gram matrix is not positive definite (leading minor {int(info)})")
        P = torch.cholesky_inverse(L)
        del L
    else:
        P, info = torch.linalg.inv_ex(G)
        if int(info) != 0:
            raise np.linalg.LinAlgError(f"the regularized Gram matrix is singular (pivot {int(info)})")
    return P


def zero_diagonal_on(P):
    """B = I - P diag(1/diag P) in P's memory (tensor version of zero_diagonal_weights)."""
    P /= -P.diagonal().clone()[None, :]
    P.fill_diagonal_(0.0)
    return P


def to_host(B) -> np.ndarray:
    return np.ascontiguousarray(B.cpu().numpy())


def ease_weights_on(X: sp.csr_matrix, l2: float, dtype: str = "float32", solver: str = "cholesky",
                    device="cpu") -> np.ndarray:
    """``ease_weights`` through torch.linalg on ``device``; B comes back as a host array."""
    G = gram_on(X, dtype, device)
    G.diagonal().add_(l2)
    try:
        P = spd_inverse_on(G, solver)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError(f"EASE: {e}") from None
    return to_host(zero_diagonal_on(P))


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

    _B_on = None  # (device, B there) while scoring on a device

    @property
    def device(self):
        return resolve_device(self.config.device)

    def _fit(self, train: sp.csr_matrix, valid, **_) -> None:
        device = self.device
        check_memory(self.n_items, train.nnz, self.config, device=device)
        c = self.config
        if device.type == "cpu":
            self.B = ease_weights(train, c.l2, c.dtype, c.solver)
        else:
            self.B = ease_weights_on(train, c.l2, c.dtype, c.solver, device)
        self._B_on = None
        self.epochs_run = 0

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history.astype(self.B.dtype) @ self.B, dtype=np.float32)

    def _score_tensor(self, history: sp.csr_matrix):
        """history @ B where B lives: the host (scipy; a fresh array, so no copy) or the device."""
        import torch

        device = self.device
        if device.type == "cpu":
            return torch.from_numpy(self._score(history))
        if self._B_on is None or self._B_on[0] != device:
            self._B_on = (device, torch.from_numpy(self.B).to(device))
        B = self._B_on[1]
        h = history.astype(self.B.dtype).tocoo()
        dense = torch.zeros(h.shape, dtype=B.dtype, device=device)
        dense[torch.from_numpy(h.row.astype(np.int64)).to(device), torch.from_numpy(h.col.astype(np.int64)).to(device)] = \
            torch.from_numpy(h.data).to(device)
        return (dense @ B).float()

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"B": self.B}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.B = np.ascontiguousarray(arrays["B"], dtype=self.config.dtype)
        self._B_on = None
