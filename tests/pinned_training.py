"""The tiny fits whose per-epoch losses and metrics tests/test_device_loop.py pins (shared with
the script that recorded them, so both run exactly the same thing)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

CASES = {
    "multvae": {"epochs": 3, "hidden": [16], "latent": 4, "batch_size": 16, "lr": 1e-2},
    "multdae": {"epochs": 3, "hidden": [16], "batch_size": 16, "lr": 1e-2},
    "recvae": {"epochs": 2, "hidden": 16, "latent": 4, "layers": 2, "batch_size": 16, "lr": 1e-2,
               "schedule": "reference"},
    "cdae": {"epochs": 3, "hidden": 8, "batch_size": 8},
    "warp": {"epochs": 2, "hidden": [16], "latent": 4, "batch_size": 16, "lr": 1e-2},
    "ract": {"epochs": 6, "actor_epochs": 2, "critic_epochs": 2, "ac_epochs": 2, "hidden": [16], "latent": 4,
             "batch_size": 16, "lr": 1e-2},
    "bivae": {"epochs": 3, "batch_size": 16},
    # binary values: SVAE breaks order ties at random each epoch, from the seeded generator
    "svae": {"epochs": 3, "embed": 8, "rnn": 8, "hidden": 8, "latent": 4, "batch_size": 8, "lr": 1e-2,
             "weight_decay": 0.0, "total_anneal_steps": 2000},
}
# rating models: (model, settings); early stopping on validation RMSE
RATING_CASES = {
    "autorec": ("autorec", {"variant": "item", "hidden": 8, "epochs": 3, "lam": 1.0, "lr": 0.03, "batch_size": 16,
                            "patience": 0}),
    "autorec-user-rprop": ("autorec", {"variant": "user", "optimizer": "rprop", "hidden": 8, "epochs": 3,
                                       "lam": 1.0, "lr": 0.01, "batch_size": 16, "patience": 0}),
    "deeprec": ("deeprec", {"layers": (16, 8), "dropout": 0.5, "epochs": 3, "optimizer": "sgd", "lr": 0.01,
                            "batch_size": 16, "refeed": 1, "patience": 0}),
}


def data(seed: int = 0, n_users: int = 70, n_items: int = 40, per_user: int = 7):
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        block = u % 4
        pool = np.arange(block * 10, block * 10 + 10)
        items = rng.choice(pool, per_user, replace=False)
        rows += [u] * per_user
        cols += sorted(items.tolist())
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    train, held = x[:50], x[50:]
    # held-out users: first 5 items as input, the rest as target
    hin, hout = held.tolil(copy=True), held.tolil(copy=True)
    for r in range(held.shape[0]):
        idx = held[r].indices
        for j in idx[5:]:
            hin[r, j] = 0
        for j in idx[:5]:
            hout[r, j] = 0
    hin, hout = sp.csr_matrix(hin), sp.csr_matrix(hout)
    hin.eliminate_zeros()
    hout.eliminate_zeros()
    return train, hin[:10], hout[:10], hin[10:], hout[10:]


def run(name: str, device: str = "cpu") -> dict:
    from aerec import evaluation
    from aerec.models import create

    torch.set_num_threads(1)
    train, vin, vout, tin, tout = data()
    model = create(name, **CASES[name], seed=3, device=device)
    model.fit(train, (vin, vout), progress=False)
    per_user = evaluation.evaluate_ranking(model, tin, tout, ks=(5, 10))
    summary = evaluation.summarize(per_user)
    return {"loss": [h["loss"] for h in model.history],
            "valid": [h["valid_ndcg@100"] for h in model.history],
            "test": {k: summary[k] for k in ("ndcg@5", "recall@10", "map@10", "coverage@10")}}


def rating_data():
    """(train, valid, test): a planted low-rank rating matrix, its held-out entries halved."""
    from helpers import lowrank_ratings

    train, held = lowrank_ratings(seed=1)
    h = held.tocoo()
    half = np.arange(h.nnz) % 2 == 0

    def part(keep):
        return sp.csr_matrix((h.data[keep], (h.row[keep], h.col[keep])), shape=held.shape)

    return train, part(half), part(~half)


def run_rating(name: str, device: str = "cpu") -> dict:
    from aerec import evaluation
    from aerec.models import create

    torch.set_num_threads(1)
    model_name, settings = RATING_CASES[name]
    train, valid, test = rating_data()
    model = create(model_name, **settings, seed=3, device=device)
    model.fit(train, valid, progress=False)
    out = evaluation.evaluate_rating(model, test)
    return {"loss": [h["loss"] for h in model.history],
            "valid": [h["valid_rmse"] for h in model.history],
            "test": {"rmse": out["rmse"], "mae": out["mae"]}}


if __name__ == "__main__":
    import json
    import sys

    names = sys.argv[1:] or [*CASES, *RATING_CASES]
    print(json.dumps({n: run(n) if n in CASES else run_rating(n) for n in names}))
