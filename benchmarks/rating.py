"""Rating benchmark: I-AutoRec, U-AutoRec, DeepRec and Surprise's SVD / SVD++ on identical folds.

    python benchmarks/rating.py --dataset ml-100k --protocol ratings-kfold
    python benchmarks/rating.py --dataset ml-1m --protocol ratings-holdout --folds 1 --models autorec-item
    python benchmarks/rating.py --dataset ml-1m --protocol ratings-kfold --models deeprec --set deeprec.epochs=100

Every model gets the same fold: it fits ``fold.train`` (the autoencoders stop early on
``fold.valid``, a slice of the training ratings, never the test part) and is scored on
``fold.test``. Surprise fits the same ``fold.train`` with its default hyperparameters (it does
not use the validation slice). Writes ``benchmarks/results/rating-<dataset>-<protocol>.{md,json}``
after every cell, with the command, the machine and each model's config.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from aerec import config as cfgmod
from aerec import data, evaluation, models
from aerec.protocols import get as get_protocol

# Benchmark configurations: the model defaults, tuned lam for AutoRec (see docs/_sections/autorec.md).
MODELS = {
    "autorec-item": ("autorec", {"variant": "item"}),
    "autorec-user": ("autorec", {"variant": "user"}),
    "deeprec": ("deeprec", {}),
    "svd": ("surprise", {"algo": "SVD"}),
    "svdpp": ("surprise", {"algo": "SVDpp"}),
}


def run_surprise(algo: str, fold, seed: int) -> dict:
    import surprise

    train = fold.train.tocoo()
    lo, hi = float(train.data.min()), float(train.data.max())
    frame = __import__("pandas").DataFrame({"u": train.row, "i": train.col, "r": train.data})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(lo, hi))).build_full_trainset()
    model = getattr(surprise, algo)(random_state=seed)
    t0 = time.perf_counter()
    model.fit(trainset)
    fit_s = time.perf_counter() - t0
    test = fold.test.tocoo()
    pred = np.array([model.predict(int(u), int(i)).est for u, i in zip(test.row, test.col)])  # Surprise's API is per pair
    err = pred - test.data
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "epochs": model.n_epochs,
            "best_epoch": model.n_epochs, "train_seconds": fit_s, "config": {"algo": algo, "defaults": True}}


def run_aerec(name: str, overrides: dict, fold, seed: int) -> dict:
    model = models.create(name, {**overrides, "seed": seed})
    t0 = time.perf_counter()
    model.fit(fold.train, fold.valid if fold.valid.nnz else None, progress=False)
    fit_s = time.perf_counter() - t0
    res = evaluation.evaluate_rating(model, fold.test)
    return {"rmse": float(res["rmse"]), "mae": float(res["mae"]), "epochs": model.epochs_run,
            "best_epoch": model.best_epoch, "train_seconds": fit_s, "config": model.config_dict(),
            "unseen": model.unseen_counts()}


def table(results: dict) -> str:
    lines = ["| model | RMSE | MAE | folds | epochs run (best) | train s / fold | defaulted test cases |",
             "|---|---|---|---|---|---|---|"]
    for key, cells in results.items():
        if not cells:
            continue
        r = {k: np.array([c[k] for c in cells], dtype=float) for k in ("rmse", "mae", "epochs", "best_epoch", "train_seconds")}
        sd = lambda a: a.std(ddof=1) if len(a) > 1 else 0.0  # noqa: E731
        unseen = sum(c.get("unseen", {}).get("defaulted", 0) for c in cells)
        lines.append(f"| {key} | {r['rmse'].mean():.4f} ± {sd(r['rmse']):.4f} | {r['mae'].mean():.4f} ± {sd(r['mae']):.4f} "
                     f"| {len(cells)} | {r['epochs'].mean():.0f} ({r['best_epoch'].mean():.0f}) "
                     f"| {r['train_seconds'].mean():.0f} | {unseen if key.startswith(('autorec', 'deeprec')) else '—'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--protocol", default="ratings-kfold", choices=["ratings-kfold", "ratings-holdout"])
    ap.add_argument("--n-folds", type=int, default=5, help="folds (k-fold) or repeats (hold-out) of the protocol")
    ap.add_argument("--folds", type=int, default=None, help="run only the first N of them")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--set", action="append", default=[], help="model.key=value, e.g. deeprec.epochs=100")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    overrides = {k: dict(MODELS[k][1]) for k in keys}
    for item in args.set:
        target, kv = item.split(".", 1)
        overrides[target].update(cfgmod.parse_set([kv]))
    opts = {"n_folds": args.n_folds} if args.protocol == "ratings-kfold" else {"repeats": args.n_folds}
    protocol = get_protocol(args.protocol, seed=args.seed, **opts)
    inter = data.load(args.dataset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"rating-{args.dataset}-{args.protocol}"
    results: dict = {k: [] for k in keys}
    commands: list = []
    if stem.with_suffix(".json").exists():  # keep other models' rows from an earlier run on the same folds
        old = json.loads(stem.with_suffix(".json").read_text())
        if old.get("protocol") == {"name": args.protocol, **protocol.options()}:
            results = {**{k: v for k, v in old["results"].items() if k not in keys}, **results}
            commands = [c for c in old.get("commands", []) if c]
    meta = {"command": "python benchmarks/rating.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "dataset": args.dataset, "protocol": {"name": args.protocol, **protocol.options()},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "python": platform.python_version(), "torch": torch.__version__},
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    meta["commands"] = commands + [meta["command"]]
    for f, fold in enumerate(protocol.split(inter)):
        if args.folds is not None and f >= args.folds:
            break
        for key in keys:
            name, ov = MODELS[key][0], overrides[key]
            try:
                cell = run_surprise(ov["algo"], fold, args.seed) if name == "surprise" else run_aerec(name, ov, fold, args.seed)
            except ImportError as e:
                print(f"{key}: skipped ({e}); install the 'peers' extra (scikit-surprise)", flush=True)
                continue
            cell["fold"] = f
            results[key].append(cell)
            print(f"fold {f} {key}: rmse {cell['rmse']:.4f} mae {cell['mae']:.4f} epochs {cell['epochs']} "
                  f"(best {cell['best_epoch']}) {cell['train_seconds']:.0f}s", flush=True)
            meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            stem.with_suffix(".json").write_text(json.dumps({**meta, "results": results}, indent=1))
            stem.with_suffix(".md").write_text(
                f"# Rating benchmark: {args.dataset}, {args.protocol}\n\n{table(results)}\n\n"
                f"RMSE / MAE: mean ± std (ddof 1) over the folds run, on each fold's test ratings; early stopping on "
                f"the fold's validation slice. Epochs: run (best, restored). Surprise: defaults, fit on the same "
                f"training ratings.\n\nCommands: " + "; ".join(f"`{c}`" for c in meta["commands"]) + "\n\n"
                f"Machine: {meta['machine']}\n\n"
                f"Protocol: {meta['protocol']}\n\nRun: {meta['started']} – {meta['finished']}\n")


if __name__ == "__main__":
    main()
