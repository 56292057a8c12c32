"""What `make demo` / `make demo-smoke` rely on: --smoke, one progress line per cell with an ETA,
the table and report path printed at the end."""

from __future__ import annotations

import json
import re

import pytest
from conftest import block_interactions, write_csv

import aerec.bench as bench_mod
from aerec.bench import grid, run_bench, suites
from aerec.cli import main
from aerec.data import synth

TINY = {"multvae": {"hidden": (16,), "latent": 4, "batch_size": 32}}


class Clock:
    now = 0.0

    @classmethod
    def perf_counter(cls):
        return cls.now


def result(model="pop", fold=0, value=0.5):
    return {"model": model, "dataset": "d", "fold": fold, "metrics": {"ndcg@100": value}, "epochs": 3,
            "train_seconds": 1.25}


def test_eta_starts_from_the_prior_and_then_follows_the_clock(monkeypatch):
    monkeypatch.setattr(bench_mod, "time", Clock)
    Clock.now = 100.0
    p = bench_mod.Progress([10.0, 10.0, 20.0], jobs=2)
    assert p.estimate() == pytest.approx(20.0)  # 40 s of expected cost on 2 workers
    Clock.now = 130.0  # the first cell (10 expected) took 30 s: this machine is 3x slower
    line = p.done(grid.Cell("pop", "d", "strong", 0, 5, 0, weight=10.0), result())
    assert p.estimate() == pytest.approx(90.0)  # 30 expected left, at 3 s per expected second
    assert line == "[1/3] pop d fold 1/5: ndcg@100 0.5000, 3 epochs, 1.2s train | elapsed 0:30, ETA 1:30"
    p.done(grid.Cell("pop", "d", "strong", 1, 5, 0, weight=10.0), result(fold=1))
    Clock.now = 200.0
    last = p.done(grid.Cell("pop", "d", "strong", 2, 5, 0, weight=20.0), result(fold=2))
    assert last.endswith("elapsed 1:40, ETA 0:00")


def test_expected_seconds_scale_with_epochs_and_data():
    base = suites.expected_seconds("multvae", suites.SUITES["quick"]["multvae"], 100_000)
    assert base == pytest.approx(suites.QUICK_SECONDS["multvae"])
    assert suites.expected_seconds("multvae", {"epochs": 30}, 200_000) == pytest.approx(base)
    assert suites.expected_seconds("no-such-model", {}, 100_000) > 0


def test_smoke_runs_every_model_on_three_short_folds(tmp_path, capsys):
    out = tmp_path / "smoke"
    run_bench(out, suite="quick", datasets=["tiny"], models=["pop", "multvae"], folds=5, smoke=True,
              loader=lambda name: synth(120, 60, 2500, seed=3), overrides=TINY)
    run = json.loads((out / "run.json").read_text())
    assert run["folds"] == suites.SMOKE_FOLDS == 3 and run["smoke"] is True
    assert run["cpu_seconds"] > 0 and "start" in run["load_average"]
    cells = [json.loads(p.read_text()) for p in (out / "cells").rglob("*.json")]
    assert sorted((c["model"], c["fold"]) for c in cells) == [(m, f) for m in ("multvae", "pop") for f in range(3)]
    assert all(c["epochs"] <= 2 for c in cells) and all(c["cpu_seconds"] >= 0 for c in cells)
    assert "(smoke)" in (out / "results.md").read_text()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if re.match(r"\[\s*\d+/6\] ", ln)]
    assert len(lines) == 6 and all("ETA" in ln for ln in lines)  # one line per model and fold


def test_bench_prints_the_table_and_the_report_path(tmp_path, capsys):
    data = write_csv(block_interactions(block_users=(30, 24, 18)), tmp_path / "blocks.csv")
    out = tmp_path / "b"
    code = main(["bench", "--datasets", data, "--models", "pop,ease", "--folds", "3", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "| ease |" in stdout and "| pop |" in stdout
    assert f"report: {out}/results.md" in stdout
    assert "first estimate" in err and err.count(", ETA ") == 6  # 2 models x 3 folds
