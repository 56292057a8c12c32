"""EDLAE and DLAE (Steck, "Autoencoders that don't overfit towards the Identity", NeurIPS 2020).

Full-rank linear autoencoders trained with dropout (probability p, kept inputs scaled by 1/(1-p)),
in closed form. With G = X^T X, the expected dropout loss adds the penalty ||Lambda^(1/2) B||^2,
Lambda = p/(1-p) diag(G), an item-popularity weighted L2; ``l2`` adds lambda*I on top:

- ``dlae`` (dropout-as-regularizer): min E||X - X~ B||^2 + l2 ||B||^2,
  B = (G + Lambda + l2 I)^-1 G = I - P (Lambda + l2 I), P = (G + Lambda + l2 I)^-1;
- ``edlae`` (emphasized denoising, full emphasis a = 1, b = 0: only dropped-out entries are
  reconstructed): min (1/p) E sum (1 - M) o (X - X~ B)^2 + l2 ||B||^2. A dropped input cannot
  predict itself, so diag(B) = 0 and B = I - P diag(1/diag P): EASE with Lambda + l2 I for l2 I.

p = 0 gives the unregularized least-squares solutions (DLAE: the identity; EDLAE: EASE with l2).
Same dense solve and memory guard as EASE (aerec.models.ease). The low-rank EDLAE (iterative
ALS in the paper) is not implemented; neither are emphasis weights other than full emphasis.

Defaults: dropout p = 0.33 and l2 = 300, the author's full-rank setting for ML-20M in the
reference notebook (hasteck/EDLAE_NeurIPS2020); docs/models.md, "Where each default comes from".
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from aerec.devices import check_device
from aerec.errors import ConfigError
from aerec.models.base import BaseConfig
from aerec.models.ease import (
    EASE,
    check_memory,
    dense_gram,
    gram_on,
    spd_inverse,
    spd_inverse_on,
    to_host,
    zero_diagonal_on,
    zero_diagonal_weights,
)


@dataclasses.dataclass
class EDLAEConfig(BaseConfig):
    variant: Literal["edlae", "dlae"] = "edlae"
    dropout: float = 0.33
    l2: float = 300.0
    dtype: Literal["float32", "float64"] = "float32"
    solver: Literal["cholesky", "inverse"] = "cholesky"
    max_memory_gb: float | None = None  # cap on the estimate; None: MemAvailable only
    device: str = "cpu"  # as EASE's: cpu (LAPACK) or a torch device for torch.linalg

    def validate(self):
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("'dropout' must be in [0, 1)")
        if not self.l2 >= 0:
            raise ConfigError("'l2' must be >= 0")
        if self.max_memory_gb is not None and self.max_memory_gb <= 0:
            raise ConfigError("'max_memory_gb' must be positive or none")
        check_device(self.device)


def edlae_weights_on(X: sp.csr_matrix, dropout: float, l2: float, variant: str = "edlae",
                     dtype: str = "float32", solver: str = "cholesky", device="cpu") -> np.ndarray:
    """``edlae_weights`` through torch.linalg on ``device``; B comes back as a host array."""
    import torch

    G = gram_on(X, dtype, device)
    penalty = (dropout / (1.0 - dropout)) * G.diagonal().to(torch.float64) + l2  # diag of Lambda + l2 I
    G.diagonal().add_(penalty.to(G.dtype))
    try:
        P = spd_inverse_on(G, solver)
    except np.linalg.LinAlgError as e:
        raise ConfigError(f"{variant}: {e}; an item with no training interactions needs l2 > 0") from None
    if variant == "edlae":
        return to_host(zero_diagonal_on(P))
    P *= -penalty.to(P.dtype)[None, :]  # I - P (Lambda + l2 I), in place
    P.diagonal().add_(1.0)
    return to_host(P)


def edlae_weights(X: sp.csr_matrix, dropout: float, l2: float, variant: str = "edlae",
                  dtype: str = "float32", solver: str = "cholesky") -> np.ndarray:
    """The full-rank EDLAE/DLAE weight matrix (items x items, C-ordered, in dtype)."""
    G = dense_gram(X, dtype)
    penalty = (dropout / (1.0 - dropout)) * np.diag(G).astype(np.float64) + l2  # diag of Lambda + l2 I
    G[np.diag_indices_from(G)] += penalty.astype(G.dtype)
    try:
        P = spd_inverse(G, solver)
    except np.linalg.LinAlgError as e:
        raise ConfigError(f"{variant}: {e}; an item with no training interactions needs l2 > 0") from None
    if variant == "edlae":
        return zero_diagonal_weights(P)
    B = P  # I - P (Lambda + l2 I), in place
    B *= -penalty.astype(B.dtype)[None, :]
    B[np.diag_indices_from(B)] += 1.0
    return B


class EDLAE(EASE):
    """Full-rank EDLAE / DLAE; scoring and state as EASE's (history @ B, state {"B": B})."""

    name = "edlae"
    Config = EDLAEConfig
    test_overrides = {"l2": 10.0, "dropout": 0.25}
    space: ClassVar[dict] = {
        "dropout": {"type": "float", "low": 0.05, "high": 0.75},
        "l2": {"type": "float", "low": 1.0, "high": 2000.0, "log": True},
    }

    def _fit(self, train: sp.csr_matrix, valid, **_) -> None:
        device = self.device
        check_memory(self.n_items, train.nnz, self.config, label=self.config.variant.upper(), device=device)
        c = self.config
        if device.type == "cpu":
            self.B = edlae_weights(train, c.dropout, c.l2, c.variant, c.dtype, c.solver)
        else:
            self.B = edlae_weights_on(train, c.dropout, c.l2, c.variant, c.dtype, c.solver, device)
        self._B_on = None
        self.epochs_run = 0
