"""The block-streaming evaluator: equals one-shot metrics, independent of block size."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aerec import evaluation, metrics
from aerec.data.interactions import Interactions
from aerec.errors import DataError
from aerec.protocols import StrongGeneralization


class LinearModel:
    """score = history @ W: scores depend only on each row's history (fold-in), tie-free."""

    def __init__(self, n_items: int, seed: int = 0):
        self.w = np.random.default_rng(seed).standard_normal((n_items, n_items)).astype(np.float64)
        self.bias = np.random.default_rng(seed + 1).random(n_items)
        self.max_rows = 0

    def score(self, hist):
        self.max_rows = max(self.max_rows, hist.shape[0])
        return hist @ self.w + self.bias


def random_fold(seed=0, n_users=40, n_items=30):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items))
    inp = sp.csr_matrix((dense < 0.2).astype(np.float32))
    tgt = sp.csr_matrix(((dense >= 0.2) & (dense < 0.3)).astype(np.float32))
    return inp, tgt


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 50))
def test_block_size_invariance_and_equals_one_shot(seed, block):
    inp, tgt = random_fold(seed)
    model = LinearModel(inp.shape[1], seed)
    ks = (1, 5, 10)
    got = evaluation.evaluate_ranking(model, inp, tgt, ks=ks, block_size=block)
    assert model.max_rows <= block  # memory bound: never more than block rows of scores
    one = metrics.ranking(model.score(inp), tgt, inp, ks)
    whole = evaluation.evaluate_ranking(model, inp, tgt, ks=ks, block_size=10_000)
    for key in one:
        np.testing.assert_array_equal(got[key], one[key])
        np.testing.assert_array_equal(got[key], whole[key])
    for k in ks:
        assert got[f"coverage@{k}"] == whole[f"coverage@{k}"]


def test_coverage_and_summary():
    inp, tgt = random_fold(3)
    model = LinearModel(inp.shape[1], 3)
    out = evaluation.evaluate_ranking(model, inp, tgt, ks=(2,), block_size=7)
    s = model.score(inp)
    s[inp.nonzero()] = -np.inf
    rows = out["users"]
    top = np.argsort(-s[rows], axis=1, kind="stable")[:, :2]
    assert float(out["coverage@2"]) == pytest.approx(len(np.unique(top)) / inp.shape[1])
    summary = evaluation.summarize(out)
    assert summary["n_users"] == len(rows)
    assert summary["recall@2"] == pytest.approx(out["recall@2"].mean())
    assert summary["coverage@2"] == pytest.approx(float(out["coverage@2"]))


def test_extra_exclusion_and_no_input_exclusion():
    inp, tgt = random_fold(4)
    model = LinearModel(inp.shape[1], 4)
    extra = sp.csr_matrix(np.eye(inp.shape[0], inp.shape[1], dtype=np.float32))
    a = evaluation.evaluate_ranking(model, inp, tgt, ks=(5,), exclude=extra, block_size=3)
    b = metrics.ranking(model.score(inp), tgt, inp + extra, ks=(5,))
    np.testing.assert_array_equal(a["ndcg@5"], b["ndcg@5"])
    c = evaluation.evaluate_ranking(model, inp, tgt, ks=(5,), exclude_input=False)
    np.testing.assert_array_equal(c["ndcg@5"], metrics.ranking(model.score(inp), tgt, None, ks=(5,))["ndcg@5"])


def test_errors():
    inp, tgt = random_fold(5)
    model = LinearModel(inp.shape[1])
    with pytest.raises(DataError):
        evaluation.evaluate_ranking(model, inp, tgt[:, :5])
    with pytest.raises(DataError):
        evaluation.evaluate_ranking(model, inp, sp.csr_matrix(tgt.shape, dtype=np.float32))  # no targets
    with pytest.raises(DataError):
        evaluation.evaluate_ranking(model, inp, tgt, block_size=0)

    class Wrong:
        def score(self, hist):
            return np.zeros((hist.shape[0], 3))

    with pytest.raises(DataError):
        evaluation.evaluate_ranking(Wrong(), inp, tgt)


def test_strong_fold_end_to_end():
    rng = np.random.default_rng(0)
    n_users, n_items = 80, 40
    u = np.repeat(np.arange(n_users), 12)
    i = np.concatenate([rng.choice(n_items, 12, replace=False) for _ in range(n_users)])
    data = Interactions(user=u.astype(np.int32), item=i.astype(np.int32), user_ids=np.arange(n_users),
                        item_ids=np.arange(n_items), name="toy")
    fold = next(StrongGeneralization(n_folds=4, seed=0).split(data))

    class Pop:
        def __init__(self, train):
            self.pop = np.asarray(train.sum(axis=0)).ravel() + np.linspace(0, 1e-3, train.shape[1])

        def score(self, hist):
            return np.tile(self.pop, (hist.shape[0], 1))

    out = evaluation.evaluate_ranking(Pop(fold.train), fold.test_in, fold.test_out, ks=(5, 10))
    assert len(out["users"]) == (np.diff(fold.test_out.indptr) > 0).sum()
    s = evaluation.summarize(out)
    assert all(np.isfinite(v) for v in s.values())


class RatingModel:
    def __init__(self, table, unseen_user=None):
        self.table = table
        self.unseen_user = unseen_user

    def predict(self, user_idx, item_idx):
        return self.table[user_idx, item_idx]

    def unseen_counts(self, user_idx, item_idx):
        return {"unseen_users": int(np.isin(user_idx, self.unseen_user).sum())}


def test_evaluate_rating():
    # test entries (0,1)=4, (1,0)=2, (2,2)=5; predictions 3.5, 2, 4 -> errors .5, 0, 1
    test = sp.csr_matrix((np.array([4, 2, 5], dtype=np.float32), ([0, 1, 2], [1, 0, 2])), shape=(3, 3))
    table = np.array([[0, 3.5, 0], [2, 0, 0], [0, 0, 4]])
    for block in (1, 2, 100):
        out = evaluation.evaluate_rating(RatingModel(table, unseen_user=[2]), test, block_size=block)
        assert out["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 1) / 3))
        assert out["mae"] == pytest.approx(1.5 / 3)
        assert out["n"] == 3 and out["unseen_users"] == 1
        assert out["squared_error"].tolist() == [0.25, 0, 1]  # row-major order of the test CSR
    s = evaluation.summarize(out)
    assert set(s) == {"rmse", "mae", "n", "unseen_users"}
    with pytest.raises(DataError):
        evaluation.evaluate_rating(RatingModel(table), sp.csr_matrix((3, 3), dtype=np.float32))
