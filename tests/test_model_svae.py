"""SVAE: sequences from CSR values, next-k targets, deterministic scoring, learning a planted next item."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aerec.data.interactions import Interactions
from aerec.errors import ConfigError
from aerec.models.layers import SparseBatch
from aerec.models.svae import SVAE, next_k_targets, order_by_time, positions, sequences


def row_matrix(rows: list[list[int]], n_items: int, values=None) -> sp.csr_matrix:
    """One CSR row per list; values default to positions 1..n (the list order is the sequence)."""
    r = [u for u, seq in enumerate(rows) for _ in seq]
    c = [i for seq in rows for i in seq]
    v = values if values is not None else [p + 1 for seq in rows for p in range(len(seq))]
    return sp.csr_matrix((np.asarray(v, np.float32), (r, c)), shape=(len(rows), n_items))


def test_sequences_follow_values_then_columns_and_truncate():
    m = row_matrix([[5, 2, 7], [], [3, 1]], 8)
    items, lengths = sequences(SparseBatch.from_csr(m), max_len=10)
    assert lengths.tolist() == [3, 0, 2]
    assert items[0].tolist() == [5, 2, 7] and items[2, :2].tolist() == [3, 1]
    binary = row_matrix([[5, 2, 7]], 8, values=[1, 1, 1])  # no order given: column order
    assert sequences(SparseBatch.from_csr(binary), 10)[0][0].tolist() == [2, 5, 7]
    items, lengths = sequences(SparseBatch.from_csr(m), max_len=2)  # keep the latest two
    assert lengths.tolist() == [2, 0, 2] and items[0].tolist() == [2, 7]


def test_next_k_targets_hand_example():
    # sequence a b c d e (positions 0..4), k = 2: step t reads t and targets t+1, t+2
    step_row, step_t, (tgt_step, tgt_pos) = next_k_targets(torch.tensor([5, 1, 3]), k=2)
    assert step_row.tolist() == [0, 0, 0, 0, 2, 2] and step_t.tolist() == [0, 1, 2, 3, 0, 1]
    pairs = sorted(zip(tgt_step.tolist(), tgt_pos.tolist()))
    assert pairs == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4), (4, 1), (4, 2), (5, 2)]


def cyclic_data(n_users=60, block=8, n_blocks=3, length=6, seed=0) -> sp.csr_matrix:
    """Each user walks through its block in increasing order (cyclically) from a random start."""
    rng = np.random.default_rng(seed)
    seqs = []
    for u in range(n_users):
        b, start = u % n_blocks, int(rng.integers(block))
        seqs.append([b * block + (start + j) % block for j in range(length)])
    return row_matrix(seqs, block * n_blocks)


def test_learns_planted_next_item_deterministically():
    X = cyclic_data()
    hist = row_matrix([[8, 9, 10, 11, 12], [18, 19, 20, 21, 22]], 24)  # next: 13.. and 23, 16..
    a = SVAE(**SVAE.test_overrides).fit(X, progress=False)
    b = SVAE(**SVAE.test_overrides).fit(X, progress=False)
    # next-4 loss: the unseen items among the next four (8 / 18 are seen) fill the top three
    top = a.recommend(hist, k=3)[0]
    assert set(top[0].tolist()) == {13, 14, 15} and set(top[1].tolist()) == {23, 16, 17}
    next_one = SVAE(**{**SVAE.test_overrides, "next_k": 1}).fit(X, progress=False)
    assert next_one.recommend(hist, k=1)[0][:, 0].tolist() == [13, 23]
    s = a.score(hist)
    assert np.array_equal(s, a.score(hist))  # z = mu: scoring draws nothing
    assert np.array_equal(s, b.score(hist))  # same seed, same scores
    # order matters: the same items in another order predict differently
    rev = row_matrix([[12, 11, 10, 9, 8]], 24)
    assert not np.array_equal(a.score(rev)[0], s[0])
    # a brand-new user with nothing known, and rows scored in any block size, stay finite / equal
    assert np.isfinite(a.score(sp.csr_matrix((1, 24), dtype=np.float32))).all()
    a.config.eval_block = 1
    assert np.allclose(a.score(hist), s, atol=1e-5)


def test_annealing_counts_steps_across_epochs():
    X = cyclic_data(n_users=12)
    m = SVAE(**{**SVAE.test_overrides, "epochs": 3, "batch_size": 4}).fit(X, progress=False)
    assert m.update_count == 9 and m.extra_state() == {"update_count": 9}
    m.config.total_anneal_steps = 90
    assert m.current_beta() == pytest.approx(0.1)


def test_order_by_time_builds_positions():
    data = Interactions(user=np.array([0, 0, 0, 1, 1]), item=np.array([0, 1, 2, 2, 0]),
                        user_ids=np.array(["a", "b"]), item_ids=np.array([10, 11, 12]),
                        timestamp=np.array([30, 10, 20, 5, 5]))
    # the fold holds user b then a, items in the data's order
    fold = sp.csr_matrix(np.array([[1, 0, 1], [1, 1, 1]], dtype=np.float32))
    out = order_by_time(fold, ["b", "a"], [10, 11, 12], data)
    assert out.toarray().tolist() == [[1, 0, 2], [3, 1, 2]]  # a tie (b: both at t=5) goes by column
    assert positions(fold, np.array([2.0, 1.0, 9.0, 8.0, 7.0])).toarray().tolist() == [[2, 0, 1], [3, 2, 1]]


def test_config_checks():
    with pytest.raises(ConfigError):
        SVAE(next_k=0)
    with pytest.raises(ConfigError):
        SVAE(max_len=0)


def test_runner_hands_svae_time_ordered_inputs():
    from aerec import protocols

    rng = np.random.default_rng(0)
    n_users, n_items, per_user = 30, 12, 8
    user = np.repeat(np.arange(n_users), per_user)
    item = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    data = Interactions(user=user.astype(np.int32), item=item.astype(np.int32),
                        user_ids=np.arange(n_users), item_ids=np.arange(n_items),
                        rating=np.full(len(user), 5.0, dtype=np.float32),
                        timestamp=rng.permutation(len(user)).astype(np.int64))
    fold = next(iter(protocols.get("temporal", mode="user", folds=3, seed=0).split(data)))
    ordered = SVAE.prepare_fold(fold, data)
    for name in ("train", "valid_in", "test_in"):
        m, o = getattr(fold, name), getattr(ordered, name)
        assert (m != 0).sum() == (o != 0).sum() and o.nnz == m.nnz  # same entries, new values
        for r in range(o.shape[0]):  # each row holds the positions 1..n
            vals = np.sort(o.data[o.indptr[r]:o.indptr[r + 1]])
            assert vals.tolist() == list(range(1, len(vals) + 1))
    assert (ordered.test_out != fold.test_out).nnz == 0  # targets untouched
