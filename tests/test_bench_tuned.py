"""aerec bench --suite tuned on tiny synthetic data: files, leak-freedom, pairing and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("optuna")

from aerec import protocols  # noqa: E402
from aerec.bench import grid  # noqa: E402
from aerec.bench import tuned as tuned_mod  # noqa: E402
from aerec.bench.tuned import run_tuned  # noqa: E402
from aerec.data import synth  # noqa: E402

DATA = synth(120, 60, 2500, seed=3)
TINY = {"multvae": {"epochs": 3, "hidden": (16,), "latent": 4, "batch_size": 32},
        "autorec": {"epochs": 3, "hidden": 8}}
SPACE = {"multvae": {"latent": None, "hidden": None, "total_anneal_steps": None, "lam": None},
         "autorec": {"hidden": None}}


def run(out, **kw):
    return run_tuned(out, datasets=["tiny"], models=["pop", "ease", "multvae", "autorec"], folds=3, trials=2,
                     loader=lambda name: DATA, overrides=TINY, space_overrides=SPACE, storage="memory", tune_on="fold", **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned") / "b"
    return out, run(out)


def test_tuned_suite_writes_the_side_by_side_report(finished):
    out, res = finished
    for name in ("results.md", "results.json", "comparison.json", "tuning-users.json", "trials.json", "run.json",
                 "trials-tiny.png"):
        assert (out / name).stat().st_size > 0, name
    rows = {(r["model"], r["protocol"]): r for r in json.loads((out / "comparison.json").read_text())}
    for key in (("ease", "strong"), ("multvae", "strong"), ("autorec", "ratings-kfold")):
        r = rows[key]
        assert r["folds"] == [0, 1, 2] and r["trials"] == 2 and 0 <= r["p"] <= 1
        assert r["pairing"] == ("folds" if key[0] == "autorec" else "users")
        assert r["difference"] == pytest.approx(r["paired_tuned"] - r["paired_reference"])
    assert "tuned" not in rows[("pop", "strong")] and "reference" in rows[("pop", "strong")]  # pop has no space
    md = (out / "results.md").read_text()
    assert "reference settings vs tuned" in md and "| ease |" in md and "2 finished trials" in md
    assert "validation → test" in md and "one-sided paired t-test" in md and "### Chosen setting per fold" in md
    # three columns: reference, the untuned default (the study's start), tuned; each gain with its test
    assert "| ease | " in md and "= reference" in md
    mv = rows[("multvae", "strong")]
    assert mv["default_folds"] == [0, 1, 2] and 0 <= mv["tuned_vs_default"]["p"] <= 1
    assert mv["tuned_vs_default"]["difference"] + mv["default_vs_reference"]["difference"] == pytest.approx(
        mv["difference"])
    assert rows[("ease", "strong")]["default_same_as_reference"] is True
    sel = [t for t in json.loads((out / "comparison.json").read_text()) if "validation" in t]
    assert sel and all(r["valid_test_gap"] == pytest.approx(r["tuned"] - r["validation"]) for r in sel)
    budget = json.loads((out / "run.json").read_text())["budget"]
    assert budget["trials_per_fold"] == 2
    trials = json.loads((out / "trials.json").read_text())
    assert all(len(t["log"]) == 2 for t in trials)


def test_a_fold_study_never_scores_that_folds_test_users(tmp_path, monkeypatch):
    from aerec import evaluation

    seen = []
    real = evaluation.evaluate_ranking
    monkeypatch.setattr(evaluation, "evaluate_ranking", lambda m, inp, tgt, **kw: seen.append(inp) or real(m, inp, tgt, **kw))
    run_tuned(tmp_path / "b", datasets=["tiny"], models=["ease"], folds=3, trials=2, loader=lambda n: DATA,
              reference="none", storage="memory", tune_on="fold")
    folds = list(protocols.get("strong", folds=3, seed=0).split(DATA))
    same = lambda a, b: a.shape == b.shape and (a != b).nnz == 0  # noqa: E731
    for f in folds:  # each fold: 2 trials scored on its validation users (the mean, then the per-user
        # values of the selection test), then one test evaluation
        assert sum(same(m, f.valid_in) for m in seen) == 2 * 2
        assert sum(same(m, f.test_in) for m in seen) == 1
    assert len(seen) == 3 * 5


def test_finished_tuned_suite_resumes_without_work(finished, monkeypatch):
    out, res = finished
    boom = lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed"))  # noqa: E731
    monkeypatch.setattr(tuned_mod, "tune_cell", boom)
    monkeypatch.setattr(tuned_mod, "run_cell", boom)
    again = run(out)
    assert [r["model"] for r in again["comparison"]] == [r["model"] for r in res["comparison"]]
    assert np.allclose([r.get("p", 0) for r in again["comparison"]], [r.get("p", 0) for r in res["comparison"]])


def test_reference_rows_can_come_from_a_finished_paper_run(tmp_path, finished):
    out, _ = finished
    ref = tmp_path / "paper"
    ref.mkdir()
    (ref / "results.json").write_text(json.dumps([{"dataset": "tiny", "model": "ease", "protocol": "strong",
                                                   "metrics": {"ndcg@100": {"per_fold": [0.1, 0.2, 0.3]}}}]))
    res = run_tuned(tmp_path / "b", datasets=["tiny"], models=["ease"], folds=3, trials=2, loader=lambda n: DATA,
                    reference=str(ref), storage="memory", tune_on="fold")
    row = res["comparison"][0]
    assert row["reference_source"] == "results.json" and row["pairing"] == "folds"
    assert row["reference"] == pytest.approx(0.2) and row["n_pairs"] == 3
    assert grid.Cell  # the suite keeps using the shared cell cache


def test_cli_runs_the_tuned_suite(tmp_path, capsys):
    from conftest import block_interactions, write_csv

    from aerec.cli import main

    csv = write_csv(block_interactions(), tmp_path / "d.csv")
    args = ["bench", "--suite", "tuned", "--datasets", csv, "--models", "ease", "--folds", "3", "--trials", "1",
            "--reference", "none", "--storage", "memory", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    assert "reference settings vs tuned" in (tmp_path / "o" / "results.md").read_text()
    assert main(args[:-2] + ["--reference", str(tmp_path / "missing"), "--out", str(tmp_path / "p")]) == 2


def test_report_only_runs_nothing_and_says_what_is_missing(tmp_path, monkeypatch):
    boom = lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran"))  # noqa: E731
    monkeypatch.setattr(tuned_mod, "tune_cell", boom)
    monkeypatch.setattr(tuned_mod, "run_cell", boom)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.json").write_text(json.dumps({"seconds": 55.0}))  # an earlier pass's timing stays
    run_tuned(tmp_path / "b", datasets=["tiny"], models=["ease"], folds=3, trials=2, loader=lambda n: DATA,
              storage="memory", report_only=True)
    md = (tmp_path / "b" / "results.md").read_text()
    assert "**Unfinished:** 6 cells" in md
    run_json = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run_json["unfinished_cells"] == 6 and run_json["seconds"] == 55.0


def test_trial_patience_lives_beside_each_model():
    from aerec import models
    from aerec.bench.tuned import PATIENCE, base_config

    def patience(name):
        return base_config(models.get(name)).get("patience")

    assert patience("multvae") == PATIENCE == 10
    # their references do not stop early, so neither do their trials; H+Vamp's own rule is 50
    assert patience("warp") is patience("lambdanet") is patience("bivae") is None and patience("hvamp") == 50
    assert patience("ract") is None and base_config(models.get("ease")) == {}  # fixed phases; closed form


def test_a_missing_tuned_row_says_unfinished_not_unsearched():
    from aerec.bench.tuned import comparison_markdown

    rows = [{"dataset": "d", "protocol": "strong", "model": m, "metric": "ndcg@100", "reference": 0.4,
             "tuned_folds": [], "reference_folds": [0]} for m in ("bivae", "pop")]
    md = comparison_markdown(rows, {"bivae"})
    assert "| bivae |" in md and "not run yet" in md.split("| bivae |")[1].splitlines()[0]
    assert "no space" in md.split("| pop |")[1].splitlines()[0]


def test_tune_final_full_trains_a_capped_best_setting_to_its_end():
    from aerec import models
    from aerec.errors import ConfigError
    from aerec.tune import run_study

    cls = models.get("multvae")
    fold = protocols.get("strong", folds=3, seed=0).folds(DATA)[0]
    fixed = {"epochs": 6, "hidden": [16], "latent": 4, "batch_size": 32, "patience": 0}
    space = {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
    cut = run_study(cls, fold, fixed=fixed, space=space, trials=1, timeout=1e-9, clock="cpu")
    assert cut["cut_at_epoch"] == 1 and cut["model"].epochs_run == 1 and cut["retrained"] is False
    full = run_study(cls, fold, fixed=fixed, space=space, trials=1, timeout=1e-9, clock="cpu", final="full")
    assert full["retrained"] == "full" and full["model"].epochs_run == 6  # the setting's own epochs
    with pytest.raises(ConfigError):
        run_study(cls, fold, fixed=fixed, space=space, trials=1, final="longest")


# tuning-only users -----------------------------------------------------------------------------


def test_tuning_users_mode_runs_one_study_per_model_and_pairs_on_the_same_folds(tmp_path, monkeypatch):
    from aerec import tune as tunemod
    from aerec.errors import ConfigError
    from aerec.protocols.tuning_users import set_aside

    studies = []
    real = tunemod.run_study
    monkeypatch.setattr(tunemod, "run_study", lambda cls, fold, **kw: studies.append(kw["name"]) or real(cls, fold, **kw))
    out = tmp_path / "b"
    res = run_tuned(out, datasets=["tiny"], models=["ease", "autorec"], folds=3, trials=2, loader=lambda n: DATA,
                    overrides=TINY, space_overrides=SPACE, storage=None, tune_on="tuning-users", tune_share=0.2)
    assert len(studies) == 2 and all("tuning-users" in s for s in studies)  # one per model, not per fold
    assert sorted(p.name for p in (out / "studies" / "tiny" / "ease").iterdir()) == ["strong-tuning-users.db"]
    tuning, rest = set_aside(DATA, 0.2, 0)
    folds = protocols.get("strong", folds=3, seed=0).folds(rest)  # the reported folds: the other users only
    rows = {r["model"]: r for r in res["comparison"]}
    assert rows["ease"]["pairing"] == "users" and rows["ease"]["n_pairs"] == sum(
        int((f.test_out.getnnz(axis=1) > 0).sum()) for f in folds)
    records = json.loads((out / "tuning-users.json").read_text())
    assert all(r["mode"] == "tuning-users" and r["disjoint"] and r["share"] == 0.2 for r in records)
    md = (out / "results.md").read_text()
    assert "one study on the tuning-only users (20% of the users" in md
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["tune_on"] == "tuning-users" and run_json["tuning_users_share"] == 0.2
    with pytest.raises(ConfigError, match="--reference DIR cannot pair"):
        run_tuned(tmp_path / "c", datasets=["tiny"], models=["ease"], folds=3, loader=lambda n: DATA,
                  reference=str(out), tune_on="tuning-users")
def test_failed_trials_of_the_tuned_suite_log_their_tracebacks_in_the_study_log(tmp_path, capsys):
    # issue 24: every trial of a study fails; the error names the study's log file, which exists
    from aerec.errors import AerecError

    with pytest.raises(AerecError, match="no trial finished") as err:
        run_tuned(tmp_path / "b", datasets=["tiny"], models=["ease"], folds=3, trials=1, loader=lambda n: DATA,
                  overrides={"ease": {"max_memory_gb": 1e-9}}, reference="none", storage="memory")
    log = tmp_path / "b" / "studies" / "tiny" / "ease" / "strong-fold-0.log"
    assert str(log) in str(err.value)
    assert "Traceback" in log.read_text() and "ResourceError" in log.read_text()
    assert "Traceback" not in capsys.readouterr().err


def test_a_model_whose_library_is_missing_is_refused_before_any_work(tmp_path, monkeypatch):
    # The tuned suite used to find out only when the model's cells came up, hours into a run.
    import sys

    from aerec.deps import MissingDependency
    from aerec.models.ease import EASE

    boom = lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran"))  # noqa: E731
    monkeypatch.setattr(tuned_mod, "tune_cell", boom)
    monkeypatch.setattr(tuned_mod, "run_cell", boom)
    monkeypatch.setattr(EASE, "requires", (("aerec_absent_lib", "absent"),), raising=False)
    monkeypatch.setitem(sys.modules, "aerec_absent_lib", None)  # import fails
    with pytest.raises(MissingDependency, match="model 'ease' needs"):
        run_tuned(tmp_path / "o", datasets=["tiny"], models=["pop", "ease"], folds=3, trials=1,
                  loader=lambda n: DATA, storage="memory")


def test_a_failed_cell_cancels_the_queued_ones():
    import threading
    from concurrent.futures import ThreadPoolExecutor, as_completed

    ran, gate = [], threading.Event()

    def job(i):
        if i == 0:
            raise RuntimeError("cell 0 failed")
        gate.wait(2)
        ran.append(i)

    with pytest.raises(RuntimeError, match="cell 0 failed"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(job, i) for i in range(20)]
            with grid.cancel_on_failure(pool):
                for fut in as_completed(futures):
                    fut.result()
    # the job running beside the failure, and one its worker may take before the cancel, finish
    # (their gate times out); the other 17 queued never start
    assert len(ran) <= 2
