"""Popularity: score every item by how many training users have it. The floor for top-N."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from aerec.models.base import Recommender


class Popularity(Recommender):
    name = "pop"

    def _fit(self, train: sp.csr_matrix, valid, **_) -> None:
        counts = np.bincount(train.indices, minlength=self.n_items).astype(np.float32)
        self.item_counts = counts
        self.epochs_run = 0

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.item_counts, (history.shape[0], self.n_items)).copy()

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"item_counts": self.item_counts}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_counts = np.asarray(arrays["item_counts"], dtype=np.float32)
