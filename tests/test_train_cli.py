"""`aerec train` / `aerec evaluate` on tiny CSV files: the run directory, metrics.json, configs,
re-evaluation and one-line errors."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from conftest import block_interactions, rating_interactions, write_csv

import aerec
from aerec import runner
from aerec.cli import main

BIG_BLOCKS = (30, 24, 18)  # 72 users: 3 folds leave 24 test, 24 validation and 24 training users


@pytest.fixture(scope="module")
def implicit_csv(tmp_path_factory):
    return write_csv(block_interactions(block_users=BIG_BLOCKS), tmp_path_factory.mktemp("data") / "blocks.csv")


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    return write_csv(rating_interactions(n_users=30, n_items=20), tmp_path_factory.mktemp("data") / "ratings.csv")


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pop_run(implicit_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pop"
    spec = runner.resolve("pop", dataset=implicit_csv, protocol="strong", folds=3, seed=1)
    return out, runner.train(spec, out, progress=False)


def test_pop_json_metrics(capsys, implicit_csv, tmp_path):
    code, out, err = run_cli(capsys, "-q", "train", "pop", "--dataset", implicit_csv, "--protocol", "strong",
                             "--folds", "3", "--seed", "1", "--json", "--out", tmp_path / "run")
    assert code == 0, err
    result = json.loads(out)
    assert {k: result[k] for k in ("model", "protocol", "folds", "seed")} == \
        {"model": "pop", "protocol": "strong", "folds": 3, "seed": 1}
    assert set(result) >= {"dataset", "metrics", "epochs", "train_seconds", "versions"}
    for name in ("recall@20", "recall@50", "recall@100", "precision@100", "ndcg@100", "recall_plain@20",
                 "hitrate@20", "mrr@100", "map@100", "coverage@100"):
        m = result["metrics"][name]
        assert len(m["per_fold"]) == 3
        assert m["mean"] == pytest.approx(np.mean(m["per_fold"]))
        assert m["std"] == pytest.approx(np.std(m["per_fold"], ddof=1))  # the sample std, as documented
    assert "ndcg@10" in result["metrics"]  # @10 is in the default cutoffs (issue 14)
    assert len(result["epochs"]) == len(result["train_seconds"]) == 3
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == result


def test_run_directory_layout(pop_run):
    out, result = pop_run
    for f in range(3):
        assert (out / f"fold-{f}" / "model" / "manifest.json").exists()
        assert not (out / f"fold-{f}" / "checkpoint").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "pop" and cfg["seed"] == 1 and cfg["folds"] == 3
    assert cfg["protocol_options"]["n_folds"] == 3 and cfg["config"] == {"seed": 1}
    # the saved fold model carries the split's vocabularies and the training users' histories
    m = aerec.load(out / "fold-0" / "model")
    assert m.meta["fold"] == 0 and m.histories.shape == (len(m.user_ids), len(m.item_ids))


def test_evaluate_reproduces_saved_metrics(capsys, pop_run):
    out, result = pop_run
    again = runner.evaluate_run(out)
    assert again["matches_saved"] is True
    assert {k: v["per_fold"] for k, v in again["metrics"].items()} == \
        {k: v["per_fold"] for k, v in result["metrics"].items()}
    code, text, err = run_cli(capsys, "evaluate", out)
    assert code == 0 and "matches the saved metrics.json" in text


def test_evaluate_notices_changed_results(pop_run, tmp_path):
    import shutil

    out, _ = pop_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    saved = json.loads((copy / "metrics.json").read_text())
    saved["metrics"]["ndcg@100"]["per_fold"][0] += 0.5
    (copy / "metrics.json").write_text(json.dumps(saved))
    assert runner.evaluate_run(copy, write=False)["matches_saved"] is False


def test_neural_run_history_and_evaluate(capsys, implicit_csv, tmp_path):
    code, out, err = run_cli(capsys, "-q", "train", "multdae", "--dataset", implicit_csv, "--protocol", "strong",
                             "--folds", "3", "--epochs", "2", "--set", "hidden=8", "--set", "batch_size=16",
                             "--json", "--out", tmp_path / "run")
    assert code == 0, err
    result = json.loads(out)
    assert result["epochs"] == [{"run": 2, "best": result["epochs"][f]["best"], "ceiling": 2, "requested": 2,
                                 "no_stop_before": 0} for f in range(3)]
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["fold"], r["epoch"]) for r in rows] == [(str(f), str(e)) for f in range(3) for e in (1, 2)]
    assert all(float(r["valid_ndcg@100"]) >= 0 and float(r["loss"]) > 0 for r in rows)
    assert runner.evaluate_run(tmp_path / "run")["matches_saved"] is True


def test_config_toml_round_trip(capsys, implicit_csv, tmp_path):
    first = tmp_path / "a"
    assert run_cli(capsys, "-q", "train", "multdae", "--dataset", implicit_csv, "--protocol", "strong",
                   "--folds", "3", "--epochs", "1", "--set", "hidden=8", "--out", first)[0] == 0
    # the written config.toml alone repeats the run: same model config, same split, same numbers
    code, out, err = run_cli(capsys, "-q", "train", "--config", first / "config.toml", "--json", "--out", tmp_path / "b")
    assert code == 0, err
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (first, tmp_path / "b"))
    assert a["metrics"] == b["metrics"]
    assert json.loads((first / "config.json").read_text())["config"] == \
        json.loads((tmp_path / "b" / "config.json").read_text())["config"]


@pytest.mark.parametrize("args, message", [
    (["pop", "--protocol", "strong", "--set", "bogus=1"], r"model 'pop': unknown config key\(s\) bogus .*valid keys: seed"),
    (["multdae", "--protocol", "strong", "--set", "epochs=many"], "model 'multdae': 'epochs' must be an integer"),
    (["pop", "--protocol", "strong", "--epochs", "3"], "no 'epochs' setting; valid keys: seed"),
    (["pop", "--protocol", "ratings-kfold"], "ranking model and protocol 'ratings-kfold' is a rating protocol"),
    (["pop", "--protocol", "nonesuch"], "unknown protocol 'nonesuch'"),
    (["nomodel", "--protocol", "strong"], "unknown model 'nomodel'"),
    (["pop"], "--protocol is required"),
    (["pop", "--protocol", "strong", "--protocol-set", "bogus=1"], "bogus"),
    (["pop", "--protocol", "temporal", "--protocol-set", "mode=sideways"], "'mode' must be one of 'global', 'user', got 'sideways'"),
    (["pop", "--protocol", "full", "--protocol-set", "mode=user"], "protocol 'full' takes no options"),
])
def test_bad_arguments_are_one_line_errors(capsys, implicit_csv, tmp_path, args, message):
    code, out, err = run_cli(capsys, "train", *args, "--dataset", implicit_csv, "--out", tmp_path / "r")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "r").exists()


def test_protocol_set_reaches_the_protocol_and_wins_over_the_config(implicit_csv, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[protocol]\nmode = "global"\ntarget_frac = 0.3\n')
    spec = runner.resolve("pop", dataset=implicit_csv, protocol="temporal", folds=3, config_file=toml,
                          protocol_sets=["mode=user"])
    assert spec.protocol_options["mode"] == "user" and spec.protocol_options["n_folds"] == 3
    assert spec.protocol_options["target_frac"] == 0.3  # the file's other options stay
    # a run's config.toml still works with --protocol full: its [protocol] section is not an error
    full = runner.resolve("pop", dataset=implicit_csv, protocol="full", config_file=toml)
    assert full.protocol == "full"


def test_bad_config_file(capsys, implicit_csv, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nepochs = 2\n[extra]\nx = 1\n")
    code, _, err = run_cli(capsys, "train", "multdae", "--dataset", implicit_csv, "--protocol", "strong",
                           "--config", bad)
    assert code == 2 and "unknown section(s) extra" in err


def test_existing_run_needs_resume(capsys, pop_run, implicit_csv):
    out, _ = pop_run
    args = ["-q", "train", "pop", "--dataset", implicit_csv, "--protocol", "strong", "--folds", "3", "--out", out]
    code, _, err = run_cli(capsys, *args, "--seed", "1")
    assert code == 2 and "--resume" in err
    code, _, err = run_cli(capsys, *args, "--seed", "2", "--resume")
    assert code == 2 and "other settings" in err and "seed" in err
    # with --resume and the same settings, finished folds are reused as they are
    code, out_text, err = run_cli(capsys, *args, "--seed", "1", "--resume", "--json")
    assert code == 0 and json.loads(out_text)["metrics"] == pop_run[1]["metrics"]


def test_full_protocol_trains_one_servable_model(capsys, implicit_csv, tmp_path):
    code, out, err = run_cli(capsys, "-q", "train", "pop", "--dataset", implicit_csv, "--protocol", "full",
                             "--json", "--out", tmp_path / "run")
    assert code == 0, err
    info = json.loads(out)
    data = block_interactions(block_users=BIG_BLOCKS)
    assert (info["users"], info["items"], info["interactions"]) == (data.n_users, data.n_items, len(data))
    m = aerec.load(tmp_path / "run" / "full" / "model")
    assert m.histories.nnz == len(data)
    rec = m.recommend_user("u0", k=3)
    assert len(rec.item_ids) == 3


def test_rating_protocol(capsys, ratings_csv, tmp_path):
    code, out, err = run_cli(capsys, "-q", "train", "autorec", "--dataset", ratings_csv, "--protocol",
                             "ratings-kfold", "--folds", "2", "--epochs", "2", "--set", "hidden=8",
                             "--json", "--out", tmp_path / "run")
    assert code == 0, err
    result = json.loads(out)
    assert {"rmse", "mae"} <= set(result["metrics"])
    assert len(result["metrics"]["rmse"]["per_fold"]) == 2
    assert runner.evaluate_run(tmp_path / "run")["matches_saved"] is True
