"""The contract every registered model must pass on tiny data, with its ``test_overrides``.

Ranking models: the held-out item of a planted block ranks first; fold-in rows of unseen users
score; seen items are never recommended; two fits with one seed agree exactly; a save/load
round trip scores bit-identically; a history with the wrong width is a DataError.
Rating models: predictions beat the global mean on a low-rank set; determinism; round trip.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import aerec
from aerec import models
from aerec.errors import DataError

# Baselines that rank every user the same way; only users of the most popular block (block 0)
# can expect their held-out item first from them.
NON_PERSONALIZED = {"pop"}

ALL = models.names()
RANKING = [n for n in ALL if models.get(n).task == "ranking"]
RATING = [n for n in ALL if models.get(n).task == "rating"]


def make(name: str, **extra):
    cls = models.get(name)
    for module, _extra in getattr(cls, "requires", ()):  # optional extras (sansa) skip where not installed
        pytest.importorskip(module)
    return models.create(name, {**getattr(cls, "test_overrides", {}), **extra})


_fitted: dict = {}


def fitted(name: str, case):
    """One fitted model per (name, data set) for the whole module; tests must not change it."""
    key = (name, id(case))
    if key not in _fitted:
        m = make(name)
        if m.task == "ranking":
            m.fit(case.train, case.valid)
        else:
            m.fit(case.train)
        _fitted[key] = m
    return _fitted[key]


def test_registry_is_not_empty():
    assert "pop" in ALL
    for name in ALL:
        assert models.get(name).name == name, f"registry key {name} differs from the class's name"


# ranking ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RANKING)
def test_held_out_item_ranks_first(name, block_case):
    m = fitted(name, block_case)
    idx, scores = m.recommend(block_case.fold_in, k=1)
    rows = np.arange(len(block_case.held_out))
    if name in NON_PERSONALIZED:
        rows = rows[block_case.block == 0]
    assert np.array_equal(idx[rows, 0], block_case.held_out[rows]), (idx[:, 0], block_case.held_out)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", RANKING)
def test_score_works_for_unseen_users(name, block_case):
    m = fitted(name, block_case)
    s = m.score(block_case.fold_in)  # fold-in rows: none of them is a training user
    assert s.shape == (block_case.fold_in.shape[0], block_case.train.shape[1])
    assert s.dtype == np.float32 and np.isfinite(s).all()
    # an empty history (a brand-new user with nothing known) must not produce NaN either
    empty = m.score(sp.csr_matrix((1, block_case.train.shape[1]), dtype=np.float32))
    assert np.isfinite(empty).all()


@pytest.mark.parametrize("name", RANKING)
def test_recommend_excludes_seen_items(name, block_case):
    m = fitted(name, block_case)
    hist = block_case.fold_in
    k = hist.shape[1] - int(np.diff(hist.indptr).max())  # every unseen item fits in the list
    idx, scores = m.recommend(hist, k=k)
    for r in range(hist.shape[0]):
        seen = set(hist[r].indices.tolist())
        assert not seen & set(idx[r].tolist())
    assert (np.diff(scores, axis=1) <= 0).all()  # sorted best first
    idx_all, _ = m.recommend(hist, k=hist.shape[1], exclude_seen=False)
    assert set(idx_all[0].tolist()) == set(range(hist.shape[1]))


@pytest.mark.parametrize("name", RANKING)
def test_ranking_determinism(name, block_case):
    # a second fit with the same seed (the first is the shared fitted model) scores identically
    again = make(name).fit(block_case.train, block_case.valid)
    assert np.array_equal(again.score(block_case.fold_in), fitted(name, block_case).score(block_case.fold_in))


@pytest.mark.parametrize("name", RANKING)
def test_ranking_round_trip(name, block_case, tmp_path):
    m = fitted(name, block_case)
    data = block_case.data
    m.save(tmp_path / "m", item_ids=data.item_ids, user_ids=data.user_ids, history=block_case.train,
           item_titles=data.item_titles)
    loaded = aerec.load(tmp_path / "m")
    assert type(loaded) is type(m) and loaded.config_dict() == m.config_dict()
    assert np.array_equal(loaded.score(block_case.fold_in), m.score(block_case.fold_in))
    assert np.array_equal(loaded.recommend(block_case.fold_in, k=5)[0], m.recommend(block_case.fold_in, k=5)[0])
    # serving by original ids: a known user and a new user given by item ids
    rec = loaded.recommend_user(data.user_ids[0], k=3)
    assert len(rec.item_ids) == 3 and not set(rec.item_ids) & set(data.item_ids[block_case.train[0].indices].tolist())
    fold_in_ids = data.item_ids[block_case.fold_in[0].indices].tolist()
    rec = loaded.recommend_items([*fold_in_ids, "no-such-item"], k=1)
    assert rec.unknown_items == ["no-such-item"] and rec.fallback is None
    if name not in NON_PERSONALIZED:
        assert rec.item_ids == [int(data.item_ids[block_case.held_out[0]])]


@pytest.mark.parametrize("name", ALL)
def test_wrong_shape_history_is_a_data_error(name, block_case, rating_case):
    case = block_case if models.get(name).task == "ranking" else rating_case
    m = fitted(name, case)
    wrong = sp.csr_matrix((2, case.train.shape[1] + 1), dtype=np.float32)
    with pytest.raises(DataError, match="item columns"):
        m.score(wrong)
    with pytest.raises(DataError):
        m.recommend(wrong, k=3)
    with pytest.raises(DataError):
        m.score(np.zeros((2, case.train.shape[1])))  # dense input is refused, not densified silently


def test_unfitted_model_refuses_to_score(block_case):
    with pytest.raises(DataError, match="not fitted"):
        make("pop").score(block_case.fold_in)


# rating ----------------------------------------------------------------------------------------


def _test_entries(case):
    t = case.test.tocoo()
    return t.row.astype(np.int64), t.col.astype(np.int64), t.data.astype(np.float64)


DENSE_PATH = [n for n in RANKING if hasattr(models.get(n), "init_network")]


@pytest.mark.parametrize("name", DENSE_PATH)
def test_sparse_input_equals_dense_input(name, block_case):
    """The embedding-bag first layer computes exactly what a dense first layer (the ONNX export
    path) computes, for every neural model whose network offers forward_dense."""
    import torch

    from aerec.models.layers import SparseBatch

    m = fitted(name, block_case)
    if not hasattr(m.net, "forward_dense"):
        pytest.skip(f"{name} has no dense scoring path")
    hist = block_case.fold_in
    m.net.eval()
    with torch.no_grad():
        sparse = m._forward(SparseBatch.from_csr(hist))
        dense = m.net.forward_dense(torch.from_numpy(hist.toarray()))
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", RATING)
def test_rating_beats_global_mean(name, rating_case):
    m = fitted(name, rating_case)
    u, i, y = _test_entries(rating_case)
    pred = np.asarray(m.predict(u, i), dtype=np.float64)
    assert pred.shape == y.shape and np.isfinite(pred).all()
    mean = rating_case.train.data.mean()
    rmse = np.sqrt(np.mean((pred - y) ** 2))
    rmse_mean = np.sqrt(np.mean((mean - y) ** 2))
    assert rmse < rmse_mean, (rmse, rmse_mean)


@pytest.mark.parametrize("name", RATING)
def test_rating_determinism(name, rating_case):
    u, i, _ = _test_entries(rating_case)
    again = make(name).fit(rating_case.train).predict(u, i)
    assert np.array_equal(np.asarray(again), np.asarray(fitted(name, rating_case).predict(u, i)))


@pytest.mark.parametrize("name", RATING)
def test_rating_round_trip(name, rating_case, tmp_path):
    m = fitted(name, rating_case)
    data = rating_case.data
    m.save(tmp_path / "m", item_ids=data.item_ids, user_ids=data.user_ids, history=rating_case.train)
    loaded = aerec.load(tmp_path / "m")
    u, i, _ = _test_entries(rating_case)
    assert np.array_equal(np.asarray(loaded.predict(u, i)), np.asarray(m.predict(u, i)))
    assert np.array_equal(loaded.score(rating_case.train[:5]), m.score(rating_case.train[:5]))
