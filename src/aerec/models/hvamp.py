"""H+Vamp (Gated): Mult-VAE with a hierarchical VampPrior and gated linear units
(Kim & Suh, RecSys 2019)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from aerec import config as cfgmod
from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch, SparseLinear, multinomial_nll
from aerec.models.neural import NeuralConfig, TorchRecommender

LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass
class HVampConfig(NeuralConfig):
    hidden: int = 600
    z1: int = 200
    z2: int = 200
    layers: int = 2  # depth of the q(z2|x) and p(z1|z2) stacks (EVCF's num_layers, at least 2)
    gated: bool = True  # gated linear units; False: tanh layers
    components: int = 1000  # VampPrior pseudo-inputs
    pseudo_mean: float = 0.05
    pseudo_std: float = 0.01
    dropout: float = 0.5
    max_beta: float = 0.3
    warmup: int = 100  # beta = max_beta * epoch / warmup (epoch counted from 1); 0: max_beta throughout
    epochs: int = 400
    batch_size: int = 200
    lr: float = cfgmod.lr_field(5e-4)
    patience: int = 50

    def validate(self):
        super().validate()
        if min(self.hidden, self.z1, self.z2, self.components) < 1:
            raise ConfigError("'hidden', 'z1', 'z2' and 'components' must be positive")
        if self.layers < 2:
            raise ConfigError("'layers' must be at least 2")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'dropout' must be in [0, 1)")
        if self.max_beta < 0 or self.warmup < 0 or self.pseudo_std < 0:
            raise ConfigError("'max_beta', 'warmup' and 'pseudo_std' must be non-negative")


def he_init(weight: torch.Tensor, fan_in: int) -> None:
    nn.init.normal_(weight, 0.0, math.sqrt(2.0 / fan_in))


class Unit(nn.Module):
    """A gated linear unit  (W x + b) * sigmoid(V x + c)  (EVCF's NonLinear(gated=True): no other
    activation), or tanh(W x + b) when not gated. Both halves live in one matrix; with ``sparse`` the
    input is a SparseBatch (first layer)."""

    def __init__(self, n_in: int, n_out: int, gated: bool, sparse: bool = False):
        super().__init__()
        self.gated, self.sparse = gated, sparse
        width = 2 * n_out if gated else n_out
        self.lin = SparseLinear(n_in, width) if sparse else nn.Linear(n_in, width)
        he_init(self.lin.weight, n_in)
        nn.init.uniform_(self.lin.bias, -1 / math.sqrt(n_in), 1 / math.sqrt(n_in))  # nn.Linear's default

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        if self.gated:
            a, g = h.chunk(2, dim=1)
            return a * torch.sigmoid(g)
        return torch.tanh(h)

    def forward(self, x) -> torch.Tensor:
        return self._act(self.lin(x))

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        return self._act(self.lin.forward_dense(x) if self.sparse else self.lin(x))


def linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    he_init(layer.weight, n_in)
    return layer


def log_normal_diag(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-row log N(z; mean, diag(exp(logvar))), summed over dimensions."""
    return (-0.5 * (LOG_2PI + logvar + (z - mean) ** 2 / logvar.exp())).sum(dim=1)


def log_mixture(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log (1/C) sum_c N(z; means[c], diag(exp(logvars[c]))) per row of z, via matrix products
    (memory rows x C, never rows x C x dims)."""
    prec = torch.exp(-logvars)  # [C, d]
    quad = (z * z) @ prec.T - 2.0 * z @ (means * prec).T + (means * means * prec).sum(1)[None, :]
    comp = -0.5 * (z.shape[1] * LOG_2PI + logvars.sum(1)[None, :] + quad)  # [rows, C]
    return torch.logsumexp(comp, dim=1) - math.log(means.shape[0])


class HVampNet(nn.Module):
    def __init__(self, n_items: int, c: HVampConfig):
        super().__init__()
        h, g, self.dropout = c.hidden, c.gated, c.dropout
        # q(z2 | x)
        self.q_z2_first = Unit(n_items, h, g, sparse=True)
        self.q_z2_rest = nn.ModuleList(Unit(h, h, g) for _ in range(c.layers - 1))
        self.q_z2_mean, self.q_z2_logvar = linear(h, c.z2), linear(h, c.z2)
        # q(z1 | x, z2)
        self.q_z1_x = Unit(n_items, h, g, sparse=True)
        self.q_z1_z2 = Unit(c.z2, h, g)
        self.q_z1_joint = nn.ModuleList([Unit(2 * h, h, g)] + [Unit(h, h, g) for _ in range(c.layers - 2)])
        self.q_z1_mean, self.q_z1_logvar = linear(h, c.z1), linear(h, c.z1)
        # p(z1 | z2)
        self.p_z1_layers = nn.ModuleList([Unit(c.z2, h, g)] + [Unit(h, h, g) for _ in range(c.layers - 1)])
        self.p_z1_mean, self.p_z1_logvar = linear(h, c.z1), linear(h, c.z1)
        # p(x | z1, z2)
        self.p_x_z1, self.p_x_z2 = Unit(c.z1, h, g), Unit(c.z2, h, g)
        self.p_x_joint = nn.ModuleList([Unit(2 * h, h, g)] + [Unit(h, h, g) for _ in range(c.layers - 2)])
        self.p_x_out = linear(h, n_items)
        # VampPrior pseudo-inputs u_c = hardtanh_[0,1](row c of this matrix)
        self.pseudo = nn.Parameter(torch.empty(c.components, n_items))
        nn.init.normal_(self.pseudo, c.pseudo_mean, c.pseudo_std)

    @staticmethod
    def _stack(h: torch.Tensor, layers: nn.ModuleList) -> torch.Tensor:
        for layer in layers:
            h = layer(h)
        return h

    @staticmethod
    def _logvar(layer: nn.Linear, h: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(layer(h), -12.0, 4.0)

    def _q_z2_tail(self, h: torch.Tensor):
        h = self._stack(h, self.q_z2_rest)
        return self.q_z2_mean(h), self._logvar(self.q_z2_logvar, h)

    def _q_z1_tail(self, hx: torch.Tensor, z2: torch.Tensor):
        h = self._stack(torch.cat([hx, self.q_z1_z2(z2)], dim=1), self.q_z1_joint)
        return self.q_z1_mean(h), self._logvar(self.q_z1_logvar, h)

    def p_z1(self, z2: torch.Tensor):
        h = self._stack(z2, self.p_z1_layers)
        return self.p_z1_mean(h), self._logvar(self.p_z1_logvar, h)

    def p_x(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        h = self._stack(torch.cat([self.p_x_z1(z1), self.p_x_z2(z2)], dim=1), self.p_x_joint)
        return self.p_x_out(h)

    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, logvars) [C, z2] of the VampPrior: q(z2 | u_c) for every pseudo-input. As in
        EVCF, q(z2|.)'s input dropout also acts on the pseudo-inputs in training."""
        u = F.hardtanh(self.pseudo, 0.0, 1.0)
        u = F.dropout(u, self.dropout, self.training)
        return self._q_z2_tail(self.q_z2_first.forward_dense(u))

    def log_p_z2(self, z2: torch.Tensor) -> torch.Tensor:
        return log_mixture(z2, *self.prior_components())

    def _sample(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean

    def forward(self, batch: SparseBatch):
        """(logits, per-row KL estimate from one sample); the KL is 0 in eval mode."""
        x = batch.l2_normalized()
        # two independent dropout masks, as EVCF's two nn.Dropout modules
        m2, lv2 = self._q_z2_tail(self.q_z2_first(x.dropout(self.dropout, self.training)))
        z2 = self._sample(m2, lv2)
        m1, lv1 = self._q_z1_tail(self.q_z1_x(x.dropout(self.dropout, self.training)), z2)
        z1 = self._sample(m1, lv1)
        logits = self.p_x(z1, z2)
        if not self.training:
            return logits, torch.zeros(batch.n_rows, device=logits.device)
        pm1, plv1 = self.p_z1(z2)
        kl = (log_normal_diag(z1, m1, lv1) + log_normal_diag(z2, m2, lv2)
              - log_normal_diag(z1, pm1, plv1) - self.log_p_z2(z2))
        return logits, kl

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode scores from a dense block, for equivalence tests and export."""
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        m2, _ = self._q_z2_tail(self.q_z2_first.forward_dense(x))
        m1, _ = self._q_z1_tail(self.q_z1_x.forward_dense(x), m2)
        return self.p_x(m1, m2)


class HVamp(TorchRecommender):
    """H+Vamp (Gated) (D. Kim and B. Suh, "Enhancing VAEs for Collaborative Filtering: Flexible
    Priors & Gating Mechanisms", RecSys 2019).

    Reference: the authors' code (psywaves/EVCF, ``models/HVamp.py`` with ``--gated``,
    ``--model_name hvamp``, built on Tomczak's vae_vampprior). We follow it:

    - two stochastic layers: q(z2|x), q(z1|x, z2), p(z1|z2), p(x|z1, z2); hidden width 600,
      z1 = z2 = 200, ``layers = 2`` (EVCF's num_layers); every hidden layer a gated linear unit
      (W h + b) * sigmoid(V h + c) without a further activation; log-variance heads clipped to
      [-12, 4] by hardtanh; output layer linear (multinomial logits);
    - input: the L2-normalized row, with two independent dropout masks (rate 0.5) for the q(z2|x)
      and q(z1|x, z2) branches; first layers sparse;
    - prior p(z2) = VampPrior: (1/C) sum_c q(z2 | u_c) with C = 1000 learned pseudo-inputs
      u_c = hardtanh_[0,1](w_c), w initialized N(0.05, 0.01); p(z1|z2) Gaussian;
    - loss per user: multinomial NLL + beta * [log q(z1|.) + log q(z2|x) - log p(z1|z2) - log p(z2)]
      at one sample; beta = max_beta * epoch / warmup (per epoch, epoch counted from 1), capped at
      max_beta = 0.3 (the README's command), warmup 100;
    - weights N(0, 2 / fan_in) (He), biases PyTorch's default; Adam lr 5e-4, batch 200, 400 epochs,
      early stopping after 50 epochs without a better validation score, counted only after the
      warm-up (EVCF never stops during it; ``no_stop_before``), the best epoch kept over all;
    - scoring: z2 = mean of q(z2|x), z1 = mean of q(z1|x, z2).

    Departures: plain Adam instead of EVCF's AdamNormGrad (Adam on per-parameter unit-norm
    gradients); the multinomial likelihood of the paper rather than the README example's
    ``--input_type binary``; the mixture density is computed by matrix products instead of the
    rows x C x dims broadcast (same value, incl. the log 2 pi constant EVCF drops from both sides).
    """

    name = "hvamp"
    tune_patience = 50  # the reference's own early stopping
    Config = HVampConfig
    test_overrides = {"epochs": 20, "hidden": 32, "z1": 8, "z2": 8, "components": 10, "batch_size": 16,
                      "lr": 1e-2, "warmup": 5, "patience": 0}
    space: ClassVar[dict] = {
        "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        "max_beta": {"type": "float", "low": 0.05, "high": 1.0, "log": True},
        "warmup": {"type": "int", "low": 0, "high": 200},
        "components": {"type": "int", "low": 50, "high": 1000, "log": True},
        "z1": {"type": "int", "low": 32, "high": 256, "log": True},
        "z2": {"type": "int", "low": 32, "high": 256, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.7},
    }

    def _build(self) -> nn.Module:
        return HVampNet(self.n_items, self.config)

    def no_stop_before(self) -> int:
        """EVCF's rule: no early stop during the beta warm-up; patience counts after it."""
        return self.config.warmup

    def beta_at(self, epoch: int) -> float:
        c = self.config
        return c.max_beta if c.warmup == 0 else min(c.max_beta, c.max_beta * (epoch + 1) / c.warmup)

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        beta = self.beta_at(epoch)

        def loss_of(batch):
            logits, kl = self.net(batch)
            return (multinomial_nll(logits, batch) + beta * kl).mean()

        return self.step_epoch(train, rng, loss_of)

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.net(batch)[0]
