"""DeepRec (Kuchaiev & Ginsburg 2017, NVIDIA DeepRecommender): a deep user-based autoencoder for
ratings, trained with masked MSE and dense re-feeding."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from aerec import config as cfgmod
from aerec.errors import ConfigError
from aerec.models.autorec import RatingAutoencoder, RatingConfig
from aerec.models.layers import SparseBatch, SparseLinear
from aerec.models.neural import add_loss
from aerec.models.schedules import DEEPREC_REF, Schedule, steps_per_epoch

ACTS = {"selu": F.selu, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "elu": F.elu, "lrelu": F.leaky_relu, "swish": lambda x: x * torch.sigmoid(x), "identity": lambda x: x}


@dataclasses.dataclass
class DeepRecConfig(RatingConfig):
    layers: tuple[int, ...] = (512, 512, 1024)  # encoder sizes; the decoder mirrors them
    activation: Literal["selu", "relu", "relu6", "sigmoid", "tanh", "elu", "lrelu", "swish", "identity"] = "selu"
    last_layer_linear: bool = False  # the reference's --skip_last_layer_nl (off in its Netflix run)
    dropout: float = 0.8  # on the code layer only
    constrained: bool = False  # tied decoder: transposed encoder weights, own biases
    refeed: int = 1  # dense re-feeding steps after each step (the reference's aug_step)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    # SGD only, as the reference: lr halves at these epochs (0-based epoch index, not shifted).
    lr_milestones: tuple[int, ...] = (24, 36, 48, 66, 72)
    lr_gamma: float = 0.5
    # "reference": milestones are epochs, literally; "scaled": they are epochs of Netflix's size
    # (3,730 batches of 128), i.e. the lr halves after the same number of batches as the reference;
    # the default by the ML-100K evidence (docs/models.md, Schedules)
    schedule: Schedule = "scaled"
    epochs: int = 100
    batch_size: int = 128
    lr: float = cfgmod.lr_field(0.005)
    patience: int = 20

    def validate(self):
        super().validate()
        if not self.layers or min(self.layers) < 1:
            raise ConfigError("'layers' must be a non-empty list of positive sizes")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'dropout' must be in [0, 1)")
        if self.refeed < 0:
            raise ConfigError("'refeed' must be 0 (off) or positive")
        if self.schedule not in ("reference", "scaled"):
            raise ConfigError(f"'schedule' must be 'reference' or 'scaled', got {self.schedule!r}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0 or not 0 < self.lr_gamma <= 1:
            raise ConfigError("'momentum' must be in [0, 1), 'weight_decay' >= 0, 'lr_gamma' in (0, 1]")


class _DeepRecNet(nn.Module):
    def __init__(self, n: int, layers: tuple[int, ...], constrained: bool):
        super().__init__()
        sizes = [n, *layers]
        self.first = SparseLinear(n, sizes[1])  # encoder layer 1, weight [n, L0]; sparse input
        self.enc_w = nn.ParameterList([nn.Parameter(torch.empty(sizes[k + 1], sizes[k])) for k in range(1, len(layers))])
        self.enc_b = nn.ParameterList([nn.Parameter(torch.zeros(sizes[k + 1])) for k in range(1, len(layers))])
        rev = sizes[::-1]
        if not constrained:
            self.dec_w = nn.ParameterList([nn.Parameter(torch.empty(rev[k + 1], rev[k])) for k in range(len(layers) - 1)])
            self.last_w = nn.Parameter(torch.empty(n, sizes[1]))  # [out, in]: one row per item
            for w in [*self.dec_w, self.last_w]:
                nn.init.xavier_uniform_(w)
        self.dec_b = nn.ParameterList([nn.Parameter(torch.zeros(rev[k + 1])) for k in range(len(layers))])
        for w in self.enc_w:
            nn.init.xavier_uniform_(w)


class DeepRec(RatingAutoencoder):
    """DeepRec: n-512-512-1024-512-512-n SELU autoencoder over a user's ratings (NVIDIA DeepRecommender).

    Dropout 0.8 on the code layer; masked MSE (squared error summed over observed ratings of the
    batch, divided by their count, as the reference's MSEloss / num_ratings); after each step the
    batch output f(x) (from that step's forward pass, detached) is fed back as input and target for
    ``refeed`` more steps, masked where f(x) != 0 as in the reference. SGD momentum 0.9, lr 0.005,
    batch 128, lr halved at epochs 24/36/48/66/72 (SGD only, as the reference).

    Dense per batch: the decoder's hidden layers (batch x 512 etc.) always; the n-wide output only
    for re-feeding (its input and target are dense f(x)), so with refeed >= 1 the first step also
    builds f(x) once without gradient. The first step's loss itself gathers outputs at observed
    entries (rows of the last weight), and its first layer reads the sparse input.

    Deviations from the reference: the last partial batch is kept (the reference drops it); the
    lr schedule is applied at the right epoch (the reference steps it at the start of each epoch,
    one epoch early); float32 (not fp16); rows without training ratings are not trained on;
    predictions are clipped to the rating range; unseen users/items get ``unseen_default``;
    early stopping on validation RMSE (the reference evaluates every 3 epochs and keeps the last).
    """

    name = "deeprec"
    Config = DeepRecConfig
    test_overrides = {"layers": (16, 8), "dropout": 0.0, "epochs": 100, "optimizer": "adam", "lr": 0.01,
                      "batch_size": 64, "last_layer_linear": True, "patience": 0}
    space = {"layers": {"type": "categorical", "choices": [[512, 512, 1024], [256, 256, 512], [512, 512], [128, 128, 256]]},
             "dropout": {"type": "float", "low": 0.0, "high": 0.9},
             "lr": {"type": "float", "low": 1e-3, "high": 0.05, "log": True}}

    @property
    def code_dim(self) -> int:
        return self.config.layers[0]

    def _build(self) -> nn.Module:
        return self._register_state(_DeepRecNet(self.n_items, self.config.layers, self.config.constrained),
                                    self.n_users)

    def _optimizers(self):
        c = self.config
        if c.optimizer == "adam":
            return {"main": torch.optim.Adam(self.net.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=True)}
        return {"main": torch.optim.SGD(self.net.parameters(), lr=c.lr, momentum=c.momentum,
                                        weight_decay=c.weight_decay)}

    # network pieces --------------------------------------------------------------------------
    def _act(self, x):
        return ACTS[self.config.activation](x)

    def _hidden(self, h: torch.Tensor) -> torch.Tensor:
        """From the first layer's pre-activation to the decoder's last hidden layer (the code)."""
        net, c = self.net, self.config
        h = self._act(h)
        for w, b in zip(net.enc_w, net.enc_b):
            h = self._act(F.linear(h, w, b))
        h = F.dropout(h, c.dropout, training=net.training)  # code layer only
        dec_w = [w.T for w in reversed(net.enc_w)] if c.constrained else list(net.dec_w)
        for w, b in zip(dec_w, net.dec_b[:-1]):
            h = self._act(F.linear(h, w, b))
        return h

    def _code(self, batch: SparseBatch) -> torch.Tensor:
        return self._hidden(self.net.first(batch))

    def _last(self):
        return self.net.first.weight if self.config.constrained else self.net.last_w

    def _out_act(self, z):
        return z if self.config.last_layer_linear else self._act(z)

    def _decode_at(self, codes: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return self._out_act((codes * self._last()[cols]).sum(1) + self.net.dec_b[-1][cols])

    def _decode(self, codes: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self._last(), self.net.dec_b[-1]
        if cols is not None:
            w, b = w[cols], b[cols]
        return self._out_act(codes @ w.T + b)

    # training --------------------------------------------------------------------------------
    def _step(self, loss: torch.Tensor) -> None:
        opt = self.optimizers["main"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        self.optimizer_steps += 1

    def batch_loss(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked MSE over the batch's observed ratings (outputs gathered there only), and the codes."""
        codes = self._code(batch)
        pred = self._decode_at(codes[batch.rows], batch.indices)
        return (pred - batch.values).pow(2).sum() / max(len(batch.values), 1), codes

    def lr_at(self, epoch: int, steps_per_epoch_: int) -> float:
        """SGD lr for 0-based ``epoch``: halved once per milestone passed. ``scaled`` compares
        batches taken (epoch x ours) with the milestone's batches on Netflix (m x 3,730)."""
        c = self.config
        if c.schedule == "scaled":
            done = epoch * steps_per_epoch_
            passed = sum(1 for m in c.lr_milestones if m * DEEPREC_REF.steps_per_epoch <= done)
        else:
            passed = sum(1 for m in c.lr_milestones if m <= epoch)
        return c.lr * c.lr_gamma ** passed

    def no_stop_before(self) -> int:
        """SGD: the epoch whose start applies the last lr halving inside the budget (``scaled`` on
        small data usually has none: its milestones lie past any budget), so early stopping never
        cuts a run before its last lr step. Adam has no schedule."""
        c = self.config
        if c.optimizer != "sgd" or not c.lr_milestones:
            return 0
        per_epoch = steps_per_epoch(int((np.diff(self._inputs.indptr) > 0).sum()), c.batch_size)
        rates = [self.lr_at(e, per_epoch) for e in range(c.epochs)]
        changes = [e for e in range(1, c.epochs) if rates[e] != rates[e - 1]]
        return changes[-1] + 1 if changes else 0

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        c = self.config
        if c.optimizer == "sgd":
            active = int((np.diff(self._inputs.indptr) > 0).sum())
            lr = self.lr_at(epoch, steps_per_epoch(active, c.batch_size))
            for g in self.optimizers["main"].param_groups:
                g["lr"] = lr
        total, n = None, 0  # on the device, read once
        for _, _, batch in self._active_batches(self._inputs, rng):
            with self.train_autocast():
                loss, codes = self.batch_loss(batch)
            if c.refeed:  # f(x) of this forward pass, before the update, as the reference
                with torch.no_grad():
                    x = self._decode(codes.detach().float())
            self._step(loss)
            total, n = add_loss(total, loss), n + 1
            if c.refeed:
                for _ in range(c.refeed):
                    with self.train_autocast():
                        out = self._decode(self._hidden(self.net.first.forward_dense(x))).float()
                    mask = (x != 0).to(x.dtype)
                    self._step(((out - x) * mask).pow(2).sum() / mask.sum().clamp_min(1))
                    x = out.detach()
        return (0.0 if total is None else float(total)) / max(n, 1)
