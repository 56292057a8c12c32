"""Multi-process training: 2 gloo ranks on 127.0.0.1 reach what one process reaches with the same
global batch and seed (weights, validation curve, KL step count, test metrics), plus the pieces
(slices, the memory-mapped matrix, the launcher's arguments, --amp on CPU).

Reparameterization noise is switched off in both runs (``torch.randn_like`` returns zeros) and
dropout is 0: each rank draws its own noise, so with noise on the two runs are equal in law but
not draw for draw. What remains is exactly what distribution must not change.
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import block_interactions, write_csv
from safetensors.torch import load_file, save_file

from aerec import distributed, evaluation, fsutil, models
from aerec.cli import main
from aerec.errors import ConfigError

# 51 users: batches of 8 end with 3 rows, split 1 + 2 (uneven slices: row weights matter);
# Mult-DAE's batches of 10 end with 1 row, so rank 0 borrows a row with weight 0
USERS = (21, 16, 14)
SETTINGS = {
    "multvae": {"hidden": (16,), "latent": 4, "dropout": 0.0, "total_anneal_steps": 5, "anneal_cap": 0.5,
                "schedule": "reference"},
    "recvae": {"hidden": 16, "latent": 4, "layers": 2, "dropout": 0.0, "epochs": 2, "schedule": "reference"},
    "multdae": {"hidden": (16,), "dropout": 0.0, "batch_size": 10},
    "cdae": {"hidden": 8, "loss": "logistic", "dropout": 0.0, "optimizer": "adam", "lr": 1e-2},
}
COMMON = {"epochs": 3, "batch_size": 8, "lr": 1e-2, "seed": 3}


def _zeros_like(t, *args, **kwargs):
    return torch.zeros_like(t, *args, **kwargs)


def _case():
    train = block_interactions(block_users=USERS).csr("ones")
    held = block_interactions(seed=5, block_users=(5, 4, 3)).csr("ones")  # 12 unseen users
    rng = np.random.default_rng(0)
    coo = held.tocoo()
    out = rng.random(coo.nnz) < 0.3
    out[np.unique(coo.row, return_index=True)[1]] = True  # every user keeps a target
    part = lambda m: sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=held.shape)  # noqa: E731
    return train, part(~out), part(out)


def _fit_all():
    train, v_in, v_out = _case()
    for name, extra in SETTINGS.items():
        model = models.create(name, {**COMMON, **extra})
        model.fit(train, (v_in, v_out), progress=False)
        yield name, model, v_in, v_out


def _summary(name, model, per_user) -> dict:
    return {"history": [h["valid_ndcg@100"] for h in model.history], "loss": [h["loss"] for h in model.history],
            "update_count": getattr(model, "update_count", None), "metrics": evaluation.summarize(per_user),
            "users": per_user["users"].tolist()}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), AEREC_SCRATCH=out)
    torch.set_num_threads(1)
    torch.randn_like = _zeros_like
    ctx = distributed.init("cpu")
    for name, model, v_in, v_out in _fit_all():
        per_user = distributed.evaluate_ranking(ctx, model, v_in, v_out, ks=(5, 10))
        if ctx.is_writer:
            save_file({k: v.contiguous() for k, v in model.state_tensors().items()}, f"{out}/{name}.safetensors")
            fsutil.write_json(f"{out}/{name}.json", _summary(name, model, per_user))
    distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_equal_one_process(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("aerec-")]  # scratch matrices removed
    monkeypatch.setattr(torch, "randn_like", _zeros_like)
    for name, model, v_in, v_out in _fit_all():
        got = json.loads((tmp_path / f"{name}.json").read_text())
        weights = load_file(str(tmp_path / f"{name}.safetensors"))
        for key, value in model.state_tensors().items():
            np.testing.assert_allclose(weights[key].numpy(), value.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{name} {key}")
        np.testing.assert_allclose(got["history"], [h["valid_ndcg@100"] for h in model.history], rtol=1e-6)
        assert got["update_count"] == getattr(model, "update_count", None)  # global steps: 7 per epoch
        one = evaluation.evaluate_ranking(model, v_in, v_out, ks=(5, 10))
        assert got["users"] == one["users"].tolist()
        for key, value in evaluation.summarize(one).items():
            assert got["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), f"{name} {key}"
    assert json.loads((tmp_path / "multvae.json").read_text())["update_count"] == 3 * 7


@pytest.mark.slow
def test_cli_nproc_run_equals_one_process_run(tmp_path):
    data = write_csv(block_interactions(block_users=(30, 24, 18)), tmp_path / "blocks.csv")
    args = ["--quiet", "train", "multdae", "--dataset", data, "--protocol", "strong", "--folds", "3",
            "--epochs", "3", "--set", "dropout=0", "--set", "batch_size=5", "--set", "hidden=[8]"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--out", str(tmp_path / "two"), "--nproc", "2"]) == 0
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    for key, m in one["metrics"].items():
        np.testing.assert_allclose(two["metrics"][key]["per_fold"], m["per_fold"], rtol=1e-5, err_msg=key)
    for f in range(3):
        a = load_file(str(tmp_path / "one" / f"fold-{f}" / "model" / "weights.safetensors"))
        b = load_file(str(tmp_path / "two" / f"fold-{f}" / "model" / "weights.safetensors"))
        for key in a:
            np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


# the pieces, in one process ------------------------------------------------------------------


def test_slices_cover_each_global_batch_with_row_weights():
    ctxs = [distributed.Context(r, 3, r, 0, torch.device("cpu")) for r in range(3)]
    for n in (1, 2, 7, 9):
        bounds = [c.bounds(n) for c in ctxs]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert max(h - lo for lo, h in bounds) - min(h - lo for lo, h in bounds) <= 1


def test_mapped_csr_rows_equal_scipy_rows(tmp_path):
    rng = np.random.default_rng(0)
    m = sp.random(40, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    distributed.MappedCSR.write(m, tmp_path / "m")
    mapped = distributed.MappedCSR(tmp_path / "m", m.shape)
    assert isinstance(mapped.indices, np.memmap) and mapped.nnz == m.nnz
    for rows in (rng.permutation(40)[:7], np.array([3]), np.array([5, 5, 0]), np.zeros(0, dtype=np.int64)):
        got, want = mapped.rows(rows), m[rows]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.toarray(), want.toarray())
        np.testing.assert_array_equal(got.indices, want.indices)


def test_relaunch_arguments_drop_nproc_and_keep_the_rest(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(distributed, "launch", lambda n, args: seen.update(n=n, args=args))
    data = write_csv(block_interactions(), tmp_path / "b.csv")
    code = main(["train", "multvae", "-d", data, "-p", "strong", "--epochs", "2", "--set", "latent=4",
                 "--set", "hidden=[8]", "--protocol-set", "target_frac=0.25", "--nproc", "3", "--json",
                 "--out", str(tmp_path / "r")])
    assert code == 0 and seen["n"] == 3
    assert seen["args"] == ["train", "multvae", "--dataset", data, "--protocol", "strong", "--epochs", "2",
                            "--out", str(tmp_path / "r"), "--set", "latent=4", "--set", "hidden=[8]",
                            "--protocol-set", "target_frac=0.25", "--json"]
    assert not (tmp_path / "r").exists()  # the launcher itself trains nothing


def test_nproc_refuses_models_that_train_in_one_process(tmp_path, capsys):
    data = write_csv(block_interactions(), tmp_path / "b.csv")
    assert main(["train", "ease", "-d", data, "-p", "strong", "--nproc", "2"]) == 2
    assert "trains in one process" in capsys.readouterr().err


def test_amp_on_cpu_is_a_one_line_error(tmp_path, capsys):
    data = write_csv(block_interactions(), tmp_path / "b.csv")
    code = main(["train", "multdae", "-d", data, "-p", "strong", "--epochs", "1", "--device", "cpu", "--amp",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --amp (mixed precision) needs a CUDA device") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
    model = models.create("multdae", {"amp": True, "epochs": 1})  # the library refuses it too
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        model.fit(block_interactions().csr("ones"))


def _gpu_check():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_counts_dense_flops_from_layer_sizes():
    gc = _gpu_check()
    # I-3-(2x2)-... : encoder 3->4, decoder 2->3, 3->5; 6 FLOPs per weight per row (fwd + 2 bwd)
    assert gc.dense_layers(5, (3,), 2) == [(3, 4), (2, 3), (3, 5)]
    assert gc.epoch_flops(7, 5, 11, hidden=(3,), latent=2) == {"dense": 6 * 7 * (12 + 6 + 15), "sparse_first_layer": 4 * 11 * 3}
    # the counted layers are exactly the nn.Linear layers of the real network
    model = models.create("multvae", {"hidden": (3,), "latent": 2})
    model.n_items = 5
    linears = [(m.in_features, m.out_features) for m in model._build().modules() if isinstance(m, torch.nn.Linear)]
    assert linears == gc.dense_layers(5, (3,), 2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_gpu_check_stops_with_one_line_without_cuda(capsys, tmp_path):
    assert _gpu_check().main(["--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: gpu_check needs a CUDA GPU and torch.cuda.is_available() is False"
    assert not list(tmp_path.iterdir())
