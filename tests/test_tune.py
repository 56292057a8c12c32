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
