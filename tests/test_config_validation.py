"""Every setting is checked when its config is built, before data is read or a folder written:
numbers are finite, sizes positive, seeds non-negative, devices known, options that would be
ignored are refused, and each refusal is one line with exit 2."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import block_interactions, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aerec import config as cfgmod
from aerec import models, protocols
from aerec.cli import main
from aerec.errors import ConfigError, ResourceError

MODELS = models.names()
PROTOCOLS = protocols.names()
NOT_FINITE = [float("nan"), float("inf"), float("-inf"), "nan", "inf", "-inf", "1e400", "NaN"]


def _fields(cls) -> list[tuple[str, typing.Any]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]


def _numeric(annotation) -> bool:
    args = typing.get_args(annotation)
    return annotation in (int, float) or any(a in (int, float) for a in args) or any(
        _numeric(a) for a in args if typing.get_origin(a) in (tuple, list))


NUMERIC = [(kind, name, field) for kind, names, get in (("model", MODELS, lambda n: models.get(n).Config),
                                                        ("protocol", PROTOCOLS, lambda n: protocols.PROTOCOLS[n]))
           for name in names for field, ann in _fields(get(name)) if _numeric(ann)]


def _build(kind: str, name: str, **values):
    return models.create(name, **values) if kind == "model" else protocols.get(name, **values)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(NUMERIC), bad=st.sampled_from(NOT_FINITE))
def test_no_numeric_setting_takes_nan_or_infinity(case, bad):
    kind, name, field = case
    with pytest.raises(ConfigError, match=field):
        _build(kind, name, **{field: bad})


ANY_VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20), st.booleans(),
                      st.text(max_size=6), st.lists(st.integers(-3, 3), max_size=3), st.none())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(NUMERIC), value=ANY_VALUE)
def test_any_value_is_accepted_or_refused_with_a_config_error(case, value):
    kind, name, field = case
    try:
        cfg = _build(kind, name, **{field: value})
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    values = cfgmod.to_dict(cfg.config if kind == "model" else cfg)
    for v in np.ravel(np.asarray(values[field], dtype=object)).tolist():
        assert v is None or isinstance(v, bool) or np.isfinite(float(v))


@pytest.mark.parametrize("values,message", [
    ({"eval_block": -5}, "eval_block"), ({"eval_block": 0}, "eval_block"), ({"device": "banana"}, "device"),
    ({"device": "cuda:x"}, "device"), ({"seed": -1}, "seed"), ({"seed": 2**70}, "seed"), ({"epochs": "inf"}, "epochs"),
    ({"hidden": "[0]"}, "hidden"), ({"batch_size": True}, "batch_size")])
def test_neural_settings_are_checked_at_construction(values, message):
    with pytest.raises(ConfigError, match=message):
        models.create("multdae", **values)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "mps", "auto"])
def test_known_device_names_build(device):
    assert models.create("multdae", device=device).config.device == device  # hardware is checked when used


@pytest.mark.parametrize("name", PROTOCOLS)
def test_protocol_seed_must_be_non_negative(name):
    with pytest.raises(ConfigError, match="seed"):
        protocols.get(name, seed=-1)


def test_a_network_too_large_for_memory_is_refused_before_training(monkeypatch):
    from aerec.models import neural

    train = sp.random(20, 30, density=0.3, format="csr", random_state=0, dtype=np.float32)
    train.data[:] = 1
    monkeypatch.setattr(neural, "available_memory", lambda device: 2**30)  # 1 GiB free
    model = models.create("multdae", hidden=(100_000_000,), epochs=1)
    with pytest.raises(ResourceError, match="GiB"):
        model.fit(train)
    assert not model.fitted and getattr(model, "net", None) is None  # nothing was allocated
    models.create("multdae", hidden=(8,), epochs=1).fit(train, progress=False)  # small ones still train


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    return write_csv(block_interactions(), tmp_path_factory.mktemp("cfg") / "blocks.csv")


@pytest.mark.parametrize("extra", [
    ["--set", "eval_block=-5"], ["--set", "eval_block=0"], ["--epochs", "0"], ["--set", "epochs=nan"],
    ["--set", "epochs=inf"], ["--set", "lr=nan"], ["--set", "lr=inf"], ["--set", "anneal_cap=nan"],
    ["--set", "device=banana"], ["--seed", "-1"], ["--folds", "0"], ["--protocol-set", "target_frac=nan"],
])
def test_cli_refuses_bad_settings_before_any_work(capsys, tmp_path, data_csv, extra):
    code = main(["-q", "train", "multvae", "-d", data_csv, "-p", "strong", "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no folder, not even a hidden one


def test_cli_refuses_a_huge_layer_in_one_line(capsys, tmp_path, data_csv):
    code = main(["-q", "train", "multdae", "-d", data_csv, "-p", "strong", "--folds", "3",
                 "--set", "hidden=[2000000000]", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "GiB" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_full_protocol_refuses_folds(capsys, tmp_path, data_csv):
    code = main(["-q", "train", "pop", "-d", data_csv, "-p", "full", "--folds", "5", "--out", str(tmp_path / "r")])
    assert code == 2 and "--folds" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_device_for_a_cpu_model_is_refused(capsys, tmp_path, data_csv):
    code = main(["-q", "train", "pop", "-d", data_csv, "-p", "strong", "--device", "cuda", "--out", str(tmp_path / "r")])
    assert code == 2 and "--device" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--datasets", ","], ["--models", ","], ["--datasets", ",", "--models", ","],
                                  ["--seed", "-1", "--models", "pop"]])
def test_bench_refuses_empty_lists_and_bad_seeds(capsys, tmp_path, args):
    code = main(["-q", "bench", *args, "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "b").exists()
