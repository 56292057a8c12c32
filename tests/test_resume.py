"""A training run killed with SIGKILL mid-way and continued with --resume ends with exactly the
metrics of an uninterrupted run with the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import block_interactions, write_csv

from aerec import models

MODEL = "multvae" if "multvae" in models.REGISTRY else "multdae"
EPOCHS = 5
DEADLINE_S = 300

# Runs the real CLI; the slow-down only sleeps after each epoch, so the killer can strike between
# checkpoints on a machine of any speed. It changes no number.
LAUNCHER = """
import os, sys, time
from aerec import models
delay = float(os.environ.get("AEREC_TEST_EPOCH_DELAY", "0"))
if delay:
    cls = models.get(sys.argv[1])
    original = cls._train_epoch
    def slowed(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        time.sleep(delay)
        return loss
    cls._train_epoch = slowed
from aerec.cli import main
sys.exit(main(sys.argv[2:]))
"""


def command(data: str, out, *extra) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, MODEL, "-q", "train", MODEL, "--dataset", data, "--protocol", "strong",
            "--folds", "3", "--seed", "3", "--epochs", str(EPOCHS), "--set", "hidden=16", "--set", "latent=8",
            "--set", "batch_size=8", "--out", str(out), "--json", *extra]


def env(delay: float = 0.0) -> dict:
    return {**os.environ, "AEREC_QUIET": "1", "AEREC_TEST_EPOCH_DELAY": str(delay), "OMP_NUM_THREADS": "1"}


def run(cmd, delay: float = 0.0) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env(delay), timeout=DEADLINE_S)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def checkpoint_epoch(path) -> int:
    try:
        return int(json.loads(path.read_text())["state"]["epoch"])
    except (OSError, ValueError, KeyError):
        return 0  # not there yet


@pytest.mark.slow
def test_killed_run_resumes_to_identical_metrics(tmp_path):
    if MODEL == "multdae":  # multdae has no latent size
        pytest.skip("multvae is not registered")
    data = write_csv(block_interactions(block_users=(30, 24, 18)), tmp_path / "blocks.csv")
    reference = run(command(data, tmp_path / "reference"))

    out = tmp_path / "killed"
    proc = subprocess.Popen(command(data, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env(delay=0.4))
    work = tmp_path / ".killed.partial"  # the run is built beside --out and moved there when complete
    ckpt = work / "fold-1" / "checkpoint" / "checkpoint.json"  # fold 0 finished, fold 1 part-way
    start = time.monotonic()
    try:
        while checkpoint_epoch(ckpt) < 2:
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
            assert time.monotonic() - start < DEADLINE_S, "no checkpoint appeared in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing half-written where the finished run goes
    assert not (work / "metrics.json").exists() and not (work / "fold-1" / "metrics.json").exists()
    killed_at = checkpoint_epoch(ckpt)
    assert 2 <= killed_at < EPOCHS
    fold0_done = (work / "fold-0" / "metrics.json").stat().st_mtime_ns

    loud = [a for a in command(data, out, "--resume") if a != "-q"]  # to see the "resuming" line
    p = subprocess.run(loud, capture_output=True, text=True, env={**env(), "AEREC_QUIET": "0"}, timeout=DEADLINE_S)
    assert p.returncode == 0, p.stderr
    resumed = json.loads(p.stdout)
    assert f"after epoch {killed_at}" in p.stderr  # fold 1 continued from its checkpoint
    assert (out / "fold-0" / "metrics.json").stat().st_mtime_ns == fold0_done  # fold 0 was not retrained
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["epochs"] == reference["epochs"]
    with open(out / "history.csv") as f:  # every epoch of every fold appears exactly once
        assert len(f.read().strip().splitlines()) == 1 + 3 * EPOCHS
    assert not work.exists() and not (out / "fold-1" / "checkpoint").exists()
