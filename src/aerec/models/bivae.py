"""BiVAE: the bilateral variational autoencoder (Truong, Salah & Lauw, WSDM 2021)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from aerec import config as cfgmod
from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch, SparseLinear, batch_order
from aerec.models.neural import NeuralConfig, TorchRecommender, adam

EPS = 1e-10  # Cornac's constant inside the logs


@dataclasses.dataclass
class BiVAEConfig(NeuralConfig):
    k: int = 50
    hidden: tuple[int, ...] = (100,)  # Cornac's encoder_structure (without the input size)
    act: Literal["tanh", "sigmoid", "relu", "relu6", "elu"] = "tanh"
    likelihood: Literal["pois", "bern", "gaus"] = "pois"
    beta_kl: float = 1.0
    epochs: int = 500
    batch_size: int = 128
    lr: float = cfgmod.lr_field(1e-3)

    def validate(self):
        super().validate()
        if self.k < 1 or not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError("'k' and 'hidden' sizes must be positive")
        if self.beta_kl < 0:
            raise ConfigError("'beta_kl' must be non-negative")


ACTS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "relu6": nn.ReLU6, "elu": nn.ELU}


def torch_default_init(weight: torch.Tensor, bias: torch.Tensor, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default, which Cornac keeps
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class Encoder(nn.Module):
    """Sparse rows -> (mu, std): tanh MLP, a linear mu head and a sigmoid std head (Cornac)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], k: int, act: str):
        super().__init__()
        self.first = SparseLinear(n_in, hidden[0])
        torch_default_init(self.first.weight, self.first.bias, n_in)
        self.rest = nn.ModuleList(nn.Linear(a, b) for a, b in zip(hidden[:-1], hidden[1:]))
        self.act = ACTS[act]()
        self.mu, self.std = nn.Linear(hidden[-1], k), nn.Linear(hidden[-1], k)

    def _tail(self, h: torch.Tensor):
        h = self.act(h)
        for layer in self.rest:
            h = self.act(layer(h))
        return self.mu(h), torch.sigmoid(self.std(h))

    def forward(self, batch: SparseBatch):
        return self._tail(self.first(batch))

    def forward_dense(self, x: torch.Tensor):
        return self._tail(self.first.forward_dense(x))


class BiVAENet(nn.Module):
    def __init__(self, n_users: int, n_items: int, c: BiVAEConfig):
        super().__init__()
        self.user = Encoder(n_items, tuple(c.hidden), c.k, c.act)  # reads a user's row of items
        self.item = Encoder(n_users, tuple(c.hidden), c.k, c.act)  # reads an item's column of users
        theta = torch.empty(n_users, c.k)
        nn.init.kaiming_uniform_(theta, a=math.sqrt(5))  # Cornac: U(-1/sqrt(k), 1/sqrt(k))
        # sampled and mean codes of the training users and items, refreshed after every step
        self.register_buffer("theta", theta)
        self.register_buffer("beta", torch.randn(n_items, c.k) * 0.01)
        self.register_buffer("mu_theta", torch.zeros(n_users, c.k))
        self.register_buffer("mu_beta", torch.zeros(n_items, c.k))

    def forward(self, batch: SparseBatch) -> torch.Tensor:
        """Scores of history rows: mu_theta(row) . mu_beta (the logit of Cornac's sigmoid score)."""
        mu, _ = self.user(batch)
        return mu @ self.mu_beta.T

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.user.forward_dense((x != 0).to(x.dtype))
        return mu @ self.mu_beta.T


def log_likelihood(batch: SparseBatch, probs: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-row log-likelihood of the rows of ``batch`` (x) under ``probs`` (x_hat) as in Cornac:
    pois  sum_j x log(x_hat + eps) - x_hat;  bern  sum_j x log(x_hat + eps) + (1 - x) log(1 - x_hat + eps);
    gaus  -sum_j (x - x_hat)^2. Each is linear in x (or in x and x^2), so only the stored entries of x
    are gathered; the sums over all items run on x_hat alone."""
    x, p = batch.values, batch.gather(probs)
    if kind == "pois":
        return batch.row_sum(x * torch.log(p + EPS)) - probs.sum(dim=1)
    if kind == "bern":
        log1m = torch.log(1.0 - probs + EPS)
        return batch.row_sum(x * (torch.log(p + EPS) - batch.gather(log1m))) + log1m.sum(dim=1)
    return batch.row_sum(2.0 * x * p - x * x) - (probs * probs).sum(dim=1)


def gaussian_kl_std(mu: torch.Tensor, std: torch.Tensor, mu_prior: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Per-row KL(N(mu, std^2) || N(mu_prior, 1)) summed over dimensions (Cornac's formula)."""
    return (-0.5 * (1.0 + 2.0 * torch.log(std) - (mu - mu_prior) ** 2 - std**2)).sum(dim=1)


class BiVAE(TorchRecommender):
    """BiVAE (Q.-T. Truong, A. Salah, H. W. Lauw, "Bilateral Variational Autoencoder for
    Collaborative Filtering", WSDM 2021).

    Reference: Cornac's ``BiVAECF`` (PyTorch, ``cornac/models/bivaecf``), with the settings of
    Cornac's ``examples/bivae_example.py``: k = 50, encoder [100], tanh, Poisson likelihood,
    500 epochs, batch 128, Adam lr 1e-3, beta_kl = 1. We follow it:

    - a user encoder reads a user's (binarized) row of items and an item encoder an item's column
      of training users; each is an MLP with a linear mu head and a sigmoid std head;
    - x_hat_ui = sigmoid(theta_u . beta_i); likelihood ``pois`` (x log(x_hat + 1e-10) - x_hat),
      ``bern`` or ``gaus``, summed over all items (users); KL to N(0, I) weighted by beta_kl;
    - each epoch: item batches in order (the loss uses the sampled theta of every training user;
      after the step the item encoder is run again and its sample and mean are stored as beta and
      mu_beta), then user batches the same way against the sampled beta; two Adam optimizers.
      theta starts U(-1/sqrt(k), 1/sqrt(k)), beta N(0, 0.01^2);
    - after training, every item's and user's mean code is recomputed with the final encoders, as
      Cornac's ``learn()`` ends (aerec: the restored best epoch's encoders);
    - scoring: mu_theta . mu_beta, rank-equivalent to Cornac's sigmoid of it.

    New users (strong generalization): the user encoder is run on the history row and its mean is
    the user's theta (Cornac scores only training users, from their stored mu_theta). The item side
    is fixed after training: mu_beta of the training items.

    Departures: the constrained adaptive priors (CAP) are left out: they need user/item side
    features, which aerec's data do not carry, and Cornac's default is off; the prior mean is 0.
    Sparse first layers; the likelihood sums gather the stored entries instead of densifying x.
    No multi-process training.
    """

    name = "bivae"
    # the reference (Cornac) trains all 500 epochs without early stopping; so do its trials (the
    # earlier 100 had been read off ML-1M fold 0's validation curve, i.e. fold 1's test users)
    tune_patience = None
    Config = BiVAEConfig
    test_overrides = {"epochs": 30, "k": 8, "hidden": (16,), "batch_size": 16, "lr": 1e-2}
    space: ClassVar[dict] = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "k": {"type": "int", "low": 10, "high": 200, "log": True},
        "hidden": {"type": "categorical", "choices": [[20], [100], [200], [500]]},
        "likelihood": {"type": "categorical", "choices": ["pois", "bern", "gaus"]},
        "beta_kl": {"type": "float", "low": 0.01, "high": 2.0, "log": True},
        "batch_size": {"type": "categorical", "choices": [64, 128, 256, 512]},
    }

    def _build(self) -> nn.Module:
        return BiVAENet(self.n_users, self.n_items, self.config)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        net, lr = self.net, self.config.lr
        return {"user": adam(net.user.parameters(), lr), "item": adam(net.item.parameters(), lr)}

    def _side(self, x: sp.csr_matrix, encoder: Encoder, codes: str, means: str, other: torch.Tensor,
              opt: torch.optim.Optimizer) -> tuple[torch.Tensor, int]:
        c, net = self.config, self.net
        total = torch.zeros((), dtype=torch.float64, device=self.device)  # read once per epoch
        for ids in batch_order(x.shape[0], c.batch_size, None):  # Cornac: shuffle=False
            batch = SparseBatch.from_csr(x[ids], self.device)
            mu, std = encoder(batch)
            z = mu + torch.randn_like(mu) * std
            probs = torch.sigmoid(z @ other.T)
            loss = (c.beta_kl * gaussian_kl_std(mu, std) - log_likelihood(batch, probs, c.likelihood)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():  # Cornac runs the updated encoder once more and stores its codes
                mu, std = encoder(batch)
                idx = torch.from_numpy(ids).to(self.device)
                getattr(net, codes)[idx] = mu + torch.randn_like(mu) * std
                getattr(net, means)[idx] = mu
            total = total + loss.detach().double() * len(ids)
        return total, x.shape[0]

    def _fit(self, train: sp.csr_matrix, valid, **trainer_options) -> None:
        super()._fit(train, valid, **trainer_options)
        self.final_means(train)

    @torch.no_grad()
    def final_means(self, train: sp.csr_matrix) -> None:
        """Cornac's ``learn()`` ends by recomputing every item's and then every user's mean code
        with the final encoders (during an epoch each batch's means come from the encoder as it was
        then). Here "final" is the restored best epoch's encoders."""
        x = train.copy()
        x.data[:] = 1.0
        net = self.net
        net.eval()
        for rows, encoder, means in ((x.T.tocsr(), net.item, "mu_beta"), (x, net.user, "mu_theta")):
            for ids in batch_order(rows.shape[0], self.config.batch_size, None):
                mu, _ = encoder(SparseBatch.from_csr(rows[ids], self.device))
                getattr(net, means)[torch.from_numpy(ids).to(self.device)] = mu

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        if self._shard is not None:
            raise ConfigError("bivae does not support multi-process training")
        x = train.copy()
        x.data[:] = 1.0  # Cornac binarizes the matrix
        item_loss, n_i = self._side(x.T.tocsr(), self.net.item, "beta", "mu_beta", self.net.theta, self.optimizers["item"])
        user_loss, n_u = self._side(x, self.net.user, "theta", "mu_theta", self.net.beta, self.optimizers["user"])
        return float(item_loss + user_loss) / max(n_i + n_u, 1)

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.net(batch.with_values(torch.ones_like(batch.values)))
