"""Mult-VAE: the variational autoencoder with a multinomial likelihood (Liang et al. 2018)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch, SparseLinear, multinomial_nll
from aerec.models.multdae import mlp, reference_init
from aerec.models.neural import NeuralConfig, StepCounted, TorchRecommender
from aerec.models.ranking_losses import lambdarank_loss, warp_loss
from aerec.models.schedules import MULTVAE_REF, RefShape, Schedule, steps_per_epoch


@dataclasses.dataclass
class MultVAEConfig(NeuralConfig):
    hidden: tuple[int, ...] = (600,)
    latent: int = 200
    dropout: float = 0.5
    anneal_cap: float = 0.2
    total_anneal_steps: int = 200_000
    beta: float | None = None  # a constant KL weight instead of the annealing schedule
    lam: float = 0.0  # L2 scale, as in Mult-DAE: lam / batch_size * sum ||W||^2 per batch
    # reconstruction term: the multinomial NLL, or a ranking loss (see ranking_losses.py)
    loss: Literal["multinomial", "warp", "lambdarank"] = "multinomial"
    n_negatives: int = 100  # negatives drawn per positive by the warp / lambdarank losses
    margin: float = 1.0  # WARP hinge margin
    # "reference": beta counts gradient steps literally (total_anneal_steps); "scaled": beta follows
    # progress through training, equal to the reference's on ML-20M (see models/schedules.py)
    schedule: Schedule = "scaled"  # the default by the ML-100K evidence (docs/models.md, Schedules)
    # scaled only: beta reaches anneal_cap after this fraction of the planned training steps;
    # None = the reference's fraction (40,000 of ML-20M's 46,800 steps, 0.855, for the defaults)
    anneal_steps_frac: float | None = None

    def validate(self):
        super().validate()
        if any(h < 1 for h in self.hidden) or self.latent < 1:
            raise ConfigError("'hidden' and 'latent' sizes must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'dropout' must be in [0, 1)")
        if self.anneal_cap < 0 or (self.beta is not None and self.beta < 0):
            raise ConfigError("'anneal_cap' and 'beta' must be non-negative")
        if self.total_anneal_steps < 0:
            raise ConfigError("'total_anneal_steps' must be 0 (no annealing) or positive")
        if self.lam < 0:
            raise ConfigError("'lam' must be non-negative")
        if self.n_negatives < 1 or self.margin < 0:
            raise ConfigError("'n_negatives' must be at least 1 and 'margin' non-negative")
        if self.schedule not in ("reference", "scaled"):
            raise ConfigError(f"'schedule' must be 'reference' or 'scaled', got {self.schedule!r}")
        if self.anneal_steps_frac is not None and self.anneal_steps_frac <= 0:
            raise ConfigError("'anneal_steps_frac' must be positive (or none: the reference's fraction)")


class VAENet(nn.Module):
    def __init__(self, n_items: int, hidden: tuple[int, ...], latent: int, dropout: float):
        super().__init__()
        self.dropout, self.latent = dropout, latent
        q_dims = [*hidden, 2 * latent]
        self.first = SparseLinear(n_items, q_dims[0])
        reference_init(self.first)
        self.q_rest = mlp(q_dims)
        self.p = mlp([latent, *reversed(hidden), n_items])

    def _encode_tail(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.q_rest:
            h = layer(torch.tanh(h))
        return h[:, : self.latent], h[:, self.latent :]

    def encode(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch.l2_normalized().dropout(self.dropout, self.training)
        return self._encode_tail(self.first(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.p):
            z = layer(z)
            if i < len(self.p) - 1:
                z = torch.tanh(z)
        return z

    def forward(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(batch)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode scores from a dense block, for equivalence tests and export."""
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        mu, _ = self._encode_tail(self.first.forward_dense(x))
        return self.decode(mu)

    def weight_sq_sum(self) -> torch.Tensor:
        return sum((m.weight**2).sum() for m in [self.first, *self.q_rest, *self.p])


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-row KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent dimensions."""
    return (0.5 * (-logvar + logvar.exp() + mu * mu - 1.0)).sum(dim=1)


def annealed_beta(step: int, cap: float, total_steps: int, beta: float | None = None) -> float:
    """KL weight after `step` gradient steps: a set constant `beta` wins; otherwise
    min(cap, step / total_steps), or `cap` throughout when `total_steps` is 0."""
    if beta is not None:
        return beta
    if total_steps > 0:
        return min(cap, step / total_steps)
    return cap


def scaled_beta(step: int, cap: float, total_steps: int, planned_steps: int, ref: RefShape,
                frac: float | None = None, beta: float | None = None) -> float:
    """KL weight by progress ``step / planned_steps`` through training (``schedule = "scaled"``).

    With ``frac`` None the reference's slope is kept per unit of progress: beta =
    min(cap, step / (total_steps * planned_steps / ref.total_steps)), which on the reference shape
    (planned_steps == ref.total_steps) is exactly ``annealed_beta``. With ``frac`` set, beta rises
    linearly to ``cap`` at progress ``frac``."""
    if beta is not None:
        return beta
    if frac is not None:
        return min(cap, cap * step / (frac * planned_steps))
    if total_steps <= 0:
        return cap
    return min(cap, step * ref.total_steps / (total_steps * planned_steps))  # ints: one rounding


class MultVAE(StepCounted, TorchRecommender):
    """Mult-VAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

    Reference: Dawen Liang's ``vae_cf`` notebook (TensorFlow 1). We follow it:

    - I-600-200-600-I: encoder I-600 (tanh) then one layer to 2 x 200 numbers split into mu and
      logvar; decoder 200-600 (tanh)-I, linear output. ``hidden`` sets the encoder's hidden sizes,
      the decoder mirrors them; ``latent`` the latent size;
    - the input row is L2-normalized, then dropout 0.5 (training only);
    - z = mu + eps * exp(logvar / 2), eps ~ N(0, 1), in training; z = mu when scoring;
    - loss per batch: mean over users of [multinomial NLL + beta * KL], with
      KL = sum over latent dims of 0.5 * (-logvar + exp(logvar) + mu^2 - 1);
    - beta = min(anneal_cap, step / total_anneal_steps) with ``step`` the number of gradient steps
      taken before this one, counted across epochs (and saved in checkpoints, so a resumed run goes
      on counting); ``total_anneal_steps = 0`` means beta = anneal_cap throughout; a set ``beta``
      replaces the schedule by a constant. That is ``schedule="reference"``; the default
      ``schedule="scaled"`` gives beta by progress through training instead (``scaled_beta``):
      exactly the reference's values on ML-20M's shape (234 steps x 200 epochs), the cap at 85.5%
      of the planned steps on any data (issue 13, docs/models.md "Schedules");
    - L2: ``lam / batch_size * sum ||W||^2`` per batch as in Mult-DAE; the notebook trains Mult-VAE
      with ``lam=0.0``, so the default is 0;
    - Xavier-uniform weights, truncated-normal (std 0.001) biases; Adam lr 1e-3, batch 500, 200
      epochs; model selection on validation NDCG@100 by the Trainer.

    ``loss = "warp" | "lambdarank"`` swaps the multinomial NLL for a ranking loss
    (``ranking_losses.py``); the named models ``warp`` and ``lambdanet`` set it with their defaults.

    Deviations: none in the maths. Sparse first layer (embedding-bag) instead of a dense matmul.
    Note that with the defaults beta reaches its cap 0.2 after 40,000 steps, i.e. only after
    40,000 / ceil(n_users / 500) epochs: with few users (ML-100K, ML-1M) beta stays far below the cap
    for the whole run, exactly as in the reference (the notebook was tuned on ML-20M).
    """

    name = "multvae"
    Config = MultVAEConfig
    test_overrides = {"epochs": 20, "hidden": (32,), "latent": 8, "batch_size": 16, "lr": 1e-2}
    space = {"hidden": {"type": "categorical", "choices": [[200], [400], [600], [600, 300]]},
             "latent": {"type": "int", "low": 32, "high": 400, "log": True},
             "dropout": {"type": "float", "low": 0.0, "high": 0.8},
             "anneal_cap": {"type": "float", "low": 0.05, "high": 1.0},
             "total_anneal_steps": {"type": "int", "low": 100, "high": 200_000, "log": True},
             "lam": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
             "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}

    update_count: int = 0
    ref_shape: RefShape = MULTVAE_REF  # the data shape the reference's step counts were set for

    def init_network(self) -> None:
        super().init_network()
        self.update_count = 0  # gradient steps so far; drives the KL annealing

    def anneal_epochs(self) -> int:
        """Epochs over which beta anneals (RaCT: only its actor phase)."""
        return self.config.epochs

    def planned_anneal_steps(self) -> int:
        return steps_per_epoch(self.n_users, self.config.batch_size) * self.anneal_epochs()

    def no_stop_before(self) -> int:
        """``scaled``: the first epoch that trains at the cap (171 of 200 on ML-20M's shape, 172 on ML-1M),
        so early stopping never ends a run whose KL weight is still rising. ``reference`` keeps the
        literal code, whose cap may lie far past the budget: no hold there."""
        c = self.config
        if c.schedule != "scaled" or c.beta is not None or c.anneal_cap <= 0:
            return 0
        per_epoch = steps_per_epoch(self.n_users, c.batch_size)
        planned = self.planned_anneal_steps()
        beta = lambda s: scaled_beta(s, c.anneal_cap, c.total_anneal_steps, planned, self.ref_shape,  # noqa: E731
                                     c.anneal_steps_frac)
        lo, hi = 0, planned  # first step whose beta is the cap (beta rises monotonically)
        if beta(hi) < c.anneal_cap:
            return self.anneal_epochs()
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if beta(mid) < c.anneal_cap else (lo, mid)
        return 0 if lo == 0 else min(self.anneal_epochs(), lo // per_epoch + 1)

    def _build(self) -> nn.Module:
        c = self.config
        return VAENet(self.n_items, tuple(c.hidden), c.latent, c.dropout)

    def current_beta(self) -> float:
        c = self.config
        if c.schedule == "scaled":
            return scaled_beta(self.update_count, c.anneal_cap, c.total_anneal_steps, self.planned_anneal_steps(),
                               self.ref_shape, c.anneal_steps_frac, c.beta)
        return annealed_beta(self.update_count, c.anneal_cap, c.total_anneal_steps, c.beta)

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        reg = self.config.lam / self.config.batch_size

        def loss_of(batch):
            beta = self.current_beta()
            logits, mu, logvar = self.net(batch)
            loss = (self.recon_loss(logits, batch) + beta * gaussian_kl(mu, logvar)).mean()
            return loss + reg * self.net.weight_sq_sum() if reg else loss

        return self.step_epoch(train, rng, loss_of)

    def entries_may_pad(self) -> bool:
        # the multinomial NLL, L2 norm, dropout and first layer weight each entry by its value;
        # subclasses add terms that read entries by position (RaCT's critic, the ranking losses)
        return type(self) is MultVAE and self.config.loss == "multinomial"

    def recon_loss(self, logits: torch.Tensor, target: SparseBatch) -> torch.Tensor:
        """Per-row reconstruction term chosen by ``loss``."""
        c = self.config
        if c.loss == "warp":
            return warp_loss(logits, target, c.n_negatives, c.margin)
        if c.loss == "lambdarank":
            return lambdarank_loss(logits, target, c.n_negatives)
        return multinomial_nll(logits, target)

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.net(batch)[0]
