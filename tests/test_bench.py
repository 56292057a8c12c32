"""aerec bench: files, resumability and significance marks on tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aerec.bench import grid, plan, run_bench
from aerec.bench.report import aggregate, mark_significance
from aerec.bench.stats import paired_pvalue, significance
from aerec.data import synth
from aerec.errors import ConfigError

TINY = {"multvae": {"epochs": 3, "hidden": (16,), "latent": 4, "batch_size": 32}}


def loader(name):
    return synth(120, 60, 2500, seed=3)


def run(tmp_path, **kw):
    return run_bench(tmp_path / "b", suite="quick", datasets=["tiny"], models=["pop", "multvae"], folds=3,
                     seed=0, loader=loader, overrides=TINY, **kw)


def test_tiny_bench_writes_every_file(tmp_path):
    res = run(tmp_path)
    out = tmp_path / "b"
    for name in ("results.md", "results.csv", "results.json", "run.json"):
        assert (out / name).stat().st_size > 0, name
    assert any(p.endswith(".png") for p in res["plots"])
    assert (out / "curves-tiny-ndcg100.png").exists()  # learning curves need the neural model
    md = (out / "results.md").read_text()
    assert "| pop |" in md and "| multvae |" in md and "± " in md
    rows = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in rows} == {"pop", "multvae"}
    assert all(len(r["metrics"]["ndcg@100"]["per_fold"]) == 3 for r in rows)
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["data_sha256"]["tiny"] and run_json["versions"]["torch"]


def test_interrupted_bench_resumes_without_recomputing(tmp_path, monkeypatch):
    real = grid.run_cell
    calls = []

    def flaky(cell, fold, task, position=None):
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if Ctrl-C hit during the fourth cell
        calls.append(cell.label())
        return real(cell, fold, task)

    import aerec.bench as bench_mod

    monkeypatch.setattr(bench_mod, "run_cell", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    saved = list((tmp_path / "b" / "cells").rglob("*.json"))
    assert len(saved) == 3  # every finished cell survived the interruption

    calls.clear()
    monkeypatch.setattr(bench_mod, "run_cell", lambda cell, fold, task, position=None: calls.append(cell.label()) or real(cell, fold, task))
    run(tmp_path)
    assert len(calls) == 6 - 3  # only the unfinished cells ran
    calls.clear()
    run(tmp_path)
    assert calls == []  # a finished grid recomputes nothing


def test_report_only_reports_finished_cells_and_names_the_rest(tmp_path, monkeypatch):
    import aerec.bench as bench_mod
    from aerec.errors import ConfigError

    with pytest.raises(ConfigError, match="no finished cell"):
        run(tmp_path, report_only=True)
    real = grid.run_cell
    done = []

    def two_then_stop(cell, fold, task, position=None):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(cell.label())
        return real(cell, fold, task)

    monkeypatch.setattr(bench_mod, "run_cell", two_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    monkeypatch.setattr(bench_mod, "run_cell", lambda *a, **k: pytest.fail("report-only ran a cell"))
    (tmp_path / "b" / "run.json").write_text(json.dumps({"seconds": 123.0}))  # as a finished earlier pass left it
    run(tmp_path, report_only=True)
    out = tmp_path / "b"
    md = (out / "results.md").read_text()
    assert "**Partial:** 4 cells have not finished" in md and "multvae tiny fold 3/3" in md
    run_json = json.loads((out / "run.json").read_text())
    assert len(run_json["unfinished_cells"]) == 4 and run_json["seconds"] == 123.0
    assert "--report-only" not in run_json["command"]
    rows = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    assert sum(len(r["metrics"]["ndcg@100"]["per_fold"]) for r in rows.values()) == 2
    with pytest.raises(ConfigError, match="overwrite"):
        run(tmp_path, report_only=True, overwrite=True)


def test_changed_config_is_a_new_cell():
    a = grid.Cell("multvae", "d", "strong", 0, 5, 0, {"epochs": 3})
    b = grid.Cell("multvae", "d", "strong", 0, 5, 0, {"epochs": 4})
    assert a.key() != b.key() and a.key() == grid.Cell("multvae", "d", "strong", 0, 5, 0, {"epochs": 3}).key()


# keys computed on main at 9f77acf (before cells had a precision), with __version__ pinned as below
OLD_KEYS = [
    (("multvae", "ml-100k", "strong", 2, 5, 0, {"epochs": 3, "device": "cuda", "amp": True}, {"valid_frac": 0.1}),
     {"ks": (10, 20)}, "1d4190ccffdf0d7c"),
    (("ease", "ml-1m", "strong", 0, 5, 0, {}), {}, "a0a71461a500e450"),
    (("multvae", "ml-1m", "strong", 1, 5, 7, {"device": "cuda"}), {"tuning_users": 0.1}, "d089a7e88795b50b"),
]


@pytest.mark.parametrize("args, kw, old", OLD_KEYS)
def test_precision_is_part_of_a_cell_key_only_when_not_fp32(args, kw, old, monkeypatch):
    monkeypatch.setattr(grid, "__version__", "pinned-for-test")
    keys = {p: grid.Cell(*args, **kw, precision=p).key() for p in ("fp32", "tf32", "bf16")}
    assert keys["fp32"] == grid.Cell(*args, **kw).key() == old  # every cached float32 cell is still found
    assert len(set(keys.values())) == 3


def test_a_bench_at_another_precision_does_not_reuse_float32_cells(tmp_path):
    def bench(precision, **kw):
        return run_bench(tmp_path / "b", suite="quick", datasets=["tiny"], models=["pop"], folds=3, seed=0,
                         loader=loader, where={"device": "cpu", "gpu": None, "precision": precision}, **kw)

    bench("fp32")
    bench("fp32", report_only=True)  # the float32 cells are found
    with pytest.raises(ConfigError, match="no finished cell"):
        bench("tf32", report_only=True)


def test_significance_marks_on_a_constructed_example():
    rng = np.random.default_rng(0)
    best = rng.uniform(0.4, 0.6, size=200)
    # mean gap 0.0005 against differences of +-0.01: t is about 0.7, not significant
    close = best - 0.0005 + np.where(np.arange(200) % 2 == 0, 0.01, -0.01)
    far = best - 0.2  # far below, constant gap: significant
    marks = significance({"best": best, "close": close, "far": far}, higher_is_better=True)
    assert marks["best"]["best"] and not marks["best"]["tie"]
    assert marks["close"]["tie"] and marks["close"]["p"] >= 0.05
    assert not marks["far"]["tie"] and marks["far"]["p"] < 0.05
    # lower is better (RMSE): the smallest mean is the best
    marks = significance({"a": np.array([0.9, 0.91, 0.92]), "b": np.array([1.0, 1.02, 1.01])}, higher_is_better=False)
    assert marks["a"]["best"] and not marks["b"]["best"]


def test_paired_pvalue_matches_hand_computation():
    # differences d = (1, 2, 3): mean 2, sd 1, t = 2 / (1/sqrt(3)) = 3.4641, df 2 -> p = 0.0742
    a, b = np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0])
    assert paired_pvalue(a, b) == pytest.approx(0.0742, abs=1e-4)
    assert paired_pvalue(a, a) == 1.0


def cell(model, fold, per_user, dataset="d"):
    """A finished ranking cell whose every metric has the given per-user values."""
    vals = np.asarray(per_user, dtype=np.float64)
    names = ("recall@20", "recall@50", "recall@100", "ndcg@100", "precision@100")
    return {"dataset": dataset, "model": model, "protocol": "strong", "fold": fold, "epochs": 1, "best_epoch": 1,
            "train_seconds": 0.1, "metrics": {m: float(vals.mean()) for m in names},
            "per_user": {m: vals for m in names}}


def test_table_marks_follow_the_tests(tmp_path):
    cells = [cell(model, f, np.linspace(0.5, 0.9, 50) + shift) for model, shift in (("good", 0.0), ("bad", -0.3))
             for f in range(2)]
    rows = aggregate(cells)
    mark_significance(rows, cells)
    good = next(r for r in rows if r["model"] == "good")
    bad = next(r for r in rows if r["model"] == "bad")
    assert good["sig"]["ndcg@100"]["best"] and not bad["sig"]["ndcg@100"]["tie"]


def test_svae_runs_under_its_own_temporal_protocol_beside_pop(tmp_path):
    data = synth(80, 40, 1600, seed=5)
    assert data.timestamp is not None
    tiny = {"svae": {"epochs": 2, "embed": 8, "rnn": 8, "hidden": 8, "latent": 4, "batch_size": 16}}
    res = run_bench(tmp_path / "b", suite="quick", datasets=["tiny"], models=["pop", "multvae", "svae"], folds=3,
                    seed=0, loader=lambda name: data, overrides={**TINY, **tiny})
    got = {(r["model"], r["protocol"]) for r in res["rows"]}
    # pop appears twice: once in the strong table, once as the temporal table's reference line
    assert got == {("pop", "strong"), ("multvae", "strong"), ("pop", "temporal"), ("svae", "temporal")}
    md = (tmp_path / "b" / "results.md").read_text()
    strong, temporal = md.index("(strong, 3 folds)"), md.index("(temporal: held-out users")
    assert strong < temporal and "| svae |" in md[temporal:] and "| svae |" not in md[strong:temporal]
    assert (tmp_path / "b" / "bars-tiny-temporal-topn.png").exists()
    # significance is judged within a table: each table has its own best
    best = {(r["protocol"], r["model"]) for r in res["rows"] if r.get("sig", {}).get("ndcg@100", {}).get("best")}
    assert {p for p, _ in best} == {"strong", "temporal"}
    cells = [p for p in (tmp_path / "b" / "cells").rglob("*.json") if "/svae/" in str(p)]
    assert cells and all(json.loads(p.read_text())["protocol_options"] == {"mode": "user"} for p in cells)


def test_plan_adds_reference_lines_only_beside_own_protocol_ranking_models():
    chosen = ["pop", "autorec", "multvae", "svae", "ease"]
    assert plan(chosen, "rating", "strong") == {("ratings-kfold", ()): ["autorec"]}
    assert plan(chosen, "ranking", "strong") == {("strong", ()): ["pop", "multvae", "ease"],
                                                 ("temporal", (("mode", "user"),)): ["pop", "ease", "svae"]}
    assert plan(["multvae", "svae"], "ranking", "weak") == {("weak", ()): ["multvae"],
                                                            ("temporal", (("mode", "user"),)): ["svae"]}


def test_base_comparison_pairs_each_model_with_the_one_it_builds_on():
    from aerec.bench.report import base_comparisons

    cells = [cell("ract", 0, [0.5, 0.6, 0.7], "tiny"), cell("ract", 1, [0.4, 0.5], "tiny"),
             cell("multvae", 0, [0.4, 0.5, 0.6], "tiny"), cell("multvae", 1, [0.3, 0.45], "tiny")]
    md = base_comparisons(aggregate(cells), cells)
    # per-user differences 0.1, 0.1, 0.1, 0.1, 0.05 over the two folds' users
    assert "| tiny | ract | multvae | 0.5400 | 0.4500 | +0.0900 |" in md
    assert base_comparisons(aggregate(cells[2:]), cells[2:]) == ""  # no pair, no section
