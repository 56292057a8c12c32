"""SANSA on a synthetic catalogue of 200,000 items within 4 GB, where EASE refuses.

Data: ``aerec.data.synth(USERS, 200_000, INTERACTIONS, seed)``, every interaction a positive,
fitted as one users x items matrix (all 200,000 columns, also the items nobody drew).

Steps, in this one process:
1. EASE is asked to fit first, with its default memory check (MemAvailable) and again with
   ``max_memory_gb=4``: both must refuse with a ResourceError before allocating anything;
2. the kernel's high-water mark (VmHWM) is reset through /proc/self/clear_refs, then SANSA fits
   (``factorizer="icf"``, the factorizer for large sparse Gram matrices); the peak RSS of the fit
   is the VmHWM after it (the process-wide ru_maxrss is recorded too, data synthesis included);
3. a sanity check of quality: 2,000 random users with >= 5 items get 20% of their items hidden
   (fit on the rest of the matrix), and SANSA's NDCG@100 on them is set beside popularity's.

Writes benchmarks/results/sansa_scale.{json,md} with the command, machine and load.

    nice .venv/bin/python benchmarks/sansa_scale.py            # ~10 minutes on 2 busy cores
    nice .venv/bin/python benchmarks/sansa_scale.py --quick    # 20,000 items, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = {"full": (250_000, 200_000, 1_000_000), "quick": (20_000, 20_000, 150_000)}
LIMIT_MB = 4000  # 4 GB

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import hwm_mb, reset_peak, rss_mb  # noqa: E402  (VmHWM reset and reads, shared)


def split_holdout(X: sp.csr_matrix, n_users: int, seed: int):
    """(train, input rows, target rows): 20% of the items of n_users users with >= 5 items hidden."""
    rng = np.random.default_rng(seed)
    counts = np.diff(X.indptr)
    users = rng.choice(np.flatnonzero(counts >= 5), size=n_users, replace=False)
    X = X.tolil(copy=True)
    rows_in, rows_out = [], []
    for u in users:
        items = np.array(X.rows[u])
        hide = rng.random(len(items)) < 0.2
        hide[rng.integers(len(items))] = True  # at least one target
        rows_in.append(items[~hide])
        rows_out.append(items[hide])
        X.rows[u], X.data[u] = list(items[~hide]), [1.0] * int((~hide).sum())

    def csr(rows):
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        idx = np.concatenate(rows).astype(np.int32)
        return sp.csr_matrix((np.ones(len(idx), np.float32), idx, indptr), shape=(len(rows), X.shape[1]))

    return X.tocsr(), csr(rows_in), csr(rows_out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-item", type=float, default=15.0,
                    help="SANSA factor entries per item: density = per_item / items")
    ap.add_argument("--l2", type=float, default=500.0)
    args = ap.parse_args()

    from aerec.data.synth import synth
    from aerec.errors import ResourceError
    from aerec.evaluation import evaluate_ranking
    from aerec.models.ease import EASE
    from aerec.models.pop import Popularity
    from aerec.models.sansa import SANSA

    n_users, n_items, n_inter = SHAPES["quick" if args.quick else "full"]
    args.density = args.per_item / n_items
    t0 = time.perf_counter()
    data = synth(n_users, n_items, n_inter, seed=args.seed)
    X = data.csr().astype(np.float32)
    X.data[:] = 1.0
    synth_s = time.perf_counter() - t0
    train, hist_in, hist_out = split_holdout(X, 2000 if not args.quick else 500, args.seed)
    del X
    out: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "data": {"users": int(train.shape[0]), "items": int(train.shape[1]), "interactions": int(train.nnz),
                 "items_with_interactions": int((np.diff(train.tocsc().indptr) > 0).sum()),
                 "synth_seconds": round(synth_s, 1)},
    }

    refusals = {}
    # the quick catalogue's dense B would fit in memory, so only a cap that it exceeds is asked there
    asks = (("default (MemAvailable)", {}), ("max_memory_gb=4", {"max_memory_gb": 4.0}))
    for label, kw in asks if not args.quick else (("max_memory_gb=0.5", {"max_memory_gb": 0.5}),):
        try:
            EASE(**kw).fit(train)
            refusals[label] = None
        except ResourceError as e:
            refusals[label] = str(e)
    out["ease_refusal"] = refusals

    gram_nnz = int(sp.csc_matrix(train.T @ train).nnz)
    out["gram_nnz"] = gram_nnz
    rss_before = rss_mb()
    hwm_reset = reset_peak()
    t0 = time.perf_counter()
    m = SANSA(l2=args.l2, density=args.density, factorizer="icf").fit(train)
    fit_s = time.perf_counter() - t0
    peak = hwm_mb()
    out["sansa"] = {
        "config": m.config_dict(), "fit_seconds": round(fit_s, 1),
        "rss_before_fit_mb": round(rss_before, 1), "peak_rss_during_fit_mb": round(peak, 1),
        "peak_is_fit_only": hwm_reset, "process_ru_maxrss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "W1_nnz": int(m.W1.nnz), "W2_nnz": int(m.W2.nnz),
        "weights_mb": round(sum(a.nbytes for a in m.state_arrays().values()) / 1e6, 1),
        "within_4gb": bool(peak <= LIMIT_MB),
    }
    ndcg = {}
    for name, model in (("sansa", m), ("pop", Popularity().fit(train))):
        r = evaluate_ranking(model, hist_in, hist_out, ks=(20, 100), block_size=128)
        ndcg[name] = {k: round(float(np.nanmean(r[k])), 4) for k in ("ndcg@100", "recall@20")}
    out["quality_2000_heldout_users"] = ndcg
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]

    RESULTS.mkdir(exist_ok=True)
    from aerec.fsutil import write_text

    stem = "sansa_scale" if not args.quick else "sansa_scale-quick"
    write_text(RESULTS / f"{stem}.json", json.dumps(out, indent=2) + "\n")
    s, d = out["sansa"], out["data"]
    md = [
        "# SANSA at 200,000 items within 4 GB" if not args.quick else "# SANSA scale (quick smoke run)",
        "",
        f"Command: `{out['command']}` on {out['machine']['platform']}, {out['machine']['cpus']} CPUs; "
        f"load average before {out['load_before']}, after {out['load_after']}.",
        "",
        f"Data: synth({n_users}, {n_items}, {n_inter}, seed={args.seed}), binary: {d['users']} users x "
        f"{d['items']} items ({d['items_with_interactions']} with an interaction), {d['interactions']} "
        f"interactions in training; X^T X has {out['gram_nnz']:,} non-zeros.",
        "",
        "| | value |",
        "|---|---:|",
        f"| SANSA fit (icf, density {args.density:g}, l2 {args.l2:g}) | {s['fit_seconds']} s |",
        f"| peak RSS during the fit (VmHWM, reset before) | **{s['peak_rss_during_fit_mb']:.0f} MB** |",
        f"| RSS before the fit | {s['rss_before_fit_mb']:.0f} MB |",
        f"| process peak (ru_maxrss, data synthesis included) | {s['process_ru_maxrss_mb']:.0f} MB |",
        f"| within 4 GB | {'yes' if s['within_4gb'] else 'NO'} |",
        f"| weights: nnz W1 / W2, bytes | {s['W1_nnz']:,} / {s['W2_nnz']:,}, {s['weights_mb']} MB |",
        f"| NDCG@100 on 2,000 held-out users: SANSA / popularity | {ndcg['sansa']['ndcg@100']} / "
        f"{ndcg['pop']['ndcg@100']} |",
        "",
        "EASE on the same matrix:",
        "",
        *[f"- {k}: `{v}`" for k, v in refusals.items()],
        "",
    ]
    write_text(RESULTS / f"{stem}.md", "\n".join(md))
    print("\n".join(md))
    return 0 if s["within_4gb"] and all(refusals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
