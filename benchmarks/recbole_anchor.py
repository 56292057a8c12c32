"""Seconds per training epoch on ML-100K against RecBole's figure and against dense-input batches.

Input (RecBole's default for its shipped ml-100k): ``aerec.data.load("ml-100k")``, every rating
counts as one implicit interaction (no threshold, no k-core), per-user random 8:1:1 split
(``WeakGeneralization(min_rating=None, k_core=1)``), and the model trains on the 80% part: all
943 users x 1,682 items, 80,808 entries. Users are batched 2,048 at a time (one batch per
pass), reference hyperparameters otherwise (Mult-VAE I-600-200-600-I; RecVAE 5 x 600, latent
200, and one epoch = 3 encoder passes + 1 decoder pass as in the reference).

Peer anchor, measured elsewhere on a 2-core machine: RecBole 1.2.1 spends 0.70 s per RecVAE epoch
and 0.11 s per MultiVAE epoch (user batches of 2048). Goal: at least 5x faster.

The "common practice" variant runs the same network and loss from a dense batch: each batch is
densified with ``.toarray()``, L2-normalized and dropped out densely, fed to a dense first layer
(``x @ W``), and the multinomial NLL is ``-(log_softmax(logits) * x).sum(1)``, as the reference
implementations and RecBole do. Both variants run in this one process, alternating, with the
same seeds. Times are the median of ``--epochs`` epochs after one warm-up epoch.

    .venv/bin/python benchmarks/recbole_anchor.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aerec.models.layers import batch_order
from aerec.models.multvae import MultVAE, gaussian_kl
from aerec.models.recvae import RecVAE, log_normal

RESULTS = Path(__file__).resolve().parent / "results"
ANCHOR = {"multvae": 0.11, "recvae": 0.70}  # RecBole 1.2.1, s/epoch, 2 cores


def dense_rows(train, rows) -> torch.Tensor:
    return torch.from_numpy(train[rows].toarray())


def dense_prep(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return F.dropout(x, p, training) if p > 0 else x


def dense_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return -(F.log_softmax(logits, dim=1) * x).sum(1)


class DenseMultVAE(MultVAE):
    """The same Mult-VAE, trained from densified batches (the common practice)."""

    def _train_epoch(self, train, epoch, rng):
        net, opt = self.net, self.optimizers["main"]
        total, n = 0.0, 0
        for rows in batch_order(train.shape[0], self.config.batch_size, rng):
            x = dense_rows(train, rows)
            h = net.first.forward_dense(dense_prep(x, net.dropout, True))
            mu, logvar = net._encode_tail(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            loss = (dense_nll(net.decode(z), x) + self.current_beta() * gaussian_kl(mu, logvar)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.update_count += 1
            total += float(loss.detach()) * len(rows)
            n += len(rows)
        return total / max(n, 1)


class DenseRecVAE(RecVAE):
    """The same RecVAE (same phases and prior), trained from densified batches."""

    def _dense_loss(self, x, dropout, encoder_phase):
        c, net = self.config, self.net
        with torch.set_grad_enabled(encoder_phase):
            mu, logvar = net.encoder._tail(net.encoder.fc1.forward_dense(dense_prep(x, dropout, True)))
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        nll = dense_nll(net.decoder(z), x)
        if not encoder_phase:
            return nll.mean()
        with torch.no_grad():
            mu_o, lv_o = net.encoder_old._tail(net.encoder_old.fc1.forward_dense(dense_prep(x, 0.0, False)))
        zero = torch.zeros(())
        parts = [log_normal(z, zero, zero), log_normal(z, mu_o, lv_o), log_normal(z, zero, zero + net.wide_logvar)]
        prior = torch.logsumexp(torch.stack([p + w for p, w in zip(parts, net.log_w)], dim=-1), dim=-1)
        weight = c.beta if c.beta is not None else c.gamma * x.sum(1)
        kl = (log_normal(z, mu, logvar) - prior).sum(dim=1) * weight
        return (nll + kl).mean()

    def _pass(self, train, rng, dropout, encoder_phase):
        opt = self.optimizers["encoder" if encoder_phase else "decoder"]
        self.net.decoder.requires_grad_(not encoder_phase)
        losses = []
        try:
            for rows in batch_order(train.shape[0], self.config.batch_size, rng):
                loss = self._dense_loss(dense_rows(train, rows), dropout, encoder_phase)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append((float(loss.detach()), len(rows)))
        finally:
            self.net.decoder.requires_grad_(True)
        return losses


def epoch_times(model, train, epochs: int, seed: int) -> list[float]:
    model.n_users, model.n_items = train.shape
    model.init_network()
    torch.manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    model.net.train()
    model._train_epoch(train, 0, rng)  # warm-up
    out = []
    for e in range(epochs):
        t = time.perf_counter()
        model._train_epoch(train, e + 1, rng)
        out.append(time.perf_counter() - t)
    return out


# RecBole run live (gpu_check.py's side by side) -----------------------------------------------
RECBOLE_MODELS = {"multvae": "MultiVAE", "recvae": "RecVAE"}


def write_inter(inter, folder: Path, name: str) -> Path:
    """``inter`` as RecBole's atomic file ``folder/name/name.inter``: one row per rating, user
    and item as integer tokens (aerec's codes; ML-1M's item ids are titles), no rating column, so
    every rating is one implicit interaction."""
    d = Path(folder) / name
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.inter"
    with open(path, "w") as f:
        f.write("user_id:token\titem_id:token\n")
        np.savetxt(f, np.column_stack([inter.user, inter.item]).astype(np.int64), fmt="%d", delimiter="\t")
    return path


class RecBoleRun:
    """One RecBole model on a written atomic file, timed epoch by epoch through its own trainer.

    The split is RecBole's per-user random 8:1:1 (``RS`` [0.8, 0.1, 0.1], ``RO``, grouped by user)
    with every interaction kept (no threshold, no k-core); RecBole's model defaults otherwise.
    RecBole writes logs and checkpoints relative to the working directory, so every call runs in
    ``folder``. Each run parses the file itself: a built RecBole data set cannot be built again."""

    def __init__(self, model: str, folder: Path, name: str, device: str, batch_size: int, seed: int = 0):
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import init_seed

        self.folder, self.model_name, self.device, self.seed = Path(folder), RECBOLE_MODELS[model], device, seed
        settings = {"data_path": str(self.folder), "dataset": name, "train_batch_size": batch_size,
                    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
                    "train_neg_sample_args": None, "seed": seed, "reproducibility": True, "show_progress": False,
                    "gpu_id": "0" if device.startswith("cuda") else "", "checkpoint_dir": str(self.folder / "saved"),
                    "save_dataset": False, "save_dataloaders": False, "state": "ERROR"}
        numpy2_aliases()
        # RecBole's Config reads --key=value from the command line and sets CUDA_VISIBLE_DEVICES: neither leaks
        argv, visible = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
        sys.argv = argv[:1]
        try:
            with contextlib.chdir(self.folder):
                self.config = Config(model=self.model_name, config_dict=settings)
                self.config["device"] = torch.device(device)
                init_seed(seed, True)
                self.dataset = create_dataset(self.config)
                self.train_data, _, _ = data_preparation(self.config, self.dataset)
        finally:
            sys.argv = argv
            if visible is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = visible

    def epoch_times(self, epochs: int) -> list[float]:
        """A fresh model and trainer, one warm-up epoch, then ``epochs`` timed epochs (as
        ``epoch_times`` does for aerec)."""
        from recbole.utils import get_model, get_trainer, init_seed

        with contextlib.chdir(self.folder):
            init_seed(self.seed, True)
            model = get_model(self.model_name)(self.config, self.train_data._dataset).to(self.config["device"])
            trainer = get_trainer(self.config["MODEL_TYPE"], self.model_name)(self.config, model)
            model.train()
            out = []
            for e in range(epochs + 1):
                _sync(self.device)
                t = time.perf_counter()
                trainer._train_epoch(self.train_data, e, show_progress=False)
                _sync(self.device)
                if e:
                    out.append(time.perf_counter() - t)
        return out


def numpy2_aliases() -> list[str]:
    """RecBole 1.2.1's Config re-creates aliases that NumPy 2 removed (``np.float = np.float_``),
    which fails under NumPy 2; the names it reads are put back (as the NumPy 1 aliases they were)
    before it runs. Returns the names added. Nothing in aerec reads them."""
    added = []
    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            try:
                getattr(np, name)
            except AttributeError:
                setattr(np, name, value)
                added.append(name)
    return added


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from aerec import data
    from aerec.protocols.weak import WeakGeneralization

    fold = next(WeakGeneralization(min_rating=None, k_core=1, seed=args.seed).split(data.load("ml-100k")))
    train = fold.train
    default_threads = torch.get_num_threads()
    load_start = [round(x, 2) for x in os.getloadavg()]
    from scale import matmul_rate, train_flops  # benchmarks/scale.py, next to this file

    rows = []
    for threads in (default_threads, 1) if default_threads != 1 else (1,):
        torch.set_num_threads(threads)
        rate = matmul_rate(2048)
        for name, ours, dense in (("multvae", MultVAE, DenseMultVAE), ("recvae", RecVAE, DenseRecVAE)):
            t_ours, t_dense = [], []
            for _ in range(2):  # alternate so that load changes hit both variants alike
                t_ours += epoch_times(ours(batch_size=args.batch_size, seed=args.seed), train, args.epochs // 2, args.seed)
                t_dense += epoch_times(dense(batch_size=args.batch_size, seed=args.seed), train, args.epochs // 2,
                                       args.seed)
            med_o, med_d = float(np.median(t_ours)), float(np.median(t_dense))
            probe = ours(batch_size=args.batch_size)
            flops, _ = train_flops(name, probe, train.shape[0], train.nnz, train.shape[1])
            rows.append({"model": name, "threads": threads, "ours_s": med_o, "dense_s": med_d,
                         "ours_all": t_ours, "dense_all": t_dense, "recbole_s": ANCHOR[name],
                         "vs_recbole": ANCHOR[name] / med_o, "vs_dense": med_d / med_o,
                         "matmul_gflops": rate / 1e9, "epoch_flops": flops, "floor_s": flops / rate,
                         "best_possible_vs_recbole": ANCHOR[name] / (flops / rate),
                         "load": [round(x, 2) for x in os.getloadavg()]})
            print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("_all")}), flush=True)
    torch.set_num_threads(default_threads)

    res = {"command": "python benchmarks/recbole_anchor.py " + " ".join(sys.argv[1:]),
           "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                      f"torch {torch.__version__}",
           "default_threads": default_threads, "load_start": load_start,
           "load_end": [round(x, 2) for x in os.getloadavg()],
           "input": {"data": "ml-100k (aerec.data.load)", "protocol": "WeakGeneralization(min_rating=None, k_core=1)",
                     "train_users": int(train.shape[0]), "items": int(train.shape[1]), "train_entries": int(train.nnz),
                     "batch_size": args.batch_size},
           "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recbole_anchor.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["# Per-epoch training time on ML-100K: RecBole anchor and dense-input batches", "",
             f"Command: `{res['command']}`", "",
             f"Machine: {res['machine']}; torch's default thread count here is {default_threads}; load average "
             f"at start {load_start}, at end {res['load_end']} (shared 2-core box, other jobs running).", "",
             f"Input: ml-100k, every rating an implicit interaction, RecBole's default per-user random 8:1:1 split "
             f"(`{res['input']['protocol']}`); the model trains on the 80% part: {train.shape[0]} users x "
             f"{train.shape[1]:,} items, {train.nnz:,} entries, user batches of {args.batch_size} (one batch per "
             f"pass). Reference hyperparameters otherwise. RecVAE epoch = 3 encoder passes + 1 decoder pass.", "",
             f"Median of {args.epochs} epochs per variant (after a warm-up epoch), the two variants alternating "
             "in one process. RecBole figures: RecBole 1.2.1, measured elsewhere on a 2-core machine.", "",
             "Floor: the epoch's dense-layer FLOPs (formulas in benchmarks/scale.py, `train_flops`) divided by "
             "the float32 rate of a 2048x2048 torch.mm measured in this process at the same thread count. "
             "'RecBole / floor' is the largest speed-up over RecBole that this machine allows.", "",
             "| model | torch threads | aerec (sparse input) | dense `.toarray()` input | speed-up vs dense | "
             "RecBole 1.2.1 | speed-up vs RecBole (goal ≥ 5×) | matmul rate | floor | aerec / floor | "
             "RecBole / floor | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['threads']}{' (default)' if r['threads'] == default_threads else ''} | "
                     f"{r['ours_s'] * 1000:.1f} ms | {r['dense_s'] * 1000:.1f} ms | {r['vs_dense']:.2f}× | "
                     f"{r['recbole_s']:.2f} s | {r['vs_recbole']:.2f}× | {r['matmul_gflops']:.0f} GFLOP/s | "
                     f"{r['floor_s'] * 1000:.1f} ms | {r['ours_s'] / r['floor_s']:.2f}× | "
                     f"{r['best_possible_vs_recbole']:.1f}× | {r['load'][0]} |")
    (args.out / "recbole_anchor.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}/recbole_anchor.md")


if __name__ == "__main__":
    main()
