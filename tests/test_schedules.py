"""Schedules by training progress (issue 13): on each reference's own data shape, ``scaled``
replays the reference's step-counted trajectory exactly; elsewhere it follows progress."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import block_data, lowrank_ratings

from aerec.errors import ConfigError
from aerec.models.deeprec import DeepRec
from aerec.models.lambdanet import LambdaNet
from aerec.models.multvae import MultVAE, annealed_beta, scaled_beta
from aerec.models.ract import RaCT
from aerec.models.recvae import SCALED_MAX_EPOCHS, RecVAE
from aerec.models.schedules import DEEPREC_REF, MULTVAE_REF, RACT_REF, RECVAE_REF, SVAE_REF, steps_per_epoch
from aerec.models.svae import SVAE, svae_scaled_beta

ML20M_TRAIN_USERS = 116_677  # 136,677 users after filtering, minus 2 x 10,000 held out
ML1M_TRAIN_USERS = 3_624  # about what 5-fold strong generalization leaves on ML-1M


def unfitted(cls, n_users: int, n_items: int = 12, **config):
    """A model with its shape set and network built, as the Trainer has it (no data needed)."""
    m = cls(**config)
    m.n_users, m.n_items = n_users, n_items
    m.init_network()
    return m


def test_reference_shapes():
    assert MULTVAE_REF.steps_per_epoch == 234 and MULTVAE_REF.total_steps == 46_800
    assert RACT_REF.total_steps == 23_400 and RECVAE_REF.steps_per_epoch == 234
    assert DEEPREC_REF.steps_per_epoch == 3_730  # Netflix's 477,412 users / 128
    assert SVAE_REF.steps_per_epoch == 4_534
    assert steps_per_epoch(ML1M_TRAIN_USERS, 500) == 8


def test_multvae_scaled_beta_is_the_reference_on_ml20m():
    m = unfitted(MultVAE, ML20M_TRAIN_USERS, schedule="scaled")
    assert m.planned_anneal_steps() == 234 * 200
    planned = m.planned_anneal_steps()
    # every step of the reference's 200 epochs, bit for bit
    assert all(scaled_beta(s, 0.2, 200_000, planned, m.ref_shape) == annealed_beta(s, 0.2, 200_000)
               for s in range(46_800 + 1))
    for step in range(0, 46_800 + 1, 97):  # and the model's own beta
        m.update_count = step
        assert m.current_beta() == annealed_beta(step, 0.2, 200_000)
    m.update_count = 39_999
    assert m.current_beta() < 0.2
    m.update_count = 40_000  # the cap, at 85.5% of training
    assert m.current_beta() == 0.2 and 40_000 / 46_800 == pytest.approx(0.8547, abs=1e-4)


def test_multvae_scaled_beta_follows_progress_on_small_data():
    ref = unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="reference")
    m = unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="scaled")
    total = m.planned_anneal_steps()
    assert total == 8 * 200
    ref.update_count = m.update_count = total
    assert ref.current_beta() == pytest.approx(0.008)  # the reference never gets near its cap
    assert m.current_beta() == 0.2
    cap_at = [s for s in range(total + 1) if scaled_beta(s, 0.2, 200_000, total, MULTVAE_REF) >= 0.2][0]
    assert cap_at / total == pytest.approx(40_000 / 46_800, abs=1e-3)  # same fraction of training
    half = unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="scaled", anneal_steps_frac=0.5)
    half.update_count = total // 4
    assert half.current_beta() == pytest.approx(0.1)
    half.update_count = total // 2
    assert half.current_beta() == pytest.approx(0.2)
    const = unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="scaled", beta=0.3)
    assert const.current_beta() == 0.3


def test_lambdanet_inherits_the_scaled_schedule():
    m = unfitted(LambdaNet, ML20M_TRAIN_USERS, schedule="scaled", hidden=(4,), latent=2)
    for step in (0, 1, 12_345, 39_999, 40_000, 46_799):
        m.update_count = step
        assert m.current_beta() == annealed_beta(step, 0.2, 200_000)


def test_schedule_config_checks():
    with pytest.raises(ConfigError):
        MultVAE(schedule="linear")
    with pytest.raises(ConfigError):
        MultVAE(anneal_steps_frac=0.0)
    for cls in (DeepRec, RecVAE, SVAE):
        with pytest.raises(ConfigError):
            cls(schedule="steps")


def test_ract_scaled_is_the_reference_on_ml20m():
    small = {"hidden": (4,), "latent": 2, "critic_hidden": (3,)}
    m = unfitted(RaCT, ML20M_TRAIN_USERS, schedule="scaled", **small)
    assert m.phase_lr_scale() == 1.0
    assert m.optimizers["ac"].param_groups[0]["lr"] == 2e-6
    assert m.optimizers["critic"].param_groups[0]["lr"] == 1e-4
    assert m.planned_anneal_steps() == 234 * 100  # beta anneals over the actor's 100 epochs
    for step in range(0, 23_400 + 1, 7):
        m.update_count = step
        assert m.current_beta() == annealed_beta(step, 0.2, 200_000)


def test_ract_scaled_keeps_the_references_phase_reach_on_small_data():
    small = {"hidden": (4,), "latent": 2, "critic_hidden": (3,)}
    ref = unfitted(RaCT, ML1M_TRAIN_USERS, schedule="reference", **small)
    m = unfitted(RaCT, ML1M_TRAIN_USERS, schedule="scaled", **small)
    assert ref.optimizers["ac"].param_groups[0]["lr"] == 2e-6
    lr_ac = m.optimizers["ac"].param_groups[0]["lr"]
    assert lr_ac == pytest.approx(2e-6 * 234 / 8)
    # lr x steps in the 50-epoch actor-critic phase equals the reference's 2e-6 x 50 x 234
    assert lr_ac * 50 * 8 == pytest.approx(2e-6 * 50 * 234)
    assert m.optimizers["main"].param_groups[0]["lr"] == 1e-3  # the actor phase's lr is per epoch anyway


def test_deeprec_scaled_milestones_are_netflix_batches():
    ref, sc = DeepRec(schedule="reference"), DeepRec(schedule="scaled")
    for epoch in range(100):  # on Netflix's shape both give the reference's lr at every epoch
        assert sc.lr_at(epoch, 3_730) == ref.lr_at(epoch, 3_730)
    assert ref.lr_at(23, 8) == 0.005 and ref.lr_at(24, 8) == 0.0025 and ref.lr_at(72, 8) == 0.005 / 32
    # ML-100K (8 batches per epoch): the first halving comes after 24 x 3,730 batches, epoch 11,190
    assert sc.lr_at(99, 8) == 0.005
    assert sc.lr_at(11_189, 8) == 0.005 and sc.lr_at(11_190, 8) == 0.0025


def test_deeprec_scaled_trains_with_the_scaled_lr():
    train, _ = lowrank_ratings()
    m = DeepRec(**{**DeepRec.test_overrides, "optimizer": "sgd", "lr": 0.01, "epochs": 3,
                   "lr_milestones": (1,), "schedule": "scaled"}).fit(train, progress=False)
    assert m.optimizers["main"].param_groups[0]["lr"] == 0.01  # 1 x 3,730 batches not yet reached
    m = DeepRec(**{**DeepRec.test_overrides, "optimizer": "sgd", "lr": 0.01, "epochs": 3,
                   "lr_milestones": (1,), "schedule": "reference"}).fit(train, progress=False)
    assert m.optimizers["main"].param_groups[0]["lr"] == 0.005


def test_recvae_unset_epochs_scaled_ceiling_is_the_reference_step_budget_bounded():
    small = {"hidden": 4, "latent": 2, "layers": 1}
    assert unfitted(RecVAE, ML20M_TRAIN_USERS, schedule="scaled", **small).epoch_ceiling() == 50
    m = unfitted(RecVAE, 20_000, schedule="scaled", **small)  # 40 batches per epoch: below the bound
    assert m.epoch_ceiling() == math.ceil(50 * 234 / 40) and m.stop_patience() == 20
    m = unfitted(RecVAE, ML1M_TRAIN_USERS, schedule="scaled", **small)  # 1,463 by steps: bounded
    assert m.epoch_ceiling() == SCALED_MAX_EPOCHS == 500
    ref = {"schedule": "reference", **small}
    assert unfitted(RecVAE, ML1M_TRAIN_USERS, **ref).epoch_ceiling() == 50
    assert unfitted(RecVAE, ML1M_TRAIN_USERS, **ref).stop_patience() == 0
    m = unfitted(RecVAE, ML1M_TRAIN_USERS, schedule="scaled", patience=5, **small)
    assert m.stop_patience() == 5


def test_recvae_typed_epochs_are_exact_under_both_schedules():
    for schedule in ("reference", "scaled"):
        m = unfitted(RecVAE, ML1M_TRAIN_USERS, schedule=schedule, epochs=3, hidden=4, latent=2, layers=1)
        assert m.epoch_ceiling() == 3 and m.stop_patience() == 0 and m.schedule_note(3, 0) is None
    x, _ = block_data(30)
    m = RecVAE(**{**RecVAE.test_overrides, "epochs": 3, "batch_size": 16, "schedule": "scaled"}).fit(
        x, (x, x), progress=False)
    assert m.epochs_run == 3 == m.epoch_limit  # issue 23: --epochs 3 trains 3, not a ceiling of hundreds


def test_recvae_unset_epochs_trains_past_50_and_says_so(capsys):
    x, held = block_data(30)
    over = {**RecVAE.test_overrides, "epochs": None, "batch_size": 16, "patience": 3}
    ref = RecVAE(**over).fit(x, (x, x), progress=False)  # test_overrides: schedule=reference
    assert ref.epoch_limit == 50
    sc = RecVAE(**{**over, "schedule": "scaled"}).fit(x, (x, x), progress=True)
    assert sc.epoch_limit == SCALED_MAX_EPOCHS  # 2 batches of 16 per epoch: 5,850 by steps
    assert sc.epochs_run <= sc.epoch_limit and sc.history[-1]["epoch"] == sc.epochs_run
    err = capsys.readouterr().err
    assert "recvae: epochs unset, so schedule 'scaled' trains up to 500 epochs (+450 over the reference's 50" in err


def test_svae_scaled_beta_is_the_references_batch_one_sawtooth():
    for u in range(SVAE_REF.rows):  # the notebook: one user per step, counter restarted each epoch
        assert svae_scaled_beta(u, 4_534, 0.2, 200_000) == min(0.2, u / 200_000)
    # by progress through the epoch on other data: half an epoch gives the reference's half-epoch beta
    assert svae_scaled_beta(500, 1_000, 0.2, 200_000) == pytest.approx(2_267 / 200_000)


def test_svae_scaled_lr_and_betas_in_training():
    m = SVAE(schedule="scaled", batch_size=1)
    assert m.scaled_lr() == m.config.lr
    assert SVAE(schedule="scaled", batch_size=32).scaled_lr() == pytest.approx(1e-3 * math.sqrt(32))
    assert SVAE(batch_size=32, schedule="reference").scaled_lr() == 1e-3

    x, _ = block_data(6)
    x.data = np.tile(np.arange(1, 8, dtype=np.float32), 6)  # positions 1..7 in each row
    seen = []
    m = SVAE(**{**SVAE.test_overrides, "epochs": 2, "batch_size": 2, "schedule": "scaled"})
    original = m.batch_loss
    m.batch_loss = lambda batch, beta, rng=None: (seen.append(beta), original(batch, beta, rng))[1]
    m.fit(x, progress=False)
    per_epoch = [u * 4_534 / (6 * 200_000) for u in (0, 2, 4)]
    assert seen == per_epoch * 2  # restarts every epoch, as the reference's counter


def test_recvae_scaled_without_validation_trains_its_epochs():
    x, _ = block_data(30)
    m = RecVAE(**{**RecVAE.test_overrides, "epochs": 2, "batch_size": 16, "schedule": "scaled"}).fit(x, progress=False)
    assert m.epochs_run == 2 == m.epoch_limit  # no validation, no early stopping: the ceiling is epochs
    m = unfitted(RecVAE, ML1M_TRAIN_USERS, schedule="scaled", hidden=4, latent=2, layers=1)
    assert m.planned_epochs() == 50  # unset: the reference's 50


# early stopping waits for the schedule ---------------------------------------------------------


def _flat_validation(monkeypatch):
    """Every epoch scores the same: the first epoch stays best and every later one is 'bad'."""
    from aerec.models import training

    monkeypatch.setattr(training, "validation_score", lambda model, valid: 0.5)


def test_multvae_scaled_holds_early_stopping_until_beta_reaches_its_cap(monkeypatch):
    assert unfitted(MultVAE, ML20M_TRAIN_USERS, schedule="scaled").no_stop_before() == 171  # 40,000 / 234
    assert unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="scaled").no_stop_before() == 172  # step 1,368 of 8 per epoch
    assert unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="scaled", anneal_steps_frac=0.5).no_stop_before() == 101
    assert unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="reference").no_stop_before() == 0
    assert unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="scaled", beta=0.2).no_stop_before() == 0
    m = unfitted(MultVAE, ML1M_TRAIN_USERS, schedule="scaled", epochs=40)
    floor = m.no_stop_before()
    assert m.current_beta() < m.config.anneal_cap and 30 < floor < 40
    m.update_count = (floor - 1) * 8 - 1  # the last step of the epoch before: beta still rising
    assert m.current_beta() < m.config.anneal_cap
    m.update_count = floor * 8
    assert m.current_beta() == m.config.anneal_cap

    _flat_validation(monkeypatch)
    x, _ = block_data(30)
    over = {**MultVAE.test_overrides, "epochs": 12, "batch_size": 16, "patience": 2}
    run = MultVAE(**{**over, "schedule": "scaled"}).fit(x, (x, x), progress=False)
    assert run.stop_floor == run.no_stop_before() == 11  # 0.855 of 12 epochs, rounded up
    assert run.epochs_run == 12 and run.best_epoch == 1  # no stop before 11, then 1 bad epoch of 2
    run = MultVAE(**{**over, "schedule": "reference"}).fit(x, (x, x), progress=False)
    assert run.epochs_run == 3 and run.stop_floor == 0  # the literal code: patience from epoch 1


def test_deeprec_holds_early_stopping_until_its_last_lr_halving(monkeypatch):
    _flat_validation(monkeypatch)
    x, test = lowrank_ratings()
    base = {**DeepRec.test_overrides, "optimizer": "sgd", "lr": 0.01, "epochs": 10, "lr_milestones": (2, 5),
            "patience": 2}
    m = DeepRec(**{**base, "schedule": "reference"}).fit(x, test, progress=False)
    assert m.stop_floor == 6 and m.epochs_run == 8  # the halving at 0-based epoch 5 applies in epoch 6
    m = DeepRec(**{**base, "schedule": "scaled"}).fit(x, test, progress=False)
    assert m.stop_floor == 0 and m.epochs_run == 3  # 2 x 3,730 batches lie past 10 small epochs
    m = DeepRec(**{**base, "optimizer": "adam"}).fit(x, test, progress=False)
    assert m.stop_floor == 0 and m.epochs_run == 3
