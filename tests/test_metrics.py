"""Ranking and rating metrics: hand-computed cases, properties, and a slow reference loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aerec import metrics
from aerec.errors import DataError

KEYS = metrics.RANKING_METRICS


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [j for row in rows for j in row]
    return sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(len(rows), n_items))


# hand-computed -------------------------------------------------------------------------------


def test_hand_computed_single_user():
    # scores rank the items 0,1,2,3,4; target {1, 3} -> rel = [0, 1, 0, 1, 0]
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    out = metrics.ranking(scores, csr([[1, 3]], 5), ks=(1, 2, 5))
    d3, d5 = 1 / math.log2(3), 1 / math.log2(5)  # discounts at ranks 2 and 4
    # k=1: no hit, every metric 0
    for m in KEYS:
        assert out[f"{m}@1"][0] == 0
    # k=2: one hit at rank 2
    assert out["recall@2"][0] == pytest.approx(1 / 2)  # 1 / min(2, 2)
    assert out["recall_plain@2"][0] == pytest.approx(1 / 2)  # 1 / |T|
    assert out["precision@2"][0] == pytest.approx(1 / 2)  # 1 / k
    assert out["ndcg@2"][0] == pytest.approx(d3 / (1 + d3))  # 0.6309 / 1.6309 = 0.3869
    assert out["hitrate@2"][0] == 1
    assert out["mrr@2"][0] == pytest.approx(1 / 2)  # first hit at rank 2
    assert out["map@2"][0] == pytest.approx((1 / 2) / 2)  # P@2 * rel_2 / min(2, 2)
    # k=5: hits at ranks 2 and 4
    assert out["recall@5"][0] == pytest.approx(1.0)  # 2 / min(5, 2)
    assert out["recall_plain@5"][0] == pytest.approx(1.0)
    assert out["precision@5"][0] == pytest.approx(2 / 5)
    assert out["ndcg@5"][0] == pytest.approx((d3 + d5) / (1 + d3))  # 1.0616 / 1.6309 = 0.6509
    assert out["mrr@5"][0] == pytest.approx(1 / 2)
    assert out["map@5"][0] == pytest.approx((1 / 2 + 2 / 4) / 2)  # (P@2 + P@4) / min(5, 2) = 0.5
    assert out["users"].tolist() == [0]


def test_hand_computed_exclusion_no_target_and_big_target():
    scores = np.array([
        [0.1, 0.2, 0.3, 0.4, 0.5],  # user 0: item 4 excluded -> ranking 3, 2, 1, 0 (4 last at -inf)
        [0.5, 0.4, 0.3, 0.2, 0.1],  # user 1: no target -> left out, no NaN
        [0.5, 0.4, 0.3, 0.2, 0.1],  # user 2: perfect ranking, |T| = 3 > k = 2
    ])
    target = csr([[0, 2], [], [0, 1, 2]], 5)
    exclude = csr([[4], [0], []], 5)
    out = metrics.ranking(scores, target, exclude, ks=(2, 3))
    assert out["users"].tolist() == [0, 2]
    # user 0, k=3: ranking 3, 2, 1 -> one hit (item 2) at rank 2
    assert out["recall@3"][0] == pytest.approx(1 / 2)  # 1 / min(3, 2)
    assert out["precision@3"][0] == pytest.approx(1 / 3)
    assert out["ndcg@3"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert out["mrr@3"][0] == pytest.approx(1 / 2)
    assert out["map@3"][0] == pytest.approx((1 / 2) / 2)
    # user 2, k=2: both top items are targets
    assert out["recall@2"][1] == pytest.approx(1.0)  # 2 / min(2, 3): Liang's denominator
    assert out["recall_plain@2"][1] == pytest.approx(2 / 3)  # 2 / |T|
    assert out["ndcg@2"][1] == pytest.approx(1.0)  # IDCG over min(3, 2) = 2 positions
    assert out["map@2"][1] == pytest.approx((1 + 1) / 2)
    for v in out.values():
        assert np.isfinite(v).all()


def test_excluded_target_never_counts_and_k_beyond_items():
    # 3 items, target {0} but item 0 is excluded: with k=5 > 3 items the -inf item is in the
    # list, yet it must not count as a hit. precision still divides by k = 5.
    out = metrics.ranking(np.array([[3.0, 2.0, 1.0]]), csr([[0, 1]], 3), csr([[0]], 3), ks=(5,))
    assert out["recall@5"][0] == pytest.approx(1 / 2)  # item 1 found, item 0 cannot be
    assert out["precision@5"][0] == pytest.approx(1 / 5)
    assert out["mrr@5"][0] == pytest.approx(1.0)  # item 1 is first after exclusion


def test_inputs_are_checked_and_not_modified():
    scores = np.array([[1.0, 2.0], [3.0, 4.0]])
    keep = scores.copy()
    metrics.ranking(scores, csr([[0], [1]], 2), csr([[1], [0]], 2), ks=(1,))
    assert np.array_equal(scores, keep)
    with pytest.raises(DataError):
        metrics.ranking(np.array([[np.nan, 1.0]]), csr([[0]], 2))
    nan_inside = np.random.default_rng(0).random((3, 50))
    nan_inside[1, 27] = np.nan
    with pytest.raises(DataError, match="NaN"):
        metrics.ranking(nan_inside, csr([[0], [1], [2]], 50), ks=(5,))
    # documented: a NaN on an excluded entry is never ranked, so it is not an error
    metrics.ranking(nan_inside, csr([[0], [1], [2]], 50), csr([[], [27], []], 50), ks=(5,))
    with pytest.raises(DataError):
        metrics.ranking(scores, csr([[0]], 2))  # wrong shape
    with pytest.raises(DataError):
        metrics.ranking(np.ones(3), csr([[0]], 3))
    with pytest.raises(DataError):
        metrics.ranking(scores, csr([[0], [1]], 2), ks=(0,))
    empty = metrics.ranking(scores, csr([[], []], 2), ks=(1,))
    assert len(empty["users"]) == 0 and len(empty["recall@1"]) == 0


def test_torch_input_equals_numpy():
    rng = np.random.default_rng(0)
    s = rng.random((6, 9)).astype(np.float32)
    t = csr([[1, 2], [0], [], [8, 7, 6], [3], [4, 5]], 9)
    a, b = metrics.ranking(s, t, ks=(3,)), metrics.ranking(torch.from_numpy(s), t, ks=(3,))
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_coverage():
    assert metrics.coverage(np.array([[0, 1], [1, 2], [-1, 2]]), 10) == pytest.approx(0.3)


def test_rating_hand_computed():
    # errors -1, 0, 2: MSE = (1 + 0 + 4) / 3, MAE = (1 + 0 + 2) / 3
    out = metrics.rating([3, 4, 5], [4, 4, 3])
    assert out["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert out["mae"] == pytest.approx(1.0)
    assert metrics.squared_errors([3, 4, 5], [4, 4, 3]).tolist() == [1, 0, 4]
    assert metrics.absolute_errors(torch.tensor([3.0]), np.array([4.5])).tolist() == [1.5]
    with pytest.raises(DataError):
        metrics.rating([1, 2], [1])
    with pytest.raises(DataError):
        metrics.rating([], [])
    with pytest.raises(DataError):
        metrics.rating([np.nan], [1])


# slow reference, written independently with plain loops ---------------------------------------


def reference(scores, target_rows, exclude_rows, k):
    out = {m: [] for m in KEYS}
    users = []
    for u, row in enumerate(scores):
        T = set(target_rows[u])
        if not T:
            continue
        users.append(u)
        ex = set(exclude_rows[u])
        s = [(-math.inf if j in ex else float(v)) for j, v in enumerate(row)]
        order = sorted(range(len(s)), key=lambda j: -s[j])[:k]  # tie-free data
        rel = [1 if (j in T and s[j] > -math.inf) else 0 for j in order]
        hits = sum(rel)
        m = min(k, len(T))
        out["recall"].append(hits / m)
        out["recall_plain"].append(hits / len(T))
        out["precision"].append(hits / k)
        dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rel))
        idcg = sum(1 / math.log2(i + 2) for i in range(m))
        out["ndcg"].append(dcg / idcg)
        out["hitrate"].append(1.0 if hits else 0.0)
        first = next((i + 1 for i, r in enumerate(rel) if r), None)
        out["mrr"].append(1 / first if first else 0.0)
        ap, found = 0.0, 0
        for i, r in enumerate(rel):
            if r:
                found += 1
                ap += found / (i + 1)
        out["map"].append(ap / m)
    return out, users


@st.composite
def ranking_case(draw):
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    # a permutation per row: no ties
    scores = np.stack([rng.permutation(n_items) for _ in range(n_users)]).astype(np.float64)
    t_dense = rng.random((n_users, n_items)) < draw(st.floats(0.0, 0.6))
    e_dense = (rng.random((n_users, n_items)) < draw(st.floats(0.0, 0.4))) & ~t_dense
    ks = tuple(draw(st.lists(st.integers(1, 30), min_size=1, max_size=3)))
    return scores, sp.csr_matrix(t_dense.astype(np.float32)), sp.csr_matrix(e_dense.astype(np.float32)), ks


def _rows(m):
    return [m.indices[m.indptr[r]:m.indptr[r + 1]].tolist() for r in range(m.shape[0])]


@settings(max_examples=60, deadline=None)
@given(ranking_case())
def test_agrees_with_slow_reference(case):
    scores, target, exclude, ks = case
    out = metrics.ranking(scores, target, exclude, ks)
    for k in ks:
        ref, users = reference(scores, _rows(target), _rows(exclude), k)
        assert out["users"].tolist() == users
        for m in KEYS:
            np.testing.assert_allclose(out[f"{m}@{k}"], ref[m], rtol=1e-12, atol=1e-12)
            assert ((out[f"{m}@{k}"] >= 0) & (out[f"{m}@{k}"] <= 1 + 1e-12)).all()


@settings(max_examples=30, deadline=None)
@given(ranking_case())
def test_perfect_ranking_gives_one(case):
    _, target, _, ks = case
    rng = np.random.default_rng(1)
    dense = target.toarray()
    scores = dense * 10 + rng.random(dense.shape)  # every target above every non-target
    out = metrics.ranking(scores, target, None, ks)
    for k in ks:
        for m in ("recall", "ndcg", "hitrate", "mrr", "map"):
            np.testing.assert_allclose(out[f"{m}@{k}"], 1.0, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(ranking_case(), st.integers(0, 1000))
def test_invariant_to_permuting_users(case, seed):
    scores, target, exclude, ks = case
    perm = np.random.default_rng(seed).permutation(scores.shape[0])
    a = metrics.ranking(scores, target, exclude, ks)
    b = metrics.ranking(scores[perm], target[perm], exclude[perm], ks)
    # map b's rows back to the original users and compare per user
    back = perm[b["users"]]
    order = np.argsort(back)
    assert np.array_equal(back[order], a["users"])
    for key in a:
        if key != "users":
            np.testing.assert_array_equal(b[key][order], a[key])
