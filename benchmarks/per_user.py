"""Keep a tuned run's per-user test scores in the repository: the cells (gitignored, about 290 KB
each) hold every metric for every user; this writes the few that the comparisons pair on into one
compact ``per_user.npz`` beside the report, so that every pair in it can be recomputed from a
fresh clone (``benchmarks/paired_tuned.py`` reads it when the cells are absent).

Keys: ``users/<protocol>/<fold>`` (the fold's test users, in the order of every cell of that
fold) and ``<protocol>/<model>/<fold>/<variant>/<metric>`` (float32), variant being reference,
default or tuned.

    python benchmarks/per_user.py benchmarks/results/tuned-ml-1m-v2 [--cells DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METRICS = ("ndcg@100", "recall@20", "recall@50")


def read_cells(cells: Path) -> dict:
    """{(protocol, model, fold, variant): {"users": ..., metric: ...}} of every finished top-N cell."""
    out = {}
    for meta in sorted(cells.glob("*/*/*.json")):
        d = json.loads(meta.read_text())
        npz = meta.with_suffix(".npz")
        variant = d.get("variant") or ("tuned" if d.get("tuning") else "reference")
        if not npz.exists():
            continue
        with np.load(npz) as z:
            if "users" not in z.files or METRICS[0] not in z.files:
                continue  # a rating cell: its pairs are over folds
            out[(d["protocol"], d["model"], int(d["fold"]), variant)] = {k: z[k] for k in ("users", *METRICS)}
    return out


def write(run_dir: Path, cells: Path) -> Path:
    arrays = {}
    for (proto, model, fold, variant), z in read_cells(cells).items():
        key = f"users/{proto}/{fold}"
        if key in arrays and not np.array_equal(arrays[key], z["users"]):
            raise SystemExit(f"{model} fold {fold + 1} ({variant}) lists other test users than the fold's first cell")
        arrays[key] = z["users"].astype(np.int64)
        for m in METRICS:
            arrays[f"{proto}/{model}/{fold}/{variant}/{m}"] = z[m].astype(np.float32)
    path = run_dir / "per_user.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def load(run_dir: Path, metric: str = "ndcg@100", variant: str = "tuned", protocol: str = "strong") -> dict:
    """{(model, fold): per-user scores} from a committed per_user.npz."""
    out = {}
    with np.load(run_dir / "per_user.npz") as z:
        for k in z.files:
            parts = k.split("/")
            if len(parts) == 5 and parts[0] == protocol and parts[3] == variant and parts[4] == metric:
                out[(parts[1], int(parts[2]))] = z[k].astype(np.float64)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--cells", type=Path, help="the cells folder (default: RUN_DIR/cells)")
    a = ap.parse_args()
    print(write(a.run_dir, a.cells or a.run_dir / "cells"))
