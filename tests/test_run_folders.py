"""Output folders are built beside their destination and swapped in whole: a failed or killed
`split`, `train` or `bench` never damages an earlier complete one, a rerun of the same command
always works, and --overwrite replaces a folder on purpose."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import block_interactions, write_csv

from aerec import distributed, runner
from aerec.cli import main
from aerec.errors import DataError

BIG_BLOCKS = (30, 24, 18)


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(folder) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


@pytest.fixture()
def good_csv(tmp_path):
    return write_csv(block_interactions(block_users=BIG_BLOCKS), tmp_path / "data.csv")


# split --------------------------------------------------------------------------------------


def split_args(data, out, *extra):
    return ["-q", "split", data, "-p", "strong", "--folds", "3", "--out", out, *extra]


def test_a_failing_resplit_leaves_the_earlier_export_intact(capsys, tmp_path, good_csv):
    out = tmp_path / "split"
    assert run_cli(capsys, *split_args(good_csv, out))[0] == 0
    before = snapshot(out)
    # the same file now holds users with too few items: it loads, and the protocol refuses it
    (tmp_path / "data.csv").write_text("user,item,rating\n" + "".join(f"u{u},i{u},5\n" for u in range(20)))
    code, _, err = run_cli(capsys, *split_args(good_csv, out))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert snapshot(out) == before and siblings(out) == ["data.csv", "split"]
    write_csv(block_interactions(block_users=BIG_BLOCKS), tmp_path / "data.csv")
    assert run_cli(capsys, *split_args(good_csv, out))[0] == 0  # the original command still works
    assert snapshot(out) == before


KILLER = """
import os, signal, sys
from aerec import data, protocols
from aerec.protocols import base
written = []
original = base.RankingFold.export
def export(self, directory):
    original(self, directory)
    written.append(directory)
    if len(written) == 2:  # kill -9 half-way through the re-export
        os.kill(os.getpid(), signal.SIGKILL)
base.RankingFold.export = export
protocols.export.export_split(protocols.get("strong", folds=3), data.load(sys.argv[1]), sys.argv[2])
"""


def test_kill_9_during_a_reexport_damages_nothing(capsys, tmp_path, good_csv):
    out = tmp_path / "split"
    assert run_cli(capsys, *split_args(good_csv, out))[0] == 0
    before = snapshot(out)
    p = subprocess.run([sys.executable, "-c", KILLER, good_csv, str(out)], capture_output=True, text=True,
                       env={**os.environ, "AEREC_QUIET": "1"}, timeout=120)
    assert p.returncode == -9, p.stderr
    assert snapshot(out) == before  # split.json and every fold as they were; no .tmp file inside
    assert run_cli(capsys, *split_args(good_csv, out))[0] == 0  # and the rerun works
    assert snapshot(out) == before and siblings(out) == ["data.csv", "split"]


def test_another_split_needs_overwrite(capsys, tmp_path, good_csv):
    out = tmp_path / "split"
    assert run_cli(capsys, *split_args(good_csv, out))[0] == 0
    code, _, err = run_cli(capsys, "-q", "split", good_csv, "-p", "weak", "--set", "k_core=2", "--out", out)
    assert code == 2 and "--overwrite" in err
    assert (json.loads((out / "split.json").read_text()))["protocol"] == "strong"
    code, _, err = run_cli(capsys, "-q", "split", good_csv, "-p", "weak", "--set", "k_core=2", "--out", out,
                           "--overwrite")
    assert code == 0, err
    assert json.loads((out / "split.json").read_text())["protocol"] == "weak" and not (out / "fold-2").exists()


def test_split_refuses_a_folder_it_did_not_write(capsys, tmp_path, good_csv):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    code, _, err = run_cli(capsys, *split_args(good_csv, out, "--overwrite"))
    assert code == 2 and "not empty" in err and (out / "notes.txt").read_text() == "keep"


# train --------------------------------------------------------------------------------------


def train_args(data, out, *extra):
    return ["-q", "train", "pop", "-d", data, "-p", "strong", "--folds", "3", "--out", out, "--json", *extra]


@pytest.fixture()
def flaky(monkeypatch):
    """Make fold `fail_at` of the next run fail with an input error, once."""
    original = runner._train_fold
    state = {"fail_at": None}

    def train_fold(spec, data, fold, *args, **kwargs):
        if fold.index == state["fail_at"]:
            state["fail_at"] = None
            raise DataError("simulated failure")
        return original(spec, data, fold, *args, **kwargs)

    monkeypatch.setattr(runner, "_train_fold", train_fold)
    return state


def test_a_run_that_fails_before_its_first_fold_leaves_nothing(capsys, tmp_path, good_csv, flaky):
    out = tmp_path / "run"
    flaky["fail_at"] = 0
    code, _, err = run_cli(capsys, *train_args(good_csv, out))
    assert code == 2 and "simulated failure" in err
    assert siblings(out) == ["data.csv"]
    code, text, err = run_cli(capsys, *train_args(good_csv, out))  # the same command again
    assert code == 0, err
    assert len(json.loads(text)["metrics"]["ndcg@100"]["per_fold"]) == 3 and siblings(out) == ["data.csv", "run"]


def test_a_killed_run_without_finished_folds_is_restarted_by_the_same_command(capsys, tmp_path, good_csv):
    out = tmp_path / "run"
    left = tmp_path / ".run.partial"  # what kill -9 during fold 0 leaves
    (left / "fold-0" / "checkpoint").mkdir(parents=True)
    (left / "config.json").write_text("{}")
    code, _, err = run_cli(capsys, *train_args(good_csv, out))
    assert code == 0, err
    assert siblings(out) == ["data.csv", "run"] and (out / "fold-2" / "metrics.json").exists()


def test_an_unfinished_run_continues_with_resume_only(capsys, tmp_path, good_csv, flaky):
    out = tmp_path / "run"
    flaky["fail_at"] = 1
    assert run_cli(capsys, *train_args(good_csv, out))[0] == 2
    work = tmp_path / ".run.partial"
    assert not out.exists() and (work / "fold-0" / "metrics.json").exists()
    done = (work / "fold-0" / "metrics.json").stat().st_mtime_ns
    code, _, err = run_cli(capsys, *train_args(good_csv, out))
    assert code == 2 and "--resume" in err and "--overwrite" in err
    code, _, err = run_cli(capsys, *train_args(good_csv, out, "--seed", "5", "--resume"))
    assert code == 2 and "other settings" in err
    code, text, err = run_cli(capsys, *train_args(good_csv, out, "--resume"))
    assert code == 0, err
    assert (out / "fold-0" / "metrics.json").stat().st_mtime_ns == done and not work.exists()


def test_overwrite_replaces_a_finished_run_only_once_the_new_one_is_complete(capsys, tmp_path, good_csv, flaky):
    out = tmp_path / "run"
    assert run_cli(capsys, *train_args(good_csv, out))[0] == 0
    before = snapshot(out)
    code, _, err = run_cli(capsys, *train_args(good_csv, out))
    assert code == 2 and "--overwrite" in err
    flaky["fail_at"] = 2  # the replacement fails on its last fold
    assert run_cli(capsys, *train_args(good_csv, out, "--seed", "4", "--overwrite"))[0] == 2
    assert snapshot(out) == before
    code, text, err = run_cli(capsys, *train_args(good_csv, out, "--seed", "4", "--overwrite"))
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["seed"] == 4 and json.loads(text)["seed"] == 4
    assert siblings(out) == ["data.csv", "run"]


def test_resume_and_overwrite_together_are_refused(capsys, tmp_path, good_csv):
    code, _, err = run_cli(capsys, *train_args(good_csv, tmp_path / "run", "--resume", "--overwrite"))
    assert code == 2 and "choose one" in err and siblings(tmp_path / "run") == ["data.csv"]


def test_train_refuses_a_folder_that_holds_no_run(capsys, tmp_path, good_csv):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    for extra in ((), ("--overwrite",), ("--resume",)):
        code, _, err = run_cli(capsys, *train_args(good_csv, out, *extra))
        assert code == 2 and "holds no run" in err
    assert (out / "notes.txt").read_text() == "keep"


def test_full_protocol_fails_cleanly_and_overwrites_on_purpose(capsys, tmp_path, good_csv, monkeypatch):
    out = tmp_path / "prod"
    args = ["-q", "train", "pop", "-d", good_csv, "-p", "full", "--out", out, "--json"]
    assert run_cli(capsys, *args)[0] == 0
    before = snapshot(out)
    assert run_cli(capsys, *args)[0] == 2

    def broken(*a, **k):
        raise DataError("simulated failure")

    with monkeypatch.context() as m:
        m.setattr(runner, "_fit", broken)
        assert run_cli(capsys, *args, "--overwrite")[0] == 2
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["full"]
    assert run_cli(capsys, *args, "--overwrite", "--seed", "3")[0] == 0
    assert json.loads((out / "full" / "info.json").read_text())["seed"] == 3


# bench --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_overwrite_starts_afresh_and_foreign_folders_are_refused(capsys, tmp_path, good_csv):
    out = tmp_path / "bench"
    args = ["-q", "bench", "--datasets", good_csv, "--models", "pop", "--folds", "3", "--out", out]
    assert run_cli(capsys, *args)[0] == 0
    stray = out / "cells" / "stray.json"
    stray.write_text("{}")
    assert run_cli(capsys, *args)[0] == 0 and stray.exists()  # a plain rerun resumes in place
    code, _, err = run_cli(capsys, *args, "--overwrite")
    assert code == 0, err
    assert not stray.exists() and (out / "results.md").exists() and siblings(out) == ["bench", "data.csv"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    code, _, err = run_cli(capsys, "-q", "bench", "--datasets", good_csv, "--models", "pop", "--out", mine)
    assert code == 2 and "holds no bench run" in err


def test_a_failed_bench_overwrite_leaves_the_old_run_and_no_build_folder(capsys, tmp_path, good_csv, monkeypatch):
    from aerec import bench

    out = tmp_path / "bench"
    args = ["-q", "bench", "--datasets", good_csv, "--models", "pop", "--folds", "3", "--out", out]
    assert run_cli(capsys, *args)[0] == 0
    before = snapshot(out)

    def broken(*a, **k):
        raise DataError("simulated failure")

    monkeypatch.setattr(bench, "run_cell", broken)
    code, _, err = run_cli(capsys, *args, "--seed", "3", "--overwrite")
    assert code == 2 and "simulated failure" in err
    assert snapshot(out) == before and siblings(out) == ["bench", "data.csv"]  # no .bench.partial left


# --nproc ------------------------------------------------------------------------------------


def test_nproc_checks_the_data_set_before_launching(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("launched despite a missing data set"))
    code, _, err = run_cli(capsys, "train", "multdae", "-d", tmp_path / "missing.csv", "-p", "strong",
                           "--nproc", "4", "--out", tmp_path / "r")
    assert code == 2 and err.count("missing.csv") == 1 and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_nproc_checks_the_run_folder_before_launching(capsys, tmp_path, good_csv, monkeypatch):
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("launched into a foreign folder"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x").write_text("")
    code, _, err = run_cli(capsys, "train", "multdae", "-d", good_csv, "-p", "strong", "--folds", "3",
                           "--nproc", "2", "--out", tmp_path / "mine")
    assert code == 2 and "holds no run" in err


def test_worker_errors_become_one_line(tmp_path):
    folder = tmp_path / "errors"
    folder.mkdir()
    for rank, code, message in ((1, 1, "internal error: RuntimeError: peer closed"), (3, 2, "bad input"),
                                (2, 2, "bad input")):
        (folder / f"rank-{rank}.json").write_text(json.dumps({"rank": rank, "code": code, "message": message}))
    err = distributed._worker_error(folder, None)
    assert str(err) == "bad input" and err.exit_code == 2
    (folder / "rank-2.json").unlink()
    (folder / "rank-3.json").unlink()
    err = distributed._worker_error(folder, None)
    assert str(err).startswith("worker 1: internal error") and err.exit_code == 1


@pytest.mark.slow
def test_nproc_worker_error_reaches_the_user_once(tmp_path, good_csv):
    # passes every check in the parent, then fails in each worker: the network is far too large
    p = subprocess.run([sys.executable, "-m", "aerec", "train", "multdae", "-d", good_csv, "-p", "strong", "--folds",
                        "3", "--epochs", "1", "--set", "hidden=[2000000000]", "--nproc", "2", "--out",
                        str(tmp_path / "r")], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "AEREC_QUIET": "1", "OMP_NUM_THREADS": "1"})
    assert p.returncode == 2, p.stderr
    errors = [line for line in p.stderr.splitlines() if "GiB" in line or "Traceback" in line]
    assert len(errors) == 1 and errors[0].startswith("error:"), p.stderr
    assert siblings(tmp_path / "r") == ["data.csv"]


def test_a_failed_run_of_an_older_aerec_is_accepted_by_the_same_command(capsys, tmp_path, good_csv):
    out = tmp_path / "run"  # the old layout: the run was written in place and failed in fold 0
    (out / "fold-0" / "checkpoint").mkdir(parents=True)
    (out / "config.json").write_text('{"model": "pop"}')
    code, _, err = run_cli(capsys, *train_args(good_csv, out))
    assert code == 0, err
    assert (out / "metrics.json").exists() and not (out / "fold-0" / "checkpoint").exists()


def test_an_interrupted_run_says_where_it_is_kept_and_a_failed_one_leaves_no_folder(tmp_path, capsys):
    from aerec.runs import run_folder

    out = tmp_path / "new" / "run" / "full"
    with pytest.raises(KeyboardInterrupt):
        with run_folder(out, {"a": 1}, "info.json", resume=False, overwrite=False) as (work, _):
            (work / "checkpoint").mkdir()
            raise KeyboardInterrupt
    assert (tmp_path / "new" / "run" / ".full.partial" / "checkpoint").is_dir()  # kept for --resume
    assert "--resume continues it" in capsys.readouterr().err
    out2 = tmp_path / "other" / "run" / "full"
    with pytest.raises(DataError):
        with run_folder(out2, {"a": 1}, "info.json", resume=False, overwrite=False):
            raise DataError("bad input")
    assert not (tmp_path / "other").exists()
