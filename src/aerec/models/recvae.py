"""RecVAE: Mult-VAE with a composite prior and alternating updates (Shenbin et al. 2020)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from aerec import config as cfgmod
from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch, SparseLinear, multinomial_nll
from aerec.models.neural import NeuralConfig, TorchRecommender, adam
from aerec.models.schedules import RECVAE_REF, Schedule, step_ratio

LOG_2PI = math.log(2 * math.pi)
SCALED_PATIENCE = 20  # early stopping under schedule="scaled" when patience is left at 0
# the most epochs `scaled` may plan when `epochs` is unset (10x the reference's 50): a bound on
# wall time for data far smaller than ML-20M, where the step budget alone reaches thousands
SCALED_MAX_EPOCHS = 500


@dataclasses.dataclass
class RecVAEConfig(NeuralConfig):
    # None: the schedule decides (the reference's 50 under "reference"; under "scaled" a ceiling,
    # see below); a number is trained exactly (with early stopping only if `patience` is set)
    epochs: int | None = None
    lr: float = cfgmod.lr_field(5e-4)
    hidden: int = 600
    latent: int = 200
    layers: int = 5
    ln_eps: float = 0.1
    dropout: float = 0.5
    gamma: float = 0.005
    beta: float | None = None  # a constant KL weight instead of gamma * |x_u|
    enc_epochs: int = 3
    dec_epochs: int = 1
    mixture_weights: tuple[float, ...] = (3 / 20, 3 / 4, 1 / 10)  # N(0,1), old posterior, N(0,e^10)
    wide_logvar: float = 10.0
    # With `epochs` unset: "reference" trains the reference's 50 epochs; "scaled" trains at most the
    # reference's gradient-step budget (50 epochs of ML-20M's 234 batches) in epochs of this data,
    # bounded by SCALED_MAX_EPOCHS, with early stopping (patience 0 then means SCALED_PATIENCE);
    # without validation data, 50.
    # The default by the ML-100K evidence (docs/models.md, Schedules)
    schedule: Schedule = "scaled"

    def validate(self):
        super().validate()
        if min(self.hidden, self.latent, self.layers) < 1:
            raise ConfigError("'hidden', 'latent' and 'layers' must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'dropout' must be in [0, 1)")
        if self.gamma < 0 or (self.beta is not None and self.beta < 0):
            raise ConfigError("'gamma' and 'beta' must be non-negative")
        if self.enc_epochs < 1 or self.dec_epochs < 1:
            raise ConfigError("'enc_epochs' and 'dec_epochs' must be at least 1")
        w = self.mixture_weights
        if len(w) != 3 or min(w) <= 0 or abs(sum(w) - 1) > 1e-6:
            raise ConfigError("'mixture_weights' must be 3 positive numbers summing to 1")
        if self.ln_eps <= 0:
            raise ConfigError("'ln_eps' must be positive")
        if self.schedule not in ("reference", "scaled"):
            raise ConfigError(f"'schedule' must be 'reference' or 'scaled', got {self.schedule!r}")


def linear_default_init(layer: SparseLinear) -> None:
    """nn.Linear's default law (uniform +-1/sqrt(fan_in)) for a SparseLinear stored as [in, out]."""
    bound = 1.0 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.uniform_(layer.bias, -bound, bound)


class Encoder(nn.Module):
    def __init__(self, n_items: int, hidden: int, latent: int, layers: int, eps: float):
        super().__init__()
        self.fc1 = SparseLinear(n_items, hidden)
        linear_default_init(self.fc1)
        self.fcs = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.lns = nn.ModuleList(nn.LayerNorm(hidden, eps=eps) for _ in range(layers))
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)

    def _tail(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.lns[0](F.silu(a))
        dense_sum = h  # sum of all earlier layers' outputs
        for fc, ln in zip(self.fcs, self.lns[1:]):
            h = ln(F.silu(fc(h) + dense_sum))
            dense_sum = dense_sum + h
        return self.fc_mu(h), self.fc_logvar(h)

    def forward(self, batch: SparseBatch, dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch.l2_normalized().dropout(dropout, self.training)
        return self._tail(self.fc1(x))

    def forward_dense(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return self._tail(self.fc1.forward_dense(x))


def log_normal(z: torch.Tensor, mu, logvar) -> torch.Tensor:
    return -0.5 * (logvar + LOG_2PI + (z - mu) ** 2 / torch.exp(logvar))


class RecVAENet(nn.Module):
    def __init__(self, n_items: int, c: RecVAEConfig):
        super().__init__()
        args = (n_items, c.hidden, c.latent, c.layers, c.ln_eps)
        self.encoder = Encoder(*args)
        self.decoder = nn.Linear(c.latent, n_items)
        self.encoder_old = Encoder(*args).requires_grad_(False)
        self.log_w = [math.log(w) for w in c.mixture_weights]
        self.wide_logvar = c.wide_logvar

    def log_prior(self, batch: SparseBatch, z: torch.Tensor) -> torch.Tensor:
        """Per-dimension log-density of the composite prior at z."""
        with torch.no_grad():  # frozen: only refresh_old_encoder changes it
            mu_old, logvar_old = self.encoder_old(batch, 0.0)
        zero = torch.zeros((), dtype=z.dtype, device=z.device)
        parts = [log_normal(z, zero, zero), log_normal(z, mu_old, logvar_old),
                 log_normal(z, zero, zero + self.wide_logvar)]
        return torch.logsumexp(torch.stack([p + w for p, w in zip(parts, self.log_w)], dim=-1), dim=-1)

    @torch.no_grad()
    def refresh_old_encoder(self) -> None:
        self.encoder_old.load_state_dict(self.encoder.state_dict())

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder.forward_dense(x)[0])


class RecVAE(TorchRecommender):
    """RecVAE (Shenbin et al., "RecVAE: a New Variational Autoencoder for Top-N Recommendations with
    Implicit Feedback", WSDM 2020).

    Reference: github.com/ilya-shenbin/RecVAE (PyTorch, ``model.py`` and ``run.py``). We follow the code:

    - encoder: L2-normalized input, dropout, then ``layers`` (5) densely connected layers of
      ``hidden`` (600): h1 = LN(swish(W1 x)), h_k = LN(swish(W_k h_{k-1} + h_1 + ... + h_{k-1})),
      LayerNorm eps 0.1; two linear heads give mu and logvar (``latent`` 200). Decoder: one linear
      layer latent -> items. PyTorch's default nn.Linear init everywhere (as the reference);
    - composite prior, per latent dimension: log sum_k w_k N(z; m_k, v_k) with
      w = (3/20, 3/4, 1/10) for N(0, 1), the old posterior N(mu_old(x), exp(logvar_old(x))) and
      N(0, e^10). The old encoder is a frozen copy (own random init at start, as the reference)
      that is overwritten with the encoder's weights after each encoder phase; it lives in
      ``net.encoder_old`` so checkpoints and saved models carry it;
    - loss per batch: -mean_u[sum_j x_uj log softmax(dec(z_u))_j] + mean_u[w_u * sum_d (log q(z|x) -
      log p(z))], one sample z = mu + eps * sigma (in both phases); w_u = gamma * |x_u| (gamma 0.005,
      |x_u| the row sum of the raw input), or a constant ``beta`` when set;
    - each epoch: ``enc_epochs`` (3) passes with dropout 0.5 stepping only the encoder's Adam, then
      the old encoder is refreshed, then ``dec_epochs`` (1) pass with dropout 0 stepping only the
      decoder's Adam. Two Adam optimizers, lr 5e-4, batch 500, 50 epochs. Scores: dec(mu(x)) with no
      dropout.

    How the code differs from the paper (we follow the code): the paper writes KL(q || p) with a
    composite prior over the whole latent vector; the code uses a one-sample Monte-Carlo estimate
    log q(z|x) - log p(z) whose mixture is taken per latent dimension (logsumexp per dimension, then
    summed). The loss is the batch mean of -sum_j x_uj log softmax_j + gamma |x_u| KL_u (likelihood
    summed over items, not normalized by |x_u|). Denoising (dropout) is applied in the encoder phase
    only. The first encoder phase's old posterior comes from a randomly initialized encoder. When both
    are set, our ``beta`` wins over ``gamma`` (the reference lets gamma win).

    Deviations (for speed; the updates are unchanged): in the encoder phase the decoder's weight
    gradients are not computed, and in the decoder phase the encoder runs without gradients and the
    KL term (hence the old encoder) is skipped, since it does not depend on the decoder (the
    reference computes all of it and discards what neither optimizer uses). The L2 normalization
    clamps the norm at 1e-12 instead of adding 1e-10 (an all-zero row stays zero in both). The
    reported epoch loss is the mean negative ELBO over the encoder passes' batches. The reference's
    optional ``--not-alternating`` and ImplicitSLIM modes are not implemented.
    """

    name = "recvae"
    Config = RecVAEConfig
    test_overrides = {"epochs": 10, "hidden": 32, "latent": 8, "layers": 2, "batch_size": 16, "lr": 1e-2,
                      "schedule": "reference"}  # a fixed, short budget for the shared tests
    space = {"beta": {"type": "categorical", "choices": [None, 0.1, 0.2, 0.5, 1.0]},  # None: gamma * |x_u|
             "gamma": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True, "when": {"beta": None}},
             "dropout": {"type": "float", "low": 0.2, "high": 0.8},
             "hidden": {"type": "int", "low": 200, "high": 1000, "log": True},
             "latent": {"type": "int", "low": 64, "high": 400, "log": True},
             "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}}
    # no `epochs` dimension: under "scaled" early stopping (best epoch restored) sets the length

    def _build(self) -> nn.Module:
        return RecVAENet(self.n_items, self.config)

    def epoch_ceiling(self) -> int:
        """A set ``epochs`` is exact. Unset: ``reference`` 50; ``scaled`` 50 x (234 / our batches
        per epoch), between 50 (exactly 50 on ML-20M's shape) and SCALED_MAX_EPOCHS."""
        c = self.config
        if c.epochs is not None:
            return c.epochs
        if c.schedule != "scaled":
            return RECVAE_REF.epochs
        budget = math.ceil(RECVAE_REF.epochs * step_ratio(RECVAE_REF, self.n_users, c.batch_size))
        return min(max(RECVAE_REF.epochs, budget), SCALED_MAX_EPOCHS)

    def planned_epochs(self) -> int:
        return self.config.epochs or RECVAE_REF.epochs

    def stop_patience(self) -> int:
        c = self.config
        return c.patience or (SCALED_PATIENCE if c.schedule == "scaled" and c.epochs is None else 0)

    def schedule_note(self, ceiling: int, floor: int) -> str | None:
        c = self.config
        if c.epochs is not None or ceiling == RECVAE_REF.epochs:
            return None
        return (f"recvae: epochs unset, so schedule '{c.schedule}' trains up to {ceiling} epochs "
                f"({ceiling - RECVAE_REF.epochs:+d} over the reference's {RECVAE_REF.epochs}: its gradient-step budget "
                f"at {math.ceil(self.n_users / c.batch_size)} batch(es) per epoch"
                + (f", bounded at {SCALED_MAX_EPOCHS}" if ceiling == SCALED_MAX_EPOCHS else "")
                + f"), stopping after {self.stop_patience()} epochs without gain; set epochs for an exact count")

    def compile_modules(self) -> list[nn.Module]:
        return [self.net.encoder, self.net.encoder_old, self.net.decoder]  # called apart, never whole

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = self.config.lr
        return {"encoder": adam(self.net.encoder.parameters(), lr=lr),
                "decoder": adam(self.net.decoder.parameters(), lr=lr)}

    def _loss(self, batch: SparseBatch, dropout: float, encoder_phase: bool) -> torch.Tensor:
        """The negative ELBO; in the decoder phase only its multinomial term, which alone carries
        the decoder's gradient (the KL term does not depend on the decoder)."""
        c, net = self.config, self.net
        with torch.set_grad_enabled(encoder_phase):
            mu, logvar = net.encoder(batch, dropout)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        nll = multinomial_nll(net.decoder(z), batch)
        if not encoder_phase:
            return nll.mean()
        weight = c.beta if c.beta is not None else c.gamma * batch.row_sum(batch.values)
        kl = (log_normal(z, mu, logvar) - net.log_prior(batch, z)).sum(dim=1) * weight
        return (nll + kl).mean()

    def _pass(self, train, rng, dropout: float, encoder_phase: bool, total=None):
        self.net.decoder.requires_grad_(not encoder_phase)  # decoder weight grads unused there
        try:
            return self.run_steps(train, rng, lambda batch: self._loss(batch, dropout, encoder_phase),
                                  "encoder" if encoder_phase else "decoder", total)
        finally:
            self.net.decoder.requires_grad_(True)

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        c = self.config
        total, n = None, 0  # the encoder passes' negative ELBO is the epoch's reported loss
        for _ in range(c.enc_epochs):
            total, rows = self._pass(train, rng, c.dropout, encoder_phase=True, total=total)
            n += rows
        self.net.refresh_old_encoder()
        for _ in range(c.dec_epochs):
            self._pass(train, rng, 0.0, encoder_phase=False)
        return float(total) / max(n, 1)

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.net.decoder(self.net.encoder(batch, 0.0)[0])
