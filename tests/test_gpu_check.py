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
    assert res["compile"] == {"skipped": "not on --tiny (a CPU compile takes about a minute)"}
    assert "skipped" in res["recbole"] or set(res["recbole"]["models"]) == {"multvae", "recvae"}
    text = docs.read_text()
    assert "old" not in text and "before" in text and "after" in text and "| multvae |" in text
    assert (tmp_path / "o" / "gpu_check.md").exists()


def test_skip_names_known_sections_only(capsys):
    assert _gpu_check().main(["--dry-run", "--skip", "ease,nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nonsense" in err and "recbole" in err


def test_dry_run_leaves_out_skipped_sections(capsys):
    assert _gpu_check().main(["--dry-run", "--skip", "recbole,compile"]) == 0
    out = capsys.readouterr().out
    assert "EASE" in out and "RecBole" not in out and "torch.compile" not in out


def test_a_rerun_of_what_is_left_keeps_the_earlier_figures(tmp_path):
    gc = _gpu_check()
    out = tmp_path / "o"
    out.mkdir()
    earlier = {"ease": {"fit_s": 0.75, "items": 20108}, "floors": {"stale": True}}
    (out / "gpu_check.json").write_text(json.dumps(earlier))
    rest = [s for s in gc.SECTIONS if s != "floors"]
    assert gc.main(["--device", "cpu", "--tiny", "--out", str(out), "--docs", "", "--skip", ",".join(rest)]) == 0
    res = json.loads((out / "gpu_check.json").read_text())
    assert res["kept_from_earlier"] == ["ease"] and res["ease"] == earlier["ease"]
    assert "stale" not in res["floors"] and "epochs" not in res  # floors measured again; nothing else invented
    md = (out / "gpu_check.md").read_text()
    assert "EASE fit at 20,108 items on the device: **0.75 s**" in md and "Kept from the earlier run" in md


def test_recbole_absent_is_one_skipped_line(monkeypatch):
    import sys

    gc = _gpu_check()
    monkeypatch.setitem(sys.modules, "recbole", None)  # import recbole now raises ImportError
    res = gc.recbole_side_by_side("cpu", True, 1, 1)
    assert list(res) == ["skipped"] and res["skipped"].startswith("RecBole is not importable")
    lines = [line for line in gc.recbole_lines(res) if line]
    assert len(lines) == 1 and lines[0].startswith("RecBole side by side: skipped")


@pytest.mark.slow
def test_recbole_side_by_side_tiny_on_cpu():
    """Runs only where RecBole 1.2.1 is installed (not in make test's venv: see gpu_check.py)."""
    pytest.importorskip("recbole")
    gc = _gpu_check()
    res = gc.recbole_side_by_side("cpu", True, 1, 2)
    assert res["recbole"] == "1.2.1" and set(res["models"]) == {"multvae", "recvae"}
    for m in res["models"].values():
        assert len(m["aerec_rounds"]) == len(m["recbole_rounds"]) == 2
        assert all(len(r) == 1 and r[0] > 0 for r in m["aerec_rounds"] + m["recbole_rounds"])
        assert m["speedup"] == pytest.approx(m["recbole_s"] / m["aerec_s"])
    assert "| recvae |" in "\n".join(gc.recbole_lines(res))


def test_compile_section_reports_a_failing_compiler_as_a_fallback(monkeypatch):
    gc = _gpu_check()
    from aerec.data import synth

    def no_compiler(fn, **kwargs):
        def compiled(*a, **k):
            raise RuntimeError("no compiler")
        return compiled

    monkeypatch.setattr(torch, "compile", no_compiler)
    train = synth(600, 120, 6_000, seed=0).csr("ones")
    rows = gc.compile_epochs(train, "cpu", 1, ["reduce-overhead"], lambda: False)
    assert [(r["model"], r["compile_mode"], r["compiled"]) for r in rows] == [
        ("multvae", "reduce-overhead", False), ("multdae", "reduce-overhead", False)]
    assert all(r["epoch_s"] > 0 and r["warmup_s"] > 0 for r in rows)
    table = "\n".join(gc.compile_lines(rows, {"multvae": {"epoch_s": 1.0}}))
    assert "no: fell back to eager" in table and "| multdae | reduce-overhead |" in table


def test_compile_section_checks_compiled_scores_against_eager_once(monkeypatch):
    gc = _gpu_check()
    from aerec.data import synth

    def shifted(fn, **kwargs):  # a "compiler" whose logits are off by 0.5 (the softmax loss cannot tell)
        def compiled(*a, **k):
            out = fn(*a, **k)
            return (out[0] + 0.5, *out[1:]) if isinstance(out, tuple) else out + 0.5
        return compiled

    monkeypatch.setattr(torch, "compile", shifted)
    train = synth(600, 120, 6_000, seed=0).csr("ones")
    rows = gc.compile_epochs(train, "cpu", 1, ["default"], lambda: False)
    assert [r["compiled"] for r in rows] == [True, True]
    assert rows[0]["scores_vs_eager"]["max_abs_diff"] == pytest.approx(0.5) and "scores_vs_eager" not in rows[1]
    assert "against the same weights run eagerly" in "\n".join(gc.compile_lines(rows, {}))
