"""RaCT: critic features and the NDCG target by hand, the phase schedule, a frozen actor in the
critic phase, the actor phase equal to Mult-VAE, resume across phase boundaries, planted blocks."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import block_data

from aerec.errors import ConfigError
from aerec.models import create
from aerec.models.layers import SparseBatch
from aerec.models.ract import RaCT, critic_features, ndcg_of_split


def small(**kw):
    return create("ract", {**RaCT.test_overrides, **kw})


def phases(a, c, ac, **kw):
    return small(epochs=a + c + ac, actor_epochs=a, critic_epochs=c, ac_epochs=ac, **kw)


def hand_batch():
    # row 0 holds items 0, 1, 2 (item 0 kept, 1 and 2 dropped); row 1 holds items 3, 4 (both kept)
    x = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 1, 1]], np.float32))
    return SparseBatch.from_csr(x), torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])


def test_critic_features_by_hand():
    batch, keep = hand_batch()
    logits = torch.tensor([[5.0, 1.0, 3.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    f = critic_features(batch, keep, logits)
    assert f.shape == (2, 3)
    lsm = torch.log_softmax(logits, dim=1)
    expected_nll = [-(lsm[0, 0] + lsm[0, 1] + lsm[0, 2]).item(), 2 * math.log(5)]
    torch.testing.assert_close(f, torch.tensor([[1.0, 2.0, expected_nll[0]], [2.0, 0.0, expected_nll[1]]]))


def test_ndcg_target_by_hand():
    batch, keep = hand_batch()
    logits = torch.tensor([[5.0, 1.0, 3.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    # row 0: item 0 is excluded; ranking 3, 2, 1, 4 -> targets 2 and 1 at ranks 2 and 3
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    got = ndcg_of_split(logits, batch, keep, k=100)
    assert got[0].item() == pytest.approx(expected, rel=1e-6)
    assert got[1].item() == 0.0  # no dropped item: NDCG 0, never NaN (as the reference)
    assert ndcg_of_split(logits, batch, keep, k=1)[0].item() == 0.0


def test_phase_schedule_and_steps_per_phase():
    x, _ = block_data(n_users=40)  # 40 users, batch 16 -> 3 batches per epoch
    model = phases(2, 1, 2)
    assert [model.phase(e) for e in range(5)] == ["actor", "actor", "critic", "ac", "ac"]
    calls = {"critic": 0, "ac": 0, "calibrate": 0}
    for name in calls:
        original = getattr(model, "_" + name + "_step" if name != "calibrate" else name)

        def wrapped(*a, _name=name, _f=original):
            calls[_name] += 1
            return _f(*a)

        setattr(model, "_" + name + "_step" if name != "calibrate" else name, wrapped)
    model.fit(x, progress=False)
    assert model.update_count == 2 * 3  # Mult-VAE steps in the actor phase only
    assert calls == {"critic": 3, "ac": 6, "calibrate": 1}


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


def test_critic_phase_freezes_the_actor_and_ac_phase_moves_both():
    x, _ = block_data(n_users=40)
    states = []
    model = phases(1, 1, 1)
    model.fit(x, progress=False, on_epoch_end=lambda r: states.append(snapshot(model)))
    actor_keys = [k for k in states[0] if not k.startswith("critic.")]
    critic_keys = [k for k in states[0] if k.startswith("critic.layers")]
    assert all(torch.equal(states[0][k], states[1][k]) for k in actor_keys)  # critic epoch
    assert all(not torch.equal(states[0][k], states[1][k]) for k in critic_keys if k.endswith("weight"))
    assert not torch.equal(states[0]["critic.feat_mean"], states[1]["critic.feat_mean"])  # calibrated
    assert any(not torch.equal(states[1][k], states[2][k]) for k in actor_keys)  # actor-critic epoch
    assert any(not torch.equal(states[1][k], states[2][k]) for k in critic_keys)
    torch.testing.assert_close(states[1]["critic.feat_mean"], states[2]["critic.feat_mean"])  # fixed


def test_actor_phase_is_exactly_multvae():
    x, _ = block_data(n_users=40)
    # the same code path; under "scaled" each follows its own reference's beta trajectory
    ract = phases(3, 0, 0, schedule="reference").fit(x, progress=False)
    cfg = {k: v for k, v in RaCT.test_overrides.items() if k not in ("actor_epochs", "critic_epochs", "ac_epochs",
                                                                     "lr_critic", "lr_ac")}
    vae = create("multvae", {**cfg, "epochs": 3, "schedule": "reference"}).fit(x, progress=False)
    np.testing.assert_array_equal(ract.score(x), vae.score(x))


def test_ranks_planted_item_first_and_same_seed_same_scores():
    x, held = block_data(n_users=48)
    a = small().fit(x, progress=False)
    assert (a.recommend(x, k=1)[0][:, 0] == held).all()
    b = small().fit(x, progress=False)
    np.testing.assert_array_equal(a.score(x), b.score(x))


class Stop(Exception):
    pass


@pytest.mark.parametrize("stop_after", [2, 3])  # before the critic phase; before the actor-critic phase
def test_resume_across_phase_boundary(tmp_path, stop_after):
    x, _ = block_data(n_users=40)
    whole = phases(2, 1, 2).fit(x, progress=False)

    def stop(record):
        if record["epoch"] == stop_after:
            raise Stop

    with pytest.raises(Stop):
        phases(2, 1, 2).fit(x, progress=False, checkpoint_dir=tmp_path, on_epoch_end=stop)
    resumed = phases(2, 1, 2).fit(x, progress=False, checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(resumed.score(x), whole.score(x))
    for k, v in whole.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[k], v, rtol=0, atol=0)


def test_state_round_trip():
    x, _ = block_data(n_users=40)
    model = phases(1, 1, 1).fit(x, progress=False)
    clone = create("ract", model.config_dict())
    clone.n_users, clone.n_items = model.n_users, model.n_items
    clone.init_network()
    clone.load_state_tensors({k: v.clone() for k, v in model.state_tensors().items()})
    clone.fitted = True
    np.testing.assert_array_equal(model.score(x), clone.score(x))
    assert "critic.feat_mean" in model.state_tensors()


def test_config_checks():
    assert create("ract").config.epochs == 200
    with pytest.raises(ConfigError, match="must equal"):
        create("ract", epochs=30)
    with pytest.raises(ConfigError):
        create("ract", loss="warp")
    with pytest.raises(ConfigError):
        create("ract", dropout=0.0)
    with pytest.raises(ConfigError):
        create("ract", epochs=10, actor_epochs=20, critic_epochs=-5, ac_epochs=-5)
