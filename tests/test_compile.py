"""The opt-in ``compile`` setting of the neural models (models/neural.py).

A compiler that fails, at the first forward call or at the first backward, costs one line and
nothing else: the fit goes on eagerly and gives exactly the eager fit's numbers (the first step is
redone from the same random state). The real compiler runs only with AEREC_TEST_COMPILE=1: a CPU
compile of even a tiny network takes about 40 s on 2 cores (more than a test may take here)."""

import os

import numpy as np
import pytest
import torch
from conftest import block_interactions, write_csv
from pinned_training import CASES, data

from aerec import evaluation
from aerec.cli import main
from aerec.errors import ConfigError
from aerec.models import create


def fit(name: str, **extra) -> tuple:
    torch.set_num_threads(1)
    train, vin, vout, tin, tout = data()
    model = create(name, **CASES[name], seed=3, **extra)
    model.fit(train, (vin, vout), progress=False)
    summary = evaluation.summarize(evaluation.evaluate_ranking(model, tin, tout, ks=(5, 10)))
    return model, {"loss": [h["loss"] for h in model.history], "valid": [h["valid_ndcg@100"] for h in model.history],
                   "test": {k: summary[k] for k in ("ndcg@5", "recall@10", "map@10")}}


class _Boom(torch.autograd.Function):
    """Identity forward, failing backward: a compiled backward that cannot be built."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward compiler crashed\nsecond line of a long message")


def _fake_compile(where: str, calls: list):
    def compile(fn, **kwargs):
        calls.append(kwargs)

        def compiled(*args, **kw):
            if where == "forward":
                raise RuntimeError("no C++ compiler found\nmore detail")
            out = fn(*args, **kw)
            if isinstance(out, tuple):
                return (_Boom.apply(out[0]), *out[1:])
            return _Boom.apply(out)

        return compiled

    return compile


@pytest.mark.parametrize("where", ["forward", "backward"])
@pytest.mark.parametrize("name", ["multvae", "recvae"])
def test_a_failing_compiler_costs_one_line_and_gives_the_eager_fit(name, where, monkeypatch, capsys):
    _, eager = fit(name)
    capsys.readouterr()
    calls = []
    monkeypatch.setattr(torch, "compile", _fake_compile(where, calls))
    model, got = fit(name, compile=True, compile_mode="reduce-overhead")
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert calls and all(c == {"mode": "reduce-overhead", "dynamic": True} for c in calls)
    assert len(err) == 1 and "torch.compile failed" in err[0] and "continuing uncompiled" in err[0], err
    assert "Traceback" not in err[0] and not model.compiled
    assert got == eager


def test_without_compile_the_network_is_never_compiled(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled without compile=True"))
    model, _ = fit("multvae")
    assert not model.compiled


@pytest.mark.parametrize("bad", [{"compile_mode": "fastest"}, {"compile": "maybe"}])
def test_bad_compile_settings_are_config_errors(bad):
    with pytest.raises(ConfigError):
        create("multvae", **bad)


def test_cli_set_compile_reaches_the_model_and_bad_modes_are_refused(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(torch, "compile", _fake_compile("forward", calls))
    csv = write_csv(block_interactions(), tmp_path / "blocks.csv")
    args = ["-q", "train", "multvae", "-d", str(csv), "-p", "strong", "--epochs", "2"]
    code = main([*args, "--out", str(tmp_path / "bad"), "--set", "compile_mode=fastest"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1 and not calls
    assert main([*args, "--out", str(tmp_path / "run"), "--set", "compile=true", "--set",
                 "compile_mode=reduce-overhead"]) == 0
    assert calls and calls[0] == {"mode": "reduce-overhead", "dynamic": True}
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.skipif(os.environ.get("AEREC_TEST_COMPILE") != "1", reason="a real CPU compile: AEREC_TEST_COMPILE=1")
@pytest.mark.parametrize("name", ["multvae"])
def test_compiled_fit_trains_and_scores_like_the_eager_one(name, monkeypatch):
    inductor = pytest.importorskip("torch._inductor.config")
    monkeypatch.setattr(inductor, "fallback_random", True)  # eager's random draws: comparable fits
    _, eager = fit(name)
    model, got = fit(name, compile=True)
    assert model.compiled, "the compiler fell back to eager (see the line above)"
    assert np.all(np.isfinite(got["loss"])) and got["loss"][-1] < got["loss"][0]
    np.testing.assert_allclose(got["loss"], eager["loss"], rtol=1e-4)  # fused kernels: rounding differs
    np.testing.assert_allclose(got["valid"], eager["valid"], atol=1e-3)
    for k, v in eager["test"].items():
        assert got["test"][k] == pytest.approx(v, abs=1e-3), k


def _batch(seed: int = 0, rows: int = 37, items: int = 60):
    import scipy.sparse as sp

    from aerec.models.layers import SparseBatch

    x = sp.random(rows, items, density=0.2, random_state=seed, format="csr", dtype=np.float32)
    x.data[:] = 1.0
    return SparseBatch.from_csr(x)


def test_padding_rounds_the_entry_count_by_at_most_an_eighth():
    from aerec.models.layers import pad_entries

    sizes = set()
    for seed in range(30):
        b = _batch(seed)
        p = pad_entries(b)
        nnz, padded = b.indices.numel(), p.indices.numel()
        assert nnz <= padded <= nnz * 1.125 and padded % (1 << (nnz.bit_length() - 4)) == 0
        assert torch.equal(p.values[nnz:], torch.zeros(padded - nnz)) and torch.equal(p.offsets, b.offsets)
        assert (p.rows[nnz:] == b.n_rows - 1).all() and (p.indices[nnz:] == 0).all()
        sizes.add(padded)
    assert len(sizes) <= 6  # 30 batches, 30 distinct counts before padding


@pytest.mark.parametrize("name", ["multvae", "multdae"])
def test_padded_batches_give_the_same_loss_and_gradients(name):
    """The padding that lets CUDA graphs replay (compiled, reduce-overhead, GPU only) changes no
    number of these models' steps: checked on the CPU, same seed. Mult-DAE trains with dropout on
    (its mask for the real entries is drawn first, so it is the same); Mult-VAE runs in eval
    mode, since its reparametrization draws after a longer dropout draw would differ."""
    from aerec.models.layers import multinomial_nll, pad_entries

    model = create(name, hidden=(16,), seed=0, **({"latent": 4} if name == "multvae" else {}))
    model.n_users, model.n_items = 37, 60
    model.init_network()
    model.net.train(name == "multdae")
    batch = _batch(3)
    assert pad_entries(batch).indices.numel() > batch.indices.numel()
    results = []
    for b in (batch, pad_entries(batch)):
        torch.manual_seed(5)
        model.net.zero_grad()
        out = model.net(b)
        loss = multinomial_nll(out[0] if isinstance(out, tuple) else out, b).mean()
        if isinstance(out, tuple):
            loss = loss + 0.2 * (out[1] ** 2).sum(1).mean()  # a KL-like term on mu
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.net.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-6)
    for g0, g1 in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g0, g1, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name,pads", [("multvae", True), ("multdae", True), ("warp", False), ("lambdanet", False),
                                       ("ract", False), ("recvae", False), ("cdae", False)])
def test_only_models_whose_step_ignores_zero_entries_may_pad(name, pads):
    model = create(name, compile=True, compile_mode="reduce-overhead")
    assert model.entries_may_pad() is pads
    model._compile_state = "on"
    assert not model.pads_batches()  # on the CPU: no CUDA graphs, nothing to pad for
