"""The library API fails fast with DataError: negative values where a model needs non-negative
ones, recommend() before fit(), a wrong-shape exclude, and a k that is not a whole number."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from aerec import models
from aerec.errors import DataError

RANKING = [n for n in models.names() if models.get(n).task == "ranking"]
RATING = [n for n in models.names() if models.get(n).task == "rating"]


def _matrix(negative: bool = False) -> sp.csr_matrix:
    m = sp.random(12, 9, density=0.4, format="csr", random_state=0, dtype=np.float32)
    m.data[:] = np.arange(1, m.nnz + 1) % 4 + 1
    if negative:
        m.data[::3] *= -1
    return m


@pytest.mark.parametrize("name", RANKING)
def test_ranking_models_refuse_negative_values_before_fitting(name):
    for module, _extra in getattr(models.get(name), "requires", ()):  # optional extras (sansa)
        pytest.importorskip(module)
    model = models.create(name)
    with pytest.raises(DataError, match="negative"):
        model.fit(_matrix(negative=True))
    assert not model.fitted


def test_negative_validation_rows_are_refused_too():
    train, v = _matrix(), _matrix(negative=True)
    with pytest.raises(DataError, match="valid_in"):
        models.create("multdae", epochs=1).fit(train, (v, _matrix()))


@pytest.mark.parametrize("name", RATING)
def test_rating_models_take_any_rating_scale(name):
    assert models.get(name).accepts_negative is None and models.get(name).task == "rating"
    model = models.create(name)
    model._check_sign(_matrix(negative=True), "train")  # no error: a -2..2 scale is a scale


def test_recommend_before_fit_says_not_fitted():
    with pytest.raises(DataError, match="not fitted"):
        models.create("pop").recommend(_matrix(), k=3)


@pytest.fixture(scope="module")
def fitted():
    return models.create("pop").fit(_matrix())


@pytest.mark.parametrize("k", ["5", 2.7, True, None, 0, -1, np.float64(3.0)])
def test_k_must_be_a_whole_number(fitted, k):
    with pytest.raises(DataError, match="k must"):
        fitted.recommend(_matrix()[:2], k=k)


def test_integer_k_of_any_integer_type_works(fitted):
    idx, scores = fitted.recommend(_matrix()[:2], k=np.int64(3))
    assert idx.shape == scores.shape == (2, 3)
    assert fitted.recommend(_matrix()[:2], k=100)[0].shape == (2, 9)  # capped at the item count


def test_exclude_must_match_the_history_shape(fitted):
    history = _matrix()[:2]
    with pytest.raises(DataError, match="exclude"):
        fitted.recommend(history, k=3, exclude=_matrix()[:3])
    mask = sp.csr_matrix(([1.0], ([0], [4])), shape=history.shape)
    idx, _ = fitted.recommend(history, k=3, exclude=mask, exclude_seen=False)
    assert 4 not in idx[0].tolist()
