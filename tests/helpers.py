"""Small data builders shared by the model test files (plain functions, not fixtures).

Import as ``from helpers import block_data``: pytest puts ``tests/`` on ``sys.path``.

- ``block_data``: users x items with a planted block structure; each user holds every item of its
  block but one, returned as the held-out item.
- ``sampled_blocks``: the same block layout, each user holding a random ``per_user`` of its
  block's items (no held-out item).
- ``lowrank_ratings``: a low-rank explicit rating matrix (1..5) cut into train and test.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def block_data(n_users: int, n_blocks: int = 3, block: int = 8,
               seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """(x, held): user u lives in block u % n_blocks and has every item of it but ``held[u]``."""
    rng = np.random.default_rng(seed)
    rows, cols, held = [], [], []
    for u in range(n_users):
        items = rng.permutation(block) + (u % n_blocks) * block
        rows += [u] * (block - 1)
        cols += list(items[:-1])
        held.append(items[-1])
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_blocks * block))
    return x, np.array(held)


def sampled_blocks(n_users: int = 60, block: int = 10, n_blocks: int = 3, per_user: int = 8, seed: int = 0,
                   dtype=np.float64) -> sp.csr_matrix:
    """User u holds ``per_user`` random items of block u % n_blocks."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        items = rng.choice(block, per_user, replace=False) + block * (u % n_blocks)
        rows += [u] * per_user
        cols += items.tolist()
    return sp.csr_matrix((np.ones(len(rows), dtype), (rows, cols)), shape=(n_users, block * n_blocks))


def lowrank_ratings(seed: int = 0, n_users: int = 50, n_items: int = 36,
                    density: float = 0.6) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test): ratings 1..5 from a rank-2 model, ~`density` observed, ~15% of them in test."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    full = np.clip(np.round(3.0 + 0.9 * p @ q.T), 1, 5)
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    test = rng.random(len(u)) < 0.15

    def make(mask):
        values = full[u[mask], i[mask]].astype(np.float32)
        return sp.csr_matrix((values, (u[mask], i[mask])), shape=full.shape)

    return make(~test), make(test)
