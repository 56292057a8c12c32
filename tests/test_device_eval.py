"""Ranking on the model's device (issue 25, item 2), run on CPU: the evaluator, ``recommend`` and
the HTTP engine exclude and take the top-k where the scores are, and agree with the host path."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from pinned_training import data

from aerec import evaluation, metrics
from aerec.models import create
from aerec.serve.engine import Engine, Query


@pytest.fixture(scope="module")
def fitted():
    train, vin, vout, tin, tout = data()
    model = create("multdae", hidden=[16], epochs=3, batch_size=16, lr=1e-2, seed=0).fit(train, progress=False)
    model.item_ids = np.arange(100, 100 + train.shape[1])
    return model, tin, tout


def host_reference(model, inp, tgt, ks, block):
    """The evaluator as it was: host scores, a copy, exclusion and top-k on the host."""
    parts = []
    rows = np.flatnonzero(np.diff(tgt.indptr) > 0)
    for s in range(0, len(rows), block):
        r = rows[s : s + block]
        res, _ = metrics.ranking_with_topk(model.score(inp[r]), tgt[r], inp[r], ks)
        res["users"] = r[res["users"]]
        parts.append(res)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize("block", [3, 1024])
def test_device_evaluation_equals_the_host_path(fitted, block):
    model, tin, tout = fitted
    got = evaluation.evaluate_ranking(model, tin, tout, ks=(1, 5, 10), block_size=block)
    want = host_reference(model, tin, tout, (1, 5, 10), block)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-12, err_msg=key)


def test_the_evaluator_ranks_the_models_own_tensor_without_a_copy(fitted, monkeypatch):
    model, tin, tout = fitted
    made, ranked = [], []
    real_scores, real_topk = model.score_tensor, metrics.topk
    monkeypatch.setattr(model, "score", lambda h: pytest.fail("scores went through the host path"))
    monkeypatch.setattr(model, "score_tensor", lambda h: made.append(real_scores(h)) or made[-1])
    monkeypatch.setattr(metrics, "topk", lambda t, k: ranked.append(t) or real_topk(t, k))
    evaluation.evaluate_ranking(model, tin, tout, ks=(5,))
    assert [t.data_ptr() for t in ranked] == [t.data_ptr() for t in made]  # ranked in place
    assert all(t.device == model.device for t in made)


def test_recommend_equals_a_host_ranking(fitted):
    model, tin, _ = fitted
    idx, vals = model.recommend(tin, k=4)
    scores = model.score(tin).astype(np.float64)
    scores[tin.nonzero()] = -np.inf
    want = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(want, 1))
    np.testing.assert_allclose(vals, np.take_along_axis(scores, idx, 1), rtol=1e-6)
    assert idx.dtype == np.int64 and vals.dtype == np.float32


def test_engine_block_finish_equals_the_row_by_row_finish(fitted):
    model, tin, _ = fitted
    engine = Engine(model)
    rng = np.random.default_rng(0)
    n_items = engine.n_items
    # scores rounded to a few levels: many ties, some of them across the k-th place
    scores = torch.from_numpy(np.round(rng.random((40, n_items)) * 4).astype(np.float32) / 4)
    scores[6, :] = 0.5
    queries = [Query(k=int(rng.integers(1, 12)), exclude=set(rng.choice(n_items, rng.integers(0, 30)).tolist()))
               for _ in range(40)]
    queries[7] = Query(k=n_items + 5, exclude={0, 1})  # more than the candidates
    got = engine._finish_block(queries, scores.clone())
    want = [engine.finish(q, s) for q, s in zip(queries, scores.numpy())]
    for g, w in zip(got, want):
        assert g.item_ids == w.item_ids and g.scores == w.scores


def test_engine_block_refuses_non_finite_scores_as_finish_does(fitted):
    from aerec.errors import ModelFileError

    model, _, _ = fitted
    engine = Engine(model)
    scores = torch.zeros(3, engine.n_items)
    scores[1, 4] = float("nan")
    with pytest.raises(ModelFileError):
        engine.finish(Query(k=2, exclude=set()), scores[1].numpy())
    with pytest.raises(ModelFileError):
        engine._finish_block([Query(k=2, exclude=set())] * 3, scores)


def test_engine_run_equals_score_then_finish(fitted):
    model, tin, _ = fitted
    engine = Engine(model)
    queries = [engine.prepare_items([100 + j for j in tin[i].indices], k=5) for i in range(tin.shape[0])]
    want = [engine.finish(q, s) for q, s in zip(queries, engine.score(queries))]
    got = engine.run(queries)
    assert [g.item_ids for g in got] == [w.item_ids for w in want]
    empty = sp.csr_matrix((0, tin.shape[1]), dtype=np.float32)
    assert model.recommend(empty, k=3)[0].shape == (0, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_evaluation_matches_the_cpu_evaluation(fitted):
    model, tin, tout = fitted
    cpu = evaluation.summarize(evaluation.evaluate_ranking(model, tin, tout, ks=(5, 10)))
    model.config.device = "cuda"
    model.net.to("cuda")
    try:
        gpu = evaluation.summarize(evaluation.evaluate_ranking(model, tin, tout, ks=(5, 10)))
    finally:
        model.config.device = "cpu"
        model.net.to("cpu")
    for key, value in cpu.items():
        assert gpu[key] == pytest.approx(value, abs=1e-5), key
