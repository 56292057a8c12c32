"""Mult-DAE: the denoising autoencoder with a multinomial likelihood (Liang et al. 2018)."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch, SparseLinear, multinomial_nll
from aerec.models.neural import NeuralConfig, TorchRecommender


def reference_init(layer: nn.Module) -> None:
    """vae_cf init: Xavier-uniform weights, truncated-normal(0.001) biases."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.trunc_normal_(layer.bias, std=0.001, a=-0.002, b=0.002)


def mlp(dims: list[int]) -> nn.ModuleList:
    """Dense layers dims[0]->dims[1]->...; the caller applies the activations."""
    layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
    for layer in layers:
        reference_init(layer)
    return layers


@dataclasses.dataclass
class MultDAEConfig(NeuralConfig):
    hidden: tuple[int, ...] = (200,)
    dropout: float = 0.5
    lam: float = 0.01  # L2 scale; the penalty on each batch is lam / batch_size * sum ||W||^2

    def validate(self):
        super().validate()
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError("'hidden' must be a non-empty list of positive layer sizes")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'dropout' must be in [0, 1)")
        if self.lam < 0:
            raise ConfigError("'lam' must be non-negative")


class DAENet(nn.Module):
    def __init__(self, n_items: int, hidden: tuple[int, ...], dropout: float):
        super().__init__()
        self.dropout = dropout
        self.first = SparseLinear(n_items, hidden[0])  # W is [in, out]; Xavier is symmetric in the fans
        reference_init(self.first)
        self.rest = mlp([*hidden, n_items])

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(h)
        for i, layer in enumerate(self.rest):
            h = layer(h)
            if i < len(self.rest) - 1:
                h = torch.tanh(h)
        return h

    def forward(self, batch: SparseBatch) -> torch.Tensor:
        x = batch.l2_normalized().dropout(self.dropout, self.training)
        return self._tail(self.first(x))

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """The same network on a dense block (eval mode), for equivalence tests and export."""
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return self._tail(self.first.forward_dense(x))

    def weight_sq_sum(self) -> torch.Tensor:
        return sum((m.weight**2).sum() for m in [self.first, *self.rest])


class MultDAE(TorchRecommender):
    """Mult-DAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

    Reference: Dawen Liang's ``vae_cf`` notebook (TensorFlow 1). We follow it:

    - I-200-I by default (``hidden`` sets the full hidden stack, e.g. ``(600, 200, 600)``), tanh on
      every hidden layer, linear output;
    - the input row is L2-normalized, then dropout (inverted, rate 0.5) in training only;
    - loss per batch: mean over users of the multinomial NLL  -sum_j x_uj log softmax(f(x_u))_j,
      plus ``lam / batch_size * sum ||W||^2`` over the weight matrices (not the biases). The notebook
      builds ``MultiDAE(lam=0.01 / batch_size)`` and adds ``2 * l2_regularizer(lam)``, i.e.
      ``(0.01 / batch_size) * sum ||W||^2`` on every batch's mean loss; ``lam`` is that 0.01;
    - weights Xavier-uniform, biases truncated normal with std 0.001 (cut at 2 std as TF does);
    - Adam lr 1e-3, batch 500, 200 epochs; model selection on validation NDCG@100 by the Trainer.

    Deviations: none in the maths. The first layer reads the sparse rows through an embedding-bag
    (``SparseLinear``) instead of a dense matmul, which is the same product. The last partial batch
    uses ``batch_size`` in the L2 scale like the notebook (it never looks at the batch's real size).
    """

    name = "multdae"
    Config = MultDAEConfig
    test_overrides = {"epochs": 20, "hidden": (32,), "batch_size": 16, "lr": 1e-2}
    space = {"hidden": {"type": "categorical", "choices": [[100], [200], [400], [600], [600, 200]]},
             "dropout": {"type": "float", "low": 0.0, "high": 0.8},
             "lam": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
             "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}

    def _build(self) -> nn.Module:
        return DAENet(self.n_items, tuple(self.config.hidden), self.config.dropout)

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        reg = self.config.lam / self.config.batch_size

        def loss_of(batch):
            loss = multinomial_nll(self.net(batch), batch).mean()
            return loss + reg * self.net.weight_sq_sum() if reg else loss

        return self.step_epoch(train, rng, loss_of)

    def entries_may_pad(self) -> bool:
        return True  # the NLL, L2 norm, dropout and first layer weight each entry by its value

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.net(batch)
