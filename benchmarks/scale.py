"""Speed and memory at ML-20M scale, each figure as a ratio to its hardware floor, in one process.

Data: ``aerec.data.synth(136_677, 20_108, 10_000_000, seed)`` (the ML-20M shape after Liang's
filter), used as implicit feedback directly (every synthetic interaction is a positive, as ML-20M
is after binarizing at > 3.5), then split by the strong-generalization protocol
(``StrongGeneralization(n_heldout=10_000, threshold=None)``: users with >= 5 items, 10k validation
and 10k test users, items seen by training users, 80/20 fold-in).

Per model, in this one process:
- seconds per training epoch: ``--batches`` batches of the model's own ``_train_epoch`` (default
  batch size, reference hyperparameters) on a random subset of the training rows, extrapolated to
  the full training matrix (x n_train / rows timed). For RecVAE one epoch is the reference's 3
  encoder passes + 1 decoder pass, so the timed call runs 4 x ``--batches`` steps; EASE: the fit;
- peak RSS while that model ran: the kernel's high-water mark (VmHWM) is reset through
  /proc/self/clear_refs before each model, so one model's peak does not hide another's; the
  process-wide ru_maxrss is reported as well;
- evaluation: ``aerec.evaluation.evaluate_ranking`` on the 10,000 test users over all items
  (k = 20, 50, 100).

Floors, measured in the same process: a float32 ``torch.mm`` of 4096 x 4096 (best of 5) gives
the matmul rate R; a training epoch's floor is its dense-layer FLOPs (forward + backward; the
sparse first layer counted by nnz, see ``train_flops``) / R; evaluation's floor is the scoring
FLOPs / R; EASE's floor is ``torch.linalg.cholesky`` of an items x items SPD float32 matrix.

    .venv/bin/python benchmarks/scale.py            # full size (~15 min on 2 cores)
    .venv/bin/python benchmarks/scale.py --quick    # smoke run, 1 minute
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
import torch

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = {"full": (136_677, 20_108, 10_000_000, 10_000), "quick": (12_000, 3_000, 600_000, 1_000)}
MODELS = ("multdae", "multvae", "recvae", "cdae", "ease")


# memory --------------------------------------------------------------------------------------
def _status(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # MB
    return float("nan")


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def rss_mb() -> float:
    return _status("VmRSS")


def hwm_mb() -> float:
    return _status("VmHWM")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# floors --------------------------------------------------------------------------------------
def matmul_rate(n: int = 4096, reps: int = 5) -> float:
    """float32 FLOP/s of torch.mm on n x n (best of reps, after a warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def cholesky_seconds(n: int, reps: int = 1) -> float:
    """torch.linalg.cholesky of an n x n SPD float32 matrix (symmetric, diagonally dominant)."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=g)
    a = (a + a.T) * 0.5
    a.diagonal().add_(n)
    torch.linalg.cholesky(a[:256, :256])
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        c = torch.linalg.cholesky(a)
        best = min(best, time.perf_counter() - t)
        del c
    return best


def dense_layers(model) -> dict:
    """Layer sizes the FLOP formulas use, read from the model's config."""
    c = model.config
    return {k: getattr(c, k) for k in ("hidden", "latent", "layers") if hasattr(c, k)}


def train_flops(name: str, model, n: int, nnz: int, items: int) -> tuple[float, str]:
    """Dense matrix-multiply FLOPs of one training epoch over n rows with nnz entries.

    A dense layer a->b costs 2ab per row forward, and 4ab backward (input grad + weight grad): 6ab.
    The sparse first layer I->h costs 2*nnz*h forward and 2*nnz*h for its weight grad (no input
    grad): 4*nnz*h. A layer whose weights are frozen but whose input needs a grad costs 4ab; a
    no-grad forward 2ab.
    """
    c = model.config
    if name == "multdae":
        dims = [*c.hidden, items]
        dense = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
        return 4 * nnz * c.hidden[0] + 6 * n * dense, "4*nnz*h1 + 6*N*(sum of dense a*b, incl. h_last*I)"
    if name == "multvae":
        q = [*c.hidden, 2 * c.latent]
        p = [c.latent, *reversed(c.hidden), items]
        dense = sum(a * b for a, b in zip(q[:-1], q[1:])) + sum(a * b for a, b in zip(p[:-1], p[1:]))
        return 4 * nnz * c.hidden[0] + 6 * n * dense, "4*nnz*600 + 6*N*(600*400 + 200*600 + 600*I)"
    if name == "recvae":
        h, z = c.hidden, c.latent
        enc = (c.layers - 1) * h * h + 2 * h * z  # dense part of an encoder
        enc_pass = 4 * nnz * h + 6 * n * enc  # trained encoder
        enc_pass += 2 * nnz * h + 2 * n * enc  # old encoder (prior), forward only
        enc_pass += 4 * n * z * items  # decoder: forward + input grad, weights not trained
        dec_pass = 2 * nnz * h + 2 * n * enc + 6 * n * z * items  # encoder no-grad, decoder trained
        return (c.enc_epochs * enc_pass + c.dec_epochs * dec_pass,
                "3*[6*nnz*h + 8*N*E + 4*N*z*I] + [2*nnz*h + 2*N*E + 6*N*z*I], E = 4*h^2 + 2*h*z")
    if name == "cdae":
        k = c.hidden
        pairs = nnz * (1 + c.negatives) if c.loss == "logistic_neg" else n * items
        return 4 * nnz * k + 6 * k * pairs, "4*nnz*K + 6*K*nnz*(1+negatives)  (sampled output rows)"
    raise ValueError(name)


def score_flops(name: str, model, n: int, nnz: int, items: int) -> float:
    """Forward FLOPs to score n rows with nnz input entries over all items."""
    c = getattr(model, "config", None)
    if name == "ease":
        return 2 * nnz * items  # sparse history @ dense B
    if name == "multdae":
        dims = [*c.hidden, items]
        return 2 * nnz * c.hidden[0] + 2 * n * sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    if name == "multvae":
        q, p = [*c.hidden, 2 * c.latent], [c.latent, *reversed(c.hidden), items]
        return 2 * nnz * c.hidden[0] + 2 * n * (sum(a * b for a, b in zip(q[:-1], q[1:]))
                                                + sum(a * b for a, b in zip(p[:-1], p[1:])))
    if name == "recvae":
        h, z = c.hidden, c.latent
        return 2 * nnz * h + 2 * n * ((c.layers - 1) * h * h + 2 * h * z + z * items)
    if name == "cdae":
        return 2 * nnz * c.hidden + 2 * n * c.hidden * items
    raise ValueError(name)


# data ----------------------------------------------------------------------------------------
def make_data(shape: tuple[int, int, int, int], seed: int):
    from aerec.data.synth import synth
    from aerec.protocols.strong import StrongGeneralization

    users, items, n, heldout = shape
    data = synth(users, items, n, seed=seed)
    fold = next(StrongGeneralization(n_heldout=heldout, threshold=None, seed=seed).split(data))
    return fold


# one model -----------------------------------------------------------------------------------
def bench_model(name: str, fold, args, rate: float, chol_s: float) -> dict:
    from aerec import evaluation
    from aerec.models import create

    train = fold.train
    n_train, items = train.shape
    gc_collect()
    reset_ok = reset_peak()
    rss0 = rss_mb()
    model = create(name)
    model.n_users, model.n_items = train.shape
    row = {"model": name, "load_before": load_avg(), "rss_before_mb": round(rss0, 1)}
    if name == "ease":
        t = time.perf_counter()
        model._fit(train, None)
        fit_s = time.perf_counter() - t
        row.update(fit_s=fit_s, floor_s=chol_s, ratio=fit_s / chol_s,
                   floor="float32 Cholesky of items x items (torch.linalg.cholesky)")
    else:
        model.init_network()
        torch.manual_seed(args.seed + 1)
        rng = np.random.default_rng(args.seed)
        bs = model.config.batch_size
        perm = rng.permutation(n_train)
        warm = train[np.sort(perm[: bs * 2])]
        rows = min(n_train, bs * args.batches)
        timed = train[np.sort(perm[bs * 2: bs * 2 + rows])] if n_train >= bs * 2 + rows else train[perm[:rows]]
        model.net.train()
        model._train_epoch(warm, 0, rng)
        t = time.perf_counter()
        model._train_epoch(timed, 1, rng)
        dt = time.perf_counter() - t
        epoch_s = dt * n_train / timed.shape[0]
        flops, formula = train_flops(name, model, n_train, train.nnz, items)
        floor_s = flops / rate
        steps = -(-timed.shape[0] // bs) * (4 if name == "recvae" else 1)
        row.update(epoch_s=epoch_s, timed_rows=int(timed.shape[0]), timed_steps=int(steps), timed_s=dt,
                   epoch_flops=flops, flops_formula=formula, floor_s=floor_s, ratio=epoch_s / floor_s,
                   batch_size=bs)
    model.fitted = True
    # evaluation: the held-out test users over all items
    t = time.perf_counter()
    per_user = evaluation.evaluate_ranking(model, fold.test_in, fold.test_out, ks=(20, 50, 100))
    eval_s = time.perf_counter() - t
    ef = score_flops(name, model, fold.test_in.shape[0], fold.test_in.nnz, items)
    row.update(eval_users=int(len(per_user["users"])), eval_s=eval_s, eval_flops=ef, eval_floor_s=ef / rate,
               eval_ratio=eval_s / (ef / rate), ndcg100=float(per_user["ndcg@100"].mean()),
               peak_rss_mb=round(hwm_mb(), 1) if reset_ok else None, load_after=load_avg())
    del model
    return row


def gc_collect():
    import gc

    gc.collect()


# before/after, side by side -------------------------------------------------------------------
def ablate_adam(fold, args, batches: int = 6, rounds: int = 2) -> dict:
    """Mult-VAE training batches with the library's fused Adam vs the previous per-op Adam."""
    from aerec.models.multvae import MultVAE

    train = fold.train
    rng0 = np.random.default_rng(args.seed)
    rows = train[np.sort(rng0.permutation(train.shape[0])[: 500 * batches])]
    times = {"fused Adam (now)": [], "for-loop Adam (before)": []}
    for _ in range(rounds):
        for label in times:
            m = MultVAE(seed=args.seed)
            m.n_users, m.n_items = train.shape
            m.init_network()
            if label.startswith("for-loop"):
                m.optimizers = {"main": torch.optim.Adam(m.net.parameters(), lr=m.config.lr, foreach=False)}
            m.net.train()
            rng = np.random.default_rng(args.seed)
            m._train_epoch(rows[:500], 0, rng)
            t = time.perf_counter()
            m._train_epoch(rows, 1, rng)
            times[label].append((time.perf_counter() - t) / batches)
    best = {k: min(v) for k, v in times.items()}
    return {"what": f"Mult-VAE, seconds per training batch of 500 ({batches} batches, best of {rounds}, alternating)",
            "times": times, "best": best, "gain": best["for-loop Adam (before)"] / best["fused Adam (now)"]}


def ablate_cdae(fold, args, batches: int = 32, rounds: int = 2) -> dict:
    """CDAE training batches with AdaGrad on a sparse user-table gradient (now) vs a dense one."""
    from aerec.models import cdae as cdae_mod

    train = fold.train
    rows = train[np.sort(np.random.default_rng(args.seed).permutation(train.shape[0])[: 64 * batches])]
    times = {"sparse user gradient (now)": [], "dense user gradient (before)": []}
    for _ in range(rounds):
        for label in times:
            m = cdae_mod.CDAE(seed=args.seed)
            m.n_users, m.n_items = train.shape
            m.init_network()
            if "dense" in label:
                m.net.user.sparse = False
            m.net.train()
            rng = np.random.default_rng(args.seed)
            m._train_epoch(rows[:64], 0, rng)
            t = time.perf_counter()
            m._train_epoch(rows, 1, rng)
            times[label].append((time.perf_counter() - t) / batches)
    best = {k: min(v) for k, v in times.items()}
    return {"what": f"CDAE (AdaGrad), seconds per training batch of 64 ({batches} batches, best of {rounds}, "
                    "alternating, full user table)", "times": times, "best": best,
            "gain": best["dense user gradient (before)"] / best["sparse user gradient (now)"]}


def ablate_ease(n: int, rounds: int = 2) -> dict:
    """EASE's inverse from the Cholesky factor: potrf + potri (now) vs potrf + potrs on I (before)."""
    import scipy.linalg as sla

    from aerec.models.ease import _fill_lower_from_upper

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    g0 = (a + a.T) * 0.5
    g0[np.diag_indices(n)] += n
    del a

    def before(g):
        c, lower = sla.cho_factor(g.T, lower=True, overwrite_a=True, check_finite=False)
        return sla.cho_solve((c, lower), np.eye(n, dtype=g.dtype, order="F"), overwrite_b=True, check_finite=False)

    def now(g):
        potrf, potri = sla.get_lapack_funcs(("potrf", "potri"), (g,))
        c, _ = potrf(g.T, lower=1, overwrite_a=1, clean=0)
        c, _ = potri(c, lower=1, overwrite_c=1)
        _fill_lower_from_upper(c.T)
        return c

    times = {"potrf + potri in place (now)": [], "potrf + potrs against I (before)": []}
    for _ in range(rounds):
        for label, f in zip(times, (now, before)):
            g = g0.copy()
            t = time.perf_counter()
            f(g)
            times[label].append(time.perf_counter() - t)
            del g
    best = {k: min(v) for k, v in times.items()}
    return {"what": f"EASE inverse of a {n:,}^2 float32 SPD matrix (best of {rounds}, alternating)", "times": times,
            "best": best, "gain": best["potrf + potrs against I (before)"] / best["potrf + potri in place (now)"],
            "memory": "now one n x n array; before two (the factor and the identity that became P)"}


# report --------------------------------------------------------------------------------------
def fmt_s(x: float) -> str:
    return f"{x:.3g} s" if x < 100 else f"{x:,.0f} s"


def write_report(out: Path, res: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tag = "" if res["shape_name"] == "full" else f"_{res['shape_name']}"
    (out / f"scale{tag}.json").write_text(json.dumps(res, indent=2) + "\n")
    d = res["data"]
    lines = [
        "# Speed and memory against the floor" + ("" if not tag else f" ({res['shape_name']} shape)"), "",
        f"Command: `{res['command']}`", "",
        f"Machine: {res['machine']}; torch threads {res['threads']} (torch's default here); "
        f"load average at start {res['load_start']}, at end {res['load_end']} (the box is shared: "
        "other jobs ran at the same time).", "",
        f"Data: synth({d['users']:,} users x {d['items']:,} items, {d['requested']:,} interactions, seed "
        f"{res['seed']}) used as implicit feedback directly, strong-generalization split: "
        f"{d['train_users']:,} training users x {d['train_items']:,} items, {d['train_nnz']:,} training "
        f"entries; {d['test_users']:,} test users ({d['test_in']:,} input / {d['test_out']:,} target entries).", "",
        f"Floors (same process): float32 matmul rate **{res['matmul_gflops']:.1f} GFLOP/s** (torch.mm "
        f"4096x4096, best of 5); float32 Cholesky of a {res['cholesky_n']:,}^2 SPD matrix "
        f"**{res['cholesky_s']:.1f} s** ({res['cholesky_note']}).", "",
        f"| model | epoch (or fit) | floor | ratio | evaluate {d['test_users']:,} users | eval floor | eval ratio | peak RSS | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        main = r.get("epoch_s", r.get("fit_s"))
        rss = f"{r['peak_rss_mb'] / 1024:.2f} GB" if r.get("peak_rss_mb") else "n/a"
        what = "fit" if r["model"] == "ease" else "epoch"
        lines.append(
            f"| {r['model']} | {what} {fmt_s(main)} | {fmt_s(r['floor_s'])} | {r['ratio']:.2f}× | "
            f"{fmt_s(r['eval_s'])} | {fmt_s(r['eval_floor_s'])} | {r['eval_ratio']:.2f}× | {rss} | "
            f"{r['load_before'][0]}–{r['load_after'][0]} |")
    setup = (f" Peak RSS of the setup (data generation and the floors, no model): "
             f"{res['setup_peak_mb'] / 1024:.2f} GB." if res.get("setup_peak_mb") else "")
    lines += ["", "Per-model peak RSS is the VmHWM high-water mark, reset (via /proc/self/clear_refs) just "
              "before the model was built, so one model's peak does not hide another's; it includes the data "
              f"already in memory ({res['rows'][0]['rss_before_mb'] / 1024:.2f} GB before the first model). "
              "On Linux the reset also resets ru_maxrss, so no separate process-wide figure is given." + setup, "",
              "Epoch times: " + ", ".join(
                  f"{r['model']} {r['timed_steps']} steps on {r['timed_rows']:,} rows in {r['timed_s']:.1f} s"
                  for r in res["rows"] if "timed_rows" in r)
              + f", extrapolated x {d['train_users']:,} / rows (warm-up batches excluded). RecVAE's epoch is "
              "3 encoder passes + 1 decoder pass as in the reference, so its timed steps are 4 x the batches.", "",
              "FLOP formulas (N training users, I items, nnz training entries; dense a->b layer: 6ab per row "
              "for forward + backward, sparse first layer: 4*nnz*h):", ""]
    for r in res["rows"]:
        if "flops_formula" in r:
            lines.append(f"- {r['model']}: {r['flops_formula']} = {r['epoch_flops'] / 1e12:.2f} TFLOP")
    lines.append("- evaluation: the forward pass of the scored rows (EASE: 2*nnz_in*I for history @ B)")
    if res.get("ablation"):
        lines += ["", "## What was changed, and what each change gained (side by side, this run)", ""]
        for a in res["ablation"]:
            parts = ", ".join(f"{k} {v:.3g} s" for k, v in a["best"].items())
            lines.append(f"- {a['what']}: {parts}: **{a['gain']:.2f}×**" + (f"; {a['memory']}" if "memory" in a else ""))
    goals = res["goals"]
    lines += ["", "Goals: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items()) + "."]
    if res.get("notes"):
        lines += ["", res["notes"]]
    (out / f"scale{tag}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shape for a smoke run")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", type=int, default=16, help="timed training batches per model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--ablate", action="store_true", help="also time the before/after of each speed change")
    ap.add_argument("--ablate-ease-n", type=int, default=6000, help="matrix size of the EASE before/after")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--notes", type=Path, default=None, help="markdown file appended to the report")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    shape_name = "quick" if args.quick else "full"
    shape = SHAPES[shape_name]
    load_start = load_avg()

    t = time.perf_counter()
    fold = make_data(shape, args.seed)
    data_s = time.perf_counter() - t
    rate = matmul_rate()
    n_items = fold.train.shape[1]
    chol_s = cholesky_seconds(n_items) if "ease" in models else float("nan")
    gc_collect()
    setup_peak = hwm_mb()  # data generation and the floors; the per-model resets start below
    print(f"data {data_s:.1f}s, matmul {rate / 1e9:.1f} GFLOP/s, cholesky({n_items}) {chol_s:.1f}s", flush=True)

    rows = []
    for name in models:
        r = bench_model(name, fold, args, rate, chol_s)
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if not isinstance(v, str)}), flush=True)

    ablation = []
    if args.ablate:
        ablation.append(ablate_adam(fold, args))
        print(json.dumps(ablation[-1]), flush=True)
        ablation.append(ablate_cdae(fold, args))
        print(json.dumps(ablation[-1]), flush=True)
        ablation.append(ablate_ease(min(n_items, args.ablate_ease_n)))
        print(json.dumps(ablation[-1]), flush=True)

    ratio = {r["model"]: r for r in rows}
    goals = {}
    for m in ("multvae", "multdae"):
        if m in ratio:
            goals[f"{m} epoch <= 1.5x floor"] = ratio[m]["ratio"] <= 1.5
    if rows:
        goals["evaluation <= 2x floor (every model)"] = all(r["eval_ratio"] <= 2 for r in rows)
        goals["peak RSS < 4 GB (every model)"] = all((r["peak_rss_mb"] or 1e9) < 4096 for r in rows)
    if "ease" in ratio:
        goals["EASE fit <= 2x Cholesky"] = ratio["ease"]["ratio"] <= 2
    c = fold.counts()
    res = {
        "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]),
        "shape_name": shape_name, "seed": args.seed,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"torch {torch.__version__}, numpy {np.__version__}",
        "threads": torch.get_num_threads(), "load_start": load_start, "load_end": load_avg(),
        "data": {"users": shape[0], "items": shape[1], "requested": shape[2], "train_users": c["train_users"],
                 "train_items": c["items"], "train_nnz": c["train"], "test_users": c["test"]["users"],
                 "test_in": c["test"]["input"], "test_out": c["test"]["target"], "seconds": data_s},
        "matmul_gflops": rate / 1e9, "cholesky_n": n_items, "cholesky_s": chol_s,
        "cholesky_note": "full size, best of 1",
        "setup_peak_mb": setup_peak, "maxrss_mb": maxrss_mb(), "rows": rows, "goals": goals, "ablation": ablation,
        "notes": args.notes.read_text() if args.notes else "",
    }
    write_report(args.out, res)
    print(f"wrote {args.out}/scale{'' if shape_name == 'full' else '_' + shape_name}.md")


if __name__ == "__main__":
    main()
