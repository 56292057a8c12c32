"""`aerec export --onnx`: onnxruntime on the exported graph equals the model's own scores within
1e-5, for every exportable model; the others get a one-line reason. Skipped without onnx."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from aerec import export, io, models  # noqa: E402
from aerec.cli import main  # noqa: E402
from aerec.errors import DataError  # noqa: E402

TINY = {
    "multdae": {"epochs": 3, "hidden": (8,), "batch_size": 16},
    "multvae": {"epochs": 3, "hidden": (8,), "latent": 4, "batch_size": 16},
    "recvae": {"epochs": 1, "hidden": 8, "latent": 4, "layers": 2, "batch_size": 16},
    "cdae": {"epochs": 3, "hidden": 8, "batch_size": 16},
    "ease": {"l2": 10.0},
    "autorec": {"variant": "user", "hidden": 8, "epochs": 5, "lam": 1.0, "lr": 0.03, "patience": 0},
    "deeprec": {"layers": (8, 4), "dropout": 0.0, "epochs": 5, "optimizer": "adam", "lr": 0.01, "patience": 0,
                "activation": "selu"},
}


def histories(model, seed=0, rows=7):
    """Random fold-in rows: binary for ranking models, 1..5 ratings for rating models, one empty row."""
    h = sp.random(rows, model.n_items, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    h.data = np.ceil(h.data * 5) if model.task == "rating" else np.ones_like(h.data)
    h = sp.lil_matrix(h)
    h[0, :] = 0
    return sp.csr_matrix(h, dtype=np.float32)


def run_onnx(path, dense):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["scores"], {"history": dense.astype(np.float32)})[0]


def fit(name, block_case, rating_case):
    case = rating_case if name in ("autorec", "deeprec") else block_case
    return models.create(name, **TINY[name]).fit(case.train), case


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnx_scores_equal_torch(name, block_case, rating_case, tmp_path):
    model, _ = fit(name, block_case, rating_case)
    info = export.export_onnx(model, tmp_path / "m.onnx")
    assert info["n_items"] == model.n_items and (tmp_path / "m.onnx").stat().st_size == info["bytes"]
    for rows in (1, 7):  # the batch axis is dynamic
        h = histories(model, seed=rows, rows=rows)
        np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", h.toarray()), model.score(h), rtol=1e-5, atol=1e-5)
    if model.task == "rating":  # rows without ratings get the unseen default, as model.score does
        h = histories(model)
        assert np.array_equal(run_onnx(tmp_path / "m.onnx", h.toarray())[0], model.score(h)[0])


def test_cli_export_from_a_model_directory(block_case, tmp_path, capsys):
    model, case = fit("multvae", block_case, None)
    d = case.data
    io.save(model, tmp_path / "model", item_ids=d.item_ids, user_ids=d.user_ids, history=case.train)
    assert main(["export", str(tmp_path / "model"), "--onnx", str(tmp_path / "out" / "m.onnx"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "max |diff|" in out
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "out" / "m.onnx")).metadata_props}
    assert props["aerec_model"] == "multvae" and props["n_items"] == str(model.n_items)
    h = block_case.fold_in
    np.testing.assert_allclose(run_onnx(tmp_path / "out" / "m.onnx", h.toarray()), model.score(h), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, cfg, message", [
    ("autorec", {"variant": "item", "hidden": 8, "epochs": 2}, "ridge regression"),
    ("pop", {}, "do not depend on the history"),
])
def test_unexportable_models_say_why(name, cfg, message, block_case, rating_case, tmp_path, capsys):
    case = rating_case if name == "autorec" else block_case
    model = models.create(name, **cfg).fit(case.train)
    with pytest.raises(DataError, match=message):
        export.export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.iterdir())
    d = case.data
    io.save(model, tmp_path / "model", item_ids=d.item_ids)
    capsys.readouterr()  # drop the training progress bar
    assert main(["export", str(tmp_path / "model"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_dynamo_exporter(block_case, tmp_path):
    pytest.importorskip("onnxscript")
    model, _ = fit("multdae", block_case, None)
    export.export_onnx(model, tmp_path / "m.onnx", exporter="dynamo")
    h = histories(model, rows=5)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", h.toarray()), model.score(h), rtol=1e-5, atol=1e-5)
