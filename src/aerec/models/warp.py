"""WARP: the Mult-VAE architecture trained with the WARP ranking loss (a RaCT-paper baseline)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from aerec.models.multvae import MultVAE, MultVAEConfig


@dataclasses.dataclass
class WARPConfig(MultVAEConfig):
    loss: Literal["warp"] = "warp"
    anneal_cap: float = 0.0  # the reference's WARP run uses max_kl = 0: no KL term
    lam: float = 0.005  # = the reference's 1e-5 * sum ||W||^2 per batch at batch size 500


class WARP(MultVAE):
    """Mult-VAE architecture + WARP loss (Weston et al. 2011), as in the RaCT paper's tables.

    References: Lobel et al., "RaCT: Toward Amortized Ranking-Critical Training for Collaborative
    Filtering", ICLR 2020 (baseline "WARP"); code samlobel/RaCT_CF (``WarpEncoder``,
    ``warp_utils.py``, ``scripts/main_warp.py``). Mult-VAE with ``loss = "warp"``:

    - I-600-200-600-I, tanh, L2-normalized input with dropout 0.5, z sampled in training and
      z = mu when scoring (exactly Mult-VAE's network);
    - loss per user: sum over the user's items p of L(floor(N_u / t)) * max(0, margin - s_p + s_n),
      where negatives are drawn uniformly (positives rejected) until one, n, violates the margin
      (s_n > s_p - margin) at draw t; N_u = number of the user's negatives; L(k) = sum_{j<=k} 1/j.
      ``n_negatives`` draws per positive (default 100); no violator among them -> no loss.
      Mean over users; ``margin = 1``;
    - no KL term (``anneal_cap = 0``), as the reference's WARP run (``max_kl = 0.0``);
      L2 ``lam / batch_size * sum ||W||^2`` with ``lam = 0.005`` (= the reference's
      ``1e-5 * sum ||W||^2`` at batch 500); Adam 1e-3, batch 500, 200 epochs, best validation
      NDCG@100.

    Deviations: the reference code computes an exact, margin-less WARP over every (positive,
    negative) pair after sorting the scores, and on a linear I-200-I network; we use the classic
    sampled WARP with margin 1 on the Mult-VAE architecture (REFERENCE §4), with a fixed number of
    draws per positive so the loss is vectorized. The reference trained it for about 15 epochs
    (30 min/epoch on ML-20M); we keep Mult-VAE's 200 with best-epoch selection.
    """

    name = "warp"
    tune_patience = None  # the reference (RaCT_CF) trains its epochs without early stopping
    Config = WARPConfig
    test_overrides = {"epochs": 20, "hidden": (32,), "latent": 8, "batch_size": 16, "lr": 1e-2, "n_negatives": 8}
    space = {"margin": {"type": "float", "low": 0.1, "high": 2.0},
             "n_negatives": {"type": "int", "low": 20, "high": 200, "log": True},
             "dropout": {"type": "float", "low": 0.0, "high": 0.8},
             "lam": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
             "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
