"""The device-resident training loop (models/training.py, neural.py, layers.DeviceRows), run on CPU.

- Pinned: tiny fits' per-epoch losses, validation NDCG and test metrics, recorded on main
  (without this change to the loop) with ``python tests/pinned_training.py`` (torch 2.13 CPU, one
  thread): Mult-VAE, Mult-DAE, RecVAE, WARP first at d60400e, all seven again at 4fba140 (CDAE's
  model changed on main in between); SVAE, AutoRec (item / Adam and user / RProp) and DeepRec (SGD,
  re-feeding) at 64d7b04, before their loops summed the loss on the device. The same seed must
  still give them.
- Batches gathered on the device equal the host CSR slices entry for entry.
- No step reads the device: within an epoch the host reads one number (the epoch's loss).
- The training matrix moves once per fit and is let go at its end.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from pinned_training import CASES, RATING_CASES, data, rating_data, run, run_rating

from aerec.models import create
from aerec.models.layers import DeviceRows, SparseBatch

PINNED = {"multvae": {"loss": [26.079470748901368, 25.81814453125, 25.337937698364257], "valid": [0.46081447291282573, 0.5763519752578579, 0.6136981804069336], "test": {"ndcg@5": 0.3754430630676099, "recall@10": 0.75, "map@10": 0.351984126984127, "coverage@10": 0.85}}, "multdae": {"loss": [25.985028381347657, 25.24212257385254, 24.62088836669922], "valid": [0.38876487386491093, 0.5214721246554468, 0.6423728523415215], "test": {"ndcg@5": 0.515218676514902, "recall@10": 0.75, "map@10": 0.4826190476190476, "coverage@10": 0.875}}, "recvae": {"loss": [26.45661092122396, 24.97820655822754], "valid": [0.3950220081870462, 0.4611673435035323], "test": {"ndcg@5": 0.18772153153380494, "recall@10": 0.2, "map@10": 0.1375, "coverage@10": 0.75}}, "cdae": {"loss": [38.81656188964844, 31.47659782409668, 28.6867138671875], "valid": [0.29227663238981527, 0.2926493657858402, 0.2984211313288787], "test": {"ndcg@5": 0.0, "recall@10": 0.1, "map@10": 0.013333333333333332, "coverage@10": 0.65}}, "warp": {"loss": [27.795038146972658, 26.998428802490235], "valid": [0.4190566087658686, 0.46227119481288276], "test": {"ndcg@5": 0.23516107408766418, "recall@10": 0.45, "map@10": 0.17644841269841272, "coverage@10": 0.6}}, "ract": {"loss": [26.078086853027344, 25.808583221435548, 0.027508067197632043, 0.018129355907440185, -0.5084189140796661, -0.46758140563964845], "valid": [0.46169954359659615, 0.5767030909578608, 0.5767030909578608, 0.5767030909578608, 0.5767030909578608, 0.5763519752578579], "test": {"ndcg@5": 0.3156918501917484, "recall@10": 0.6, "map@10": 0.26875000000000004, "coverage@10": 0.775}}, "bivae": {"loss": [44.7909779018826, 46.227661810980905, 44.302320353190105], "valid": [0.3740856112305785, 0.5024464815274342, 0.5907908728349158], "test": {"ndcg@5": 0.484197324898015, "recall@10": 0.95, "map@10": 0.45019841269841276, "coverage@10": 0.8}}, "svae": {"loss": [16.95578010559082, 16.495390472412108, 16.06700454711914], "valid": [0.3623320433573815, 0.4449263597269895, 0.4648350843013871], "test": {"ndcg@5": 0.24271582149599902, "recall@10": 0.55, "map@10": 0.1842857142857143, "coverage@10": 0.6}}}
PINNED_RATING = {"autorec": {"loss": [0.8714685567787716, 0.773503337587629, 0.724548705986568], "valid": [0.9594881115463478, 0.9569245302787974, 0.9389117447531047], "test": {"rmse": 0.7811476750387385, "mae": 0.559701927246586}}, "autorec-user-rprop": {"loss": [0.9015858402209622, 0.8653363117149898, 0.8320459393518311], "valid": [0.9391788431442497, 0.9351745286033032, 0.934205673706345], "test": {"rmse": 0.8171613229592171, "mae": 0.5588764195801109}}, "deeprec": {"loss": [9.147037148475647, 8.063584327697754, 3.4048867523670197], "valid": [1.979609787100998, 1.7149354875139469, 1.4333340236808096], "test": {"rmse": 1.2857150514909605, "mae": 1.023804864575786}}}


@pytest.mark.parametrize("gather", [False, True], ids=["cpu-slices", "device-gather"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_seed_gives_the_pinned_losses_and_metrics(name, gather, monkeypatch):
    """Both batch builders: the CPU's row slices and the gather a GPU uses, forced onto the CPU."""
    from aerec.models.neural import TorchRecommender

    monkeypatch.setattr(TorchRecommender, "_gather_rows", gather)
    _same(run(name), PINNED[name], relative=False)


def _same(got: dict, want: dict, relative: bool) -> None:
    """Losses to 1e-6 relative; validation and test metrics to 1e-6, absolute for ranking
    metrics (some are 0) and relative for RMSE/MAE."""
    tol = {"rtol": 1e-6, "atol": 0} if relative else {"rtol": 0, "atol": 1e-6}
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(got["valid"], want["valid"], **tol)
    for key, value in want["test"].items():
        assert got["test"][key] == (pytest.approx(value, rel=1e-6) if relative else pytest.approx(value, abs=1e-6)), key


@pytest.mark.parametrize("gather", [False, True], ids=["cpu-slices", "device-gather"])
@pytest.mark.parametrize("name", sorted(RATING_CASES))
def test_rating_models_give_the_pinned_losses_and_metrics(name, gather, monkeypatch):
    from aerec.models.neural import TorchRecommender

    monkeypatch.setattr(TorchRecommender, "_gather_rows", gather)
    _same(run_rating(name), PINNED_RATING[name], relative=True)


def _csr_with_gaps():
    rng = np.random.default_rng(4)
    x = sp.random(30, 17, density=0.3, random_state=5, format="csr", dtype=np.float32)
    x.data = rng.random(x.nnz).astype(np.float32) + 0.5
    x = x.tolil()
    x[3, :] = 0  # an empty row
    x[7, :] = 0
    return sp.csr_matrix(x)


@pytest.mark.parametrize("rows", [[0, 1, 2], [7, 3, 29, 0, 12], [3], [3, 7], list(range(30))[::-1]])
def test_device_batches_equal_the_host_slices(rows):
    x = _csr_with_gaps()
    rows = np.asarray(rows)
    held = DeviceRows(x, "cpu", gather=True)  # the GPU's path, on the CPU
    got, want = held.batch(rows), SparseBatch.from_csr(x[rows], "cpu")
    for field in ("indices", "offsets", "values", "rows"):
        assert torch.equal(getattr(got, field), getattr(want, field)), field
    assert (got.n_rows, got.n_cols) == (want.n_rows, want.n_cols)
    r, i = held.host_entries(rows)
    np.testing.assert_array_equal(r, want.rows.numpy())
    np.testing.assert_array_equal(i, want.indices.numpy())
    sliced = held.batch(rows, held.order(np.concatenate([[5], rows, [1]]))[1:-1])  # a slice of the epoch order
    assert torch.equal(sliced.indices, want.indices)


def test_row_counts_match_bincount_with_empty_rows():
    x = _csr_with_gaps()
    b = SparseBatch.from_csr(x[[3, 0, 7, 9]])
    want = torch.bincount(b.rows, minlength=b.n_rows).float()
    assert torch.equal(b.row_counts(), want)


class ReadSpy:
    """Counts host reads of tensors (float(), .item(), .tolist(), .numpy()), except of the
    optimizers' step counters, which torch keeps on the host even for a model on a GPU."""

    def __init__(self, monkeypatch, model):
        self.count = 0
        host = {id(st["step"]) for opt in model.optimizers.values() for st in opt.state.values() if "step" in st}
        for name in ("__float__", "item", "tolist", "numpy"):
            original = getattr(torch.Tensor, name)

            def spy(t, *a, _orig=original, **k):
                self.count += id(t) not in host
                return _orig(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, spy)


@pytest.mark.parametrize("name", ["multvae", "multdae", "recvae", "cdae"])
def test_an_epoch_reads_the_device_once(name, monkeypatch):
    from aerec.models.neural import TorchRecommender

    monkeypatch.setattr(TorchRecommender, "_gather_rows", True)
    train = data()[0]
    model = create(name, **CASES[name], seed=3)
    model.n_users, model.n_items = train.shape
    model.init_network()
    model.net.train()
    rng = np.random.default_rng(0)
    model._train_epoch(train, 0, rng)  # first pass: the matrix moves to the device
    spy = ReadSpy(monkeypatch, model)
    model._train_epoch(train, 1, rng)  # several steps (50 rows, batches of 8 or 16)
    assert spy.count == 1


OWN_LOOPS = ["svae", "autorec", "autorec-user-rprop", "deeprec"]  # models with an epoch loop of their own


def _count_in_second_epoch(name, monkeypatch, count, device="cpu"):
    """Fit ``name`` for two epochs; ``count(run)`` wraps the second epoch's ``_train_epoch`` (from
    its first step to its return) and gives what it counted. Rating models need their fit's state,
    so a real fit it is."""
    if name in CASES:
        model_name, settings, train = name, CASES[name], data()[0]
    else:
        (model_name, settings), train = RATING_CASES[name], rating_data()[0]
    model = create(model_name, **{**settings, "epochs": 2}, seed=3, device=device)
    original, counts = type(model)._train_epoch, []

    def wrapped(self, train, epoch, rng):
        if epoch != 1:
            return original(self, train, epoch, rng)
        out = []
        counts.append(count(self, lambda: out.append(original(self, train, epoch, rng))))
        return out[0]

    monkeypatch.setattr(type(model), "_train_epoch", wrapped)
    model.fit(train, progress=False)
    return counts


@pytest.mark.parametrize("name", OWN_LOOPS)
def test_a_fitted_epoch_reads_the_device_once(name, monkeypatch):
    from aerec.models.neural import TorchRecommender

    monkeypatch.setattr(TorchRecommender, "_gather_rows", True)

    def reads(model, run):
        spy = ReadSpy(monkeypatch, model)
        run()
        return spy.count

    assert _count_in_second_epoch(name, monkeypatch, reads) == [1]


@pytest.mark.parametrize("name", ["recvae", "svae", "autorec", "autorec-user-rprop", "deeprec"])
def test_the_training_matrix_moves_once_per_fit_and_is_released(name, monkeypatch):
    made = []
    original = DeviceRows.__init__

    def counting(self, csr, device="cpu", gather=None):
        made.append(csr.shape)
        original(self, csr, device, gather)

    monkeypatch.setattr(DeviceRows, "__init__", counting)
    if name in CASES:  # recvae: 2 epochs x 4 passes
        model_name, settings, train = name, CASES[name], data()[0]
    else:
        (model_name, settings), train = RATING_CASES[name], rating_data()[0]
    model = create(model_name, **settings, seed=3).fit(train, progress=False)
    item_based = settings.get("variant") == "item"  # I-AutoRec's rows are items
    assert made == [train.T.shape if item_based else train.shape]
    assert model._device_rows is None


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_cuda_batches_equal_the_cpu_batches():
    x = _csr_with_gaps()
    rows = np.array([7, 3, 29, 0, 12])
    got, want = DeviceRows(x, "cuda").batch(rows), SparseBatch.from_csr(x[rows])
    for field in ("indices", "offsets", "values", "rows"):
        assert torch.equal(getattr(got, field).cpu(), getattr(want, field)), field


@cuda
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_fit_trains(name):
    got = run(name, "cuda")  # CUDA draws its own dropout noise, so the figures are not the CPU's
    assert all(np.isfinite(got["loss"])) and got["valid"][-1] > 0


@cuda
@pytest.mark.parametrize("name", OWN_LOOPS)
def test_cuda_epoch_waits_for_the_device_once(name, monkeypatch):
    """torch's sync debug mode flags every call that waits for the GPU (reads, blocking copies,
    boolean masks): in an epoch, only the loss read at its end."""
    import warnings

    def syncs(model, run):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(w.message) for w in caught)

    assert _count_in_second_epoch(name, monkeypatch, syncs, device="cuda") == [1]
