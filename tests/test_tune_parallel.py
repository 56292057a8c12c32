"""Trials in parallel (issue 25, item 5): processes sharing the study's storage, seeds per trial
number. The sequential path still draws what it drew before the per-trial sampler."""

import json

import pytest
from conftest import block_interactions

from aerec.errors import ConfigError

pytest.importorskip("optuna")

FIXED = {"epochs": 3, "hidden": [8], "batch_size": 16}
# tune("multdae", block_interactions(), "strong", trials=5, seed=0, folds=3, fixed=FIXED) on main at
# d60400e (a fresh TPE sampler seeded per trial, set before each trial): the params of its trials
BEFORE = [{"dropout": 0.5, "lam": 0.01, "lr": 0.001}, {"dropout": 0.33361760376205923, "lam": 0.07608481233714794, "lr": 0.00010005268542378313}, {"dropout": 0.6254256570508288, "lam": 0.002435497200193741, "lr": 0.0007195469732822398}, {"dropout": 0.09843664009837039, "lam": 0.04562613899113107, "lr": 0.007462993543108888}, {"dropout": 0.1494542165176091, "lam": 0.00022939533913866048, "lr": 0.0002052810940300691}]


def _tune(**kw):
    from aerec.tune import tune

    return tune("multdae", block_interactions(), "strong", seed=0, folds=3, fixed=FIXED, **kw)


def test_sequential_study_draws_as_before():
    log = _tune(trials=5)["log"]
    for t, want in zip(log, BEFORE):
        assert t["params"] == pytest.approx(want, rel=1e-12)
    assert [t["sampler_seed"] for t in log] == [log[0]["sampler_seed"] + i for i in range(5)]


def test_two_trial_jobs_share_the_study_and_keep_per_trial_seeds(tmp_path):
    seq = _tune(trials=4, directory=tmp_path / "seq")
    par = _tune(trials=4, directory=tmp_path / "par", trial_jobs=2)
    log = par["log"]
    finished = [t for t in log if t["state"] in ("complete", "pruned", "fail")]
    assert 4 <= len(finished) <= 5 and par["trial_jobs"] == 2
    assert sorted(t["number"] for t in log) == list(range(len(log)))  # numbers from the shared storage
    base = seq["log"][0]["sampler_seed"]
    assert all(t["sampler_seed"] == base + t["number"] for t in log)
    # the reference point first, then random draws that depend only on the trial's seed: the
    # same as the sequential study's, whichever process ran them
    by_number = {t["number"]: t["params"] for t in log}
    for t in seq["log"][:2]:
        assert by_number[t["number"]] == pytest.approx(t["params"], rel=1e-12)
    saved = json.loads((tmp_path / "par" / "tuning.json").read_text())
    assert saved["trial_jobs"] == 2 and all("sampler_seed" in t for t in saved["log"])


def test_parallel_trials_need_a_shared_storage():
    with pytest.raises(ConfigError, match="storage"):
        _tune(trials=2, trial_jobs=2)


def test_cli_trial_jobs(tmp_path, capsys):
    from conftest import write_csv

    from aerec.cli import main

    csv = write_csv(block_interactions(), tmp_path / "d.csv")
    assert main(["tune", "ease", "-d", csv, "--folds", "3", "--trials", "3", "--trial-jobs", "2",
                 "--dir", str(tmp_path / "s"), "--out", str(tmp_path / "best.toml"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["trials"] >= 3 and res["trial_jobs"] == 2
    assert main(["-q", "bench", "-d", csv, "--models", "pop", "--trial-jobs", "2", "--out", str(tmp_path / "b")]) == 2
    assert "--suite tuned" in capsys.readouterr().err
