"""Per-step batch building on CPU, side by side in one process: the host path the training loop
used before issue 25 (scipy row slice + SparseBatch.from_csr, and a float() of the loss per step)
against the loop's path now (layers.DeviceRows.batch, the loss summed as a tensor), both with
DeviceRows' CPU default (row slices) and with the gather a GPU uses, forced onto the CPU.

Data: aerec.data.synth(136,677 x 20,108, 10M interactions, seed 0), the ML-20M shape; batches of
500 (Mult-VAE/Mult-DAE/RecVAE) and 64 (CDAE) random rows. Rounds alternate the two paths; the
figure is the median per batch over rounds. Writes benchmarks/results/batch_overhead.{json,md}.

    PYTHONPATH=src python3 benchmarks/batch_overhead.py [--rounds 5] [--batches 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--users", type=int, default=136_677)
    ap.add_argument("--items", type=int, default=20_108)
    ap.add_argument("--nnz", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from aerec.data import synth
    from aerec.models.layers import DeviceRows, SparseBatch

    load0 = os.getloadavg()
    x = synth(args.users, args.items, args.nnz, seed=0).csr("ones")
    t = time.perf_counter()
    held = DeviceRows(x, "cpu", gather=True)
    move_s = time.perf_counter() - t
    sliced = DeviceRows(x, "cpu")
    rng = np.random.default_rng(0)
    rows_of = {bs: [np.sort(rng.choice(x.shape[0], bs, replace=False)) for _ in range(args.batches)] for bs in (500, 64)}
    loss = torch.tensor(1.2345)

    def host(bs):
        total = 0.0
        for r in rows_of[bs]:
            b = SparseBatch.from_csr(x[r], "cpu")
            total += float(loss.detach()) * len(r)
        return b

    def device(bs, held=held):
        order = held.order(np.concatenate(rows_of[bs]))
        total = None
        for i, r in enumerate(rows_of[bs]):
            b = held.batch(r, None if order is None else order[i * bs : (i + 1) * bs])
            term = loss.detach().double() * len(r)
            total = term if total is None else total + term
        float(total)
        return b

    res = {}
    for bs in (500, 64):
        variants = (("host (before)", host), ("now, CPU default (row slices)", lambda b: device(b, sliced)),
                    ("now, GPU path (gather) on the CPU", device))
        times = {label: [] for label, _ in variants}
        for _ in range(args.rounds):
            for label, f in variants:
                t = time.perf_counter()
                f(bs)
                times[label].append((time.perf_counter() - t) / args.batches * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        res[bs] = {"ms_per_batch": times, "median_ms": med}
        print(bs, json.dumps(med), flush=True)
    out = {"command": "PYTHONPATH=src python3 benchmarks/batch_overhead.py " + " ".join(sys.argv[1:]),
           "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
           "threads": args.threads, "load_start": [round(v, 2) for v in load0],
           "load_end": [round(v, 2) for v in os.getloadavg()], "move_seconds": move_s,
           "shape": [args.users, args.items, int(x.nnz)], "results": res}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Batch building per training step, host path vs device-resident path (CPU)", "",
             f"Command: `{out['command']}`", "",
             f"Machine: {out['machine']}; torch threads {args.threads}; load average {out['load_start']} at start, "
             f"{out['load_end']} at end (a shared machine: other jobs ran).", "",
             f"Data: synth {args.users:,} x {args.items:,}, {x.nnz:,} entries. Moving the matrix to the device "
             f"(here: int64/float32 copies on the CPU), once per fit: {move_s:.3f} s.", "",
             "| batch rows | " + " | ".join(f"{k}, ms/batch" for k in res[500]["median_ms"]) + " |",
             "|---|" + "---|" * len(res[500]["median_ms"])]
    for bs, r in res.items():
        lines.append(f"| {bs} | " + " | ".join(f"{v:.3f}" for v in r["median_ms"].values()) + " |")
    lines += ["", f"Medians over {args.rounds} alternating rounds of {args.batches} batches; every round's figures "
              "are in batch_overhead.json."]
    (args.out / "batch_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
