"""CDAE (Wu, DuBois, Zheng & Ester, "Collaborative Denoising Auto-Encoders for Top-N Recommender
Systems", WSDM 2016). Reference: the authors' C++ code (libcf, ``model/recsys/cdae.hpp``).

- one hidden layer of ``hidden`` = 50 sigmoid units: ``h = sigmoid(W_in^T x~ + V_u + b)`` with a
  learned per-user vector ``V_u`` (``nn.Embedding(n_users, hidden)``); output logits
  ``W_out h + b'`` (identity output, the logistic loss reads the logits);
- input corruption: mask-out with rate ``dropout`` q = 0.5 (the code's default), survivors scaled by
  1/(1-q); no corruption when scoring; the target is the uncorrupted row;
- ``loss``: ``logistic_neg`` (default, the code's): logistic loss on every positive plus
  ``negatives`` = 5 per positive, drawn uniformly with replacement from the items the user has
  not interacted with; ``logistic``: logistic loss over all items; ``square``: squared error of
  the identity output over all items. Losses are summed over a user's items, then averaged over
  the users of a batch;
- L2 with ``l2`` = 0.01, applied as the author code does: each user's step adds
  ``l2/2 * (||W_in[surviving input items]||^2 + ||W_out[target items]||^2 + ||b'[target items]||^2
  + ||V_u||^2 + ||b||^2)``, i.e. only the rows the step touches (all output rows for the full
  losses). The code's lazy per-row SGD penalty is the gradient of exactly this term;
- init as in the code: weights and user vectors uniform(+-4*sqrt(6/(n_items+hidden))), biases 0;
- AdaGrad, lr 0.1, initial accumulator 1e-4 (the code's), step ``lr * g / (adagrad_beta +
  sqrt(accumulated g^2))`` (torch's ``eps``), or Adam (``optimizer="adam"``, lr 1e-3 unless ``lr``
  is set). beta = 1 as every script of the authors (the default since issue 22: torch's 1e-10 had
  been kept because it scored higher on reported ML-100K test folds, which no default may be
  chosen by; ``--set adagrad_beta=1e-10`` gives it, and docs/models.md the old numbers).

Data: the author code trains on binarized data with every user (the users it scores are its
training users, each with a learned V_u). Under strong generalization the scored users are held
out, so they are not trained and get the zero vector below.

Scoring: ``score(history)`` is fold-in, so the row's user is unknown in general and gets a ZERO
user vector. ``score_users(user_idx, history)`` uses the learned ``V_u`` of known training users.
Scores are the output logits (same ranking as the sigmoid output, without float32 ties).

Deviations from the author code (also in docs/models.md):
- mini-batches of ``batch_size`` users (default 64) instead of one SGD step per user: a per-user
  Python loop is too slow; AdaGrad's per-coordinate scaling keeps lr 0.1 usable;
- AdaGrad on whole-table gradients: rows a batch does not touch get zero gradient, so they do not
  move, as in the code's lazy updates (Adam, when chosen, moves them through its momentum); with
  AdaGrad the user table's gradient is sparse (only the batch's rows), which gives the same update;
- untied encoder/decoder weights by default, as in the paper; the code's default ties them
  (``asymmetric=false``): ``tied=true`` reproduces that (a row that is both an input and a target
  is then penalized twice in a step, once in the code);
- input values are binarized (every stored entry counts 1), as the code reads only item ids;
- negatives are drawn exactly uniformly from the non-interacted items by an inverse-CDF map over
  the sorted positives (vectorized), not by per-draw rejection as in the code; same distribution.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from aerec import config as cfgmod
from aerec.errors import ConfigError, DataError
from aerec.models.layers import SparseBatch, SparseLinear, to_device
from aerec.models.neural import NeuralConfig, TorchRecommender, adam


@dataclasses.dataclass
class CDAEConfig(NeuralConfig):
    hidden: int = 50
    dropout: float = 0.5  # input corruption rate q
    loss: Literal["logistic_neg", "logistic", "square"] = "logistic_neg"
    negatives: int = 5  # per positive, for loss="logistic_neg"
    l2: float = 0.01
    optimizer: Literal["adagrad", "adam"] = "adagrad"
    lr: float | None = cfgmod.lr_field(None)  # None: 0.1 for adagrad, 1e-3 for adam
    # AdaGrad step lr * g / (beta + sqrt(sum g^2)); beta 1 as the authors' scripts (1e-10: torch's eps)
    adagrad_beta: float = 1.0
    tied: bool = False
    batch_size: int = 64
    epochs: int = 100

    def validate(self):
        if self.lr is not None and self.lr <= 0:
            raise ConfigError("'lr' must be positive")
        NeuralConfig.validate(dataclasses.replace(self, lr=1.0))  # the shared checks, lr aside
        if self.hidden < 1:
            raise ConfigError("'hidden' must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'dropout' must be in [0, 1)")
        if self.negatives < 1:
            raise ConfigError("'negatives' must be at least 1")
        if self.l2 < 0:
            raise ConfigError("'l2' must be non-negative")
        if self.adagrad_beta <= 0:
            raise ConfigError("'adagrad_beta' must be positive")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (0.1 if self.optimizer == "adagrad" else 1e-3)


def sample_negatives(rows: np.ndarray, items: np.ndarray, n_rows: int, n_items: int, k: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k uniform draws (with replacement) per positive from each row's non-interacted items.

    Row r's j-th free item is j + #{positives p_i of r with p_i - i <= j} (p sorted, i its rank),
    so one searchsorted maps uniform draws onto free items exactly: no rejection loop.
    A row with no free item gets no negatives.
    """
    keys = np.unique(rows.astype(np.int64) * n_items + items)  # sorted, duplicates merged
    urows = keys // n_items
    counts = np.bincount(urows, minlength=n_rows)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(keys)) - start[urows]
    shifted = keys - rank  # row * n_items + (p_i - i), nondecreasing
    free = n_items - counts
    per_row = np.where(free > 0, k * counts, 0)
    neg_rows = np.repeat(np.arange(n_rows, dtype=np.int64), per_row)
    j = (rng.random(len(neg_rows)) * free[neg_rows]).astype(np.int64)
    j = np.minimum(j, free[neg_rows] - 1)  # guard the float edge case random() * m == m
    below = np.searchsorted(shifted, neg_rows * n_items + j, side="right") - start[neg_rows]
    return neg_rows, j + below


class CDAENet(nn.Module):
    def __init__(self, n_users: int, n_items: int, hidden: int, tied: bool, sparse_users: bool = False):
        super().__init__()
        scale = 4.0 * math.sqrt(6.0 / (n_items + hidden))  # the author code's init
        self.encoder = SparseLinear(n_items, hidden)  # weight [items, hidden], bias b
        # sparse_users: the user table's gradient holds only the batch's rows (for AdaGrad, which
        # leaves a zero-gradient row exactly where it is, so the update is the same)
        self.user = nn.Embedding(n_users, hidden, sparse=sparse_users)
        self.decoder = None if tied else nn.Parameter(torch.empty(n_items, hidden))
        self.out_bias = nn.Parameter(torch.zeros(n_items))
        for w in [self.encoder.weight, self.user.weight] + ([] if tied else [self.decoder]):
            nn.init.uniform_(w, -scale, scale)
        nn.init.zeros_(self.encoder.bias)

    @property
    def out_weight(self) -> torch.Tensor:
        return self.encoder.weight if self.decoder is None else self.decoder

    def hidden(self, batch: SparseBatch, user_vec: torch.Tensor | None) -> torch.Tensor:
        pre = self.encoder(batch)
        return torch.sigmoid(pre if user_vec is None else pre + user_vec)

    def forward(self, batch: SparseBatch, user_vec: torch.Tensor | None = None) -> torch.Tensor:
        return self.hidden(batch, user_vec) @ self.out_weight.T + self.out_bias

    def forward_dense(self, x: torch.Tensor, user_vec: torch.Tensor | None = None) -> torch.Tensor:
        """The same network on a dense block, for the equivalence test and export."""
        pre = self.encoder.forward_dense(x)
        h = torch.sigmoid(pre if user_vec is None else pre + user_vec)
        return h @ self.out_weight.T + self.out_bias


def _binary(batch: SparseBatch) -> SparseBatch:
    return batch.with_values(torch.ones_like(batch.values))


class CDAE(TorchRecommender):
    """CDAE: see the module docstring for the reference, defaults and deviations.

    ``score(history)`` gives every row a zero user vector (fold-in: the user is unknown);
    ``score_users(user_idx, history)`` uses the learned vectors of training users.
    """

    name = "cdae"
    Config = CDAEConfig
    test_overrides = {"epochs": 20, "hidden": 16, "batch_size": 8, "lr": 1.0}  # beta 1 damps steps: a larger lr
    space = {"dropout": {"type": "float", "low": 0.0, "high": 0.8},  # input corruption q
             "negatives": {"type": "int", "low": 1, "high": 20, "log": True},
             "hidden": {"type": "int", "low": 20, "high": 200, "log": True},  # factors K
             "lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
             "l2": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}

    def _build(self) -> nn.Module:
        return CDAENet(self.n_users, self.n_items, self.config.hidden, self.config.tied,
                       sparse_users=self.config.optimizer == "adagrad")

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = self.config.learning_rate
        if self.config.optimizer == "adagrad":
            # the sparse user-table gradient: say explicitly that torch's default (no invariant
            # checks) is wanted, which silences its warning on every run
            torch.sparse.check_sparse_tensor_invariants.disable()
            # torch divides by sqrt(acc) + eps: eps = beta gives the authors' (beta + sqrt(acc))
            return {"main": torch.optim.Adagrad(self.net.parameters(), lr=lr, initial_accumulator_value=1e-4,
                                                eps=self.config.adagrad_beta)}
        return {"main": adam(self.net.parameters(), lr=lr)}

    def _loss(self, batch: SparseBatch, users: torch.Tensor, rng: np.random.Generator,
              entries: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
        """Summed loss + L2 of the users in the batch; ``entries``: the batch's (row, item) pairs
        on the host, for drawing negatives without reading them back from the device."""
        cfg, net = self.config, self.net
        inp = batch.dropout(cfg.dropout, True)
        uvec = net.user(users)
        h = net.hidden(inp, uvec)
        w_out, b_out = net.out_weight, net.out_bias
        if cfg.loss == "logistic_neg":
            if entries is None:
                entries = batch.rows.cpu().numpy(), batch.indices.cpu().numpy()
            nr, ni = sample_negatives(*entries, batch.n_rows, batch.n_cols, cfg.negatives, rng)
            dev = batch.indices.device
            r = torch.cat([batch.rows, to_device(nr, dev)])
            i = torch.cat([batch.indices, to_device(ni, dev)])
            target = torch.cat([batch.values, torch.zeros(len(nr), device=dev)])
            # only the decoder rows the loss reads (index_select: a plain gather, and its backward
            # an index_add, several times faster on CPU than advanced indexing's)
            w_i, b_i = w_out.index_select(0, i), b_out.index_select(0, i)
            logits = (h.index_select(0, r) * w_i).sum(1) + b_i
            data = F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
            out_sq = w_i.pow(2).sum() + b_i.pow(2).sum()
        else:
            logits = h @ w_out.T + b_out  # a dense batch x items block
            target = batch.to_dense()
            if cfg.loss == "logistic":
                data = F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
            else:
                data = (logits - target).pow(2).sum()
            out_sq = batch.n_rows * (w_out.pow(2).sum() + b_out.pow(2).sum())
        if not cfg.l2:
            return data
        w_in = net.encoder.weight.index_select(0, batch.indices[inp.values > 0])
        reg = w_in.pow(2).sum() + out_sq + uvec.pow(2).sum() + batch.n_rows * net.encoder.bias.pow(2).sum()
        return data + 0.5 * cfg.l2 * reg

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        opt = self.optimizers["main"]
        held = self.rows_on_device(train) if self._shard is None else None
        total, n = None, 0  # summed on the device (float64, the order of a Python sum), read once
        for rows, batch in self.batches(train, rng):
            users = to_device(np.asarray(rows, dtype=np.int64), self.device)
            entries = held.host_entries(rows) if held is not None and self.config.loss == "logistic_neg" else None
            loss = self._loss(_binary(batch), users, rng, entries)
            opt.zero_grad(set_to_none=True)
            (loss / len(rows)).backward()
            opt.step()
            term = loss.detach().double()
            total = term if total is None else total + term
            n += len(rows)
        return (0.0 if total is None else float(total)) / max(n, 1)

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.net(_binary(batch))  # zero user vector: the row's user is unknown

    def score_users(self, user_idx, history) -> np.ndarray:
        """Scores for training users ``user_idx`` with their learned user vectors."""
        self._check_fitted()
        history = self._check_history(history)
        users = np.asarray(user_idx, dtype=np.int64).reshape(-1)
        if len(users) != history.shape[0]:
            raise DataError(f"user_idx has {len(users)} entries but history has {history.shape[0]} rows")
        if len(users) and (users.min() < 0 or users.max() >= self.n_users):
            raise DataError(f"user_idx must lie in [0, {self.n_users}): the model knows {self.n_users} users")
        self.net.eval()
        out = np.empty(history.shape, dtype=np.float32)
        step = self.config.eval_block
        with torch.no_grad():
            for s in range(0, history.shape[0], step):
                batch = _binary(SparseBatch.from_csr(history[s : s + step], self.device))
                uvec = self.net.user(torch.from_numpy(users[s : s + step]).to(self.device))
                out[s : s + step] = self.net(batch, uvec).float().cpu().numpy()
        return out
