"""`aerec recommend`: model and run directories, known and new users, unknown ids, the popularity
fallback, rating models, and --all-users to Parquet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aerec import io, models
from aerec.cli import main
from aerec.serve import resolve_model_dir
from aerec.serve.engine import Engine


def fit_save(name, data, train, path, **cfg):
    model = models.create(name, **cfg).fit(train)
    io.save(model, path, item_ids=data.item_ids, user_ids=data.user_ids, history=train, item_titles=data.item_titles)
    return path


@pytest.fixture(scope="module")
def run_dir(block_case, tmp_path_factory):
    """A run directory with fold-0 and full models (different models, to tell them apart)."""
    root = tmp_path_factory.mktemp("run")
    fit_save("pop", block_case.data, block_case.train, root / "fold-0" / "model")
    fit_save("multdae", block_case.data, block_case.train, root / "full" / "model", epochs=3, hidden=(8,), batch_size=16)
    return root


@pytest.fixture(scope="module")
def dae_dir(run_dir):
    return run_dir / "full" / "model"


@pytest.fixture(scope="module")
def cdae_dir(block_case, tmp_path_factory):
    return fit_save("cdae", block_case.data, block_case.train, tmp_path_factory.mktemp("cdae") / "model",
                    epochs=3, hidden=8, batch_size=16)


@pytest.fixture(scope="module")
def autorec_dir(rating_case, tmp_path_factory):
    return fit_save("autorec", rating_case.data, rating_case.train, tmp_path_factory.mktemp("autorec") / "model",
                    variant="item", hidden=8, epochs=5, lam=1.0, lr=0.03, patience=0)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_directories_resolve_to_full_then_fold_0(run_dir, tmp_path, capsys):
    assert resolve_model_dir(run_dir / "full" / "model") == run_dir / "full" / "model"
    assert resolve_model_dir(run_dir) == run_dir / "full" / "model"
    assert "full-data model" in capsys.readouterr().err
    only_fold = tmp_path / "cv-run"
    (only_fold / "fold-0").mkdir(parents=True)
    (only_fold / "fold-0" / "model").symlink_to(run_dir / "fold-0" / "model")
    code, out, err = run(capsys, "recommend", only_fold, "--user", "u0", "--json")
    assert code == 0 and "fold 0's model" in err and len(err.strip().splitlines()) == 1
    assert json.loads(out)["items"] == io.load(run_dir / "fold-0" / "model").recommend_user("u0", 10).item_ids
    code, _, err = run(capsys, "recommend", tmp_path, "--user", "u0")
    assert code == 2 and "neither a model directory" in err and len(err.strip().splitlines()) == 1


def test_known_user_table_and_json(dae_dir, capsys):
    want = io.recommend_user(io.load(dae_dir), "u3", 4, exclude=[105])
    code, out, _ = run(capsys, "recommend", dae_dir, "--user", "u3", "-k", "4", "--exclude", "105", "--json")
    assert code == 0 and json.loads(out) == want.to_dict()
    code, out, _ = run(capsys, "recommend", dae_dir, "--user", "u3", "-k", "4", "--exclude", "105")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("top 4 for user u3 (multdae") and "title" in lines[1]
    assert [ln.split()[1] for ln in lines[2:]] == [str(i) for i in want.item_ids]
    assert all(f"item {i}" in ln for i, ln in zip(want.item_ids, lines[2:]))


def test_new_user_with_unknown_items(dae_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "recommend", dae_dir, "--items", "100,101,nope,102", "-k", "5", "--json")
    got = json.loads(out)
    want = io.recommend_items(io.load(dae_dir), ["100", "101", "nope", "102"], 5)
    assert code == 0 and got == want.to_dict() and got["unknown_items"] == ["nope"] and got["fallback"] is None
    f = tmp_path / "items.txt"
    f.write_text("100\n\n101\nnope\n102\n")
    code, out2, _ = run(capsys, "recommend", dae_dir, "--items-file", f, "-k", "5", "--json")
    assert code == 0 and json.loads(out2) == got
    code, out, _ = run(capsys, "recommend", dae_dir, "--items", "100,nope", "-k", "5")
    assert code == 0 and "1 unknown item id(s) ignored: nope" in out


def test_new_user_with_no_known_item_gets_popularity_and_says_so(dae_dir, capsys):
    code, out, _ = run(capsys, "recommend", dae_dir, "--items", "nope,999", "-k", "3")
    assert code == 0 and "popularity fallback" in out
    code, out, _ = run(capsys, "recommend", dae_dir, "--items", "nope,999", "-k", "3", "--json")
    got, model = json.loads(out), io.load(dae_dir)
    counts = np.bincount(model.histories.indices, minlength=model.n_items)
    assert got["fallback"] == "popularity" and got["unknown_items"] == ["nope", "999"]
    assert got["items"] == model.item_ids[np.argsort(-counts, kind="stable")[:3]].tolist()


def test_rating_model_ranks_by_predicted_rating(autorec_dir, rating_case, tmp_path, capsys):
    model = io.load(autorec_dir)
    user = rating_case.data.user_ids[2]
    code, out, _ = run(capsys, "recommend", autorec_dir, "--user", user, "-k", "5", "--json")
    got = json.loads(out)
    # a known user of I-AutoRec is scored by its trained decoder row (score_users), not refitted
    pred = model.score_users([2])[0].astype(np.float64)
    pred[model.histories[2].indices] = -np.inf
    top = np.argsort(-pred, kind="stable")[:5]
    assert code == 0 and got["items"] == model.item_ids[top].tolist()
    np.testing.assert_allclose(got["scores"], pred[top], rtol=1e-6)
    assert all(1.0 <= s <= 5.0 for s in got["scores"])
    f = tmp_path / "rated.csv"
    f.write_text("100,5\n101,1\n102, 4\n")
    code, out, _ = run(capsys, "recommend", autorec_dir, "--items-file", f, "--items-sep", ",", "-k", "5", "--json")
    want = Engine(model).recommend_items(["100", "101", "102"], 5, ratings=[5, 1, 4])
    assert code == 0 and json.loads(out)["items"] == want.item_ids
    code, out, _ = run(capsys, "recommend", autorec_dir, "--items", "100,101,102", "--ratings", "5,1,4", "-k", "5", "--json")
    assert code == 0 and json.loads(out)["items"] == want.item_ids


@pytest.mark.parametrize("which", ["dae_dir", "cdae_dir"])
def test_all_users_to_parquet_in_blocks(which, request, tmp_path, capsys):
    path = request.getfixturevalue(which)
    out = tmp_path / "recs.parquet"
    code, _, err = run(capsys, "recommend", path, "--all-users", "--out", out, "-k", "3", "--block", "7",
                       "--exclude", "100")
    assert code == 0 and "wrote" in err
    df = pd.read_parquet(out)
    engine = Engine(io.load(path))
    assert list(df.columns) == ["user", "rank", "item", "score"] and len(df) == 3 * len(engine.user_ids)
    for user, group in df.groupby("user", sort=False):
        want = engine.recommend_user(user, 3, exclude=[100])
        assert group["rank"].tolist() == [1, 2, 3] and group["item"].tolist() == want.item_ids
        np.testing.assert_allclose(group["score"], want.scores, rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind


@pytest.fixture(scope="module")
def gappy_dir(block_case, tmp_path_factory):
    """Mult-DAE saved with two empty stored histories (the popularity fallback) and a `seen`
    matrix holding items beyond them."""
    train = block_case.train.tolil()
    train[0, :] = 0
    train[5, :] = 0
    model = models.create("multdae", epochs=3, hidden=(8,), batch_size=16).fit(block_case.train)
    path = tmp_path_factory.mktemp("gappy") / "model"
    d = block_case.data
    io.save(model, path, item_ids=d.item_ids, user_ids=d.user_ids, history=train.tocsr(), seen=block_case.train)
    return path


def host_all_users(model, k: int, exclude_cols, exclude_seen: bool, block: int) -> pd.DataFrame:
    """What --all-users wrote before it ranked on the model's device (main at 9f77acf, checked
    equal there): float64 scores of blocks of users (a block's size changes a matmul's last
    bits), popularity for an empty history, seen and excluded items -inf, a stable argsort (ties
    to the lower column), the -inf tail left out."""
    hist = model.histories
    users = np.arange(hist.shape[0])
    scores = np.concatenate([np.asarray(model.score_users(users[s : s + block], hist[s : s + block]), dtype=np.float64)
                             for s in range(0, len(users), block)])
    empty = np.diff(hist.indptr) == 0
    scores[empty] = io.popularity(model)
    seen = getattr(model, "seen", None)
    for m in ([hist] + ([seen] if seen is not None else [])) if exclude_seen else []:
        coo = m.tocoo()
        scores[coo.row, coo.col] = -np.inf
    scores[:, list(exclude_cols)] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, model.n_items)]
    vals = np.take_along_axis(scores, top, axis=1)
    r, c = np.nonzero(np.isfinite(vals))
    return pd.DataFrame({"user": model.user_ids[r].astype(str), "rank": (c + 1).astype(np.int32),
                         "item": model.item_ids[top[r, c]].astype(str), "score": vals[r, c].astype(np.float32)})


@pytest.mark.parametrize("which", ["run_dir", "dae_dir", "cdae_dir", "autorec_dir", "gappy_dir"])
@pytest.mark.parametrize("k, extra", [(3, ["--exclude", "100"]), (20, ["--exclude", "101,102"]), (5, ["--include-seen"])],
                         ids=["k3", "k20-short-rows", "include-seen"])
def test_all_users_equal_the_host_ranking(which, k, extra, request, tmp_path, capsys):
    """Pop (run_dir's fold 0) ties everywhere, across the cut too; k=20 leaves rows short."""
    path = request.getfixturevalue(which)
    out = tmp_path / "recs.parquet"
    code, _, err = run(capsys, "recommend", path, "--all-users", "--out", out, "-k", k, "--block", 7, *extra)
    assert code == 0, err
    model = io.load(resolve_model_dir(path))
    cols = {Engine(model).item_index[x] for x in ",".join(extra[1:]).split(",") if x} if "--exclude" in extra else set()
    want = host_all_users(model, k, sorted(cols), "--include-seen" not in extra, block=7)
    got = pd.read_parquet(out).astype({"user": str, "item": str})
    assert len(got) == len(want)
    for column in ("user", "rank", "item"):
        assert got[column].tolist() == want[column].tolist(), column
    assert np.array_equal(got["score"].to_numpy(), want["score"].to_numpy())


def test_all_users_rank_where_the_model_scores(dae_dir, tmp_path, capsys, monkeypatch):
    """Fold-in models score stored users through score_tensor (their device), not the host score."""
    from aerec.models.base import Recommender

    calls = {"score_tensor": 0, "score": 0}
    for name in calls:
        original = getattr(Recommender, name)

        def counted(self, *a, _name=name, _orig=original, **kw):
            calls[_name] += 1
            return _orig(self, *a, **kw)

        monkeypatch.setattr(Recommender, name, counted)
    code, _, err = run(capsys, "recommend", dae_dir, "--all-users", "--out", tmp_path / "r.parquet", "--block", 7)
    assert code == 0, err
    n_users = len(io.load(dae_dir).user_ids)
    assert calls == {"score_tensor": -(-n_users // 7), "score": 0}


@pytest.mark.parametrize("args, message", [
    ([], "exactly one of --user"),
    (["--user", "u0", "--items", "100"], "exactly one of --user"),
    (["--all-users"], "give --out"),
    (["--user", "u0", "--out", "x.parquet"], "--out is for --all-users"),
    (["--user", "nobody"], "unknown user 'nobody'"),
    (["--items", "100", "--ratings", "five"], "--ratings must be numbers"),
    (["--items", "100,101", "--ratings", "5"], "1 ratings for 2 items"),
])
def test_errors_are_one_line(dae_dir, capsys, args, message):
    code, _, err = run(capsys, "recommend", dae_dir, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_items_file_errors_name_the_line(dae_dir, tmp_path, capsys):
    f = tmp_path / "bad.txt"
    f.write_text("100\n101 x\n")
    code, _, err = run(capsys, "recommend", dae_dir, "--items-file", f, "--items-sep", " ")
    assert code == 2 and f"{f}:2: rating 'x' is not a number" in err


def test_library_and_service_score_known_users_alike(cdae_dir):
    """model.recommend_user goes through score_users, so CDAE's learned user vector is used,
    as in the CLI and the service (a zero-vector fold-in would rank differently)."""
    import aerec
    from aerec.serve.engine import Engine

    model = aerec.load(cdae_dir)
    uid = model.user_ids[3]
    lib = model.recommend_user(uid, k=5)
    srv = Engine(model).recommend_user(uid, 5)
    assert lib.item_ids == srv.item_ids
    np.testing.assert_allclose(lib.scores, srv.scores, rtol=1e-6)
    row = model.histories[[3]]
    learned = model.score_users(np.array([3]), row)[0]
    folded = model.score(row)[0]
    assert not np.allclose(learned, folded)  # the two paths differ, so the check above means something
    top = [model.item_ids[j] for j in np.argsort(-np.where(row.toarray()[0] > 0, -np.inf, learned), kind="stable")[:5]]
    assert [str(x) for x in lib.item_ids] == [str(x) for x in top]


@pytest.mark.parametrize("ratings", ["-1e30,5", "5,1e30", "0,5", "1e308,5", "5,nan", "inf,5"])
def test_ratings_outside_the_models_range_are_exit_2(autorec_dir, tmp_path, capsys, ratings):
    code, out, err = run(capsys, "recommend", autorec_dir, "--items", "100,101", "--ratings", ratings)
    assert code == 2 and out == "" and "rating" in err and len(err.strip().splitlines()) == 1, err
    f = tmp_path / "rated.txt"
    f.write_text("".join(f"{i}\t{r}\n" for i, r in zip((100, 101), ratings.split(","))))
    code, _, err = run(capsys, "recommend", autorec_dir, "--items-file", f, "--items-sep", "tab")
    assert code == 2 and "rating" in err, err
    from aerec.io import RatingsError

    with pytest.raises(RatingsError):
        io.load(autorec_dir).recommend_items([100, 101], k=3, ratings=[float(r) for r in ratings.split(",")])


def test_implicit_models_refuse_ratings(dae_dir, tmp_path, capsys):
    code, _, err = run(capsys, "recommend", dae_dir, "--items", "100,101", "--ratings", "1,1")
    assert code == 2 and "takes no ratings" in err and len(err.strip().splitlines()) == 1
    f = tmp_path / "rated.txt"
    f.write_text("100 1\n101 1\n")
    code, _, err = run(capsys, "recommend", dae_dir, "--items-file", f, "--items-sep", " ")
    assert code == 2 and "takes no ratings" in err
