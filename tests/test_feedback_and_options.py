"""Issue 14: feedback semantics, one data section everywhere, the library from a DataFrame,
already-seen filtering and readable output. Every case is built from small files written here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aerec import data, models
from aerec.cli import main
from aerec.data import feedback
from aerec.errors import AerecError, ConfigError, DataError


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def counts_frame(n_users=60, n_items=40, per_user=8, seed=0):
    """Purchases: 'count' 1-9, zero-padded item codes, groups of users buying from one block."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        block = u % 4
        items = rng.choice(np.arange(block * 10, block * 10 + 10), size=per_user, replace=False)
        rows += [(f"c{u:03d}", f"{i:05d}", int(rng.integers(1, 10))) for i in items]
    return pd.DataFrame(rows, columns=["user", "item", "count"])


@pytest.fixture
def counts_csv(tmp_path):
    f = tmp_path / "counts.csv"
    counts_frame().to_csv(f, index=False)
    return f


# --- feedback ------------------------------------------------------------------------------------


def test_counts_are_guessed_implicit_and_every_row_kept(counts_csv):
    d = data.load(counts_csv)
    fb = feedback.of(d)
    assert fb.kind == "implicit" and fb.threshold is None and fb.guessed and "count" in fb.reason
    prepared = feedback.training_data(d, "ranking", fb)
    assert prepared.train.nnz == len(d) and prepared.train.shape[0] == d.n_users
    weighted = feedback.training_data(d, "ranking", fb, weighted=True)
    assert sorted(weighted.train.data.tolist()) == sorted(d.rating.tolist())  # counts kept for WMF


def test_star_ratings_guess_the_movielens_cut_and_other_scales_do_not():
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3], "rating": [5, 4, 4.5, 1]})
    fb = feedback.of(data.from_dataframe(frame))
    assert fb.kind == "explicit" and fb.threshold == 3.5
    tens = frame.assign(rating=[10, 7, 8, 2])
    fb = feedback.of(data.from_dataframe(tens))  # never the 3.5 cut on 1-10: the scale's own (issue 23 #4)
    assert fb.kind == "explicit" and fb.threshold == 7 and fb.guessed
    wide = frame.assign(rating=[100, 7, 8, 2])  # past any star scale: no cut is guessed
    assert feedback.of(data.from_dataframe(wide)).kind == "implicit"
    with pytest.raises(ConfigError, match="--threshold"):
        feedback.decide(data.from_dataframe(wide), "explicit")
    fb = feedback.decide(data.from_dataframe(tens), "explicit", 6)
    assert fb.threshold == 6 and fb.threshold_given


def test_full_protocol_keeps_counts_and_every_user(counts_csv, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "pop", "-d", counts_csv, "-p", "full", "--out", tmp_path / "r")
    assert code == 0, err
    assert "implicit feedback (guessed" in err and "2,000" not in err  # 480 rows here
    assert "480 of 480 rows, 60 of 60 users" in err
    info = json.loads((tmp_path / "r" / "full" / "info.json").read_text())
    assert info["users"] == 60 and info["interactions"] == 480
    code, out, err = run_cli(capsys, "recommend", tmp_path / "r", "--user", "c007", "--json", "-k", "3")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["fallback"] is None and all(isinstance(i, str) and len(i) == 5 for i in rec["items"])


def test_strong_protocol_on_counts_trains(counts_csv, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "pop", "-d", counts_csv, "-p", "strong", "--folds", "3",
                           "--out", tmp_path / "r", "--ks", "5,10")
    assert code == 0, err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())["metrics"]
    assert "ndcg@5" in metrics and "ndcg@10" in metrics and "ndcg@20" not in metrics
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["protocol_options"]["threshold"] is None and cfg["ks"] == [5, 10]
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "r")
    assert code == 0 and "matches the saved metrics.json" in out


def test_a_cut_that_drops_most_rows_is_refused_naming_the_option(tmp_path, capsys):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"user": np.repeat(np.arange(30), 6), "item": np.tile(np.arange(6), 30),
                          "rating": rng.choice([1, 2, 3, 4], size=180, p=[0.3, 0.3, 0.3, 0.1])})
    f = tmp_path / "low.csv"
    frame.to_csv(f, index=False)
    code, _, err = run_cli(capsys, "split", f, "-p", "strong", "--folds", "3", "--out", tmp_path / "s")
    assert code == 2 and "--feedback implicit" in err and "--threshold" in err
    assert not (tmp_path / "s").exists()
    code, _, err = run_cli(capsys, "split", f, "-p", "strong", "--folds", "3", "--out", tmp_path / "s",
                           "--feedback", "implicit")
    assert code == 0, err


def test_rating_protocol_refuses_implicit_data(counts_csv, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "autorec", "-d", counts_csv, "-p", "ratings-kfold",
                           "--out", tmp_path / "r")
    assert code == 2 and "explicit ratings" in err


# --- one data section ------------------------------------------------------------------------------


def test_headerless_tsv_with_column_options_and_toml_data_section(tmp_path, capsys):
    frame = counts_frame()
    tsv = tmp_path / "plays.tsv"
    frame[["item", "count", "user"]].to_csv(tsv, sep="\t", header=False, index=False)
    code, out, err = run_cli(capsys, "data", "info", tsv, "--no-header", "--user-col", "2", "--item-col", "0",
                             "--rating-col", "1", "--feedback", "implicit", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["users"] == 60 and info["feedback"]["feedback"] == "implicit" and not info["feedback"]["guessed"]
    cfg = tmp_path / "run.toml"
    cfg.write_text('[run]\nmodel = "pop"\nprotocol = "strong"\nfolds = 3\n\n'
                   '[data]\nheader = false\nuser_col = 2\nitem_col = 0\nrating_col = 1\nfeedback = "implicit"\n')
    code, _, err = run_cli(capsys, "train", "-d", tsv, "--config", cfg, "--out", tmp_path / "r", "--quiet")
    assert code == 0, err
    saved = (tmp_path / "r" / "config.toml").read_text()
    assert "[data]" in saved and 'feedback = "implicit"' in saved
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "r", "-q")
    assert code == 0, err
    for cmd in (["split", "-d", tsv, "-p", "strong", "--folds", "3", "--out", tmp_path / "s"],
                ["bench", "-d", tsv, "--models", "pop", "--folds", "2", "--protocol-set", "valid_frac=0.2",
                 "--out", tmp_path / "b"]):
        # counts 1-9 in an unnamed column look like 1-10 stars (issue 23 #4): the guessed cut > 7
        # would drop most rows and is refused with the hint, so the counts are declared
        code, _, err = run_cli(capsys, *cmd, "--no-header", "--user-col", "2", "--item-col", "0",
                               "--rating-col", "1", "-q")
        assert code == 2 and "--feedback implicit" in err
        code, _, err = run_cli(capsys, *cmd, "--no-header", "--user-col", "2", "--item-col", "0",
                               "--rating-col", "1", "--feedback", "implicit", "-q")
        assert code == 0, (cmd[0], err)


def test_models_list_and_quiet_after_subcommand(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["ease"]["task"] == "ranking" and rows["autorec"]["task"] == "rating"
    assert all(r["description"] for r in rows.values())
    code, out, _ = run_cli(capsys, "data", "list", "-q")
    assert code == 0 and "ml-100k" in out


def test_split_prints_a_human_summary(counts_csv, tmp_path, capsys):
    code, out, err = run_cli(capsys, "split", "-d", counts_csv, "-p", "strong", "--folds", "3",
                             "--out", tmp_path / "s", "--protocol-set", "min_items=2")
    assert code == 0, err
    assert out.splitlines()[0].startswith("strong split, 3 fold(s)") and "{" not in out


# --- library from a DataFrame ---------------------------------------------------------------------------


def test_fit_from_a_dataframe_recommends_by_id_without_save_and_load():
    df = counts_frame()
    inter = data.from_dataframe(df, user="user", item="item", rating="count")
    model = models.create("ease", l2=10.0).fit(inter)
    rec = model.recommend_user("c003", k=2)
    assert len(rec.item_ids) == 2 and all(isinstance(i, str) for i in rec.item_ids)
    bought = set(df.loc[df.user == "c003", "item"])
    assert not bought & set(rec.item_ids)
    block = {f"{i:05d}" for i in range(30, 40)}  # c003 buys from block 3
    assert set(rec.item_ids) <= block
    new = model.recommend_items(["00031", "00032"], k=3)
    assert set(new.item_ids) <= block and not {"00031", "00032"} & set(new.item_ids)
    with pytest.raises(DataError, match="fitted on a matrix"):
        models.create("pop").fit(inter.csr("ones")).recommend_user("c003")


# --- already-seen filtering ---------------------------------------------------------------------------------


def low_rated_history():
    """u0 loves 0 and 1, rated 2 and 3 low; everyone else loves all four (so they score high)."""
    rows = [("u0", "i0", 5), ("u0", "i1", 5), ("u0", "i2", 2), ("u0", "i3", 3)]
    for u in range(1, 12):
        rows += [(f"u{u}", f"i{i}", 5) for i in range(4)] + [(f"u{u}", f"i{4 + u % 3}", 4)]
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def test_seen_items_are_excluded_whatever_their_rating(tmp_path, capsys):
    model = models.create("ease", l2=1.0).fit(data.from_dataframe(low_rated_history()))
    assert not {"i0", "i1", "i2", "i3"} & set(model.recommend_user("u0", k=5).item_ids)
    again = model.recommend_user("u0", k=7, exclude_seen=False).item_ids
    assert {"i2", "i3"} <= set(again)  # repeat purchases allowed on request
    f = tmp_path / "low.csv"
    low_rated_history().to_csv(f, index=False)
    code, _, err = run_cli(capsys, "train", "ease", "-d", f, "-p", "full", "--out", tmp_path / "r", "--set", "l2=1")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "recommend", tmp_path / "r", "--user", "u0", "--json")
    assert code == 0 and not {"i0", "i1", "i2", "i3"} & set(json.loads(out)["items"])
    code, out, _ = run_cli(capsys, "recommend", tmp_path / "r", "--user", "u0", "--json", "--include-seen")
    assert code == 0 and {"i2", "i3"} <= set(json.loads(out)["items"])


# --- output ---------------------------------------------------------------------------------------------------


def test_metrics_print_as_a_grid_with_counts_as_counts(counts_csv, tmp_path, capsys):
    code, out, err = run_cli(capsys, "train", "pop", "-d", counts_csv, "-p", "strong", "--folds", "3",
                             "--out", tmp_path / "r", "-q")
    assert code == 0, err
    header = next(ln for ln in out.splitlines() if "@10" in ln)
    assert header.split() == ["@10", "@20", "@50", "@100"]
    assert "recall = hits@k / min(k, |T|)" in out and "recall_plain = hits@k / |T|" in out
    users = next(ln for ln in out.splitlines() if "users evaluated" in ln)
    assert "." not in users.split(":")[1] and "±" not in users


def test_doctor_lists_extras(capsys):
    code, out, _ = run_cli(capsys, "doctor", "--json")
    extras = json.loads(out)["extras"]
    assert code == 0 and {"serve", "tune", "peers"} <= set(extras)
    assert all(isinstance(v["installed"], bool) for v in extras.values())


def test_errors_are_aerec_errors():
    with pytest.raises(AerecError):
        data.load(12)


def test_long_epochs_show_a_bar_of_batches(monkeypatch):
    from aerec import ui

    calls = []
    real = ui.progress

    def spy(iterable=None, **kw):
        calls.append(kw)
        return real(iterable, **{**kw, "disable": True})

    monkeypatch.setattr(ui, "progress", spy)
    monkeypatch.setattr(ui, "_quiet", False)
    monkeypatch.delenv("AEREC_QUIET", raising=False)
    inter = data.from_dataframe(counts_frame(n_users=20))
    models.create("multdae", epochs=2, batch_size=8, hidden=(8,)).fit(inter, progress=True)
    inner = [c for c in calls if c.get("unit") == "batch"]
    assert len(inner) == 2 and inner[0]["total"] == 3 and inner[0]["delay"] > 0  # shown only when slow
    calls.clear()
    models.create("multdae", epochs=1, batch_size=8, hidden=(8,)).fit(inter, progress=False)
    assert not [c for c in calls if c.get("unit") == "batch"]


def test_dataframe_fit_saves_and_loads_with_ids_and_seen(tmp_path):
    df = low_rated_history().assign(user=lambda f: f.user.str.replace("u", "00"))  # "000", "001", ...
    model = models.create("ease", l2=1.0).fit(df)  # a DataFrame directly: columns guessed
    before = model.recommend_user("000", k=3).item_ids
    model.save(tmp_path / "m")
    loaded = models.create("ease").load(tmp_path / "m")
    assert loaded.user_ids.tolist()[:2] == ["000", "001"]
    assert loaded.recommend_user("000", k=3).item_ids == before
    assert not {"i0", "i1", "i2", "i3"} & set(before)


def test_fold_matrices_carry_counts_for_weighted_models(counts_csv):
    from aerec import protocols, runner

    d = data.load(counts_csv)
    spec = runner.resolve("wmf", dataset=str(counts_csv), protocol="strong", folds=3)
    runner._apply_feedback(spec, d)
    fold = next(protocols.get("strong", folds=3, **{k: v for k, v in spec.protocol_options.items()
                                                   if k != "n_folds"}).split(d))
    weighted = runner._weigh(spec, d, fold)
    assert fold.train.data.max() == 1 and weighted.train.nnz == fold.train.nnz
    lookup = {(u, i): c for u, i, c in pd.read_csv(counts_csv, dtype={"item": str}).itertuples(index=False)}
    coo = weighted.train.tocoo()
    assert all(lookup[(fold.train_user_ids[r], fold.item_ids[c])] == v for r, c, v in zip(coo.row, coo.col, coo.data))
    assert weighted.test_in.data.max() > 1 and weighted.test_out.data.max() == 1  # targets stay binary
    ease = runner.resolve("ease", dataset=str(counts_csv), protocol="strong", folds=3)
    assert runner._weigh(ease, d, fold) is fold  # unweighted models see ones


def test_bench_refuses_rating_models_on_implicit_data(counts_csv, tmp_path, capsys):
    code, _, err = run_cli(capsys, "bench", "-d", counts_csv, "--models", "autorec", "--folds", "2",
                           "--out", tmp_path / "b", "-q")
    assert code == 2 and "explicit ratings" in err and "--feedback explicit" in err
