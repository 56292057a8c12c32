"""LambdaNet: the Mult-VAE architecture trained with a LambdaRank-weighted loss (a RaCT-paper baseline)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from aerec.models.multvae import MultVAE, MultVAEConfig


@dataclasses.dataclass
class LambdaNetConfig(MultVAEConfig):
    loss: Literal["lambdarank"] = "lambdarank"


class LambdaNet(MultVAE):
    """Mult-VAE + LambdaRank-weighted pairwise loss (Burges et al. 2006), as in the RaCT paper.

    References: Lobel et al., "RaCT", ICLR 2020 (baseline "LambdaNet"); code samlobel/RaCT_CF
    (``LambdaRankEncoder``, ``lambdarank_utils.py``, ``scripts/main_lambdarank_actor.py``).
    Mult-VAE with ``loss = "lambdarank"``:

    - Mult-VAE's network, input dropout, sampling and KL annealing (beta to 0.2 over 200,000
      steps) unchanged: the reference's LambdaRank actor is its Mult-VAE with the loss swapped and
      the KL kept (``max_kl = 0.2``);
    - loss per user: sum over (positive i, negative j) pairs of
      |dNDCG_ij| * log(1 + exp(-(s_i - s_j))), where |dNDCG_ij| = |1/log2(1 + r_i) - 1/log2(1 + r_j)|
      / IDCG(#positives) is the NDCG change of swapping i and j in the current ranking (ranks r over
      all items, from the dense per-batch logits; IDCG over all positives, no cut-off, as the
      reference). The weights are constants, so the gradient is exactly the reference's lambdas;
    - mean over users; Adam 1e-3, batch 500, 200 epochs, best validation NDCG@100.

    Deviations: the reference sums over every (positive, negative) pair; we draw ``n_negatives``
    (default 100) negatives uniformly per positive (positives rejected) and scale their mean by
    the user's number of negatives, an unbiased estimate of that sum at O(positives x draws) cost.
    The reference trained it for 10 epochs; we keep Mult-VAE's 200 with best-epoch selection.
    """

    name = "lambdanet"
    tune_patience = None  # as WARP's: the reference trains its epochs without early stopping
    Config = LambdaNetConfig
    test_overrides = {"epochs": 20, "hidden": (32,), "latent": 8, "batch_size": 16, "lr": 1e-2, "n_negatives": 8}
    space = {"n_negatives": {"type": "int", "low": 20, "high": 200, "log": True},
             "dropout": {"type": "float", "low": 0.0, "high": 0.8},
             "anneal_cap": {"type": "float", "low": 0.0, "high": 0.5},
             "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
