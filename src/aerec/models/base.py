"""The model contract shared by every aerec model.

Every model:
- is built from keyword arguments checked against its typed ``Config`` dataclass;
- ``fit(train_csr, valid=None)`` returns self;
- ``score(history_csr)`` returns float32 scores for those history rows over all items. That is
  fold-in: a row need not belong to a training user;
- ``recommend(history_csr, k, exclude_seen=True)`` returns ``(item_indices, scores)``.

Rating models (``task = "rating"``) also have ``predict(user_idx, item_idx)``; their ``valid``
is a CSR of held-out ratings with the training matrix's shape. Ranking models take
``valid=(valid_in_csr, valid_out_csr)`` for early stopping.

Subclasses implement ``_fit`` and ``_score`` only; the public methods check inputs first.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from aerec import config as cfgmod
from aerec import deps
from aerec.errors import ConfigError, DataError


@dataclasses.dataclass
class BaseConfig:
    seed: int = cfgmod.seed_field()


def as_csr(x, name: str = "matrix") -> sp.csr_matrix:
    if not sp.issparse(x):
        raise DataError(f"{name} must be a scipy sparse matrix, got {type(x).__name__}")
    x = sp.csr_matrix(x, dtype=np.float32)
    if x.nnz and not np.isfinite(x.data).all():
        raise DataError(f"{name} holds NaN or infinite values")
    return x


check_k = cfgmod.check_k  # kept importable from here


def _all_finite(a, block: int = 1 << 22) -> bool:
    """Whether a numpy array holds no NaN or infinity, in blocks (EASE's B is items x items: a
    boolean copy of it at once would cost a quarter of its size again)."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        return True
    flat = a.reshape(-1)
    return all(np.isfinite(flat[i : i + block]).all() for i in range(0, flat.size, block))


class Recommender:
    name: ClassVar[str] = "base"
    task: ClassVar[str] = "ranking"  # or "rating"
    Config: ClassVar[type] = BaseConfig
    # Whether fit() takes negative values. None: rating models do (any numeric scale), top-N
    # models do not (their values are counts, weights or positions).
    accepts_negative: ClassVar[bool | None] = None
    multi_process: ClassVar[bool] = False  # trains under torchrun (see aerec.distributed)
    # optional libraries as (module, extra); checked up front by the commands (aerec.deps)
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()
    space: ClassVar[dict] = {}  # hyperparameter search space (aerec.models.space), beside Config
    weighted: ClassVar[bool] = False  # trains on implicit strengths (counts) rather than ones

    def __init__(self, config: Any = None, **kwargs):
        if config is not None and not isinstance(config, (dict, self.Config)):
            raise TypeError(f"config must be a {self.Config.__name__} or dict")
        base = cfgmod.to_dict(config) if dataclasses.is_dataclass(config) else (config or {})
        self.config = cfgmod.build(self.Config, base, **kwargs)
        self.n_users = 0
        self.n_items = 0
        self.fitted = False
        self.history: list[dict] = []  # per-epoch records, filled by the trainer

    # public API ------------------------------------------------------------------------------
    def fit(self, train, valid=None, *, feedback: str | None = None, threshold: float | None = None,
            **trainer_options):
        """Fit on ``train`` and return self.

        train: a users x items scipy sparse matrix, ``aerec.data.Interactions`` (from
        ``aerec.data.load`` or ``aerec.data.from_dataframe``), or a DataFrame whose columns
        ``from_dataframe`` can guess (user, item[, rating][, timestamp]). Interactions are turned into a
        matrix under their feedback semantics (explicit star ratings: above 0.7 of the scale's top,
        rating > 3.5 of 5, for top-N models; implicit: every row, counts as weights for weighted
        models such as WMF), and the model keeps the ids and histories, so ``recommend_user(id)``
        and ``recommend_items([ids])`` work right away, without a save and load.
        feedback, threshold: declare what the values mean ("explicit"/"implicit", keep value >
        threshold) for Interactions or a DataFrame, over what they carry or the guess. The
        decision is printed on stderr in one line (quiet with AEREC_QUIET=1) and kept as
        ``model.feedback``.
        valid: for early stopping, ``(valid_in, valid_out)`` CSR matrices (ranking models) or a
        CSR of held-out ratings of the training shape (rating models); None trains for the
        configured epochs.
        trainer_options: neural models take ``progress``, ``checkpoint_dir``, ``resume``, ...
        """
        # Everything is checked before the model changes; a refit refused later (training that
        # diverges, a memory refusal, Ctrl-C) puts back every attribute the old fit left.
        saved = dict(self.__dict__)
        try:
            self._checked_fit(train, valid, feedback, threshold, trainer_options)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def _checked_fit(self, train, valid, feedback, threshold, trainer_options: dict) -> None:
        from aerec.data.interactions import Interactions
        from aerec.errors import FIT_WORDS, ConfigError, api_words

        ids = None
        with api_words(FIT_WORDS):
            if type(train).__name__ == "DataFrame":  # columns guessed (user, item[, rating, time])
                from aerec.data import from_dataframe

                train = from_dataframe(train)
            if isinstance(train, Interactions):
                from aerec import ui
                from aerec.data import declare
                from aerec.data import feedback as fbmod

                train = declare(train, feedback, threshold)
                prepared = fbmod.training_data(train, self.task, fbmod.of(train), weighted=self.weighted)
                ui.info(prepared.line)
                train = prepared.train
                ids = {"item_ids": prepared.data.item_ids, "user_ids": prepared.data.user_ids,
                       "item_titles": prepared.data.item_titles, "histories": train.tocsr(),
                       "seen": prepared.seen, "feedback": prepared.line,
                       "below_threshold": prepared.below_threshold()}
            elif feedback is not None or threshold is not None:
                raise ConfigError("feedback= and threshold= apply to Interactions or a DataFrame; a matrix is "
                                  "used as it is (cut it before fitting)")
        deps.check(type(self))
        train = as_csr(train, "train")
        if train.nnz == 0:
            raise DataError("train matrix is empty")
        self._check_sign(train, "train")
        self.n_users, self.n_items = train.shape  # _check_valid reads the new shape
        if valid is not None:
            valid = self._check_valid(valid)
            for part, name in zip(valid if isinstance(valid, tuple) else (valid,), ("valid_in", "valid_out")):
                self._check_sign(part, "valid" if self.task == "rating" else name)
        if ids is not None:
            self.__dict__.update(ids)
        self._fit(train, valid, **trainer_options)
        self._check_finite_weights(float(np.abs(train.data).max()))
        self.fitted = True

    def score(self, history) -> np.ndarray:
        self._check_fitted()
        history = self._check_history(history)
        if history.shape[0] == 0:
            return np.zeros((0, self.n_items), dtype=np.float32)
        return np.asarray(self._score(history), dtype=np.float32)

    def score_tensor(self, history):
        """``score`` as a float torch tensor on the device the model scores on (a GPU model's
        scores stay on the GPU). The tensor is the caller's to overwrite: the evaluator,
        ``recommend`` and the HTTP service exclude items and take the top-k on it in place."""
        self._check_fitted()
        history = self._check_history(history)
        return self._score_tensor(history)

    def recommend(self, history, k: int = 10, exclude_seen: bool = True, exclude=None):
        """Top-k items per history row: (indices int64 [n, k], scores float32 [n, k]).
        Exclusion and top-k run where the model scores (on its GPU, if it has one)."""
        from aerec import metrics

        self._check_fitted()
        history = self._check_history(history)
        k = check_k(k)
        k = min(k, self.n_items)
        masks = [history] if exclude_seen else []
        if exclude is not None:
            exclude = as_csr(exclude, "exclude")
            if exclude.shape != history.shape:
                raise DataError(f"exclude has shape {exclude.shape}; it must match history's {history.shape}")
            masks.append(exclude)
        scores = self._score_tensor(history)
        for mask in masks:
            metrics.exclude_(scores, mask)
        idx, vals = metrics.topk(scores, k) if history.shape[0] else (np.zeros((0, k), np.int64), np.zeros((0, k)))
        return idx, vals.astype(np.float32)

    def score_users(self, user_idx, history) -> np.ndarray:
        """Scores of known training users ``user_idx`` whose stored histories are ``history``.

        By default this is fold-in from the history; models with per-user state (CDAE's user
        vectors, AutoRec's trained codes) override it to use that state.
        """
        return self.score(history)

    @classmethod
    def prepare_fold(cls, fold, data):
        """Adapt a protocol's fold to what this model reads; most models take it as it is.
        (SVAE overrides it to put each user's time order into the matrix values.)"""
        return fold

    def predict(self, user_idx, item_idx) -> np.ndarray:
        raise NotImplementedError(f"{self.name} is a ranking model and does not predict ratings")

    # model files and original ids (implemented in aerec.io) -----------------------------------
    def save(self, path, **kwargs):
        """Write the fitted model to a directory; see aerec.io.save for the keyword arguments."""
        from aerec import io

        return io.save(self, path, **kwargs)

    @classmethod
    def load(cls, path, **kwargs):
        """Load a model directory (never unpickles); it must hold this class or a subclass."""
        from aerec import io
        from aerec.errors import ModelFileError

        model = io.load(path, **kwargs)
        if not isinstance(model, cls):
            raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def recommend_user(self, user_id, k: int = 10, exclude=(), exclude_seen: bool = True):
        """Top-k original item ids for a known user, from the history stored with the model
        (fitted from Interactions, or loaded from a model directory).

        exclude_seen: leave out every item in the user's stored history, whatever its rating
        (default); False re-recommends them (repeat purchases).
        """
        from aerec import io

        return io.recommend_user(self, user_id, k, exclude, exclude_seen=exclude_seen)

    def recommend_items(self, item_ids, k: int = 10, exclude=(), ratings=None):
        """Top-k original item ids for a new user given as original item ids (fold-in)."""
        from aerec import io

        return io.recommend_items(self, item_ids, k, exclude, ratings)

    # hooks for subclasses --------------------------------------------------------------------
    def _fit(self, train: sp.csr_matrix, valid, **trainer_options) -> None:
        raise NotImplementedError

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _score_tensor(self, history: sp.csr_matrix):
        """Scores as a fresh CPU tensor (a model may hand back an array it keeps, so a copy);
        models that score on a device override this."""
        import torch

        return torch.from_numpy(np.array(self.score(history), dtype=np.float32, copy=True))

    # checks ----------------------------------------------------------------------------------
    def _check_fitted(self):
        if not self.fitted:
            raise DataError(f"{self.name} is not fitted yet; call fit() first")

    def _check_finite_weights(self, largest: float) -> None:
        """A fit whose weights hold NaN or infinity is refused (so never saved), naming the settings
        that differ from the defaults: the ones that overflowed the maths."""
        if hasattr(self, "state_arrays"):
            state = self.state_arrays()
        elif hasattr(self, "state_tensors"):
            state = self.state_tensors()
        else:
            return
        for key, v in state.items():
            if type(v).__module__.startswith("torch"):  # numpy models never import torch here
                import torch

                finite = not torch.is_floating_point(v) or bool(torch.isfinite(v).all())
            else:
                finite = _all_finite(v)
            if not finite:
                config = self.config_dict()
                default = cfgmod.to_dict(self.Config())
                changed = [f"{k}={v!r}" for k, v in config.items()
                           if k not in ("seed", "device", "epochs", "patience") and v != default.get(k)]
                lower = "lower 'lr', " if "lr" in config else ""
                raise ConfigError(f"{self.name}: training gave non-finite weights ('{key}'): its maths overflowed with "
                                  f"{', '.join(changed) or 'the default settings'} on values up to {largest:g}; "
                                  f"{lower}change these settings or scale the values down, and train again; nothing "
                                  "was saved")

    def _check_sign(self, m: sp.csr_matrix, name: str) -> None:
        allowed = self.accepts_negative if self.accepts_negative is not None else self.task == "rating"
        if not allowed and m.nnz and float(m.data.min()) < 0:
            raise DataError(f"{name} holds negative values ({float(m.data.min()):g}); {self.name} needs non-negative "
                            "interaction values (counts, weights or 1s)")

    def _check_history(self, history) -> sp.csr_matrix:
        history = as_csr(history, "history")
        if self.n_items and history.shape[1] != self.n_items:
            raise DataError(f"history has {history.shape[1]} item columns, the model knows {self.n_items}")
        return history

    def _check_valid(self, valid):
        if self.task == "rating":
            v = as_csr(valid, "valid")
            if v.shape != (self.n_users, self.n_items):
                raise DataError(f"valid has shape {v.shape}, expected {(self.n_users, self.n_items)}")
            return v
        if not (isinstance(valid, tuple) and len(valid) == 2):
            raise DataError("valid must be a (valid_in, valid_out) pair of CSR matrices")
        v_in, v_out = (self._check_history(v) for v in valid)
        if v_in.shape != v_out.shape:
            raise DataError(f"valid_in {v_in.shape} and valid_out {v_out.shape} differ in shape")
        return v_in, v_out

    def config_dict(self) -> dict:
        return cfgmod.to_dict(self.config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config_dict().items())
        return f"{type(self).__name__}({args})"
