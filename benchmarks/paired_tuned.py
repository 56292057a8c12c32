"""Pair two models' tuned cells of one `aerec bench --suite tuned` directory across the test users
of the folds both have finished (for partial runs, whose report pairs each model only with its
own reference row). Reads the cells, or the committed ``per_user.npz`` (benchmarks/per_user.py)
where the cells are absent, as in a fresh clone.

    python benchmarks/paired_tuned.py benchmarks/results/tuned-ml-1m recvae:ease multvae:multdae
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def tuned_cells(out: Path, final: str | None = None, protocol: str = "strong") -> dict:
    """{(model, fold): per-user NDCG@100} of the tuned cells of one protocol (final: that
    --tune-final only); EASE also has temporal cells, which must not replace its strong ones."""
    cells = {}
    for meta in sorted(out.glob("cells/*/*/*.json")):
        d = json.loads(meta.read_text())
        tuning = d.get("tuning")
        if not tuning or d["protocol"] != protocol or (final == "full" and "cut_at_epoch" not in tuning):
            continue
        with np.load(meta.with_suffix(".npz")) as z:
            cells[(d["model"], d["fold"])] = z["ndcg@100"]
    return cells


def main() -> None:
    from aerec.bench.stats import paired_pvalue

    out, pairs = Path(sys.argv[1]), sys.argv[2:]
    if (out / "cells").is_dir():
        cells = tuned_cells(out, final="full")
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from per_user import load

        if not (out / "per_user.npz").exists():
            raise SystemExit(f"{out}: neither cells/ nor per_user.npz (runs before per_user.py kept no per-user values)")
        cells = load(out)
    print("| comparison | folds | first | second | difference | p |\n|---|---|---:|---:|---:|---:|")
    for pair in pairs:
        a, b = pair.split(":")
        folds = [f for f in range(20) if (a, f) in cells and (b, f) in cells]
        x = np.concatenate([cells[(a, f)] for f in folds])
        y = np.concatenate([cells[(b, f)] for f in folds])
        print(f"| {a} vs {b} | {','.join(str(f + 1) for f in folds)} | {x.mean():.4f} | {y.mean():.4f} | "
              f"{x.mean() - y.mean():+.4f} | {paired_pvalue(x, y):.2g} |")


if __name__ == "__main__":
    main()
