"""BiVAE's final pass (Cornac's end of `learn()`), measured: the same trained model scored with the
means stored during training and with the means recomputed by the final encoders.

Strong generalization, seed 0, the bench suites' split; BiVAE's defaults (Cornac's example: k 50,
encoder [100], Poisson, 500 epochs, batch 128), early stopping off as in the reference, the best
validation epoch restored. One training per fold; both scorings read the same weights, so the
difference is the pass alone (paired across the fold's test users). The result is a measurement
of the pass, not a choice: the pass is in `fit` because Cornac has it.

    python benchmarks/bivae_final_pass.py --dataset ml-100k --folds 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "bivae-final-pass"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--folds", default="0", help="comma-separated fold indices of the 5-fold split")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    import numpy as np
    import torch

    from aerec import data, evaluation, models, protocols
    from aerec.bench.stats import paired_pvalue
    from aerec.models.neural import TorchRecommender

    torch.set_num_threads(args.threads)
    inter = data.load(args.dataset)
    folds = protocols.get("strong", folds=5, seed=0).folds(inter)
    rows = []
    for f in (int(x) for x in args.folds.split(",")):
        fold = folds[f]
        model = models.create("bivae", {"seed": 0})
        model.n_users, model.n_items = fold.train.shape  # what Recommender.fit sets before _fit
        t0 = time.perf_counter()
        TorchRecommender._fit(model, fold.train, (fold.valid_in, fold.valid_out), progress=False)  # no final pass
        model.fitted = True
        seconds = time.perf_counter() - t0
        stored = evaluation.evaluate_ranking(model, fold.test_in, fold.test_out, ks=(100,))["ndcg@100"]
        model.final_means(fold.train)  # what BiVAE.fit now ends with
        final = evaluation.evaluate_ranking(model, fold.test_in, fold.test_out, ks=(100,))["ndcg@100"]
        rows.append({"fold": f, "stored_means": float(np.mean(stored)), "final_pass": float(np.mean(final)),
                     "difference": float(np.mean(final) - np.mean(stored)), "p": paired_pvalue(final, stored),
                     "users": int(len(final)), "epochs": int(model.epochs_run), "best_epoch": int(model.best_epoch),
                     "train_seconds": seconds})
        print(json.dumps(rows[-1]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"command": "python benchmarks/bivae_final_pass.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if k != "out"), "dataset": args.dataset, "rows": rows,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()}}
    (out / f"{args.dataset}.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
