"""Leak checks on the real code path: a spy records every matrix that `fit`, the validation scores
(which also feed the pruner), scoring and a `--tune-final full` retrain receive while a study runs,
and the check fails if any row of a reported test user (any test rating, for rating models) is
among them. The test users are found by content, not by the folds' id lists: the data give every
user a random 30-40 of 400 items, so five or more items of one user's row are that user's alone.

One model per family: neural top-N (multdae), closed form (ease), rating (autorec), temporal (svae).
The planted-leak tests show the check fails when a study does read test users.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("optuna")

from aerec import evaluation, protocols  # noqa: E402
from aerec import tune as tunemod  # noqa: E402
from aerec.bench.tuned import run_tuned  # noqa: E402
from aerec.data.interactions import Interactions  # noqa: E402
from aerec.models import base  # noqa: E402
from aerec.models.autorec import AutoRec  # noqa: E402

MIN_ITEMS = 5  # rows shorter than this are not attributed to a user (too likely to be shared)
TINY = {"multdae": {"epochs": 4, "hidden": (16,), "batch_size": 32},
        "svae": {"epochs": 3, "embed": 8, "rnn": 8, "hidden": 8, "latent": 4, "batch_size": 16},
        "autorec": {"epochs": 3, "hidden": 8}}
SPACE = {"multdae": {"hidden": None}, "svae": {"embed": None, "rnn": None, "hidden": None, "batch_size": None},
         "autorec": {"hidden": None}}


def unique_rows(n_users: int = 90, n_items: int = 400, seed: int = 7) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items, ratings, stamps = [], [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=int(rng.integers(30, 41)), replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
        ratings += rng.integers(4, 6, len(chosen)).tolist()  # all kept by the 3.5 threshold
        stamps += (1_000_000 + u * 1000 + np.arange(len(chosen))).tolist()
    return Interactions(user=np.array(users, np.int32), item=np.array(items, np.int32),
                        user_ids=np.array([f"u{i}" for i in range(n_users)]), item_ids=np.arange(n_items),
                        rating=np.array(ratings, np.float32), timestamp=np.array(stamps, np.int64), name="uniq")


DATA = unique_rows()


class Spy:
    """Records, while `active`, every matrix the real path hands to a model or the evaluator."""

    def __init__(self, monkeypatch):
        self.active, self.seen = False, []
        real_fit, real_score = base.Recommender.fit, base.Recommender.score
        real_score_tensor = base.Recommender.score_tensor  # the evaluator's and recommend's entry (issue 25)
        real_rank, real_rate = evaluation.evaluate_ranking, evaluation.evaluate_rating
        real_predict = AutoRec.predict

        def fit(model, train, valid=None, **kw):
            if self.active:
                self.seen.append(("fit", model.task, train))
                for part in (valid if isinstance(valid, tuple) else (valid,)):
                    if part is not None:
                        self.seen.append(("fit-valid", model.task, part))
            return real_fit(model, train, valid, **kw)

        def score(model, history):
            if self.active:
                self.seen.append(("score", model.task, history))
            return real_score(model, history)

        def score_tensor(model, history):
            if self.active:
                self.seen.append(("score", model.task, history))
            return real_score_tensor(model, history)

        def rank(model, inp, tgt, **kw):
            if self.active:
                self.seen += [("eval-input", "ranking", inp), ("eval-target", "ranking", tgt)]
            return real_rank(model, inp, tgt, **kw)

        def rate(model, test_csr, **kw):
            if self.active:
                self.seen.append(("eval-ratings", "rating", test_csr))
            return real_rate(model, test_csr, **kw)

        def predict(model, user_idx, item_idx):
            if self.active:
                u, i = np.asarray(user_idx).ravel(), np.asarray(item_idx).ravel()
                shape = (model.n_users, model.n_items)
                self.seen.append(("predict", "rating", sp.csr_matrix((np.ones(len(u)), (u, i)), shape=shape)))
            return real_predict(model, user_idx, item_idx)

        monkeypatch.setattr(base.Recommender, "fit", fit)
        monkeypatch.setattr(base.Recommender, "score", score)
        monkeypatch.setattr(base.Recommender, "score_tensor", score_tensor)
        monkeypatch.setattr(evaluation, "evaluate_ranking", rank)
        monkeypatch.setattr(evaluation, "evaluate_rating", rate)
        monkeypatch.setattr(AutoRec, "predict", predict)
        real_study = tunemod.run_study

        def study(cls, fold, **kw):  # record only inside the study: the final test evaluation may read test users
            self.active = True
            try:
                return real_study(cls, fold, **kw)
            finally:
                self.active = False

        monkeypatch.setattr(tunemod, "run_study", study)


def _binary(m) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32, copy=True)
    m.data[:] = 1.0
    return m


def reported_rows(fold) -> sp.csr_matrix:
    """A ranking fold's test users, one row each (input + target), by item column."""
    return _binary(fold.test_in + fold.test_out)


def ranking_leaks(seen, test: sp.csr_matrix, everyone: sp.csr_matrix) -> list[str]:
    """Received rows (>= MIN_ITEMS items) that lie inside a test user's row. Every such row must
    also lie inside some user's row at all, which proves the spy saw real rows."""
    found = []
    for what, task, m in seen:
        if task != "ranking":
            continue
        b = _binary(m)
        lengths = np.asarray(b.sum(axis=1)).ravel()
        long = lengths >= MIN_ITEMS
        if not long.any():
            continue
        inside_all = ((b @ everyone.T).toarray() >= lengths[:, None]).any(axis=1)
        assert inside_all[long].all(), f"{what}: rows that belong to no user; the check cannot attribute them"
        inside_test = ((b @ test.T).toarray() >= lengths[:, None]).any(axis=1)
        n = int((inside_test & long).sum())
        if n:
            found.append(f"{what}: {n} rows of test users")
    return found


def rating_leaks(seen, test: sp.csr_matrix) -> list[str]:
    """Received (user, item) entries that are test ratings."""
    t = _binary(test)
    found = []
    for what, task, m in seen:
        if task != "rating":
            continue
        if m.shape != t.shape:
            raise AssertionError(f"{what}: shape {m.shape} is not the rating folds' {t.shape}")
        n = int(_binary(m).multiply(t).sum())
        if n:
            found.append(f"{what}: {n} test ratings")
    return found


def everyone_rows(fold) -> sp.csr_matrix:
    return _binary(sp.vstack([fold.train, fold.valid_in + fold.valid_out, fold.test_in + fold.test_out]).tocsr())


def leaks_of(spy, folds) -> list[str]:
    """All leaks, per fold: each study's records are filed under the fold it ran on."""
    out = []
    for f, records in spy.by_fold.items():
        fold = folds[f]
        if getattr(fold, "kind", "ranking") == "rating":
            out += [f"fold {f} {x}" for x in rating_leaks(records, fold.test)]
        else:
            out += [f"fold {f} {x}" for x in ranking_leaks(records, reported_rows(fold), everyone_rows(fold))]
    return out


class FoldSpy(Spy):
    """A Spy that files its records under the fold each study ran on."""

    def __init__(self, monkeypatch):
        super().__init__(monkeypatch)
        self.by_fold: dict[tuple, list] = {}
        inner = tunemod.run_study

        def study(cls, fold, **kw):
            start = len(self.seen)
            try:
                return inner(cls, fold, **kw)
            finally:
                key = (getattr(fold, "kind", "ranking"), cls.name == "svae", fold.index)
                self.by_fold.setdefault(key, []).extend(self.seen[start:])

        monkeypatch.setattr(tunemod, "run_study", study)


def independent_folds():
    """The reported folds, split again here from the data (not taken from the suite)."""
    out = {}
    for f in protocols.get("strong", folds=3, seed=0).split(DATA):
        out[("ranking", False, f.index)] = f
    for f in protocols.get("temporal", folds=3, seed=0, mode="user").split(DATA):
        out[("ranking", True, f.index)] = f
    for f in protocols.get("ratings-kfold", folds=3, seed=0).split(DATA):
        out[("rating", False, f.index)] = f
    return out


def run_suite(out, plant=None, **kw):
    return run_tuned(out, datasets=["uniq"], models=["multdae", "ease", "autorec", "svae"], folds=3, trials=2,
                     loader=lambda name: DATA, overrides=TINY, space_overrides=SPACE, storage="memory",
                     reference="none", tune_on="fold", **kw)


def test_the_data_make_rows_attributable():
    folds = independent_folds()
    for key, f in folds.items():
        if key[0] == "ranking":  # no other user's row holds a test user's whole target, nor the reverse
            assert not ranking_leaks([("x", "ranking", f.train), ("x", "ranking", f.valid_out)], reported_rows(f),
                                     everyone_rows(f))
            assert len(ranking_leaks([("x", "ranking", f.test_out)], reported_rows(f), everyone_rows(f))) == 1


def test_every_study_of_the_tuned_suite_reads_no_test_user(tmp_path, monkeypatch):
    spy = FoldSpy(monkeypatch)
    # timeout 1e-9: the first trial of each neural study is cut after one epoch, so --tune-final full
    # retrains it, and that retrain is recorded too
    run_suite(tmp_path / "b", final="full", timeout=1e-9)
    folds = independent_folds()
    assert set(spy.by_fold) == set(folds), "every fold of every family ran a study"
    kinds = {(key, what) for key, records in spy.by_fold.items() for what, _, _ in records}
    for key in folds:
        assert {(key, "fit"), (key, "fit-valid")} <= kinds
    assert any(w == "score" for r in spy.by_fold.values() for w, _, _ in r)  # ranking validation scored rows
    assert any(w == "predict" for r in spy.by_fold.values() for w, _, _ in r)  # rating validation predicted pairs
    fits = {key: sum(w == "fit" for w, _, _ in r) for key, r in spy.by_fold.items()}
    assert all(n >= 2 for key, n in fits.items() if key[0] == "rating" or key[1]), fits  # trial + full retrain
    assert leaks_of(spy, folds) == []


def test_aerec_tune_reads_no_test_user(monkeypatch):
    spy = FoldSpy(monkeypatch)
    tunemod.tune("multdae", DATA, "strong", trials=2, seed=0, folds=3, fold=1, fixed=TINY["multdae"],
                 space_overrides=SPACE["multdae"])
    tunemod.tune("autorec", DATA, "ratings-kfold", trials=2, seed=0, folds=3, fold=2, fixed=TINY["autorec"],
                 space_overrides=SPACE["autorec"])
    folds = independent_folds()
    assert set(spy.by_fold) == {("ranking", False, 1), ("rating", False, 2)}
    assert leaks_of(spy, folds) == []


# planted leaks: the same checks must fail -------------------------------------------------------


def test_a_study_that_validates_on_test_users_is_caught(tmp_path, monkeypatch):
    spy = FoldSpy(monkeypatch)
    real = tunemod.run_study

    def swapped(cls, fold, **kw):  # the fold-0/fold-1 mix-up: validation rows are the test rows
        if fold.kind == "ranking":
            fold = dataclasses.replace(fold, valid_in=fold.test_in, valid_out=fold.test_out)
        return real(cls, fold, **kw)

    monkeypatch.setattr(tunemod, "run_study", swapped)
    run_tuned(tmp_path / "b", datasets=["uniq"], models=["ease", "multdae"], folds=3, trials=1, loader=lambda n: DATA,
        overrides=TINY, space_overrides=SPACE, storage="memory", reference="none", tune_on="fold")
    found = leaks_of(spy, independent_folds())
    assert any("eval-input" in x for x in found) and any("score" in x for x in found)
    assert any("fit-valid" in x for x in found)


def test_a_study_that_fits_on_test_users_is_caught(tmp_path, monkeypatch):
    spy = FoldSpy(monkeypatch)
    real = tunemod.run_study

    def fitted(cls, fold, **kw):  # test users' rows (or ratings) added to the training part
        if fold.kind == "ranking":
            fold = dataclasses.replace(fold, train=sp.vstack([fold.train, fold.test_in + fold.test_out]).tocsr())
        else:
            fold = dataclasses.replace(fold, train=(fold.train + fold.test).tocsr())
        return real(cls, fold, **kw)

    monkeypatch.setattr(tunemod, "run_study", fitted)
    # the id-list guard in run_study sees the planted rating pairs and refuses; silence it, as a leak
    # that the id lists do not show would be, so the spy alone has to catch it
    monkeypatch.setattr(tunemod, "tuning_users", lambda fold: {"disjoint": True})
    run_tuned(tmp_path / "b", datasets=["uniq"], models=["ease", "autorec", "svae"], folds=3, trials=1,
              loader=lambda n: DATA, overrides=TINY, space_overrides=SPACE, storage="memory", reference="none", tune_on="fold")
    found = leaks_of(spy, independent_folds())
    for key in (("ranking", False), ("rating", False), ("ranking", True)):  # ease, autorec, svae
        assert any(x.startswith(f"fold {(*key, f)}") and "fit:" in x for x in found for f in range(3)), (key, found)


def test_the_id_guard_refuses_planted_test_ratings_before_any_fit(monkeypatch):
    from aerec.errors import ConfigError
    from aerec.models import get

    fold = protocols.get("ratings-kfold", folds=3, seed=0).folds(DATA)[0]
    leaky = dataclasses.replace(fold, train=(fold.train + fold.test).tocsr())
    with pytest.raises(ConfigError, match="test users are among"):
        tunemod.run_study(get("autorec"), leaky, fixed=TINY["autorec"], space={"lam": {"type": "float", "low": 0.1,
                                                                                        "high": 10.0}}, trials=1)


# tuning-only users: the studies' rows belong to no reported fold ---------------------------------


def _by_item(m, item_ids, n_items=400) -> sp.csr_matrix:
    """A matrix's columns moved to the data set's item ids (folds of different users have
    different vocabularies)."""
    c = sp.csr_matrix(m).tocoo()
    return sp.csr_matrix((np.ones(c.nnz), (c.row, np.asarray(item_ids)[c.col])), shape=(m.shape[0], n_items))


def tuning_users_leaks(monkeypatch, tmp_path) -> list[str]:
    from aerec.bench import tuned as tuned_mod

    spy = FoldSpy(monkeypatch)
    studied, reported = {}, []
    inner = tunemod.run_study

    def study(cls, fold, **kw):
        studied[(fold.kind, cls.name == "svae")] = fold
        return inner(cls, fold, **kw)

    monkeypatch.setattr(tunemod, "run_study", study)
    real_cell = tuned_mod.run_cell
    monkeypatch.setattr(tuned_mod, "run_cell", lambda cell, fold, task, *a: reported.append(fold) or real_cell(cell, fold, task, *a))
    run_tuned(tmp_path / "b", datasets=["uniq"], models=["multdae", "ease", "autorec", "svae"], folds=3, trials=2,
              loader=lambda name: DATA, overrides=TINY, space_overrides=SPACE, storage="memory", reference="run",
              tune_on="tuning-users")
    assert len(studied) == 3 and len(reported) >= 3 * 4 * 2  # every family studied; tuned + reference cells
    found = []
    ranking = [f for f in reported if f.kind == "ranking"]
    fold_rows = _binary(sp.vstack([_by_item(m, f.item_ids) for f in ranking
                                   for m in (f.train, f.valid_in + f.valid_out, f.test_in + f.test_out)]).tocsr())
    rated = {str(f.user_ids[u]) for f in reported if f.kind == "rating"
             for m in (f.train, f.valid, f.test) for u in np.unique(m.tocoo().row)}
    for key, records in spy.by_fold.items():
        fold = studied[key[:2]]
        if key[0] == "rating":
            users = {str(fold.user_ids[u]) for _, task, m in records if task == "rating" for u in np.unique(m.tocoo().row)}
            if users & rated:
                found.append(f"{key}: {len(users & rated)} tuning users rated in the reported folds")
            continue
        own = _binary(sp.vstack([_by_item(m, fold.item_ids) for m in (fold.train, fold.valid_in + fold.valid_out)]).tocsr())
        mapped = [(w, t, _by_item(m, fold.item_ids)) for w, t, m in records if t == "ranking"]
        found += [f"{key} {x}" for x in ranking_leaks(mapped, fold_rows, own)]
    return found


def test_tuning_users_appear_in_no_reported_fold(monkeypatch, tmp_path):
    assert tuning_users_leaks(monkeypatch, tmp_path) == []


def test_tuning_users_that_stay_in_the_folds_are_caught(monkeypatch, tmp_path):
    from aerec.protocols import tuning_users

    real = tuning_users.set_aside
    monkeypatch.setattr(tuning_users, "set_aside", lambda data, share, seed: (real(data, share, seed)[0], data))
    from aerec.bench import tuned as tuned_mod
    from aerec.errors import ConfigError

    with pytest.raises(ConfigError, match="tuning users appear in the evaluation folds"):  # the id guard
        tuning_users_leaks(monkeypatch, tmp_path / "guarded")
    monkeypatch.setattr(tuned_mod, "tuning_users_record", lambda *a: {"disjoint": True})  # silenced: the spy alone
    found = tuning_users_leaks(monkeypatch, tmp_path)
    assert any("rating" in x for x in found) and any("'ranking', False" in x for x in found) \
        and any("'ranking', True" in x for x in found), found
