"""Protocols: no split leaks, exact fold-in counts, determinism, export round trip."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from helpers import hostile_ids

import aerec.data
from aerec import protocols
from aerec.data.interactions import Interactions
from aerec.errors import ConfigError, DataError
from aerec.protocols import (
    RatingHoldout,
    RatingKFold,
    StrongGeneralization,
    Temporal,
    WeakGeneralization,
)
from aerec.protocols.export import export_split, read_fold
from aerec.protocols.weak import k_core, split_counts


def make(users, items, ratings=None, timestamps=None, name="toy") -> Interactions:
    """Interactions from raw id arrays (vocabularies = sorted unique ids)."""
    uids, u = np.unique(np.asarray(users), return_inverse=True)
    iids, i = np.unique(np.asarray(items), return_inverse=True)
    return Interactions(
        user=u.astype(np.int32), item=i.astype(np.int32), user_ids=uids, item_ids=iids,
        rating=None if ratings is None else np.asarray(ratings, dtype=np.float32),
        timestamp=None if timestamps is None else np.asarray(timestamps, dtype=np.int64), name=name,
    )


def random_data(seed=0, n_users=120, n_items=80, max_per_user=40) -> Interactions:
    rng = np.random.default_rng(seed)
    us, its = [], []
    for u in range(n_users):
        n = rng.integers(1, min(max_per_user, n_items))
        us += [1000 + u] * n
        its += list(rng.choice(n_items, size=n, replace=False))
    n = len(us)
    items = np.array([f"m{i}" for i in its])  # string item ids exercise the id mapping
    return make(us, items, rng.integers(1, 6, n).astype(float), rng.permutation(n) * 10, name="rand")


def histories(data: Interactions, threshold=3.5, min_count=5) -> dict:
    """The reference's preprocessing, written plainly: binarize, one-pass user filter."""
    h = defaultdict(set)
    for u, i, r in zip(data.user_ids[data.user], data.item_ids[data.item], data.rating):
        if r > threshold:
            h[u].add(i)
    return {u: s for u, s in h.items() if len(s) >= min_count}


def rows_as_sets(m, row_ids, item_ids) -> dict:
    out = {}
    for r in range(m.shape[0]):
        out[row_ids[r]] = set(item_ids[m.indices[m.indptr[r]:m.indptr[r + 1]]])
    return out


def pairs(m, row_ids, item_ids) -> set:
    coo = m.tocoo()
    return set(zip(row_ids[coo.row].tolist(), item_ids[coo.col].tolist()))


# strong generalization -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"n_folds": 4}, {"n_heldout": 15}, {"n_folds": 3, "valid_frac": 0.25}])
def test_strong_no_leak(kwargs):
    data = random_data()
    hist = histories(data)
    p = StrongGeneralization(seed=3, **kwargs)
    folds = list(p.split(data))
    assert len(folds) == p.n_folds
    test_seen = []
    for f, fold in enumerate(folds):
        assert fold.index == f
        tr, va, te = (set(x.tolist()) for x in (fold.train_user_ids, fold.valid_user_ids, fold.test_user_ids))
        assert not (tr & va) and not (tr & te) and not (va & te)
        assert tr | va | te == set(hist)
        test_seen += sorted(te)
        # vocabulary = exactly the training users' items
        vocab = set().union(*(hist[u] for u in tr))
        assert set(fold.item_ids.tolist()) == vocab
        assert rows_as_sets(fold.train, fold.train_user_ids, fold.item_ids) == {u: hist[u] for u in tr}
        assert set(np.unique(fold.train.data)) == {1.0}
        for users, m_in, m_out in ((fold.valid_user_ids, fold.valid_in, fold.valid_out),
                                   (fold.test_user_ids, fold.test_in, fold.test_out)):
            assert m_in.shape == m_out.shape == (len(users), len(vocab))
            ins, outs = rows_as_sets(m_in, users, fold.item_ids), rows_as_sets(m_out, users, fold.item_ids)
            for u in users:
                full = hist[u] & vocab  # the user's filtered history on the vocabulary
                assert ins[u] | outs[u] == full
                assert not (ins[u] & outs[u])  # no target item in its own input
                n = len(full)
                assert len(outs[u]) == (int(0.2 * n) if n >= 5 else 0)  # Liang et al.: a random 20%
    if "n_folds" in kwargs:  # k folds over users: every user is tested exactly once
        assert sorted(test_seen) == sorted(hist)
    else:
        assert len(folds[0].test_user_ids) == len(folds[0].valid_user_ids) == 15


def test_strong_default_valid_size_is_one_fold():
    data = random_data()
    fold = next(StrongGeneralization(n_folds=5).split(data))
    n = len(histories(data))
    assert len(fold.test_user_ids) == round(n / 5)
    assert len(fold.valid_user_ids) == len(fold.test_user_ids)


def test_strong_binarize_and_filter_by_hand():
    # user a: 5 ratings > 3.5 -> kept; user b: 6 ratings but only 4 > 3.5 -> dropped
    # user c: 7 good ratings -> kept. Rating exactly 3.5 is dropped (strictly greater).
    users = ["a"] * 6 + ["b"] * 6 + ["c"] * 7
    items = [1, 2, 3, 4, 5, 6] + [1, 2, 3, 4, 5, 6] + [1, 2, 3, 4, 5, 6, 7]
    ratings = [5, 4, 4, 4, 4, 3.5] + [5, 5, 5, 5, 1, 2] + [5] * 7
    data = make(users, items, ratings)
    p = StrongGeneralization(n_folds=2, n_valid=0, seed=0)
    folds = list(p.split(data))
    all_users = set()
    for f in folds:
        all_users |= set(f.train_user_ids) | set(f.test_user_ids)
        assert len(f.valid_user_ids) == 0
    assert all_users == {"a", "c"}


def test_strong_deterministic_and_seed_dependent():
    data = random_data(1)
    a = list(StrongGeneralization(n_folds=3, seed=7).split(data))
    b = list(StrongGeneralization(n_folds=3, seed=7).split(data))
    c = list(StrongGeneralization(n_folds=3, seed=8).split(data))
    for x, y in zip(a, b):
        for name in ("train", "valid_in", "valid_out", "test_in", "test_out"):
            assert (getattr(x, name) != getattr(y, name)).nnz == 0
        assert np.array_equal(x.test_user_ids, y.test_user_ids)
    assert not np.array_equal(a[0].test_user_ids, c[0].test_user_ids)


def test_two_folds_work_with_the_default_validation_size():
    data = random_data()
    for fold in StrongGeneralization(n_folds=2, seed=0).split(data):
        n_test, n_valid, n_train = (len(x) for x in (fold.test_user_ids, fold.valid_user_ids, fold.train_user_ids))
        rest = n_valid + n_train
        assert n_valid == round(0.25 * rest) and n_train > 0 and abs(n_test - rest) <= 1


def test_strong_options_are_checked():
    with pytest.raises(ConfigError):
        StrongGeneralization(n_folds=3, n_heldout=10)
    with pytest.raises(ConfigError):
        StrongGeneralization(n_folds=1)
    with pytest.raises(ConfigError):
        StrongGeneralization(n_valid=3, valid_frac=0.1)
    with pytest.raises(DataError):
        list(StrongGeneralization(n_heldout=100).split(random_data()))


# weak generalization -------------------------------------------------------------------------


def test_split_counts_match_recbole_rule():
    # RecBole: valid = int(.1 n), test = int(.1 n), train = rest; a part with 0 < .1 n < 1 still
    # gets one item while train keeps more than one.
    #   n=10: 8,1,1   n=5: [5,0,0] -> test 1 -> valid 1 -> 3,1,1
    #   n=2: [2,0,0] -> test 1 (train 1 left) -> stop -> 1,0,1   n=1: 1,0,0   n=25: 21,2,2
    tr, va, te = split_counts(np.array([10, 5, 2, 1, 25]), (0.8, 0.1, 0.1))
    assert tr.tolist() == [8, 3, 1, 1, 21]
    assert va.tolist() == [1, 1, 0, 0, 2]
    assert te.tolist() == [1, 1, 1, 0, 2]


def test_weak_partition_and_kcore():
    data = random_data(2, n_users=60, n_items=30)
    p = WeakGeneralization(k_core=3, seed=1)
    kept = data.select(data.rating >= 3)
    fold = next(p.split(data))
    assert p.n_folds == 1
    # every user trains, and the same rows are evaluated
    assert np.array_equal(fold.train_user_ids, fold.test_user_ids)
    assert fold.valid_in is fold.train and fold.test_in is fold.train
    tr, va, te = (pairs(m, fold.train_user_ids, fold.item_ids) for m in (fold.train, fold.valid_out, fold.test_out))
    assert not (tr & va) and not (tr & te) and not (va & te)
    core = k_core(kept, 3)
    everything = set(zip(core.user_ids[core.user].tolist(), core.item_ids[core.item].tolist()))
    assert tr | va | te == everything
    u_counts = np.bincount(core.user)
    assert u_counts.min() >= 3 and np.bincount(core.item).min() >= 3
    n_tr, n_va, n_te = split_counts(u_counts, (0.8, 0.1, 0.1))
    assert np.array_equal(np.diff(fold.train.indptr), n_tr)
    assert np.array_equal(np.diff(fold.valid_out.indptr), n_va)
    assert np.array_equal(np.diff(fold.test_out.indptr), n_te)
    assert (fold.test_exclude != fold.valid_out).nnz == 0


def test_weak_recbole_preset():
    p = WeakGeneralization.recbole(seed=4)
    assert (p.ratios, p.min_rating, p.k_core, p.seed) == ((0.8, 0.1, 0.1), 3.0, 10, 4)
    with pytest.raises(ConfigError):
        WeakGeneralization(min_rating=3, threshold=3.5)


# rating protocols ----------------------------------------------------------------------------


def test_rating_kfold_partitions_ratings():
    data = random_data(3)
    p = RatingKFold(n_folds=4, valid_frac=0.1, seed=2)
    everything = pairs(data.csr(), data.user_ids, data.item_ids)
    tests = []
    for f, fold in enumerate(p.split(data)):
        assert fold.index == f
        assert fold.train.shape == fold.valid.shape == fold.test.shape == (data.n_users, data.n_items)
        tr, va, te = (pairs(m, data.user_ids, data.item_ids) for m in (fold.train, fold.valid, fold.test))
        assert not (tr & va) and not (tr & te) and not (va & te)
        assert tr | va | te == everything
        assert len(va) == round(0.1 * (len(tr) + len(va)))
        full = data.csr()
        for m in (fold.train, fold.valid, fold.test):  # values are the ratings themselves
            coo = m.tocoo()
            assert np.array_equal(np.asarray(full[coo.row, coo.col]).ravel(), coo.data)
        tests.append(te)
    assert set().union(*tests) == everything
    assert sum(len(t) for t in tests) == len(everything)


def test_rating_holdout_repeats():
    data = random_data(4)
    p = RatingHoldout(test_frac=0.1, repeats=3, valid_frac=0.1, seed=0)
    folds = list(p.split(data))
    assert p.n_folds == 3 and [f.index for f in folds] == [0, 1, 2]
    n = len(data)
    for fold in folds:
        assert fold.test.nnz == round(0.1 * n)
        assert fold.valid.nnz == round(0.1 * (n - fold.test.nnz))
        assert fold.train.nnz + fold.valid.nnz + fold.test.nnz == n
    assert (folds[0].test != folds[1].test).nnz > 0  # independent draws


def test_rating_protocols_need_ratings():
    data = make([1, 1, 2], [1, 2, 1])
    with pytest.raises(DataError):
        list(RatingKFold(n_folds=2).split(data))


# temporal ------------------------------------------------------------------------------------


def test_temporal_global_never_uses_the_future():
    data = random_data(5)
    fold = next(Temporal(test_frac=0.2, valid_frac=0.1, threshold=None, min_user_count=1).split(data))
    ts = {(u, i): t for u, i, t in zip(data.user_ids[data.user].tolist(), data.item_ids[data.item].tolist(),
                                        data.timestamp.tolist())}
    t_train = [ts[p] for p in pairs(fold.train, fold.train_user_ids, fold.item_ids)]
    t_valid = [ts[p] for p in pairs(fold.valid_out, fold.valid_user_ids, fold.item_ids)]
    t_test = [ts[p] for p in pairs(fold.test_out, fold.test_user_ids, fold.item_ids)]
    t_test_in = [ts[p] for p in pairs(fold.test_in, fold.test_user_ids, fold.item_ids)]
    assert max(t_train) < min(t_valid) and max(t_valid) < min(t_test)
    assert max(t_test_in) < min(t_test)
    assert abs(len(t_test) - 0.2 * len(data)) <= 0.2 * len(data)  # vocabulary drops some
    assert set(fold.item_ids.tolist()) == {i for (_, i) in pairs(fold.train, fold.train_user_ids, fold.item_ids)}


def test_temporal_user_target_is_latest():
    data = random_data(6)
    p = Temporal(mode="user", n_folds=3, threshold=None, seed=1)
    ts = {(u, i): t for u, i, t in zip(data.user_ids[data.user].tolist(), data.item_ids[data.item].tolist(),
                                        data.timestamp.tolist())}
    folds = list(p.split(data))
    assert len(folds) == p.n_folds == 3
    for fold in folds:
        ins = rows_as_sets(fold.test_in, fold.test_user_ids, fold.item_ids)
        outs = rows_as_sets(fold.test_out, fold.test_user_ids, fold.item_ids)
        for u in fold.test_user_ids:
            n = len(ins[u]) + len(outs[u])
            assert len(outs[u]) == (n - int(0.8 * n) if n >= 5 else 0)  # the SVAE reference's count
            if outs[u] and ins[u]:
                assert max(ts[(u, i)] for i in ins[u]) < min(ts[(u, i)] for i in outs[u])


def test_temporal_user_target_count_is_the_references():
    # users of 7 items: reference target 7 - int(0.8 * 7) = 2 latest items, not int(0.2 * 7) = 1
    users = [u for u in range(6) for _ in range(7)]
    items = [i for _ in range(6) for i in range(7)]
    data = make(users, items, None, np.arange(len(users))[::-1])  # later item index = earlier time
    fold = next(Temporal(mode="user", n_heldout=2, n_valid=2, threshold=None, seed=0).split(data))
    for m_in, m_out, ids in ((fold.valid_in, fold.valid_out, fold.valid_user_ids),
                             (fold.test_in, fold.test_out, fold.test_user_ids)):
        outs = rows_as_sets(m_out, ids, fold.item_ids)
        ins = rows_as_sets(m_in, ids, fold.item_ids)
        assert len(outs) == 2
        for u in ids:
            assert outs[u] == {0, 1} and len(ins[u]) == 5  # the two latest


def test_temporal_needs_timestamps():
    with pytest.raises(DataError):
        list(Temporal().split(make([1, 2], [1, 2], [5, 5])))


# registry and export -------------------------------------------------------------------------


def test_registry():
    assert set(protocols.names()) == {"strong", "weak", "ratings-kfold", "ratings-holdout", "temporal"}
    assert protocols.get("strong", folds=3).n_folds == 3
    assert protocols.get("strong", n_heldout="10").n_folds == 1
    assert protocols.get("ratings-holdout", folds=2).n_folds == 2
    assert protocols.get("weak", seed="5").seed == 5
    with pytest.raises(ConfigError, match="choose one of"):
        protocols.get("nope")
    with pytest.raises(ConfigError, match="valid keys"):
        protocols.get("strong", bogus=1)
    with pytest.raises(ConfigError):
        protocols.get("weak", folds=5)


@pytest.mark.parametrize("name,opts", [("strong", {"folds": 3}), ("weak", {"k_core": 2}),
                                       ("ratings-kfold", {"folds": 2}), ("ratings-holdout", {"folds": 2})])
def test_export_round_trip(tmp_path, name, opts):
    data = random_data(7, n_users=40, n_items=30)
    p = protocols.get(name, **opts)
    record = export_split(p, data, tmp_path / "out")
    folds = list(p.split(data))
    saved = json.loads((tmp_path / "out" / "split.json").read_text())
    assert saved["n_folds"] == len(folds) == record["n_folds"] and saved["protocol"] == name
    for fold in folds:
        files = read_fold(tmp_path / "out" / f"fold-{fold.index}")
        if p.task == "rating":
            assert set(files) == {"train", "valid", "test"}
            for part in files:
                m = getattr(fold, part).tocoo()
                expect = sorted(zip(fold.user_ids[m.row].tolist(), fold.item_ids[m.col].tolist(), m.data.tolist()))
                got = sorted(zip(*(files[part][c].tolist() for c in ("user", "item", "rating"))))
                assert got == expect
        else:
            assert set(files) == {"train", "valid_in", "valid_out", "test_in", "test_out"}
            rows = {"train": fold.train_user_ids, "valid_in": fold.valid_user_ids, "valid_out": fold.valid_user_ids,
                    "test_in": fold.test_user_ids, "test_out": fold.test_user_ids}
            for part, frame in files.items():
                assert list(frame.columns) == ["user", "item"]
                got = set(zip(frame["user"].tolist(), frame["item"].tolist()))
                assert got == pairs(getattr(fold, part), rows[part], fold.item_ids)


def test_export_refuses_foreign_folder_and_cleans_stale_folds(tmp_path):
    data = random_data(8, n_users=40)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(DataError):
        export_split(StrongGeneralization(n_folds=3), data, tmp_path / "x")
    out = tmp_path / "y"
    export_split(StrongGeneralization(n_folds=4), data, out)
    export_split(StrongGeneralization(n_folds=4), data, out)  # the same split again: replaced
    with pytest.raises(DataError, match="--overwrite"):  # another split needs --overwrite
        export_split(StrongGeneralization(n_folds=2, valid_frac=0.2), data, out)
    export_split(StrongGeneralization(n_folds=2, valid_frac=0.2), data, out, overwrite=True)
    assert sorted(p.name for p in out.glob("fold-*")) == ["fold-0", "fold-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x", "y"]  # no partial folder left behind


@pytest.mark.filterwarnings("ignore::aerec.data.DataWarning")
def test_export_keeps_hostile_ids_exact(tmp_path):
    # A bare carriage return inside an id used to be written unquoted, so readers split the line there.
    items = hostile_ids(150)
    assert any("\r" in i for i in items)
    rng = np.random.default_rng(3)
    users = [f"u{j}" for j in range(40)]
    pairs = {(users[int(u)], items[int(i)]) for u, i in zip(rng.integers(0, 40, 3000), rng.integers(0, 150, 3000))}
    data = make([u for u, _ in pairs], [i for _, i in pairs])
    export_split(StrongGeneralization(n_folds=2, seed=0), data, tmp_path / "out")
    ours, theirs = set(), set()
    for f in sorted((tmp_path / "out").glob("fold-*/*.csv")):
        d = aerec.data.load(f, user_col="user", item_col="item", feedback="implicit")
        ours |= {(d.user_ids[u], d.item_ids[i]) for u, i in zip(d.user, d.item)}
        t = pd.read_csv(f, dtype=str, keep_default_na=False)  # what another tool reads
        theirs |= set(zip(t["user"], t["item"]))
    assert ours == pairs
    assert theirs == pairs


def test_cli_split(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from aerec.cli.split import split

    data = random_data(9, n_users=50)
    monkeypatch.setattr(aerec.data, "load", lambda name: data, raising=False)
    out = tmp_path / "s"
    res = CliRunner().invoke(split, ["toy", "--protocol", "strong", "--folds", "3", "--seed", "3", "--threshold", "3.5",
                                     "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["options"]["seed"] == 3 and record["n_folds"] == 3
    fold0 = next(StrongGeneralization(n_folds=3, seed=3).split(data))
    frame = pd.read_csv(out / "fold-0" / "test_out.csv")
    assert set(zip(frame["user"], frame["item"])) == pairs(fold0.test_out, fold0.test_user_ids, fold0.item_ids)
    res = CliRunner().invoke(split, ["toy", "-p", "ratings-kfold", "--n-heldout", "3", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "valid keys" in str(res.exception)
