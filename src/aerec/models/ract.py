"""RaCT: ranking-critical training of a Mult-VAE actor (Lobel et al., ICLR 2020)."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from aerec import config as cfgmod
from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch, multinomial_nll
from aerec.models.multvae import MultVAE, MultVAEConfig, VAENet, gaussian_kl
from aerec.models.neural import adam
from aerec.models.schedules import RACT_REF, step_ratio


@dataclasses.dataclass
class RaCTConfig(MultVAEConfig):
    epochs: int = 200  # must equal actor_epochs + critic_epochs + ac_epochs
    actor_epochs: int = 100
    critic_epochs: int = 50
    ac_epochs: int = 50
    critic_hidden: tuple[int, ...] = (100, 100, 10)
    lr_critic: float = cfgmod.lr_field(1e-4)
    lr_ac: float = cfgmod.lr_field(2e-6)
    critic_lam: float = 1e-4  # critic L2: critic_lam / batch_size * sum of its squared parameters
    ac_beta: float = 0.0  # KL weight in the actor-critic phase (the reference's ac_reg_loss_scaler)
    ndcg_k: int = 100

    def validate(self):
        super().validate()
        phases = (self.actor_epochs, self.critic_epochs, self.ac_epochs)
        if min(phases) < 0:
            raise ConfigError("'actor_epochs', 'critic_epochs' and 'ac_epochs' must be non-negative")
        if self.epochs != sum(phases):
            raise ConfigError(f"'epochs' ({self.epochs}) must equal actor_epochs + critic_epochs + ac_epochs "
                              f"({sum(phases)}); set the phase lengths and epochs together")
        if self.loss != "multinomial":
            raise ConfigError("RaCT's actor uses the multinomial loss (its critic reads the actor's NLL)")
        if self.dropout <= 0 and self.actor_epochs < self.epochs:
            raise ConfigError("RaCT needs 'dropout' > 0: the dropped items are the critic's targets")
        if not self.critic_hidden or any(h < 1 for h in self.critic_hidden):
            raise ConfigError("'critic_hidden' must be a non-empty list of positive layer sizes")
        if self.lr_critic <= 0 or self.lr_ac <= 0 or self.critic_lam < 0 or self.ac_beta < 0:
            raise ConfigError("'lr_critic' and 'lr_ac' must be positive, 'critic_lam' and 'ac_beta' non-negative")
        if self.ndcg_k < 1:
            raise ConfigError("'ndcg_k' must be at least 1")


class Critic(nn.Module):
    """MLP on normalized [#seen items, #unseen items, actor NLL] -> predicted NDCG in (0, 1)."""

    def __init__(self, hidden: tuple[int, ...], eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.register_buffer("feat_mean", torch.zeros(3))  # fixed normalization, set by calibrate()
        self.register_buffer("feat_var", torch.ones(3))
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip([3, *hidden], [*hidden, 1]))
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = (feats - self.feat_mean) / torch.sqrt(self.feat_var + self.eps)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return torch.sigmoid(h).squeeze(1)

    def sq_sum(self) -> torch.Tensor:
        return sum((p**2).sum() for p in self.layers.parameters())


class RaCTNet(VAENet):
    """The Mult-VAE actor (scores come from it alone) plus the critic."""

    def __init__(self, n_items: int, hidden, latent: int, dropout: float, critic_hidden):
        super().__init__(n_items, hidden, latent, dropout)  # built first: same init as Mult-VAE
        self.critic = Critic(critic_hidden)

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("critic.")]


def critic_features(batch: SparseBatch, keep: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """[#seen (kept) items, #unseen (dropped) items, multinomial NLL of the full row] per row."""
    seen = batch.row_sum(batch.values * keep)
    unseen = batch.row_sum(batch.values * (1 - keep))
    return torch.stack([seen, unseen, multinomial_nll(logits, batch)], dim=1)


def ndcg_of_split(logits: torch.Tensor, batch: SparseBatch, keep: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k of the logits on the dropped items, kept items ranked last (reference: IDCG >= 0.1)."""
    kept, dropped = keep > 0, keep == 0
    seen = torch.zeros(batch.n_rows, batch.n_cols, dtype=torch.bool, device=logits.device)
    seen[batch.rows[kept], batch.indices[kept]] = True
    target = torch.zeros(batch.n_rows, batch.n_cols, dtype=logits.dtype, device=logits.device)
    target[batch.rows[dropped], batch.indices[dropped]] = 1.0
    k = min(k, batch.n_cols)
    top = logits.detach().masked_fill(seen, float("-inf")).topk(k, dim=1).indices
    disc = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=logits.dtype, device=logits.device))
    dcg = (target.gather(1, top) * disc).sum(dim=1)
    n_target = target.sum(dim=1).long().clamp(max=k)
    idcg = torch.cat([disc.new_zeros(1), disc.cumsum(0)])[n_target]
    return dcg / idcg.clamp_min(0.1)


class RaCT(MultVAE):
    """RaCT (Lobel, Li, Gao and Carin, "RaCT: Toward Amortized Ranking-Critical Training for
    Collaborative Filtering", ICLR 2020). Reference code: samlobel/RaCT_CF (``MultiVAE`` with
    ``CriticModelMixin``, ``scripts/main_vae.py``, ``utils/training.py``). We follow it:

    - actor: Mult-VAE (all of its settings; scores are the actor's, z = mu);
    - phases by epoch number: ``actor_epochs`` (100) of plain Mult-VAE training (bit-identical to
      ``multvae`` with the same seed and ``schedule="reference"``), ``critic_epochs`` (50) training only the critic with the
      actor frozen, then ``ac_epochs`` (50) where actor and critic are updated on every batch;
    - training split: each batch row's items are split by the actor's own dropout mask (keep
      probability 1 - dropout = 0.5 per item): kept items are the actor's input, dropped items the
      target. The actor's input is the L2-normalized full row times mask / keep-prob (as Mult-VAE);
    - critic: features [#kept items, #dropped items, actor NLL of the full row], normalized, then
      an MLP 100-100-10 (ReLU) -> 1 (sigmoid), Xavier weights; it regresses the true NDCG@100 of
      the actor's logits on the dropped items, kept items excluded (squared error, batch mean)
      plus ``critic_lam / batch_size * sum ||theta||^2`` (weights and biases); Adam ``lr_critic``;
    - actor-critic phase: actor loss = -mean predicted NDCG (+ ``ac_beta`` * KL, 0 as the
      reference: no ELBO term), Adam ``lr_ac = 2e-6`` (its own Adam); the critic keeps training
      on the same batch; both updates use the same forward pass;
    - training forwards keep dropout and z sampling in every phase, as the reference.

    Deviations: (1) feature normalization: the reference applies a non-trainable batch
    renormalization whose moving statistics (decay 0.999) are updated only during the actor phase;
    we compute the exact mean/variance of the features of the frozen actor in one no-grad pass over
    the training rows at the start of the first critic/AC epoch and keep them fixed (eps 1e-3 as
    TF), which does not depend on how many batches the data set has. (2) The reference restores the
    best-validation actor before the critic phases (a separate run); here the phases run in one
    Trainer run from the last actor epoch, and model selection (best validation NDCG@100, restored
    at the end) spans all epochs, so RaCT can never select worse than its own actor phase. As the
    actor phase is bit-identical to ``multvae``, setting ``actor_epochs`` to Mult-VAE's best epoch
    reproduces the reference's start from the best actor.
    ``patience`` counts across phase boundaries; keep it 0 (default) or larger than a phase.
    The training loss recorded per epoch is the phase's: ELBO, critic MSE, then -predicted NDCG.
    """

    name = "ract"
    tune_patience = None  # patience would count across its fixed phases
    Config = RaCTConfig
    test_overrides = {"epochs": 30, "actor_epochs": 20, "critic_epochs": 5, "ac_epochs": 5, "hidden": (32,),
                      "latent": 8, "batch_size": 16, "lr": 1e-2, "lr_critic": 1e-3, "lr_ac": 1e-4}
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},  # the actor's first phase
             "lr_critic": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
             "lr_ac": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
             "actor_epochs": {"type": "int", "low": 50, "high": 150},
             "critic_epochs": {"type": "int", "low": 10, "high": 50},
             "ac_epochs": {"type": "int", "low": 10, "high": 100},
             "epochs": {"type": "sum", "of": ["actor_epochs", "critic_epochs", "ac_epochs"]}}

    def _build(self) -> nn.Module:
        c = self.config
        return RaCTNet(self.n_items, tuple(c.hidden), c.latent, c.dropout, tuple(c.critic_hidden))

    ref_shape = RACT_REF

    def anneal_epochs(self) -> int:
        return self.config.actor_epochs  # beta anneals in the actor phase only

    def phase_lr_scale(self) -> float:
        """``scaled``: the critic and actor-critic learning rates times (reference steps per epoch /
        ours), so each phase moves the weights as far as the reference's 50 x 234 Adam steps do
        (an Adam step has size ~lr whatever the data); 1.0 exactly on ML-20M's shape."""
        if self.config.schedule != "scaled":
            return 1.0
        return step_ratio(self.ref_shape, self.n_users, self.config.batch_size)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        actor, scale = self.net.actor_parameters(), self.phase_lr_scale()
        return {"main": adam(actor, c.lr), "critic": adam(self.net.critic.parameters(), c.lr_critic * scale),
                "ac": adam(actor, c.lr_ac * scale)}

    def phase(self, epoch: int) -> str:
        c = self.config
        if epoch < c.actor_epochs:
            return "actor"
        return "critic" if epoch < c.actor_epochs + c.critic_epochs else "ac"

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        phase = self.phase(epoch)
        if phase == "actor":
            return super()._train_epoch(train, epoch, rng)
        if epoch == self.config.actor_epochs:
            self.calibrate(train, rng)
        total, n = None, 0  # summed on the device (float64, a Python sum's order), read once
        for rows, batch in self.batches(train, rng):
            loss = self._critic_step(batch) if phase == "critic" else self._ac_step(batch)
            term = loss.double() * len(rows)
            total = term if total is None else total + term
            n += len(rows)
        return (0.0 if total is None else float(total)) / max(n, 1)

    # pieces ----------------------------------------------------------------------------------
    def _actor_train_forward(self, batch: SparseBatch):
        """Training-mode actor pass; returns (keep mask, logits, mu, logvar)."""
        net, p = self.net, self.config.dropout
        keep = (torch.rand_like(batch.values) >= p).to(batch.values.dtype)  # the same draw as dropout
        x = batch.l2_normalized()
        mu, logvar = net._encode_tail(net.first(x.with_values(x.values * keep / (1.0 - p))))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return keep, net.decode(z), mu, logvar

    def _critic_loss(self, pred: torch.Tensor, logits, batch, keep) -> torch.Tensor:
        target = ndcg_of_split(logits, batch, keep, self.config.ndcg_k)
        reg = self.config.critic_lam / self.config.batch_size
        return ((target - pred) ** 2).mean() + reg * self.net.critic.sq_sum()

    def _critic_step(self, batch: SparseBatch) -> torch.Tensor:
        with torch.no_grad():  # the actor is frozen
            keep, logits, _, _ = self._actor_train_forward(batch)
        loss = self._critic_loss(self.net.critic(critic_features(batch, keep, logits)), logits, batch, keep)
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def _ac_step(self, batch: SparseBatch) -> torch.Tensor:
        keep, logits, mu, logvar = self._actor_train_forward(batch)
        pred = self.net.critic(critic_features(batch, keep, logits))
        actor_loss = -pred.mean()
        if self.config.ac_beta:
            actor_loss = actor_loss + self.config.ac_beta * gaussian_kl(mu, logvar).mean()
        critic_loss = self._critic_loss(pred, logits, batch, keep)
        actor_params, critic_params = self.net.actor_parameters(), list(self.net.critic.parameters())
        grads = torch.autograd.grad(actor_loss, actor_params, retain_graph=True)
        grads += torch.autograd.grad(critic_loss, critic_params)
        for param, grad in zip(actor_params + critic_params, grads):
            param.grad = grad
        self.optimizers["ac"].step()
        self.optimizers["critic"].step()
        return actor_loss.detach()

    def calibrate(self, train: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Fix the critic's feature normalization to the frozen actor's training-time features."""
        from aerec import distributed

        # count, sum x, sum x^2 (3 features each), summed on the device and read once
        sums = torch.zeros(7, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for _, batch in self.batches(train, rng):
                keep, logits, _, _ = self._actor_train_forward(batch)
                f = critic_features(batch, keep, logits).double()
                sums += torch.cat([f.new_full((1,), float(len(f))), f.sum(0), (f * f).sum(0)])
        sums = sums.cpu()
        ctx = distributed.current()
        if ctx is not None:  # multi-process: every rank saw a slice; pool the sums
            sums = torch.from_numpy(np.asarray(ctx.sum(sums.numpy()), dtype=np.float64))
        n = sums[0].clamp_min(1.0)
        mean = sums[1:4] / n
        self.net.critic.feat_mean.copy_(mean.float())
        self.net.critic.feat_var.copy_((sums[4:7] / n - mean * mean).clamp_min(0.0).float())
