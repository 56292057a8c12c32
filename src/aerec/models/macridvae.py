"""MacridVAE: macro-disentangled (item concepts) and micro-disentangled (beta-VAE) user
representations (Ma et al., NeurIPS 2019)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch, SparseLinear, multinomial_nll
from aerec.models.multdae import mlp, reference_init
from aerec.models.multvae import annealed_beta
from aerec.models.neural import NeuralConfig, StepCounted, TorchRecommender


@dataclasses.dataclass
class MacridVAEConfig(NeuralConfig):
    kfac: int = 10  # K concepts (prototypes)
    latent: int = 64  # size of each concept's z_k, of item embeddings and prototypes
    hidden: tuple[int, ...] = (600,)
    dropout: float = 0.5
    tau: float = 0.1
    std: float = 0.075  # prior std sigma_0 (authors' code; RecBole uses 0.01)
    nogb: bool = False  # True: plain softmax assignments in training instead of Gumbel-softmax samples
    anneal_cap: float = 0.2
    # beta = min(anneal_cap, step / (anneal_epochs * batches per epoch)): the authors' code sets
    # total_anneal_steps = 5 * num_batches; 0 means beta = anneal_cap from the first step
    anneal_epochs: float = 5.0
    lam: float = 0.0  # L2 on encoder weights, item embeddings and prototypes: lam * sum ||W||^2

    def validate(self):
        super().validate()
        if self.kfac < 1 or self.latent < 1 or not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError("'kfac', 'latent' and 'hidden' sizes must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'dropout' must be in [0, 1)")
        if self.tau <= 0 or self.std <= 0:
            raise ConfigError("'tau' and 'std' must be positive")
        if self.anneal_cap < 0 or self.anneal_epochs < 0 or self.lam < 0:
            raise ConfigError("'anneal_cap', 'anneal_epochs' and 'lam' must be non-negative")


def concept_batch(batch: SparseBatch, cates: torch.Tensor) -> SparseBatch:
    """K copies of the batch stacked concept-major, copy k weighted by item-to-concept weights
    cates[:, k]: row k * n_rows + u holds x_u * cates[:, k], still sparse."""
    k, nnz, n = cates.shape[1], batch.indices.numel(), batch.n_rows
    dev = batch.values.device
    steps = torch.arange(k, device=dev)[:, None]
    values = (batch.values[None, :] * cates[batch.indices].T).reshape(-1)
    return SparseBatch(
        indices=batch.indices.repeat(k),
        offsets=(batch.offsets[None, :] + steps * nnz).reshape(-1),
        values=values,
        rows=(batch.rows[None, :] + steps * n).reshape(-1),
        n_rows=k * n, n_cols=batch.n_cols)


class MacridNet(nn.Module):
    def __init__(self, n_items: int, kfac: int, hidden: tuple[int, ...], latent: int, dropout: float,
                 tau: float, std: float, nogb: bool):
        super().__init__()
        self.kfac, self.latent, self.dropout = kfac, latent, dropout
        self.tau, self.std, self.nogb = tau, std, nogb
        self.first = SparseLinear(n_items, hidden[0])
        reference_init(self.first)
        self.q_rest = mlp([*hidden, 2 * latent])
        self.items = nn.Parameter(torch.empty(n_items, latent))
        self.cores = nn.Parameter(torch.empty(kfac, latent))
        nn.init.xavier_uniform_(self.items)
        nn.init.xavier_uniform_(self.cores)

    def log_assignments(self) -> torch.Tensor:
        """[items, K] log item-to-concept weights: log softmax over concepts of the cosine
        similarity / tau; in training (unless nogb) a Gumbel-softmax sample at temperature 1, as the
        authors' RelaxedOneHotCategorical(1, logits)."""
        logits = F.normalize(self.items, dim=1) @ F.normalize(self.cores, dim=1).T / self.tau
        if self.training and not self.nogb:
            u = torch.rand_like(logits).clamp(1e-20, 1.0 - 1e-7)
            logits = logits - torch.log(-torch.log(u))
        return F.log_softmax(logits, dim=1)

    def _encode_tail(self, h: torch.Tensor):
        for layer in self.q_rest:
            h = layer(torch.tanh(h))
        mu = F.normalize(h[:, : self.latent], dim=1)
        a = -h[:, self.latent :]  # log sigma_q^2 - log sigma_0^2
        kl = (0.5 * (-a + a.exp() - 1.0)).sum(dim=1)  # mu has unit norm, so KL does not depend on it
        std = torch.exp(0.5 * a) * self.std
        return mu, std, kl

    def _decode(self, mu: torch.Tensor, std: torch.Tensor, kl: torch.Tensor, log_cates: torch.Tensor, n: int):
        z = mu + torch.randn_like(std) * std if self.training else mu
        z = F.normalize(z, dim=1).view(self.kfac, n, self.latent)
        items = F.normalize(self.items, dim=1) / self.tau
        logits = None
        for k in range(self.kfac):  # log sum_k cates_k * exp(cos(z_k, item) / tau), one block at a time
            term = torch.addmm(log_cates[:, k][None, :], z[k], items.T)
            logits = term if logits is None else torch.logaddexp(logits, term)
        return logits, kl.view(self.kfac, n).sum(dim=0)

    def first_layer(self, batch: SparseBatch, cates: torch.Tensor) -> torch.Tensor:
        """[K * rows, hidden]: the first layer on every concept's L2-normalized, dropped-out row
        x_u * c_k, concept-major. Equal to ``self.first(concept_batch(...))`` but computed as
        K sparse x dense products against c_k * W: the history values carry no gradient, so the
        backward pass is a sparse product too (embedding_bag's backward over K * nnz entries was
        several times slower)."""
        n, k = batch.n_rows, self.kfac
        w = cates[batch.indices]  # [nnz, K]
        sq = torch.zeros(n, k, dtype=w.dtype, device=w.device).index_add_(0, batch.rows, (batch.values[:, None] * w) ** 2)
        norms = sq.clamp_min(1e-24).sqrt()  # = max(sqrt(sq), 1e-12), without sqrt's infinite slope at 0
        where = torch.stack([batch.rows, batch.indices])
        out = []
        for j in range(k):
            values = batch.values
            if self.training and self.dropout > 0:
                values = values * (torch.rand_like(values) >= self.dropout).to(values.dtype) / (1.0 - self.dropout)
            a = torch.sparse_coo_tensor(where, values, (n, batch.n_cols), is_coalesced=True,
                                        check_invariants=False)
            out.append(torch.sparse.mm(a, cates[:, j : j + 1] * self.first.weight) / norms[:, j : j + 1])
        return torch.cat(out) + self.first.bias

    def forward(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixture logits [rows, items], KL per row summed over concepts)."""
        log_cates = self.log_assignments()
        h = self.first_layer(batch, log_cates.exp())
        return self._decode(*self._encode_tail(h), log_cates, batch.n_rows)

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode scores from a dense block, for equivalence tests and export."""
        log_cates = self.log_assignments()
        xk = (x[None, :, :] * log_cates.exp().T[:, None, :]).reshape(-1, x.shape[1])
        xk = xk / xk.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return self._decode(*self._encode_tail(self.first.forward_dense(xk)), log_cates, x.shape[0])[0]

    def weight_sq_sum(self) -> torch.Tensor:
        return sum((m.weight**2).sum() for m in [self.first, *self.q_rest]) + (self.items**2).sum() + (self.cores**2).sum()


class MacridVAE(StepCounted, TorchRecommender):
    """MacridVAE (J. Ma, C. Zhou, P. Cui, H. Yang, W. Zhu, "Learning Disentangled Representations
    for Recommendation", NeurIPS 2019).

    Reference: the authors' TensorFlow code (``main.py`` of disentangle-recsys); RecBole's
    ``MacridVAE`` (PyTorch) second. The maths follow the authors' code:

    - K prototypes and one embedding per item (both ``latent`` wide); item i belongs to concept k
      with weight c_ik = softmax_k(cos(item_i, prototype_k) / tau); in training a Gumbel-softmax
      sample at temperature 1 replaces the softmax (``nogb = True`` switches that off);
    - for each concept the history row weighted by c_k is L2-normalized, dropped out, and encoded by
      one shared encoder (I-hidden tanh-2*latent) into a unit-norm mu_k and
      sigma_k = sigma_0 * exp(-h_var / 2); KL_k = sum_d 0.5 * (-a + e^a - 1) with a = -h_var;
    - z_k = mu_k + eps * sigma_k in training, mu_k when scoring; the decoder scores item i by
      log sum_k c_ik exp(cos(z_k, item_i) / tau), and the loss is the multinomial NLL of those logits
      plus beta * sum_k KL_k, averaged over users;
    - beta = min(anneal_cap, step / (anneal_epochs * batches per epoch)) with the authors'
      ``total_anneal_steps = 5 * num_batches`` (so beta reaches 0.2 after one epoch).

    Defaults (the brief's reference settings, RecBole's): K = 10, latent 64, hidden [600],
    dropout 0.5, tau 0.1. From the authors' code: sigma_0 = 0.075 (RecBole: 0.01), the annealing
    above (RecBole: 200,000 steps, which on small data leaves beta near 0), lam = 0, Adam lr 1e-3,
    200 epochs, batch 500. Sparse first layer: K sparse products of the history rows with
    c_k * W (never a dense users x items block).
    """

    name = "macridvae"
    Config = MacridVAEConfig
    test_overrides = {"epochs": 20, "hidden": (32,), "latent": 8, "kfac": 3, "batch_size": 16, "lr": 1e-2}
    space: ClassVar[dict] = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "kfac": {"type": "int", "low": 2, "high": 20},
        "latent": {"type": "int", "low": 32, "high": 200, "log": True},
        "tau": {"type": "float", "low": 0.05, "high": 0.5, "log": True},
        "anneal_cap": {"type": "float", "low": 0.05, "high": 1.0, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.7},
    }

    update_count: int = 0

    def init_network(self) -> None:
        super().init_network()
        self.update_count = 0

    def _build(self) -> nn.Module:
        c = self.config
        return MacridNet(self.n_items, c.kfac, tuple(c.hidden), c.latent, c.dropout, c.tau, c.std, c.nogb)

    def no_stop_before(self) -> int:
        """Early stopping waits for the annealing (``anneal_epochs``) to end."""
        c = self.config
        return math.ceil(c.anneal_epochs) if c.anneal_cap > 0 else 0

    def activation_bytes(self) -> int:
        """The items x K assignments (logits, Gumbel noise, softmax and their gradients) and the K
        per-concept [batch, items] logit terms and [batch, hidden] encodings autograd keeps."""
        c = self.config
        rows = min(c.batch_size, max(self.n_users, 1))
        width = sum(c.hidden) + 3 * c.latent
        return 4 * c.kfac * (8 * self.n_items + 3 * rows * (self.n_items + width))

    def current_beta(self, batches_per_epoch: int) -> float:
        c = self.config
        total = int(round(c.anneal_epochs * batches_per_epoch))
        return annealed_beta(self.update_count, c.anneal_cap, total)

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        per_epoch = math.ceil(train.shape[0] / self.config.batch_size)

        def loss_of(batch):
            beta = self.current_beta(per_epoch)
            logits, kl = self.net(batch)
            loss = (multinomial_nll(logits, batch) + beta * kl).mean()
            return loss + self.config.lam * self.net.weight_sq_sum() if self.config.lam else loss

        return self.step_epoch(train, rng, loss_of)

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.net(batch)[0]
