"""SVAE: the sequential VAE for collaborative filtering (Sachdeva, Manco, Ritacco, Pudi, WSDM 2019).

Order convention: SVAE reads each user's item *sequence* from an ordinary CSR row. Within a row,
items are ordered by their stored values (ascending), ties by column index. Give positions
1..n (``order_by_time`` builds them from timestamps) or any increasing key. A binary matrix
(all values 1) therefore falls back to column order; the model still runs, without real order.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from aerec.errors import ConfigError, DataError
from aerec.models.layers import SparseBatch, to_device
from aerec.models.multvae import annealed_beta, gaussian_kl
from aerec.models.neural import NeuralConfig, StepCounted, TorchRecommender, add_loss
from aerec.models.schedules import SVAE_REF, Schedule


@dataclasses.dataclass
class SVAEConfig(NeuralConfig):
    epochs: int = 25
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-3  # Adam's (coupled) L2, as the reference
    embed: int = 256
    rnn: int = 200
    hidden: int = 150
    latent: int = 64
    next_k: int = 4
    anneal_cap: float = 0.2
    total_anneal_steps: int = 200_000
    beta: float | None = None  # a constant KL weight instead of the schedule
    max_len: int = 1000  # only each user's latest max_len items are used
    eval_block: int = 256  # users per scoring block: [block, max_len, embed] is built
    # "reference": beta = min(cap, batches so far / total_anneal_steps), Adam at `lr`, as before;
    # "scaled": the reference's batch-1 schedule by progress (see SVAE.current_beta / scaled_lr);
    # the default by the ML-100K evidence (docs/models.md, Schedules)
    schedule: Schedule = "scaled"

    def validate(self):
        super().validate()
        if min(self.embed, self.rnn, self.hidden, self.latent, self.next_k, self.max_len) < 1:
            raise ConfigError("'embed', 'rnn', 'hidden', 'latent', 'next_k' and 'max_len' must be positive")
        if self.weight_decay < 0 or self.anneal_cap < 0 or (self.beta is not None and self.beta < 0):
            raise ConfigError("'weight_decay', 'anneal_cap' and 'beta' must be non-negative")
        if self.total_anneal_steps < 0:
            raise ConfigError("'total_anneal_steps' must be 0 (no annealing) or positive")
        if self.schedule not in ("reference", "scaled"):
            raise ConfigError(f"'schedule' must be 'reference' or 'scaled', got {self.schedule!r}")


def svae_scaled_beta(users_before: int, n_users: int, cap: float, total_steps: int,
                     ref_users: int = SVAE_REF.rows) -> float:
    """The reference's per-epoch beta by progress through the epoch.

    The notebook takes one step per user and restarts its counter every epoch, so after u of its
    4,534 ML-1M users beta = min(cap, u / total_steps). By progress p = u / n_users through the
    epoch that is min(cap, p * 4,534 / total_steps), whatever the batch; with n_users = 4,534 and
    batch 1 it is the reference's value exactly (integer arithmetic, one rounding)."""
    if total_steps <= 0:
        return cap
    return min(cap, users_before * ref_users / (n_users * total_steps))


# sequences -------------------------------------------------------------------------------------


def sequences(batch: SparseBatch, max_len: int, tiebreak: torch.Tensor | None = None):
    """(items [B, T] padded with 0, lengths [B]) in each row's order, keeping the latest max_len.

    Entries are sorted by (row, value, tiebreak); tiebreak defaults to the column index.
    """
    rows, key, cols = batch.rows.cpu(), batch.values.cpu(), batch.indices.cpu()
    order = torch.argsort(cols if tiebreak is None else tiebreak, stable=True)
    order = order[torch.argsort(key[order], stable=True)]
    order = order[torch.argsort(rows[order], stable=True)]
    rows, cols = rows[order], cols[order]
    counts = torch.bincount(rows, minlength=batch.n_rows)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(rows)) - starts[rows]
    drop = (counts - max_len).clamp_min(0)
    keep = pos >= drop[rows]
    rows, cols, pos = rows[keep], cols[keep], (pos - drop[rows])[keep]
    lengths = counts.clamp_max(max_len)
    items = torch.zeros(batch.n_rows, max(int(lengths.max()) if len(lengths) else 0, 1), dtype=torch.long)
    items[rows, pos] = cols
    return items, lengths


def next_k_targets(lengths: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training steps and their next-k targets for sequences of the given lengths.

    Step t of a row (t = 0..n-2) reads item t and predicts items t+1..t+k (fewer near the end).
    Returns (step_row, step_t) per step, and for each target (step index, position in the row).
    """
    steps = (lengths - 1).clamp_min(0)
    step_row = torch.repeat_interleave(torch.arange(len(lengths)), steps)
    step_t = torch.arange(len(step_row)) - torch.repeat_interleave(torch.cumsum(steps, 0) - steps, steps)
    d = torch.arange(1, k + 1)
    pos = step_t[:, None] + d[None, :]
    ok = pos < lengths[step_row][:, None]
    target_step = torch.arange(len(step_row))[:, None].expand_as(pos)[ok]
    return step_row, step_t, torch.stack([target_step, pos[ok]])


# network ---------------------------------------------------------------------------------------


class SVAENet(nn.Module):
    def __init__(self, n_items: int, embed: int, rnn: int, hidden: int, latent: int):
        super().__init__()
        self.latent = latent
        self.embed = nn.Embedding(n_items, embed)
        self.gru = nn.GRU(embed, rnn, batch_first=True)
        self.enc = nn.Linear(rnn, hidden)
        self.head = nn.Linear(hidden, 2 * latent)
        self.dec1 = nn.Linear(latent, hidden)
        self.dec2 = nn.Linear(hidden, n_items)
        for layer in (self.enc, self.head, self.dec1, self.dec2):
            nn.init.xavier_normal_(layer.weight)  # as the reference; GRU and embedding keep torch's init

    def run_gru(self, items: torch.Tensor, lengths: torch.Tensor, all_steps: bool) -> torch.Tensor:
        """GRU outputs: every valid step [sum(lengths), rnn] in row order, or the last step [B, rnn]
        (zeros for an empty row). Packing skips the padding, so it never leaks into a row's state.

        ``lengths`` is on the host. The rows are sorted by length there, as ``pack_padded_sequence``
        sorts them, and the outputs put back in row order by gathers at indices computed there:
        no boolean mask, no index moved by a blocking copy, so no step waits for the device."""
        nonempty = torch.nonzero(lengths > 0).flatten()
        if len(nonempty) == 0:
            width = self.gru.hidden_size
            return torch.zeros(0 if all_steps else len(lengths), width, device=items.device)
        dev = items.device
        sorted_len, perm = torch.sort(lengths[nonempty].to(torch.int64), descending=True)
        x = self.embed(items.index_select(0, to_device(nonempty, dev))).index_select(0, to_device(perm, dev))
        packed = pack_padded_sequence(x, sorted_len, batch_first=True, enforce_sorted=True)
        out, h_last = self.gru(packed)
        if not all_steps:
            h = torch.zeros(len(lengths), h_last.shape[-1], device=dev)
            return h.index_copy(0, to_device(nonempty[perm], dev), h_last[-1])
        # packed outputs are time-major: step t of the j-th longest row sits at starts[t] + j
        lens = lengths[nonempty].to(torch.int64)
        rank = torch.empty_like(perm)
        rank[perm] = torch.arange(len(perm))
        row = torch.repeat_interleave(torch.arange(len(lens)), lens)
        t = torch.arange(len(row)) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
        starts = torch.cumsum(packed.batch_sizes, 0) - packed.batch_sizes
        return out.data.index_select(0, to_device(starts[t] + rank[row], dev))

    def encode(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.head(torch.tanh(self.enc(h)))
        return q[:, : self.latent], q[:, self.latent :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec2(torch.tanh(self.dec1(z)))


class SVAE(StepCounted, TorchRecommender):
    """SVAE (Sachdeva et al., "Sequential Variational Autoencoders for Collaborative Filtering",
    WSDM 2019). Reference: noveens/svae_cf ``main_svae.ipynb`` (PyTorch). We follow it:

    - item embedding 256 -> GRU 200 -> Linear 150 (tanh) -> Linear 2 x 64 (mu, logvar) at every
      time step; decoder 64 -> 150 (tanh) -> items (logits). Xavier-normal weights on the linear
      layers, torch's default init for the embedding and the GRU;
    - next-k loss (k=4): step t reads item t of the time-ordered sequence and its softmax over all
      items must put mass on items t+1..t+k. Per user: sum over steps of the multinomial NLL divided
      by the number of targets at the first step (min(k, n-1)), plus beta x the mean over steps of the
      KL to N(0, I); a batch's loss is the mean over its users (users with < 2 items have no step);
    - beta = min(0.2, step / 200000); Adam lr 1e-3, weight_decay 5e-3; 25 epochs; model selection
      on validation NDCG@100 by the Trainer;
    - scoring: run the GRU over the whole history in order and decode the LAST step with z = mu.

    Deviations (also in docs/models.md):
    - the reference samples z when evaluating (a bug: scores are random); we use z = mu;
    - the reference drops the last history item when scoring (it reuses the training input,
      which ends one item early); we read the whole history;
    - the reference samples with std exp(s) but computes the KL as if s were log-variance; we use
      s = logvar consistently (std = exp(s / 2));
    - the reference resets its annealing counter every epoch; ours counts gradient steps across
      epochs (saved in checkpoints), as Mult-VAE's;
    - batches of ``batch_size`` users padded and packed (pack_padded_sequence) instead of one
      user per step; the per-user loss is unchanged, the batch averages it;
    - sequences are truncated to the latest ``max_len`` items (the reference drops users with more
      than 1000 positives instead);
    - order comes from the CSR values (see the module docstring). Ties (all of them, with binary
      values, e.g. under strong generalization) go by column when scoring and at random, afresh
      each epoch from the seeded generator, in training: with no real order the model then
      learns from shuffled sets instead of one arbitrary order. Not a real sequence either way.
    """

    name = "svae"
    Config = SVAEConfig
    test_overrides = {"epochs": 30, "embed": 16, "rnn": 16, "hidden": 16, "latent": 8, "batch_size": 8,
                      "lr": 1e-2, "weight_decay": 0.0, "schedule": "reference"}  # lr as given, for tiny data
    space = {"embed": {"type": "int", "low": 32, "high": 256, "log": True},
             "rnn": {"type": "int", "low": 50, "high": 300, "log": True},
             "hidden": {"type": "int", "low": 50, "high": 300, "log": True},
             "batch_size": {"type": "categorical", "choices": [8, 16, 32]},
             "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}

    update_count: int = 0
    _rows_on_host = True  # sequences are built on the host (packing needs host lengths)

    @classmethod
    def prepare_fold(cls, fold, data):
        """Time-ordered inputs (values 1..n) where the data have timestamps; the targets stay 0/1."""
        if data.timestamp is None or getattr(fold, "kind", "ranking") == "rating":
            return fold
        return dataclasses.replace(
            fold,
            train=order_by_time(fold.train, fold.train_user_ids, fold.item_ids, data),
            valid_in=order_by_time(fold.valid_in, fold.valid_user_ids, fold.item_ids, data),
            test_in=order_by_time(fold.test_in, fold.test_user_ids, fold.item_ids, data),
        )

    def init_network(self) -> None:
        super().init_network()
        self.update_count = 0

    def _build(self) -> nn.Module:
        c = self.config
        return SVAENet(self.n_items, c.embed, c.rnn, c.hidden, c.latent)

    def scaled_lr(self) -> float:
        """``scaled``: lr x sqrt(batch_size / 1), the square-root rule for Adam (Malladi et al.,
        NeurIPS 2022), so batches of B users follow the reference's batch-1 trajectory in
        distribution over an epoch; lr itself at batch 1."""
        c = self.config
        if c.schedule != "scaled":
            return c.lr
        return c.lr * math.sqrt(c.batch_size / SVAE_REF.batch_size)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.net.parameters(), lr=self.scaled_lr(),
                                         weight_decay=self.config.weight_decay)}

    def current_beta(self, users_before: int = 0) -> float:
        """beta for the next step; ``users_before``: users already trained on in this epoch."""
        c = self.config
        if c.schedule == "scaled" and c.beta is None:
            return svae_scaled_beta(users_before, max(self.n_users, 1), c.anneal_cap, c.total_anneal_steps)
        return annealed_beta(self.update_count, c.anneal_cap, c.total_anneal_steps, c.beta)

    def batch_loss(self, batch: SparseBatch, beta: float, rng: np.random.Generator | None = None):
        """(mean per-user loss, number of users with a step); ties in order broken with rng if given."""
        tiebreak = None if rng is None else torch.from_numpy(rng.random(len(batch.values)))
        items, lengths = sequences(batch, self.config.max_len, tiebreak)
        step_row, step_t, (tgt_step, tgt_pos) = next_k_targets(lengths, self.config.next_k)
        if len(step_row) == 0:
            return torch.zeros((), device=self.device), 0
        # sequences and targets are built on the host; they move by non-blocking copies
        dev = self.device
        train_len = (lengths - 1).clamp_min(0)  # the last item is read by no step
        h = self.net.run_gru(to_device(items, dev), train_len, all_steps=True)
        mu, logvar = self.net.encode(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        log_probs = F.log_softmax(self.net.decode(z), dim=1)
        tgt_items = to_device(items[step_row[tgt_step], tgt_pos], dev)
        tgt_step = to_device(tgt_step, dev)
        nll_step = torch.zeros(len(step_row), device=dev).index_add_(0, tgt_step, -log_probs[tgt_step, tgt_items])
        users = torch.unique(step_row)
        row = to_device(step_row, dev)
        per_user = lambda v: torch.zeros(len(lengths), device=dev).index_add_(0, row, v)  # noqa: E731
        n_steps = to_device(train_len, dev).float()
        first = to_device(torch.clamp(lengths - 1, max=self.config.next_k), dev).float()
        loss_u = per_user(nll_step) / first.clamp_min(1) + beta * per_user(gaussian_kl(mu, logvar)) / n_steps.clamp_min(1)
        return loss_u[to_device(users, dev)].mean(), len(users)

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        opt = self.optimizers["main"]
        total, n = None, 0  # on the device, read once
        for i, (_, batch) in enumerate(self.batches(train, rng)):
            # users before this batch in the epoch (global batches, also under multi-process)
            beta = self.current_beta(min(i * self.config.batch_size, self.n_users))
            loss, users = self.batch_loss(batch, beta, rng)
            if users == 0:
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.update_count += 1
            total = add_loss(total, loss, users)
            n += users
        return (0.0 if total is None else float(total)) / max(n, 1)

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        items, lengths = sequences(batch, self.config.max_len)
        h = self.net.run_gru(items.to(self.device), lengths, all_steps=False)
        mu, _ = self.net.encode(h)
        return self.net.decode(mu)  # z = mu: deterministic scores


# order from timestamps ---------------------------------------------------------------------------


def positions(matrix: sp.csr_matrix, keys: np.ndarray) -> sp.csr_matrix:
    """The matrix's pattern with values 1..n per row in ascending ``keys`` (one per stored entry,
    in CSR order), ties by column."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, keys, rows))
    rank = np.empty(m.nnz, dtype=np.float32)
    rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], np.diff(m.indptr))[order] + 1
    m.data = rank
    return m


def order_by_time(matrix: sp.csr_matrix, user_ids, item_ids, data) -> sp.csr_matrix:
    """Values 1..n per row in time order, for a fold matrix whose rows are ``user_ids`` and columns
    ``item_ids`` (original ids) of ``data`` (an Interactions with timestamps; the earliest time of a
    repeated pair counts). Use it on a fold's train / valid_in / test_in before fitting or scoring."""
    if data.timestamp is None:
        raise DataError(f"{data.name}: SVAE's order needs timestamps; this data set has none")
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    u = pd.Index(data.user_ids).get_indexer(np.asarray(user_ids))
    i = pd.Index(data.item_ids).get_indexer(np.asarray(item_ids))
    if (u < 0).any() or (i < 0).any():
        raise DataError("order_by_time: some user or item ids are not in the data set")
    key = data.user.astype(np.int64) * data.n_items + data.item
    first = np.lexsort((data.timestamp, key))
    key, ts = key[first], data.timestamp[first]
    head = np.r_[True, key[1:] != key[:-1]]
    key, ts = key[head], ts[head]
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    want = u[rows].astype(np.int64) * data.n_items + i[m.indices]
    at = np.clip(np.searchsorted(key, want), 0, max(len(key) - 1, 0))
    if len(key) == 0 or (key[at] != want).any():
        raise DataError("order_by_time: the matrix holds interactions that the data set does not")
    return positions(m, ts[at])
