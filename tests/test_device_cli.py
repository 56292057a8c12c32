"""--device and --precision on every command that trains or scores (issue 25, item 4), on CPU:
the choice is printed and recorded; bad values are one-line errors; CUDA paths are marked."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import block_interactions, write_csv

from aerec import devices
from aerec.cli import main
from aerec.errors import ConfigError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the messages shown without a GPU")
SMALL = ["--set", "hidden=[8]", "--set", "batch_size=16"]


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_csv(block_interactions(), tmp_path_factory.mktemp("data") / "d.csv")


@pytest.fixture(scope="module")
def run_dir(csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dae"
    assert main(["train", "multdae", "-d", csv, "-p", "strong", "--folds", "3", "--epochs", "2", *SMALL,
                 "--out", str(out)]) == 0
    return out


def test_auto_resolves_to_the_hardware():
    assert devices.choose(None) == devices.choose("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert devices.choose("cpu") == "cpu"


def test_train_defaults_to_auto_and_records_the_device(run_dir, capfd):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    want = devices.choose("auto")
    assert metrics["device"] == want and metrics["precision"] == "fp32"
    assert (metrics["gpu"] is None) == (want == "cpu")
    assert json.loads((run_dir / "config.json").read_text())["config"]["device"] == want


def test_train_says_which_device(csv, tmp_path, capsys):
    assert main(["train", "multdae", "-d", csv, "-p", "strong", "--folds", "3", "--epochs", "1", *SMALL,
                 "--device", "cpu", "--out", str(tmp_path / "r")]) == 0
    assert "device cpu, precision fp32" in capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["device"] == "cpu"


def test_toml_run_section_sets_the_device(csv, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[run]\nmodel = "multdae"\ndataset = "{csv}"\nprotocol = "strong"\nfolds = 3\ndevice = "cpu"\n'
                   'precision = "fp32"\n[model]\nepochs = 1\nhidden = [8]\n')
    assert main(["-q", "train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["device"] == "cpu"


@pytest.mark.parametrize("args, message", [
    (["--device", "gpu"], "device"), (["--device", "cuda:x"], "device"), (["--precision", "fp16"], "precision")])
def test_bad_device_or_precision_is_one_line(csv, tmp_path, capsys, args, message):
    code = main(["-q", "train", "multdae", "-d", csv, "-p", "strong", *args, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@no_cuda
@pytest.mark.parametrize("command", [["train", "multdae", "-p", "strong"], ["tune", "ease"],
                                     ["bench", "--models", "pop"]])
@pytest.mark.parametrize("args", [["--device", "cuda"], ["--device", "cuda:1"], ["--precision", "tf32"],
                                  ["--precision", "bf16"]])
def test_gpu_settings_without_a_gpu_are_one_line(csv, tmp_path, capsys, command, args):
    where = ["--out", str(tmp_path / "r")] if command[0] != "tune" else ["--dir", str(tmp_path / "r")]
    code = main(["-q", *command[:1], *command[1:], "-d", csv, *args, *where])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "CUDA" in err or "GPU" in err
    assert not (tmp_path / "r").exists()


def test_evaluate_and_recommend_take_a_device(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--device", "cpu", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["device"] == "cpu" and res["matches_saved"] is True
    assert main(["recommend", str(run_dir), "--items", "100,101", "-k", "3", "--device", "cpu"]) == 0
    assert "scored on cpu" in capsys.readouterr().out
    assert main(["recommend", str(run_dir), "--items", "100", "--device", "tpu"]) == 2


def test_serve_takes_a_device(run_dir, capsys):
    pytest.importorskip("fastapi")
    from aerec import serve

    assert main(["serve", str(run_dir), "--device", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and len(err.strip().splitlines()) == 1
    model = serve.load_model(run_dir, device="cpu", announce=False)
    assert model.config.device == "cpu" and serve.scoring_device(model) == "cpu"


def test_tune_and_bench_record_the_device(csv, tmp_path, capsys):
    pytest.importorskip("optuna")
    assert main(["tune", "ease", "-d", csv, "--folds", "3", "--trials", "1", "--device", "cpu",
                 "--dir", str(tmp_path / "s"), "--out", str(tmp_path / "best.toml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "cpu" and out["precision"] == "fp32"
    assert json.loads((tmp_path / "s" / "tuning.json").read_text())["device"] == "cpu"
    assert main(["-q", "bench", "-d", csv, "--models", "pop,ease", "--folds", "2", "--device", "cpu",
                 "--out", str(tmp_path / "b")]) == 0
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert (run["device"], run["gpu"], run["precision"]) == ("cpu", None, "fp32")


def test_doctor_shows_what_auto_chooses(capsys):
    assert main(["doctor", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["torch"]["auto_device"] == devices.choose("auto")
    assert isinstance(r["torch"]["gpus"], list)


def test_model_settings_leave_defaults_alone():
    from aerec import models

    on, where = devices.model_settings("cpu", None, [models.get("multvae"), models.get("pop"), models.get("ease")])
    assert on == {"multvae": {}, "pop": {}, "ease": {}} and where["device"] == "cpu"
    with pytest.raises(ConfigError):
        devices.check_precision("tf32", "cpu")


@cuda
def test_cuda_train_records_the_gpu(csv, tmp_path):
    assert main(["-q", "train", "multdae", "-d", csv, "-p", "strong", "--folds", "3", "--epochs", "1", *SMALL,
                 "--device", "cuda", "--precision", "tf32", "--out", str(tmp_path / "r")]) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["device"] == "cuda" and m["gpu"] and m["precision"] == "tf32"


@cuda
def test_cuda_bench_puts_every_model_with_a_device_on_it(csv, tmp_path):
    assert main(["-q", "bench", "-d", csv, "--models", "pop,ease,multdae", "--folds", "2", "--smoke",
                 "--device", "cuda", "--out", str(tmp_path / "b")]) == 0
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["device"] == "cuda" and run["gpu"]
