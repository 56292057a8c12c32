"""EASE, EDLAE and DLAE through torch.linalg (the path a ``device`` other than cpu takes), run on
CPU here: the item weights equal the LAPACK path's, and a device fit saves and loads as a CPU one."""

import numpy as np
import pytest
import torch
from helpers import sampled_blocks

from aerec import io
from aerec.errors import ConfigError
from aerec.models import create, ease, edlae

TOL = {"float32": 1e-4, "float64": 1e-8}


@pytest.fixture(scope="module")
def x():
    return sampled_blocks(n_users=80, block=12, n_blocks=3, per_user=7, seed=1, dtype=np.float32)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["cholesky", "inverse"])
def test_ease_weights_on_a_torch_device_equal_lapacks(x, dtype, solver):
    want = ease.ease_weights(x, 10.0, dtype, solver)
    got = ease.ease_weights_on(x, 10.0, dtype, solver, device="cpu")
    assert got.dtype == want.dtype and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype])
    assert np.all(np.diag(got) == 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ["edlae", "dlae"])
def test_edlae_weights_on_a_torch_device_equal_lapacks(x, dtype, variant):
    want = edlae.edlae_weights(x, 0.3, 20.0, variant, dtype)
    got = edlae.edlae_weights_on(x, 0.3, 20.0, variant, dtype, device="cpu")
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype])


def test_a_singular_gram_is_refused_on_the_torch_path(x):
    empty_item = x.copy().tolil()
    empty_item[:, 0] = 0
    with pytest.raises(ConfigError, match="needs l2 > 0"):
        edlae.edlae_weights_on(empty_item.tocsr(), 0.3, 0.0, "dlae", "float64", device="cpu")


def test_a_device_fit_saves_and_loads_as_a_cpu_fit(x, tmp_path, monkeypatch):
    """The model's device branch, forced onto the torch path on CPU (no GPU here)."""
    cpu = create("ease", l2=10.0).fit(x)
    used = []
    real = ease.ease_weights_on
    monkeypatch.setattr(ease, "ease_weights_on",
                        lambda X, l2, dtype, solver, device: used.append(device) or real(X, l2, dtype, solver, "cpu"))
    monkeypatch.setattr(ease.EASE, "device", property(lambda self: _FakeDevice()))
    dev = create("ease", l2=10.0).fit(x)
    assert used, "the torch path was not taken"
    np.testing.assert_allclose(dev.B, cpu.B, atol=1e-4)
    monkeypatch.undo()
    for m, name in ((cpu, "cpu"), (dev, "dev")):
        io.save(m, tmp_path / name, item_ids=np.arange(x.shape[1]))
    a, b = io.load(tmp_path / "cpu"), io.load(tmp_path / "dev")
    assert type(a.B) is type(b.B) is np.ndarray and a.B.dtype == b.B.dtype
    np.testing.assert_allclose(a.score(x[:5]), b.score(x[:5]), atol=1e-3)


class _FakeDevice:
    """Looks like a non-CPU device to the model's branch, and is the CPU to torch."""

    type = "fake"

    def __eq__(self, other):
        return isinstance(other, _FakeDevice)

    def __hash__(self):
        return 0


def test_ease_device_setting_is_checked():
    with pytest.raises(ConfigError, match="device"):
        create("ease", device="gpu0")
    assert create("edlae", device="auto").config.device == "auto"


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_ease_equals_the_cpu_fit(x, dtype):
    cpu = create("ease", l2=10.0, dtype=dtype).fit(x)
    gpu = create("ease", l2=10.0, dtype=dtype, device="cuda").fit(x)
    np.testing.assert_allclose(gpu.B, cpu.B, atol=TOL[dtype])
    np.testing.assert_allclose(gpu.score(x[:5]), cpu.score(x[:5]), atol=1e-3)
    top_gpu, _ = gpu.recommend(x[:5], k=3)
    assert top_gpu.shape == (5, 3)
