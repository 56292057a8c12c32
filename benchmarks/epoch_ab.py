"""CPU training epochs, before and after a change, side by side: whole processes, alternating
two source trees (PYTHONPATH), on ML-20M-shaped synthetic data.

Each run builds one model (reference hyperparameters), runs 2 warm-up batches, then times
``K`` batches of its ``_train_epoch`` and extrapolates to the whole matrix (as scale.py does).
Rounds alternate before/after per model, so drift in the machine's load hits both. The data is
``aerec.data.synth(136_677, 20_108, 10_000_000, seed=0).csr("ones")``, cached as an .npz.

    python benchmarks/epoch_ab.py --before /path/to/main/src --after src --models cdae --rounds 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BATCHES = {"multvae": 8, "multdae": 12, "recvae": 3, "cdae": 96}
CHILD = r"""
import json, os, sys, time
import numpy as np, scipy.sparse as sp, torch
torch.set_num_threads(int(sys.argv[3]) or torch.get_num_threads())
from aerec.models import create
name, batches = sys.argv[1], int(sys.argv[2])
x = sp.load_npz(sys.argv[4]).tocsr()
m = create(name, seed=0)
m.n_users, m.n_items = x.shape
m.init_network(); torch.manual_seed(1)
rng = np.random.default_rng(0)
bs = m.config.batch_size
perm = rng.permutation(x.shape[0])
warm = x[np.sort(perm[:bs * 2])]
timed = x[np.sort(perm[bs * 2: bs * 2 + bs * batches])]
m.net.train()
m._train_epoch(warm, 0, rng)
t = time.perf_counter(); m._train_epoch(timed, 1, rng); dt = time.perf_counter() - t
print(json.dumps({"epoch_s": dt * x.shape[0] / timed.shape[0], "load": os.getloadavg()[0]}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="src folder of the code before")
    ap.add_argument("--after", required=True, help="src folder of the code after")
    ap.add_argument("--models", default="multvae,multdae,recvae,cdae")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/aerec-ml20m-shape.npz"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "epoch_ab.json")
    args = ap.parse_args(argv)
    if not args.data.exists():
        import scipy.sparse as sp

        sys.path.insert(0, str(Path(args.after).resolve()))
        from aerec.data import synth

        sp.save_npz(args.data, synth(136_677, 20_108, 10_000_000, seed=0).csr("ones").tocsr())
    res = {"command": "python benchmarks/epoch_ab.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "cpus": os.cpu_count(), "threads": args.threads, "rounds": {}}
    for _ in range(args.rounds):
        for m in args.models.split(","):
            for tag, src in (("before", args.before), ("after", args.after)):
                env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
                out = subprocess.run([sys.executable, "-c", CHILD, m, str(BATCHES[m]), str(args.threads), str(args.data)],
                                     env=env, capture_output=True, text=True, check=True)
                d = json.loads(out.stdout.strip().splitlines()[-1])
                res["rounds"].setdefault(m, {}).setdefault(tag, []).append([round(d["epoch_s"], 1), round(d["load"], 2)])
                print(m, tag, d, flush=True)
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["rounds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
