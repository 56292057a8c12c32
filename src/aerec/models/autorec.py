"""AutoRec (Sedhain et al., WWW 2015): I-AutoRec and U-AutoRec for rating prediction.

Also holds ``RatingAutoencoder``, the rating-model plumbing that DeepRec shares: rating range and
unseen defaults, grouped ``predict``, and the per-row codes that make a saved model self-contained.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from aerec import config as cfgmod
from aerec.errors import ConfigError, DataError
from aerec.models.layers import SparseBatch, SparseLinear, batch_order
from aerec.models.neural import NeuralConfig, TorchRecommender, adam, add_loss

Activation = Literal["identity", "sigmoid", "relu", "tanh", "elu", "selu"]
ACTIVATIONS = {"identity": lambda x: x, "sigmoid": torch.sigmoid, "relu": torch.relu,
               "tanh": torch.tanh, "elu": F.elu, "selu": F.selu}
PAIR_CHUNK = 32768  # (user, item) pairs decoded at once in predict


@dataclasses.dataclass
class RatingConfig(NeuralConfig):
    # Prediction range; None takes the min / max of the training ratings.
    rating_min: float | None = None
    rating_max: float | None = None
    # Rating for a user or item with no training rating: the paper's 3, or the global mean.
    unseen_default: Literal["three", "mean"] = "three"

    def validate(self):
        super().validate()
        if self.rating_min is not None and self.rating_max is not None and self.rating_min >= self.rating_max:
            raise ConfigError("'rating_min' must be below 'rating_max'")


class RatingAutoencoder(TorchRecommender):
    """Shared rating plumbing. Subclasses set ``item_based`` and implement ``_code`` (input rows ->
    last hidden layer), ``_decode_at`` (codes x column ids -> outputs, pairwise) and ``_decode``
    (codes -> dense outputs over all or some columns). A stored 0 is a missing rating."""

    task = "rating"
    item_based = False
    code_dim: int

    # fitting ---------------------------------------------------------------------------------
    def _fit(self, train: sp.csr_matrix, valid, **trainer_options) -> None:
        train = train.copy()
        train.eliminate_zeros()
        if train.nnz == 0:
            raise DataError("train holds no non-zero ratings")
        cfg = self.config
        lo = float(train.data.min()) if cfg.rating_min is None else cfg.rating_min
        hi = float(train.data.max()) if cfg.rating_max is None else cfg.rating_max
        self._fit_state = {"stats": torch.tensor([lo, hi, float(train.data.mean())]),
                           "user_seen": torch.from_numpy(np.diff(train.indptr) > 0),
                           "item_seen": torch.from_numpy(np.bincount(train.indices, minlength=self.n_items) > 0)}
        self._inputs = train.T.tocsr() if self.item_based else train  # autoencoder rows
        self.optimizer_steps = 0
        try:
            super()._fit(train, valid, **trainer_options)
            self.net.codes.copy_(self._codes_for(np.arange(self._inputs.shape[0])))
        finally:
            self._inputs = None

    def _register_state(self, net: nn.Module, n_rows: int) -> nn.Module:
        st = getattr(self, "_fit_state", None) or {
            "stats": torch.zeros(3), "user_seen": torch.zeros(self.n_users, dtype=torch.bool),
            "item_seen": torch.zeros(self.n_items, dtype=torch.bool)}
        for k, v in st.items():
            net.register_buffer(k, v.clone())
        # Last hidden layer of every training row: predict/score_users need no training data.
        net.register_buffer("codes", torch.zeros(n_rows, self.code_dim))
        return net

    def _active_batches(self, data: sp.csr_matrix, rng):
        """Shuffled batches over rows that hold at least one rating (empty rows carry no loss),
        cut from ``data`` held on the model's device (moved there once per fit)."""
        active = np.flatnonzero(np.diff(data.indptr) > 0)
        chunks = [active[chunk] for chunk in batch_order(len(active), self.config.batch_size, rng)]
        held = self.rows_on_device(data)
        order = held.order(np.concatenate(chunks)) if chunks else None  # one copy per epoch
        start = 0
        for rows in chunks:
            yield rows, len(active), held.batch(rows, None if order is None else order[start : start + len(rows)])
            start += len(rows)

    def extra_state(self) -> dict:
        return {"optimizer_steps": self.optimizer_steps}

    def load_extra_state(self, state: dict) -> None:
        self.optimizer_steps = int(state.get("optimizer_steps", 0))

    # prediction ------------------------------------------------------------------------------
    def _codes_for(self, rows: np.ndarray) -> torch.Tensor:
        if getattr(self, "_inputs", None) is None:  # fitted or loaded: stored codes
            return self.net.codes[torch.from_numpy(rows)]
        was = self.net.training
        self.net.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(rows), self.config.eval_block):
                out.append(self._code(SparseBatch.from_csr(self._inputs[rows[s : s + self.config.eval_block]], self.device)))
        self.net.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.code_dim, device=self.device)

    def _default(self) -> float:
        return 3.0 if self.config.unseen_default == "three" else float(self.net.stats[2])

    def _finish(self, values: np.ndarray, known: np.ndarray) -> np.ndarray:
        lo, hi = (float(x) for x in self.net.stats[:2])
        values = np.clip(values, lo, hi)
        return np.where(known, values, np.float32(self._default())).astype(np.float32)

    def predict(self, user_idx, item_idx) -> np.ndarray:
        """Ratings for (user, item) pairs, decoding only the requested outputs, grouped by row."""
        if not hasattr(self, "net"):
            raise DataError(f"{self.name} is not fitted yet; call fit() first")
        u, i = np.asarray(user_idx), np.asarray(item_idx)
        if u.ndim != 1 or u.shape != i.shape:
            raise DataError("user_idx and item_idx must be 1-D arrays of the same length")
        if len(u) and (not np.issubdtype(u.dtype, np.integer) or not np.issubdtype(i.dtype, np.integer)):
            raise DataError("user_idx and item_idx must hold integer indices")
        u, i = u.astype(np.int64), i.astype(np.int64)
        if len(u) and (u.min() < 0 or u.max() >= self.n_users or i.min() < 0 or i.max() >= self.n_items):
            raise DataError(f"indices out of range: the model knows {self.n_users} users and {self.n_items} items")
        user_ok = self.net.user_seen.cpu().numpy()[u]
        item_ok = self.net.item_seen.cpu().numpy()[i]
        known = user_ok & item_ok
        self._last_unseen = {"pairs": int(len(u)), "unseen_users": int((~user_ok).sum()),
                             "unseen_items": int((~item_ok).sum()), "defaulted": int((~known).sum())}
        rows, cols = (i, u) if self.item_based else (u, i)
        out = np.zeros(len(u), dtype=np.float32)
        kk = np.flatnonzero(known)
        uniq, inv = np.unique(rows[kk], return_inverse=True)
        was = self.net.training
        self.net.eval()
        with torch.no_grad():
            codes = self._codes_for(uniq)
            for s in range(0, len(kk), PAIR_CHUNK):
                sel = torch.from_numpy(inv[s : s + PAIR_CHUNK]).to(self.device)
                c = torch.from_numpy(cols[kk[s : s + PAIR_CHUNK]]).to(self.device)
                out[kk[s : s + PAIR_CHUNK]] = self._decode_at(codes[sel], c).float().cpu().numpy()
        self.net.train(was)
        return self._finish(out, known)

    def unseen_counts(self, user_idx=None, item_idx=None) -> dict[str, int]:
        """Counts of pairs whose user / item had no training rating (so got the default): of the
        given pairs, or of the last ``predict`` call when called without arguments."""
        if user_idx is None:
            return dict(getattr(self, "_last_unseen", {}))
        u, i = np.asarray(user_idx, dtype=np.int64), np.asarray(item_idx, dtype=np.int64)
        user_ok, item_ok = self.net.user_seen.cpu().numpy()[u], self.net.item_seen.cpu().numpy()[i]
        return {"unseen_users": int((~user_ok).sum()), "unseen_items": int((~item_ok).sum()),
                "defaulted": int((~(user_ok & item_ok)).sum())}

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        """Fold-in: each history row is the input; rows without ratings get the default."""
        self.net.eval()
        history = history.copy()
        history.eliminate_zeros()
        out = np.empty(history.shape, dtype=np.float32)
        item_ok = self.net.item_seen.cpu().numpy()[None, :]
        step = self.config.eval_block
        with torch.no_grad():
            for s in range(0, history.shape[0], step):
                block = history[s : s + step]
                dense = self._decode(self._code(SparseBatch.from_csr(block, self.device))).float().cpu().numpy()
                out[s : s + step] = self._finish(dense, item_ok & (np.diff(block.indptr) > 0)[:, None])
        return out

    def score_users(self, user_idx, history=None) -> np.ndarray:
        """Predicted ratings of training users over all items, from the stored codes (the
        history is not needed: the trained codes already hold it)."""
        self._check_fitted()
        users = np.asarray(user_idx, dtype=np.int64).reshape(-1)
        if len(users) and (users.min() < 0 or users.max() >= self.n_users):
            raise DataError(f"user indices out of range: the model knows {self.n_users} users")
        self.net.eval()
        user_ok = self.net.user_seen.cpu().numpy()[users][:, None]
        item_ok = self.net.item_seen.cpu().numpy()[None, :]
        with torch.no_grad():
            if self.item_based:
                cols = torch.from_numpy(users).to(self.device)
                dense = self._decode(self.net.codes, cols).T
            else:
                dense = self._decode(self.net.codes[torch.from_numpy(users)])
        return self._finish(dense.float().cpu().numpy(), user_ok & item_ok)


@dataclasses.dataclass
class AutoRecConfig(RatingConfig):
    variant: Literal["item", "user"] = "item"
    hidden: int = 500
    hidden_activation: Activation = "sigmoid"
    output_activation: Activation = "identity"
    lam: float = 200.0  # lambda of the paper, on the summed squared error (tuned on ML-100K)
    optimizer: Literal["adam", "rprop"] = "adam"  # rprop: one full-batch step per epoch, as the paper
    epochs: int = 300
    batch_size: int = 256
    lr: float = cfgmod.lr_field(2e-3)
    patience: int = 20

    def validate(self):
        super().validate()
        if self.hidden < 1:
            raise ConfigError("'hidden' must be at least 1")
        if self.lam < 0:
            raise ConfigError("'lam' must be non-negative")


class _AutoRecNet(nn.Module):
    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.encoder = SparseLinear(n_in, hidden)  # V and mu
        self.decoder_weight = nn.Parameter(torch.empty(n_in, hidden))  # W, one row per output
        self.decoder_bias = nn.Parameter(torch.zeros(n_in))  # b
        nn.init.xavier_uniform_(self.decoder_weight)


class AutoRec(RatingAutoencoder):
    """AutoRec: h(r) = f(W g(V r + mu) + b), trained on observed ratings only.

    I-AutoRec (``variant="item"``, default) reconstructs each item's vector of user ratings;
    U-AutoRec each user's vector of item ratings. Loss: sum of squared errors over observed
    entries + lam/2 (|W|^2 + |V|^2), the paper's objective. Outputs are decoded only at observed
    entries in training (rows of W gathered), never densely.

    Deviations from the paper: Adam on mini-batches by default (the paper used RProp / L-BFGS;
    ``optimizer="rprop"`` takes one full-batch RProp step per epoch). Each batch carries the
    share batch_rows / rows of the weight penalty, so one epoch's gradients sum to the paper's
    full objective. The output bias starts at the training mean (identity output) to save the
    first epochs. Early stopping on a validation RMSE. Predictions are clipped to the rating
    range; a user or item without training ratings gets ``unseen_default``. Defaults lam=200,
    batch 256, lr 2e-3 were tuned on ML-100K (docs). I-AutoRec cannot encode a new user, so its
    ``score(history)`` fits each row's decoder weights by ridge regression on the item codes
    (our fold-in); ``score_users`` serves training users.
    """

    name = "autorec"
    Config = AutoRecConfig
    test_overrides = {"hidden": 16, "epochs": 40, "lam": 1.0, "lr": 0.03, "batch_size": 64, "patience": 0}
    space = {"hidden": {"type": "int", "low": 100, "high": 1000, "log": True},
             "lam": {"type": "float", "low": 1.0, "high": 1e3, "log": True},
             "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}

    @property
    def item_based(self) -> bool:
        return self.config.variant == "item"

    @property
    def code_dim(self) -> int:
        return self.config.hidden

    def _build(self) -> nn.Module:
        n_in, n_rows = (self.n_users, self.n_items) if self.item_based else (self.n_items, self.n_users)
        net = _AutoRecNet(n_in, self.config.hidden)
        st = getattr(self, "_fit_state", None)
        if st is not None and self.config.output_activation == "identity":
            with torch.no_grad():
                net.decoder_bias.fill_(float(st["stats"][2]))
        return self._register_state(net, n_rows)

    def _optimizers(self):
        params = list(self.net.parameters())
        if self.config.optimizer == "rprop":
            return {"main": torch.optim.Rprop(params, lr=self.config.lr)}
        return {"main": adam(params, lr=self.config.lr)}

    def _code(self, batch: SparseBatch) -> torch.Tensor:
        return ACTIVATIONS[self.config.hidden_activation](self.net.encoder(batch))

    def _decode_at(self, codes: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        net = self.net
        z = (codes * net.decoder_weight[cols]).sum(1) + net.decoder_bias[cols]
        return ACTIVATIONS[self.config.output_activation](z)

    def _decode(self, codes: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.net.decoder_weight, self.net.decoder_bias
        if cols is not None:
            w, b = w[cols], b[cols]
        return ACTIVATIONS[self.config.output_activation](codes @ w.T + b)

    def batch_loss(self, batch: SparseBatch, share: float) -> torch.Tensor:
        """SSE over the batch's observed entries + share * lam/2 (|W|^2 + |V|^2)."""
        pred = self._decode_at(self._code(batch)[batch.rows], batch.indices)
        sse = (pred - batch.values).pow(2).sum()
        reg = self.net.encoder.weight.pow(2).sum() + self.net.decoder_weight.pow(2).sum()
        return sse + share * 0.5 * self.config.lam * reg

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        opt = self.optimizers["main"]
        full_batch = self.config.optimizer == "rprop"
        total = None  # on the device, read once
        opt.zero_grad()
        for rows, n_active, batch in self._active_batches(self._inputs, rng):
            with self.train_autocast():
                loss = self.batch_loss(batch, len(rows) / n_active)
            loss.backward()
            total = add_loss(total, loss)
            if not full_batch:
                opt.step()
                opt.zero_grad()
                self.optimizer_steps += 1
        if full_batch:
            opt.step()
            self.optimizer_steps += 1
        return (0.0 if total is None else float(total)) / self._inputs.nnz

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        if not self.item_based:
            return super()._score(history)
        return self._fold_in_users(history)

    def _fold_in_users(self, history: sp.csr_matrix, block: int = 64) -> np.ndarray:
        """I-AutoRec fold-in. Users are its input dimensions, so a new user has no decoder row:
        fit one (w, b) per history row by ridge regression on the item codes, the training
        objective restricted to that row: min sum_j (w.c_j + b - r_j)^2 + lam/2 |w|^2."""
        if self.config.output_activation != "identity":
            raise DataError("I-AutoRec folds in new users only with output_activation='identity'; "
                            "use score_users() for training users")
        self.net.eval()
        item_ok = self.net.item_seen.cpu().numpy()
        hist = sp.csr_matrix(history.multiply(item_ok[None, :].astype(np.float32)))
        hist.eliminate_zeros()
        codes = self.net.codes  # [n_items, H]
        h = codes.shape[1]
        design = torch.cat([codes, torch.ones(len(codes), 1, device=codes.device)], 1)
        ridge = torch.full((h + 1,), 0.5 * self.config.lam + 1e-6, device=codes.device)
        ridge[-1] = 1e-6  # the bias is not penalised, as in training
        out = np.empty(history.shape, dtype=np.float32)
        with torch.no_grad():
            for s in range(0, hist.shape[0], block):
                b = hist[s : s + block]
                counts = np.diff(b.indptr)
                width = max(int(counts.max()), 1)
                rows = np.repeat(np.arange(b.shape[0]), counts)
                pos = np.arange(b.nnz) - b.indptr[rows]
                x = torch.zeros(b.shape[0], width, h + 1, device=codes.device)
                y = torch.zeros(b.shape[0], width, device=codes.device)
                x[rows, pos] = design[torch.from_numpy(b.indices.astype(np.int64))]
                y[rows, pos] = torch.from_numpy(b.data.astype(np.float32))
                gram = x.transpose(1, 2) @ x + torch.diag(ridge)
                sol = torch.linalg.solve(gram, (x.transpose(1, 2) @ y[:, :, None]))[:, :, 0]
                dense = (sol @ design.T).cpu().numpy()
                out[s : s + block] = self._finish(dense, item_ok[None, :] & (counts > 0)[:, None])
        return out
