"""Evaluation at scale: 10,000 users x 20,000 items of scores, streamed in blocks.

A fake model makes a seeded random score block per call, so the full users x items matrix
(800 MB as float32) never exists. Records wall time and peak RSS to
benchmarks/results/eval_scale.{md,json} with the command and the machine.

    .venv/bin/python benchmarks/eval_scale.py
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from aerec import evaluation, fsutil

RESULTS = Path(__file__).resolve().parent / "results"


class RandomBlockModel:
    """score(history) -> a fresh seeded random block; also times itself."""

    def __init__(self, n_items: int, seed: int):
        self.n_items, self.seed, self.calls, self.seconds = n_items, seed, 0, 0.0

    def score(self, history):
        t = time.perf_counter()
        rng = np.random.default_rng([self.seed, self.calls])
        self.calls += 1
        block = rng.random((history.shape[0], self.n_items), dtype=np.float32)
        self.seconds += time.perf_counter() - t
        return block


def random_csr(rng, n_rows, n_cols, per_row) -> sp.csr_matrix:
    cols = rng.integers(0, n_cols, size=(n_rows, per_row))
    m = sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (np.repeat(np.arange(n_rows), per_row), cols.ravel())),
                      shape=(n_rows, n_cols))
    m.sum_duplicates()
    m.data[:] = 1
    return m


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--input-per-user", type=int, default=50)
    ap.add_argument("--target-per-user", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    inp = random_csr(rng, args.users, args.items, args.input_per_user)
    tgt = random_csr(rng, args.users, args.items, args.target_per_user)
    tgt = tgt - tgt.multiply(inp)  # targets are never in the input, as in a real fold
    tgt.eliminate_zeros()
    rss_before = peak_rss_mb()

    model = RandomBlockModel(args.items, args.seed)
    t0 = time.perf_counter()
    per_user = evaluation.evaluate_ranking(model, inp, tgt, ks=(20, 50, 100), block_size=args.block_size)
    wall = time.perf_counter() - t0
    summary = evaluation.summarize(per_user)
    peak = peak_rss_mb()

    full_mb = args.users * args.items * 4 / 2**20
    block_mb = args.block_size * args.items * 4 / 2**20
    record = {
        "command": "python benchmarks/eval_scale.py " + " ".join(sys.argv[1:]),
        "users": args.users, "items": args.items, "block_size": args.block_size,
        "input_nnz": int(inp.nnz), "target_nnz": int(tgt.nnz), "blocks": model.calls,
        "wall_seconds": round(wall, 3), "score_seconds": round(model.seconds, 3),
        "metric_seconds": round(wall - model.seconds, 3),
        "users_per_second": round(args.users / wall, 1),
        "peak_rss_mb": round(peak, 1), "rss_before_eval_mb": round(rss_before, 1),
        "full_score_matrix_mb": round(full_mb, 1), "one_block_mb": round(block_mb, 1),
        "summary": {k: round(v, 6) if isinstance(v, float) else v for k, v in summary.items()},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "numpy": np.__version__},
    }
    fsutil.write_json(args.out / "eval_scale.json", record)
    m = record["machine"]
    md = f"""# Evaluation at scale

Command: `{record['command']}`

Machine: {m['platform']}, {m['cpu_count']} CPUs (torch threads {m['torch_threads']}), Python {m['python']},
torch {m['torch']}, numpy {m['numpy']}.

A fake model returns a seeded random float32 block per call; `aerec.evaluation.evaluate_ranking`
streams the users in blocks of {args.block_size}, so at most one block of scores
({block_mb:.0f} MB) exists at a time, never the full {args.users:,} x {args.items:,} matrix
({full_mb:.0f} MB). Metrics at k = 20, 50, 100 plus coverage.

| quantity | value |
|---|---|
| users x items | {args.users:,} x {args.items:,} |
| input / target entries | {inp.nnz:,} / {tgt.nnz:,} |
| blocks | {model.calls} |
| wall time | {wall:.2f} s ({args.users / wall:,.0f} users/s) |
| of which scoring (random block generation) | {model.seconds:.2f} s |
| of which metrics (exclusion, top-k, hits) | {wall - model.seconds:.2f} s |
| peak RSS of the process | {peak:.0f} MB (before evaluation: {rss_before:.0f} MB) |
| full score matrix, for comparison | {full_mb:.0f} MB |

Random scores give chance-level metrics (recall@100 = {summary['recall@100']:.4f}, about
100 / {args.items:,}); the numbers are here only as a check that the run completed.
"""
    fsutil.write_text(args.out / "eval_scale.md", md)
    print(md)


if __name__ == "__main__":
    main()
