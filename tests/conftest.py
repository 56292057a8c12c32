"""Shared fixtures: tiny data sets built directly as Interactions (no files, no downloads).

- ``block_data``: implicit feedback with a planted block structure. Items fall into blocks; a
  user only touches items of its own block. Blocks differ in size (users), so block 0's items
  are also the most popular ones.
- ``block_case``: that structure cut for the contract tests: training rows, and fold-in rows of
  unseen users each holding every item of its block but one (the held-out item).
- ``rating_data`` / ``rating_case``: a low-rank explicit rating set (1..5) with a train/test cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aerec import io, models
from aerec.data.interactions import Interactions

# The tests' tensors are tiny: a second intra-op thread only adds synchronisation (5-10x slower
# on a loaded 2-core machine). Results are deterministic either way.
torch.set_num_threads(1)

N_BLOCKS, ITEMS_PER_BLOCK = 3, 8
BLOCK_USERS = (24, 16, 12)  # unequal so block 0 is the most popular
TRAIN_FRACTION = 0.75  # each training user holds this share of its block's items


def _interactions(users, items, n_users, n_items, ratings=None, name="tiny") -> Interactions:
    return Interactions(
        user=np.asarray(users, dtype=np.int32), item=np.asarray(items, dtype=np.int32),
        user_ids=np.array([f"u{i}" for i in range(n_users)]), item_ids=np.arange(100, 100 + n_items),
        rating=None if ratings is None else np.asarray(ratings, dtype=np.float32),
        item_titles=np.array([f"item {100 + i}" for i in range(n_items)], dtype=object), name=name)


def block_interactions(seed: int = 0, block_users: tuple = BLOCK_USERS) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items, u = [], [], 0
    per_user = int(round(TRAIN_FRACTION * ITEMS_PER_BLOCK))
    for b, n in enumerate(block_users):
        for _ in range(n):
            chosen = rng.choice(ITEMS_PER_BLOCK, size=per_user, replace=False) + b * ITEMS_PER_BLOCK
            users += [u] * per_user
            items += sorted(chosen.tolist())
            u += 1
    return _interactions(users, items, u, len(block_users) * ITEMS_PER_BLOCK, name="blocks")


@dataclass
class BlockCase:
    data: Interactions
    train: sp.csr_matrix  # training users x items
    fold_in: sp.csr_matrix  # unseen users: each row = its block minus the held-out item
    held_out: np.ndarray  # held-out item per fold-in row
    block: np.ndarray  # block per fold-in row
    valid: tuple  # (valid_in, valid_out) for early stopping: fold_in and its held-out items


@pytest.fixture(scope="session")
def block_data() -> Interactions:
    return block_interactions()


@pytest.fixture(scope="session")
def block_case(block_data) -> BlockCase:
    rows, cols, held, blocks = [], [], [], []
    r = 0
    for b in range(N_BLOCKS):
        for j in (0, ITEMS_PER_BLOCK // 2):  # two unseen users per block, different held-out items
            target = b * ITEMS_PER_BLOCK + j
            for i in range(b * ITEMS_PER_BLOCK, (b + 1) * ITEMS_PER_BLOCK):
                if i != target:
                    rows.append(r)
                    cols.append(i)
            held.append(target)
            blocks.append(b)
            r += 1
    n_items = block_data.n_items
    fold_in = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(r, n_items))
    out = sp.csr_matrix((np.ones(r, np.float32), (np.arange(r), held)), shape=(r, n_items))
    return BlockCase(block_data, block_data.csr("ones"), fold_in, np.array(held), np.array(blocks), (fold_in, out))


def rating_interactions(seed: int = 0, n_users: int = 40, n_items: int = 30, density: float = 0.6) -> Interactions:
    """Ratings 1..5 from a rank-2 model (rounded), about `density` of the cells observed."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    full = np.clip(np.round(3.0 + 0.9 * p @ q.T), 1, 5)
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    return _interactions(u, i, n_users, n_items, ratings=full[u, i], name="lowrank")


@dataclass
class RatingCase:
    data: Interactions
    train: sp.csr_matrix  # all users x items
    test: sp.csr_matrix  # same shape, disjoint entries


@pytest.fixture(scope="session")
def rating_data() -> Interactions:
    return rating_interactions()


@pytest.fixture(scope="session")
def rating_case(rating_data) -> RatingCase:
    rng = np.random.default_rng(1)
    is_test = rng.random(len(rating_data)) < 0.15
    return RatingCase(rating_data, rating_data.select(~is_test).csr("rating"), rating_data.select(is_test).csr("rating"))


@pytest.fixture(scope="module")  # per module: a test may tamper with its files
def autorec_dir(rating_case, tmp_path_factory):
    """A small user-based AutoRec saved with its histories (test_recommend_cli overrides it)."""
    d = rating_case.data
    model = models.create("autorec", variant="user", hidden=8, epochs=3, lam=1.0, lr=0.03, patience=0).fit(rating_case.train)
    path = tmp_path_factory.mktemp("autorec") / "model"
    io.save(model, path, item_ids=d.item_ids, user_ids=d.user_ids, history=rating_case.train)
    return path


def write_csv(data: Interactions, path) -> str:
    """Write interactions as a `user,item,rating` CSV (rating 5 where there are none)."""
    rating = data.rating if data.rating is not None else np.full(len(data), 5.0)
    lines = ["user,item,rating"] + [f"{data.user_ids[u]},{data.item_ids[i]},{r:g}"
                                    for u, i, r in zip(data.user, data.item, rating)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)
