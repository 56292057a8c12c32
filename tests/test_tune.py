"""aerec tune: searches on validation data only and writes a TOML that aerec train accepts."""

from __future__ import annotations

import pytest

pytest.importorskip("optuna")

from aerec import config as cfgmod  # noqa: E402
from aerec import models  # noqa: E402
from aerec.data import synth  # noqa: E402
from aerec.tune import search_space, tune, write_toml  # noqa: E402


def test_search_space_follows_the_config_fields():
    assert set(search_space(models.get("ease"))) == {"l2"}
    assert {"lr", "dropout", "anneal_cap"} <= set(search_space(models.get("multvae")))
    assert set(search_space(models.get("wmf"))) == {"factors", "regularization", "alpha"}


def test_tune_never_reads_test_data_and_writes_loadable_toml(tmp_path, monkeypatch):
    data = synth(150, 60, 3000, seed=1)
    from aerec import evaluation

    seen = []
    real = evaluation.evaluate_ranking

    def spy(model, inp, tgt, **kw):
        seen.append(inp)
        return real(model, inp, tgt, **kw)

    monkeypatch.setattr(evaluation, "evaluate_ranking", spy)
    result = tune("ease", data, "strong", trials=3, seed=0, folds=3)
    fold = next(iter(__import__("aerec.protocols", fromlist=["get"]).get("strong", folds=3, seed=0).split(data)))
    # every scored matrix is exactly fold 0's validation input: test users are never scored
    assert seen and all(m.shape == fold.valid_in.shape and (m != fold.valid_in).nnz == 0 for m in seen)
    assert fold.test_in.shape != fold.valid_in.shape or (fold.test_in != fold.valid_in).nnz > 0
    assert result["trials"] == 3 and 1.0 <= result["config"]["l2"] <= 1e4
    path = tmp_path / "best.toml"
    write_toml(result, path, "synth", "strong")
    parsed = cfgmod.load_toml(path)
    assert parsed["model"]["l2"] == pytest.approx(result["config"]["l2"])
    models.create("ease", parsed["model"])  # the written config is valid for the model


# search spaces ----------------------------------------------------------------------------------

import json  # noqa: E402

import optuna  # noqa: E402

from aerec.errors import ConfigError  # noqa: E402
from aerec.models import space as spacemod  # noqa: E402


def _draw(cls, space, fixed=None, n=12, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        params = spacemod.sample(trial, space, cls, fixed)
        study.tell(trial, 0.0)
        out.append(params)
    return out


@pytest.mark.parametrize("name", models.names())
def test_every_declared_space_is_valid_and_its_draws_build_configs(name):
    cls = models.get(name)
    space = spacemod.model_space(cls)
    for params in _draw(cls, space, n=3):
        cfgmod.build(cls.Config, params)  # raises on a value the config refuses


def test_issue_coverage_of_the_spaces():
    want = {"multvae": {"hidden", "latent", "dropout", "lam", "anneal_cap", "total_anneal_steps", "lr"},
            "multdae": {"hidden", "dropout", "lam", "lr"},
            "recvae": {"gamma", "beta", "dropout", "hidden", "latent", "lr"},
            "cdae": {"dropout", "negatives", "hidden", "lr", "l2"},
            "ract": {"lr_critic", "lr_ac", "actor_epochs", "critic_epochs", "ac_epochs"},
            "warp": {"margin", "n_negatives", "lr"}, "lambdanet": {"n_negatives", "lr"},
            "ease": {"l2"}, "slim": {"l1", "l2"}, "wmf": {"factors", "regularization", "alpha"},
            "autorec": {"hidden", "lam", "lr"}, "deeprec": {"layers", "dropout", "lr"},
            "svae": {"embed", "hidden", "batch_size", "lr"}}
    for name, keys in want.items():
        assert keys <= set(models.get(name).space), name
    # SLIM has its own ranges, not EASE's
    assert models.get("slim").space["l2"] != models.get("ease").space["l2"]


def test_conditional_parameter_follows_when():
    cls = models.get("recvae")
    draws = _draw(cls, spacemod.model_space(cls), n=30)
    assert any(d["beta"] is None for d in draws) and any(d["beta"] is not None for d in draws)
    for d in draws:
        assert ("gamma" in d) == (d["beta"] is None)
    # a condition on a fixed (not searched) setting
    space = {"gamma": {"type": "float", "low": 1e-3, "high": 1e-2, "when": {"beta": None}}}
    assert all("gamma" not in d for d in _draw(cls, space, fixed={"beta": "0.2"}, n=3))
    assert all("gamma" in d for d in _draw(cls, space, n=3))


def test_list_choices_and_derived_sum():
    cls = models.get("ract")
    draws = _draw(cls, spacemod.model_space(cls), n=5)
    for d in draws:
        assert d["epochs"] == d["actor_epochs"] + d["critic_epochs"] + d["ac_epochs"]
    cls = models.get("multvae")
    draws = _draw(cls, {"hidden": {"type": "categorical", "choices": [[600], [600, 300]]}}, n=12)
    assert {json.dumps(d["hidden"]) for d in draws} == {"[600]", "[600, 300]"}


@pytest.mark.parametrize("space, message", [
    ({"nope": {"type": "float", "low": 0, "high": 1}}, "not a config field"),
    ({"lr": {"type": "float", "low": 1.0, "high": 0.1}}, "above 'high'"),
    ({"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log scale"),
    ({"lr": {"type": "gaussian"}}, "needs a 'type'"),
    ({"latent": {"type": "int", "low": 1.5, "high": 9}}, "integers"),
    ({"hidden": {"type": "categorical", "choices": []}}, "non-empty"),
    ({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "when": {"bogus": 1}}}, "'when'"),
    ({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "step": 2}}, "unknown spec key"),
])
def test_bad_spaces_are_refused(space, message):
    with pytest.raises(ConfigError, match=message):
        spacemod.validate(space, models.get("multvae"))


def test_command_line_and_toml_overrides():
    cls = models.get("multvae")
    o = spacemod.parse_overrides(["lr=1e-4:1e-2:log", "latent=32:400", "hidden=[600]|[300]", "dropout=off"], cls)
    assert o["lr"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert o["latent"] == {"type": "int", "low": 32, "high": 400, "log": False}
    assert o["hidden"] == {"type": "categorical", "choices": [[600], [300]]}
    merged = spacemod.apply_overrides(spacemod.model_space(cls), o, cls)
    assert "dropout" not in merged and merged["latent"]["high"] == 400
    t = spacemod.table_overrides({"lam": "0.001:1:log", "anneal_cap": False,
                                  "lr": {"type": "float", "low": 0.001, "high": 0.01}}, cls)
    merged = spacemod.apply_overrides(spacemod.model_space(cls), t, cls)
    assert "anneal_cap" not in merged and merged["lam"]["low"] == 0.001 and merged["lr"]["low"] == 0.001
    for bad in (["lr=fast"], ["nope=1:2"], ["lr"]):
        with pytest.raises(ConfigError):
            spacemod.parse_overrides(bad, cls)


# storage, resume, users --------------------------------------------------------------------------


def test_killed_study_resumes_from_its_storage(tmp_path):
    data = synth(150, 60, 3000, seed=1)
    first = tune("ease", data, "strong", trials=2, seed=0, folds=3, directory=tmp_path / "study")
    assert first["trials"] == 2 and (tmp_path / "study" / "study.db").exists()
    again = tune("ease", data, "strong", trials=3, seed=0, folds=3, directory=tmp_path / "study")
    assert again["trials"] == 3 and again["study"] == first["study"]
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    study = optuna.load_study(study_name=first["study"], storage=storage)
    assert len(study.trials) == 3  # the re-run added one trial, it did not start over
    # the first two trials are the same ones as before
    assert [t["params"] for t in again["log"][:2]] == [t["params"] for t in first["log"]]


def test_a_study_at_another_precision_is_a_new_study(tmp_path):
    """tf32 / bf16 trials never join a float32 study; a float32 study keeps its old name."""
    data = synth(150, 60, 3000, seed=1)
    where = {"device": "cpu", "gpu": None}
    names = {p: tune("ease", data, "strong", trials=1, seed=0, folds=3, directory=tmp_path / "study",
                     where={**where, "precision": p})["study"] for p in ("fp32", "tf32")}
    assert names["fp32"] == tune("ease", data, "strong", trials=1, seed=0, folds=3, directory=tmp_path / "study")["study"]
    assert names["tf32"] != names["fp32"]


KILLED_STUDY = """
import sys, time
from aerec import models, protocols
from aerec.data import synth
from aerec.models import training
from aerec.tune import run_study

real = training.validation_score
training.validation_score = lambda m, v: (time.sleep(1.0), real(m, v))[1]  # a slow trial to kill mid-way
data = synth(120, 50, 2500, seed=2)
fold = protocols.get("strong", folds=3, seed=0).folds(data)[0]
run_study(models.get("multdae"), fold, fixed={"epochs": 5, "hidden": [8], "batch_size": 32},
          space={"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}, trials=2,
          storage=sys.argv[1], name="killed", heartbeat=1, keep_model=False)
"""


def test_a_trial_killed_mid_run_is_rerun_when_the_study_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from aerec import protocols
    from aerec.tune import run_study, sqlite_url

    url = sqlite_url(tmp_path / "s.db")
    script = tmp_path / "kill_me.py"
    script.write_text(KILLED_STUDY)
    proc = subprocess.Popen([sys.executable, str(script), url], env={**os.environ, "AEREC_QUIET": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the first trial has reported an epoch
            time.sleep(0.2)
            assert proc.poll() is None, "the study ended before it could be killed"
            try:
                trials = optuna.load_study(study_name="killed", storage=url).trials
            except KeyError:
                continue
            if trials and trials[0].intermediate_values:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    study = optuna.load_study(study_name="killed", storage=url)
    assert [t.state.name for t in study.trials] == ["RUNNING"]  # what a kill leaves behind
    killed_params = study.trials[0].params
    time.sleep(4.0)  # past the 2 s grace period, which SQLite measures in whole seconds

    data = synth(120, 50, 2500, seed=2)
    fold = protocols.get("strong", folds=3, seed=0).folds(data)[0]
    res = run_study(models.get("multdae"), fold, fixed={"epochs": 5, "hidden": [8], "batch_size": 32},
                    space={"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}, trials=2,
                    storage=url, name="killed", heartbeat=1, grace=2, keep_model=False)
    trials = optuna.load_study(study_name="killed", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == killed_params and trials[1].system_attrs["failed_trial"] == 0  # the rerun
    assert res["trials"] == 2 and res["complete"] == 2  # the killed trial does not spend the budget


def test_tune_records_disjoint_tuning_and_test_users():
    data = synth(150, 60, 3000, seed=1)
    res = tune("ease", data, "strong", trials=1, seed=0, folds=3, fold=2)
    u = res["tuning_users"]
    assert u["fold"] == 2 and u["disjoint"] and u["fit_users"] + u["score_users"] + u["test_users"] <= 150
    assert len({u["fit_users_sha256"], u["score_users_sha256"], u["test_users_sha256"]}) == 3


def test_neural_trials_report_epochs_and_stop_at_the_time_cap():
    data = synth(120, 50, 2500, seed=2)
    fixed = {"epochs": 30, "hidden": "16", "latent": 4, "batch_size": 32}
    res = tune("multvae", data, "strong", trials=5, seed=0, folds=3, fixed=fixed, timeout=1e-9,
               space_overrides={"hidden": None, "latent": None})
    # the cap is spent inside the first trial: it stops after one epoch and no further trial starts
    assert res["trials"] == 1 and res["log"][0]["stopped_at_epoch"] == 1 and res["log"][0]["epochs"] == 1


def test_cli_tune_uses_space_flags_and_resumes(tmp_path, capsys):
    from conftest import block_interactions, write_csv

    from aerec.cli import main

    csv = write_csv(block_interactions(), tmp_path / "d.csv")
    args = ["tune", "ease", "--dataset", csv, "--folds", "3", "--space", "l2=1:100:log", "--dir", str(tmp_path / "s"),
            "--out", str(tmp_path / "best.toml"), "--json"]
    assert main(args + ["--trials", "2"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args + ["--trials", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["trials"] == 3 and res["study"] == first["study"] and 1 <= res["config"]["l2"] <= 100
    assert (tmp_path / "s" / "tuning.json").exists()
    text = (tmp_path / "best.toml").read_text()
    assert "test users were never read" in text
    models.create("ease", cfgmod.load_toml(tmp_path / "best.toml")["model"])
    assert main(["tune", "ease", "--dataset", csv, "--space", "l2=fast", "--dir", str(tmp_path / "x")]) == 2
    assert res["selection"]["rule"] == "paired"
    assert main(args + ["--trials", "3", "--select", "best"]) == 0
    assert json.loads(capsys.readouterr().out)["selection"]["rule"] == "best"


def test_default_point_is_the_reference_setting_clipped_into_the_space():
    cls = models.get("multvae")
    space = {"lr": {"type": "float", "low": 1e-2, "high": 0.1, "log": True},  # default 1e-3: below, clipped
             "latent": {"type": "int", "low": 32, "high": 400},
             "hidden": {"type": "categorical", "choices": [[600], [300]]},
             "dropout": {"type": "categorical", "choices": [0.1, 0.9]}}  # default 0.5: not a choice, left out
    point = spacemod.default_point(space, cls)
    assert point == {"lr": 1e-2, "latent": cls.Config().latent, "hidden": "[600]"}
    rec = models.get("recvae")  # conditional: gamma is searched only when beta is None (the default)
    assert "gamma" in spacemod.default_point(spacemod.model_space(rec), rec)
    assert "gamma" not in spacemod.default_point(spacemod.model_space(rec), rec, {"beta": 0.2})


def test_a_new_study_starts_from_the_reference_setting():
    data = synth(150, 60, 3000, seed=1)
    res = tune("ease", data, "strong", trials=3, seed=0, folds=3)
    assert res["log"][0]["params"] == {"l2": models.get("ease").Config().l2}
    assert len({json.dumps(t["params"]) for t in res["log"]}) == 3  # the others are drawn


# protocols whose test users train --------------------------------------------------------------


@pytest.mark.parametrize("protocol, options", [("weak", {"k_core": 2}), ("temporal", {})])
def test_tuning_refuses_a_protocol_that_trains_on_its_test_users(protocol, options):
    data = synth(150, 60, 3000, seed=1)
    with pytest.raises(ConfigError, match="trains on its own test users"):
        tune("ease", data, protocol, trials=1, folds=1, protocol_options=options)


def test_a_study_refuses_a_fold_whose_test_users_train():
    from aerec import protocols
    from aerec.tune import run_study

    data = synth(150, 60, 3000, seed=1)
    fold = protocols.get("weak", k_core=2).folds(data)[0]  # the Python API's way round the protocol check
    with pytest.raises(ConfigError, match="test users are among its training"):
        run_study(models.get("ease"), fold, trials=1)


def test_cli_tune_weak_is_refused_in_one_line(tmp_path, capsys):
    from conftest import block_interactions, write_csv

    from aerec.cli import main

    csv = write_csv(block_interactions(), tmp_path / "d.csv")
    assert main(["tune", "ease", "--dataset", csv, "-p", "weak", "--dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert "trains on its own test users" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


# selection that survives noise ------------------------------------------------------------------


def _study_with(start_values, best_values, start_mean=0.40, best_mean=0.41):
    dist = optuna.distributions.FloatDistribution(1.0, 1000.0)
    study = optuna.create_study(direction="maximize")
    for mean, values, start in ((start_mean, start_values, True), (best_mean, best_values, False)):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=mean, params={"l2": 500.0 if start else 3.0},
            distributions={"l2": dist},
            user_attrs={"start": start, "params": {}, "config": {}, "valid_per_user": list(values)}))
    return study


def test_a_trial_replaces_the_start_only_when_a_paired_test_says_so():
    import numpy as np

    from aerec.tune_select import ALPHA
    from aerec.tune_select import select_trial as _select

    rng = np.random.default_rng(0)
    base = rng.random(400)
    noisy = base + 0.01 + rng.normal(0, 0.5, 400)  # a lead of 0.01 buried in noise
    chosen, rec = _select(_study_with(base, noisy), optuna, "paired", ALPHA, True, None, None, None)
    assert chosen.number == 0 and rec["kept_start"] and rec["p"] >= ALPHA and rec["pairs"] == 400
    steady = base + 0.01 + rng.normal(0, 0.001, 400)  # the same lead on nearly every user
    chosen, rec = _select(_study_with(base, steady), optuna, "paired", ALPHA, True, None, None, None)
    assert chosen.number == 1 and not rec["kept_start"] and rec["p"] < 1e-6
    chosen, rec = _select(_study_with(base, noisy), optuna, "best", ALPHA, True, None, None, None)
    assert chosen.number == 1 and rec["p"] is None  # the old rule: the best mean wins


def test_run_study_reports_its_selection_and_the_chosen_setting():
    data = synth(150, 60, 3000, seed=1)
    res = tune("ease", data, "strong", trials=4, seed=0, folds=3)
    sel = res["selection"]
    assert sel["rule"] == "paired" and sel["alpha"] == 0.05 and sel["start_trial"] == 0
    chosen = next(t for t in res["log"] if t["number"] == sel["chosen_trial"])
    assert res["config"]["l2"] == pytest.approx(chosen["params"]["l2"])
    assert sel["kept_start"] == (sel["chosen_trial"] == 0)


def test_rating_selection_pairs_are_per_user_mean_squared_errors():
    import numpy as np

    from aerec import evaluation, protocols
    from aerec.tune_select import per_user_validation

    data = synth(80, 40, 1500, seed=4)
    fold = protocols.get("ratings-kfold", folds=3, seed=0).folds(data)[0]
    model = models.create("autorec", {**models.get("autorec").test_overrides, "epochs": 2}).fit(fold.train)
    per_user = per_user_validation(model, fold.valid)
    counts = np.bincount(fold.valid.tocoo().row)
    assert len(per_user) == int((counts > 0).sum())  # one value per user with validation ratings
    mse = evaluation.evaluate_rating(model, fold.valid)["rmse"] ** 2
    assert np.average(per_user, weights=counts[counts > 0]) == pytest.approx(mse, rel=1e-9)
