"""benchmarks/gpu_check.py runs in CI: its plan, its one-line refusals, and a tiny CPU run of every
section (the figures mean nothing there; the GPU run is the measurement)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_prints_the_plan(capsys):
    assert _gpu_check().main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gpu_check plan:") and "EASE" in out and len(out.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
@pytest.mark.parametrize("args", [[], ["--device", "cuda:0"]])
def test_without_cuda_one_line_and_exit_2(capsys, tmp_path, args):
    assert _gpu_check().main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA" in err
    assert not (tmp_path / "o").exists()


def test_cpu_needs_tiny(capsys, tmp_path):
    assert _gpu_check().main(["--device", "cpu", "--out", str(tmp_path / "o")]) == 2
    assert "--tiny" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_cpu_run_writes_results_and_the_docs_section(tmp_path):
    pytest.importorskip("optuna")
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\nbefore\n\n<!-- gpu_check:start -->\nold\n<!-- gpu_check:end -->\n\nafter\n")
    gc = _gpu_check()
    assert gc.main(["--device", "cpu", "--tiny", "--out", str(tmp_path / "o"), "--docs", str(docs)]) == 0
    res = json.loads((tmp_path / "o" / "gpu_check.json").read_text())
    assert [r["model"] for r in res["epochs"]] == ["multvae", "multdae", "recvae"]
    assert all(r["epoch_s"] > 0 and r["floor_s"] > 0 for r in res["epochs"])
    assert res["evaluation"]["ratio"] > 0 and res["ease"]["fit_s"] > 0
    assert res["trials"]["jobs_2"]["trials"] >= 4
    text = docs.read_text()
    assert "old" not in text and "before" in text and "after" in text and "| multvae |" in text
    assert (tmp_path / "o" / "gpu_check.md").exists()
