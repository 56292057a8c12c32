"""Schedules by training progress (issue 13).

The reference codes count their schedules in gradient steps, on data far larger than MovieLens
(ML-20M, Netflix). ``schedule = "reference"`` keeps those step counts literally;
``schedule = "scaled"`` expresses the same schedule as a fraction of training, anchored on the
reference's own data shape, so that on that shape both give exactly the same numbers.

Each model keeps its reference shape here, so the tests can replay the reference trajectory
without data. A shape is (training rows, batch size, epochs); steps per epoch = ceil(rows /
batch), the last partial batch counted, as every reference here (and aerec) does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Schedule = Literal["reference", "scaled"]


@dataclass(frozen=True)
class RefShape:
    rows: int  # training rows of one epoch (users; items for item-based models)
    batch_size: int
    epochs: int  # the reference's epoch count over which its schedule runs

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.rows, self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, math.ceil(rows / batch_size))


# vae_cf notebook: ML-20M, 116,677 training users (136,677 - 2 x 10,000 held out), batch 500,
# 200 epochs -> 234 batches per epoch, 46,800 steps; beta = min(0.2, step / 200,000).
MULTVAE_REF = RefShape(rows=116_677, batch_size=500, epochs=200)
# RaCT_CF main_vae.py: the same ML-20M split and batch; the actor (where beta anneals) runs 100
# epochs, the critic and actor-critic phases 50 each, all at 234 steps per epoch.
RACT_REF = RefShape(rows=116_677, batch_size=500, epochs=100)
# RecVAE run.py: ML-20M (same split), batch 500, 50 epochs.
RECVAE_REF = RefShape(rows=116_677, batch_size=500, epochs=50)
# DeepRecommender, Netflix full (NF_TRAIN: 477,412 users), batch 128 -> 3,730 batches per epoch;
# its lr milestones are epochs of that size (epochs: aerec's budget; only steps per epoch are used).
DEEPREC_REF = RefShape(rows=477_412, batch_size=128, epochs=100)
# svae_cf main_svae.ipynb: ML-1M, 4,534 training users, batch 1, 25 epochs (the notebook's
# "Number of train batches: 4534").
SVAE_REF = RefShape(rows=4_534, batch_size=1, epochs=25)


def step_ratio(ref: RefShape, rows: int, batch_size: int) -> float:
    """Reference steps per epoch / this run's steps per epoch (1.0 exactly on the reference shape)."""
    return ref.steps_per_epoch / steps_per_epoch(rows, batch_size)
