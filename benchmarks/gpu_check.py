"""aerec on one CUDA GPU against the hardware's floors (issue 25), in at most about 6 minutes.

Measures, in one process unless said otherwise, on ML-20M-shaped synthetic data (136,677 users x
20,108 items, 10M interactions, ``aerec.data.synth`` seed 0), section by section (the names that
``--skip`` takes, in the order they run):

1. ``floors``: float32 matmul rate (TF32 off), TF32 and bf16 rates (``torch.mm`` of 8192^2), and
   the float32 Cholesky and ``cholesky_inverse`` of an items x items SPD matrix;
2. ``epochs``: every neural top-N model's training epoch: ``--batches`` batches of the model's own
   ``_train_epoch`` (reference hyperparameters, its default batch size), extrapolated to the
   whole matrix; Mult-VAE, Mult-DAE and RecVAE also as a ratio to the float32 floor (the dense
   FLOPs of ``benchmarks/scale.py``); Mult-VAE again under bf16 autocast;
3. ``evaluation``: 10,000 held-out users (80/20 fold-in of the last rows): ``evaluate_ranking``
   against the bare forward pass + history exclusion + device top-k, only indices copied back;
4. ``ease``: EASE fit through torch.linalg on the GPU (``device="cuda"``, float32);
5. ``recbole``: aerec against RecBole 1.2.1 on the same GPU, per epoch, Mult-VAE and RecVAE: ML-1M
   from aerec's cache (``$AEREC_HOME/datasets/ml-1m.npz``; written to RecBole's atomic ``.inter``
   file in a temporary folder, every rating one implicit interaction), RecBole's per-user random
   8:1:1 split, batch 500, alternating aerec / RecBole for 2 rounds of a warm-up epoch and
   ``--recbole-epochs`` (10) timed epochs (``recbole_anchor.RecBoleRun`` drives RecBole's own
   trainer; the aerec side is ``recbole_anchor.epoch_times``). Goal >= 3x. Where ``recbole``
   does not import, or ML-1M is not cached, the section is one "skipped (reason)" line;
6. ``trials``: trials per minute of a Mult-VAE study on ML-1M-shaped data (6,040 x 3,706, 575k
   interactions): 1 trial job against ``--trial-jobs`` N (Optuna needed, else skipped);
7. ``compile``: Mult-VAE and Mult-DAE epochs with ``compile=true`` (``torch.compile`` of the
   network, ``dynamic=True``), for each of ``--compile-modes`` (default ``reduce-overhead``, which
   captures CUDA graphs, then ``default``), against section 2's uncompiled epochs (same batches and
   seeds); the warm-up (compilation and first steps) is reported apart. Under ``reduce-overhead``
   their batches are padded to a few entry counts (``layers.pad_entries``), so the graphs replay.
   The first compiled model also scores 4,133 rows in blocks against the same weights run
   eagerly (CUDA graphs reuse their output memory from call to call). A compiler failure is a
   row marked "fell back to eager", never a traceback. Not run with ``--tiny``.

Writes ``benchmarks/results/gpu/gpu_check.{json,md}`` and replaces the section between the
``gpu_check`` markers of docs/performance.md. Without CUDA it stops with one line (exit 2).
``--budget`` (330 s) skips whatever would start after it; ``--skip a,b`` reruns only the rest and
keeps the skipped sections' figures from the ``gpu_check.json`` already in ``--out``.

Expected cost on the H200 (from issue 25's measurements; not measured yet, the first GPU run is
the check): data synthesis and split about 20-30 s; floors about 3 s; epochs about 15 s (42
batches a model: Mult-VAE 4.3 ms a step, RecVAE 4 x 6.5 ms, MacridVAE 22 ms, plus slicing);
evaluation about 3 s; EASE 1-2 s on the device (36 s if it ran on the host); recbole about 50 s
(two RecBole parses of 1M ratings, 10-15 s each, and 2 x 11 epochs of each side: Mult-VAE
0.05 + 0.09 s, RecVAE 0.35 + 0.6 s an epoch); trials 60-100 s (16 processes starting CUDA);
compile about 30 s a model and mode (Inductor on 16 host cores; a CPU compile of a tiny Mult-VAE
takes about 40 s on 2 cores here), 2 x 2 = about 120 s, and 30 s more for the scoring check's
eval-mode compile. About 5.5 min in all; past ``--budget``
the last sections (the second compile mode first) are skipped, and a second call with
``--skip`` of what is done finishes them.

Run on the GPU machine (its python3 has torch but neither RecBole nor Optuna, and nothing can
be fetched there). Prepare here, in the repository root (about 30 MB to carry: ML-1M's cache
22.5 MB, wheels 7.5 MB):

    echo /.gpu-carry/ >> .git/info/exclude
    mkdir -p .gpu-carry/whl .gpu-carry/aerec_home/datasets
    cp ~/.cache/aerec/datasets/ml-1m.npz ~/.cache/aerec/datasets/ml-1m.json .gpu-carry/aerec_home/datasets/
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu-carry/whl recbole==1.2.1 colorlog==4.7.2 texttable==1.7.2 \
        optuna==5.1.0 alembic==1.20.1 mako==1.4.3 sqlalchemy==2.1.9

(RecBole 1.2.1 pins colorlog 4.7.2 and colorama 0.4.4 and asks for ray, plotly and tensorboard;
training through its Config, data and trainer imports only colorlog, colorama, texttable,
tensorboard, scikit-learn, pyyaml and pandas; the image has all but colorlog and texttable.
``--no-deps`` installs leave the image's versions alone. Tested here in a separate venv on
NumPy 2.4 / pandas 3.1 / torch 2.13 CPU: RecBole 1.2.1 needs ``recbole_anchor.numpy2_aliases``.)
Then one device call with ``carry=[".gpu-carry"]`` and ``timeout_s`` 540:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        .gpu-carry/whl/*.whl || exit; export PYTHONPATH=src:/tmp/site AEREC_HOME=$PWD/.gpu-carry/aerec_home \
        PYTHONUNBUFFERED=1; set -o pipefail; python3 benchmarks/gpu_check.py 2>&1 | tee $OUT/log.txt; \
        mkdir -p $OUT/gpu; cp benchmarks/results/gpu/* $OUT/gpu/; cp docs/performance.md $OUT/

    PYTHONPATH=src python3 benchmarks/gpu_check.py                 # the full check on a GPU
    PYTHONPATH=src python3 benchmarks/gpu_check.py --dry-run       # print the plan, run nothing
    PYTHONPATH=src python3 benchmarks/gpu_check.py --skip floors,epochs,evaluation,ease   # the rest only
    PYTHONPATH=src python3 benchmarks/gpu_check.py --device cpu --tiny --out /tmp/g --docs ''   # CI smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gpu"
DOCS = HERE.parent / "docs" / "performance.md"
SHAPE = (136_677, 20_108, 10_000_000)  # ML-20M after the usual preprocessing
TINY = (1_500, 400, 30_000)
ML1M_SHAPE = (6_040, 3_706, 575_000)
HELDOUT = 10_000
NEURAL = ("multvae", "multdae", "recvae", "cdae", "macridvae", "hvamp", "ract", "warp", "lambdanet", "bivae")
FLOORED = ("multvae", "multdae", "recvae")
GOALS = {"multvae": 1.5, "multdae": 2.5, "recvae": 3.0}
START, END = "<!-- gpu_check:start -->", "<!-- gpu_check:end -->"
COMPILED = ("multvae", "multdae")  # the compile section's models
COMPILE_WARM = 6  # warm-up batches with a compiled network: compiles, the dynamic-shape recompile, graph records
RECBOLE_TINY = (300, 200, 6_000)
SECTIONS = ("floors", "epochs", "evaluation", "ease", "recbole", "trials", "compile")  # run in this order
PLAN = {"floors": "matmul fp32/tf32/bf16, Cholesky + cholesky_inverse at items^2",
        "epochs": ", ".join(NEURAL) + " (+ Mult-VAE bf16)",
        "evaluation": "10,000 users, evaluate_ranking vs forward + device top-k",
        "ease": "EASE fit on the device",
        "recbole": "aerec vs RecBole 1.2.1 per epoch, Mult-VAE and RecVAE, ML-1M, alternating (skipped without RecBole)",
        "trials": "trials per minute: Mult-VAE study, 1 job vs N jobs (Optuna)",
        "compile": "Mult-VAE and Mult-DAE epochs under torch.compile (--compile-modes)"}


def dense_layers(n_items: int, hidden: tuple[int, ...], latent: int) -> list[tuple[int, int]]:
    """(in, out) of Mult-VAE's dense layers: the encoder after its sparse first layer, then the
    decoder. The first layer (items -> hidden[0]) reads sparse rows and is not a dense matmul."""
    q = [*hidden, 2 * latent]
    p = [latent, *reversed(hidden), n_items]
    return list(zip(q[:-1], q[1:])) + list(zip(p[:-1], p[1:]))


def epoch_flops(n_users: int, n_items: int, nnz: int, hidden: tuple[int, ...] = (600,), latent: int = 200) -> dict:
    """FLOPs of one Mult-VAE epoch. A dense layer costs 2*in*out per row forward and twice that
    backward (input and weight gradients): 6*in*out per row. The sparse first layer costs
    2*nnz*hidden forward and as much for its weight gradient; it is reported apart."""
    dense = 6 * n_users * sum(a * b for a, b in dense_layers(n_items, hidden, latent))
    return {"dense": int(dense), "sparse_first_layer": int(4 * nnz * hidden[0])}


def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(dtype, n: int = 8192, repeats: int = 10, device: str = "cuda") -> float:
    """FLOP/s of an n x n x n torch.mm on the device (best of the timed repeats)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def floors(device: str, n_items: int, tiny: bool) -> dict:
    import torch

    n = 512 if tiny else 8192
    out = {}
    torch.backends.cuda.matmul.allow_tf32 = False
    out["fp32_tflops"] = matmul_rate(torch.float32, n, device=device) / 1e12
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        out["tf32_tflops"] = matmul_rate(torch.float32, n, device=device) / 1e12
        torch.backends.cuda.matmul.allow_tf32 = False
        out["bf16_tflops"] = matmul_rate(torch.bfloat16, n, device=device) / 1e12
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.rand(n_items, n_items, device=device, generator=g)
    a = (a + a.T) * 0.5
    a.diagonal().add_(n_items)
    torch.linalg.cholesky(a[:256, :256])
    sync(device)
    t = time.perf_counter()
    L = torch.linalg.cholesky(a)
    sync(device)
    out["cholesky_s"] = time.perf_counter() - t
    t = time.perf_counter()
    torch.cholesky_inverse(L)
    sync(device)
    out["cholesky_inverse_s"] = time.perf_counter() - t
    out["items"] = n_items
    return out


def epoch(name: str, train, device: str, batches: int, amp: bool = False, compile_mode: str | None = None,
          warm_batches: int = 2, score_check: bool = False) -> dict:
    """Seconds per epoch of one model from ``batches`` timed batches (after ``warm_batches``
    warm-up batches; with ``compile_mode`` the network is compiled and the warm-up holds the
    compilations, timed apart as ``warmup_s``)."""
    import numpy as np
    import torch

    from aerec.models import create

    extra = {"amp": True} if amp else {}
    if compile_mode:
        extra.update(compile=True, compile_mode=compile_mode)
    model = create(name, seed=0, device=device, **extra)
    model.n_users, model.n_items = train.shape
    model.init_network()
    torch.manual_seed(1)
    rng = np.random.default_rng(0)
    bs = model.config.batch_size
    perm = rng.permutation(train.shape[0])
    n_warm = min(bs * warm_batches, train.shape[0] // 2)
    warm = train[np.sort(perm[:n_warm])]
    rows = min(train.shape[0] - n_warm, bs * batches)
    timed = train[np.sort(perm[n_warm: n_warm + rows])]
    model.net.train()
    with model.train_autocast():
        t = time.perf_counter()
        model._train_epoch(warm, 0, rng)
        sync(device)
        warm_s = time.perf_counter() - t
        t = time.perf_counter()
        loss = model._train_epoch(timed, 1, rng)
        sync(device)
    dt = time.perf_counter() - t
    steps = -(-timed.shape[0] // bs)
    out = {"model": name, "amp": amp, "batch_size": bs, "timed_rows": int(timed.shape[0]), "timed_steps": steps,
           "timed_s": dt, "epoch_s": dt * train.shape[0] / timed.shape[0], "loss": float(loss),
           "steps_per_s": steps * (4 if name == "recvae" else 1) / dt, "warmup_s": warm_s}
    if compile_mode:
        out.update(compile_mode=compile_mode, compiled=model.compiled)
        if score_check and model.compiled:
            out["scores_vs_eager"] = compiled_scores_check(model, train)
    return out


def compiled_scores_check(model, train) -> dict:
    """Scores of a compiled model (eval mode, several blocks of ``eval_block`` rows, the last one
    short) against the same weights run eagerly: the largest absolute difference. Under CUDA
    graphs each block's output must survive the next block's call."""
    model.fitted = True
    rows = train[: 2 * model.config.eval_block + 37]
    t = time.perf_counter()
    compiled = model.score_tensor(rows)
    first = time.perf_counter() - t
    state, model._compile_state = model._compile_state, None  # the guard then calls the network eagerly
    try:
        eager = model.score_tensor(rows)
    finally:
        model._compile_state = state
    return {"rows": int(rows.shape[0]), "max_abs_diff": float((compiled - eager).abs().max()),
            "first_call_s": first}


def compile_epochs(train, device: str, batches: int, modes: list[str], over) -> list[dict]:
    """Mult-VAE and Mult-DAE epochs with the network under torch.compile, each mode in turn
    (the uncompiled figures are section 2's, same batches and seeds). A compiler that fails
    leaves a row with ``compiled`` False: aerec fell back to eager and said so in one line."""
    rows = []
    for mode in modes:
        for name in COMPILED:
            if over():
                rows.append({"model": name, "compile_mode": mode, "skipped": "time budget"})
                continue
            r = epoch(name, train, device, batches, compile_mode=mode, warm_batches=COMPILE_WARM,
                      score_check=not rows)  # the first one: compiled scoring against eager
            rows.append(r)
            print(json.dumps(r), flush=True)
    return rows


def recbole_side_by_side(device: str, tiny: bool, epochs: int, rounds: int, batch_size: int = 500) -> dict:
    """aerec against RecBole on the same device, alternating (aerec then RecBole, ``rounds``
    times) per model: ML-1M, every rating implicit, RecBole's per-user random 8:1:1 split, batch
    ``batch_size``, one warm-up epoch per round, then ``epochs`` timed epochs. aerec trains on
    ``WeakGeneralization(min_rating=None, k_core=1)`` (the same split rule, recbole_anchor.py)."""
    try:
        import recbole
    except ImportError as e:
        return {"skipped": f"RecBole is not importable ({e})"}
    import warnings

    import numpy as np

    sys.path.insert(0, str(HERE))
    import recbole_anchor as ra  # noqa: E402  (benchmarks/recbole_anchor.py: the aerec side and RecBole's)

    from aerec import data
    from aerec.data import cache
    from aerec.models import create
    from aerec.protocols.weak import WeakGeneralization

    if tiny:
        inter, label = data.synth(*RECBOLE_TINY, seed=0), "synthetic {:,} x {:,}".format(*RECBOLE_TINY[:2])
    elif cache.status("ml-1m") != "cached":
        return {"skipped": f"ML-1M is not cached under {cache.home()} (carry datasets/ml-1m.npz and ml-1m.json)"}
    else:
        inter, label = data.load("ml-1m"), "ml-1m"
    train = next(WeakGeneralization(min_rating=None, k_core=1, seed=0).split(inter)).train
    res = {"recbole": recbole.__version__, "data": label, "train_users": int(train.shape[0]),
           "items": int(train.shape[1]), "train_entries": int(train.nnz), "batch_size": batch_size,
           "epochs_per_round": epochs, "rounds": rounds, "models": {}}
    res["numpy_aliases_added"] = ra.numpy2_aliases()  # RecBole 1.2.1 under NumPy 2 (see there)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RecBole's own deprecation and pandas warnings
        ra.write_inter(inter, Path(tmp), "aerec")
        for name in ra.RECBOLE_MODELS:
            peer = ra.RecBoleRun(name, Path(tmp), "aerec", device, batch_size)
            ours, theirs = [], []
            for _ in range(rounds):
                ours.append(ra.epoch_times(create(name, seed=0, device=device, batch_size=batch_size), train, epochs, 0))
                theirs.append(peer.epoch_times(epochs))
            med_o, med_t = float(np.median(sum(ours, []))), float(np.median(sum(theirs, [])))
            res["models"][name] = {"aerec_s": med_o, "recbole_s": med_t, "speedup": med_t / med_o,
                                   "aerec_rounds": ours, "recbole_rounds": theirs}
            print(json.dumps({"recbole": name, "aerec_s": med_o, "recbole_s": med_t}), flush=True)
    return res


def floor_seconds(name: str, train, rate: float) -> float:
    from aerec.models import create

    sys.path.insert(0, str(HERE))
    import scale  # noqa: E402  (benchmarks/scale.py: one FLOP count for both scripts)

    model = create(name)
    flops, _ = scale.train_flops(name, model, train.shape[0], train.nnz, train.shape[1])
    return flops / rate


def heldout_split(x, n: int, seed: int = 0):
    """The last n rows as held-out users, each row's items split 80/20 into fold-in and target."""
    import numpy as np
    import scipy.sparse as sp

    held = x[x.shape[0] - n:].tocoo()
    rng = np.random.default_rng(seed)
    target = rng.random(held.nnz) < 0.2
    mk = lambda m: sp.csr_matrix((held.data[m], (held.row[m], held.col[m])), shape=held.shape)  # noqa: E731
    return x[: x.shape[0] - n], mk(~target), mk(target)


def evaluation(train, hin, hout, device: str) -> dict:
    """evaluate_ranking of the held-out users against the forward pass + exclusion + device top-k."""
    import torch

    from aerec import evaluation as ev
    from aerec import metrics
    from aerec.models import create

    model = create("multvae", seed=0, device=device)
    model.n_users, model.n_items = train.shape
    model.init_network()
    model.fitted = True
    rows = [slice(s, s + 1024) for s in range(0, hin.shape[0], 1024)]

    def bare():
        for r in rows:
            scores = model.score_tensor(hin[r])
            metrics.exclude_(scores, hin[r])
            torch.topk(scores, 100, dim=1)[1].cpu()

    out = {}
    for label, f in (("evaluate_ranking", lambda: ev.evaluate_ranking(model, hin, hout, ks=(20, 50, 100))),
                     ("forward + exclusion + device top-k", bare)):
        sync(device)
        t = time.perf_counter()
        f()
        sync(device)
        first = time.perf_counter() - t
        t = time.perf_counter()
        f()
        sync(device)
        out[label] = {"first_s": first, "warm_s": time.perf_counter() - t}
    out["ratio"] = out["evaluate_ranking"]["warm_s"] / out["forward + exclusion + device top-k"]["warm_s"]
    out["users"] = int(hin.shape[0])
    return out


def ease_fit(train, device: str) -> dict:
    from aerec.models import create

    t = time.perf_counter()
    model = create("ease", device=device, dtype="float32")
    model.n_users, model.n_items = train.shape
    model._fit(train, None)
    sync(device)
    return {"fit_s": time.perf_counter() - t, "items": int(train.shape[1])}


def trials_per_minute(device: str, jobs: int, tiny: bool, out: Path) -> dict:
    """A Mult-VAE study (10 epochs a trial, no pruning effect on the count) at 1 and ``jobs``."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        return {"skipped": "Optuna is not installed"}
    from aerec.data import synth
    from aerec.models import get
    from aerec.protocols.strong import StrongGeneralization
    from aerec.tune import run_study, search_space, sqlite_url

    shape = (400, 200, 8_000) if tiny else ML1M_SHAPE
    data = synth(*shape, seed=0)
    fold = next(StrongGeneralization(n_heldout=max(20, shape[0] // 10), threshold=None, seed=0).split(data))
    cls = get("multvae")
    fixed = {"epochs": 2 if tiny else 10, "device": device, "patience": 0}
    res = {"data": list(shape), "epochs_per_trial": fixed["epochs"]}
    for n in (1, jobs):
        trials = (2 if tiny else 6) * n
        with tempfile.TemporaryDirectory() as tmp:  # a fresh study each time: nothing resumed
            t = time.perf_counter()
            r = run_study(cls, fold, fixed=fixed, space=search_space(cls), trials=trials, seed=0,
                          storage=sqlite_url(Path(tmp) / "study.db"), name=f"gpu-check-{n}", keep_model=False,
                          trial_jobs=n)
            wall = time.perf_counter() - t
        res[f"jobs_{n}"] = {"trials": r["trials"], "wall_s": wall, "per_minute": r["trials"] / wall * 60}
    res["speedup"] = res[f"jobs_{jobs}"]["per_minute"] / res["jobs_1"]["per_minute"]
    return res


def write_docs(docs: Path, md: str) -> None:
    text = docs.read_text() if docs.exists() else ""
    block = f"{START}\n{md.strip()}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## On one GPU (benchmarks/gpu_check.py)\n\n" + block + "\n"
    docs.write_text(text)


def report(res: dict) -> str:
    lines = [f"`{res['command']}` on {res['device_name']}, torch {res['torch']}, {res['seconds']:.0f} s in all."]
    if res.get("kept_from_earlier"):
        lines[0] += " Kept from the earlier run in the same folder: " + ", ".join(res["kept_from_earlier"]) + "."
    f = res.get("floors")
    if f:
        lines += ["", "Floors: " + ", ".join(f"{k.split('_')[0]} {v:.1f} TFLOP/s" for k, v in f.items() if k.endswith("tflops"))
                  + f"; Cholesky of {f['items']:,}^2 {f['cholesky_s']:.3f} s, its inverse {f['cholesky_inverse_s']:.3f} s."]
    if res.get("epochs"):
        lines += ["", "| model | epoch | floor (fp32) | ratio | goal | steps/s |", "|---|---:|---:|---:|---:|---:|"]
    for r in res.get("epochs", []):
        floor = r.get("floor_s")
        label = r["model"] + (" (bf16 autocast)" if r["amp"] else "")
        goal = GOALS.get(r["model"]) if not r["amp"] else None
        ep = r["epoch_s"]
        floor_cell = "" if floor is None else f"{floor:.3f} s"
        ratio_cell = "" if floor is None else f"{ep / floor:.2f}x"
        goal_cell = "" if goal is None else f"<= {goal}x"
        lines.append(f"| {label} | {ep:.3f} s | {floor_cell} | {ratio_cell} | {goal_cell} | {r['steps_per_s']:.0f} |")
    e = res.get("evaluation")
    if e:
        lines += ["", f"Evaluation of {e['users']:,} users: evaluate_ranking {e['evaluate_ranking']['warm_s']:.3f} s warm "
                      f"({e['evaluate_ranking']['first_s']:.3f} s first) against forward + exclusion + device top-k "
                      f"{e['forward + exclusion + device top-k']['warm_s']:.3f} s: **{e['ratio']:.2f}x** (goal <= 1.5x)."]
    if res.get("ease"):
        lines += ["", f"EASE fit at {res['ease']['items']:,} items on the device: **{res['ease']['fit_s']:.2f} s** (goal <= 1.5 s)."]
    lines += recbole_lines(res.get("recbole"))
    lines += compile_lines(res.get("compile"), {r["model"]: r for r in res.get("epochs", []) if not r["amp"]})
    t = res.get("trials")
    if t:
        if "skipped" in t:
            lines += ["", f"Trials per minute: skipped ({t['skipped']})."]
        else:
            n = max(int(k.split("_")[1]) for k in t if k.startswith("jobs_"))
            lines += ["", f"Trials per minute, Mult-VAE study on {t['data'][0]:,} x {t['data'][1]:,} synthetic data, "
                          f"{t['epochs_per_trial']} epochs a trial: 1 job {t['jobs_1']['per_minute']:.1f}, {n} jobs "
                          f"{t[f'jobs_{n}']['per_minute']:.1f}: **{t['speedup']:.2f}x** (goal >= 8x at 16 jobs)."]
    if res.get("skipped"):
        lines += ["", "Not measured (time budget): " + ", ".join(res["skipped"]) + "."]
    return "\n".join(lines) + "\n"


def recbole_lines(r: dict | None) -> list[str]:
    if not r:
        return []
    if "skipped" in r:
        return ["", f"RecBole side by side: skipped ({r['skipped']})."]
    out = ["", f"Against RecBole {r['recbole']} on the same device, {r['data']} ({r['train_users']:,} training users, "
               f"{r['train_entries']:,} entries, every rating implicit, per-user random 8:1:1), batch {r['batch_size']}, "
               f"{r['rounds']} alternating rounds of {r['epochs_per_round']} epochs after a warm-up epoch, seconds per "
               "epoch (median; per-round medians in brackets):", "",
           "| model | aerec | RecBole | speed-up | goal |", "|---|---:|---:|---:|---:|"]
    for name, m in r["models"].items():
        rounds = lambda rs: ", ".join(f"{statistics.median(x):.3f}" for x in rs)  # noqa: E731
        out.append(f"| {name} | {m['aerec_s']:.3f} s [{rounds(m['aerec_rounds'])}] | {m['recbole_s']:.3f} s "
                   f"[{rounds(m['recbole_rounds'])}] | **{m['speedup']:.2f}x** | >= 3x |")
    return out


def compile_lines(rows, plain: dict) -> list[str]:
    if not rows:
        return []
    if isinstance(rows, dict):
        return ["", f"torch.compile: skipped ({rows['skipped']})."]
    out = ["", "torch.compile of the network (`--set compile=true compile_mode=...`), same batches as the table "
               "above; warm-up = the compilations and the first steps:", "",
           "| model | mode | compiled | epoch | uncompiled | speed-up | warm-up |", "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['model']} | {r['compile_mode']} | not run ({r['skipped']}) | | | | |")
            continue
        base = plain.get(r["model"], {}).get("epoch_s")
        gain = f"{base / r['epoch_s']:.2f}x" if base else ""
        out.append(f"| {r['model']} | {r['compile_mode']} | {'yes' if r['compiled'] else 'no: fell back to eager'} | "
                   f"{r['epoch_s']:.3f} s | {'' if base is None else f'{base:.3f} s'} | {gain} | {r['warmup_s']:.1f} s |")
    for r in rows:
        c = r.get("scores_vs_eager")
        if c:
            out += ["", f"Compiled scoring ({r['model']}, {r['compile_mode']}, {c['rows']:,} rows in blocks, first call "
                        f"{c['first_call_s']:.1f} s) against the same weights run eagerly: largest difference "
                        f"{c['max_abs_diff']:.2e}."]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (with --tiny, for a smoke run)")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes: checks the code, measures nothing")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    ap.add_argument("--batches", type=int, default=40, help="timed batches per model")
    ap.add_argument("--trial-jobs", type=int, default=16)
    ap.add_argument("--recbole-epochs", type=int, default=10, help="timed epochs per round and side")
    ap.add_argument("--compile-modes", default="reduce-overhead,default",
                    help="torch.compile modes to measure, in order ('' for none)")
    ap.add_argument("--skip", default="", help="sections not to run, comma-separated: " + ",".join(SECTIONS)
                    + "; their figures are kept from an earlier gpu_check.json in --out")
    ap.add_argument("--budget", type=float, default=330.0, help="seconds; later sections are skipped past it")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--docs", default=str(DOCS), help="performance.md to update ('' for none)")
    args = ap.parse_args(argv)
    skip = [k for k in args.skip.split(",") if k]
    if set(skip) - set(SECTIONS):
        print(f"error: --skip takes {', '.join(SECTIONS)}; got {args.skip!r}", file=sys.stderr)
        return 2
    if args.dry_run:
        print("gpu_check plan: " + "; ".join(f"{k}: {v}" for k, v in PLAN.items() if k not in skip))
        return 0

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: gpu_check needs a CUDA GPU and torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.tiny:
        print("error: gpu_check runs on the CPU only with --tiny (a smoke run)", file=sys.stderr)
        return 2
    from aerec import fsutil
    from aerec.data import synth

    started = time.perf_counter()
    device = args.device
    shape = TINY if args.tiny else SHAPE
    batches = 2 if args.tiny else args.batches
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = {}
    if skip and (args.out / "gpu_check.json").exists():  # a rerun of what is left keeps the rest
        earlier = json.loads((args.out / "gpu_check.json").read_text())
    x = synth(*shape, seed=0).csr("ones")
    train, hin, hout = heldout_split(x, min(HELDOUT, x.shape[0] // 5))
    res = {"command": "PYTHONPATH=src python3 benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "device": device, "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU",
           "torch": torch.__version__, "python": platform.python_version(), "load_start": list(os.getloadavg()),
           "data": {"users": x.shape[0], "items": x.shape[1], "interactions": int(x.nnz), "train_users": train.shape[0]},
           "skipped": [], "kept_from_earlier": []}
    over = lambda: time.perf_counter() - started > args.budget  # noqa: E731
    modes = [m for m in args.compile_modes.split(",") if m]

    def epochs():
        rate = res["floors"]["fp32_tflops"] * 1e12 if "floors" in res else None
        rows = []
        for name in NEURAL[:3] if args.tiny else NEURAL:
            if over():
                res["skipped"].append(f"{name} epoch")
                continue
            r = epoch(name, train, device, batches)
            if name in FLOORED and rate:
                r["floor_s"] = floor_seconds(name, train, rate)
            rows.append(r)
            print(json.dumps(r), flush=True)
        if device.startswith("cuda") and not over():
            rows.append(epoch("multvae", train, device, batches, amp=True))
        return rows

    runs = {"floors": lambda: floors(device, x.shape[1], args.tiny),
            "epochs": epochs,
            "evaluation": lambda: evaluation(train, hin, hout, device),
            "ease": lambda: ease_fit(train, device),
            "recbole": lambda: recbole_side_by_side(device, args.tiny, 2 if args.tiny else args.recbole_epochs, 2),
            "compile": lambda: ({"skipped": "not on --tiny (a CPU compile takes about a minute)"} if args.tiny
                                else compile_epochs(train, device, batches, modes, over)),
            "trials": lambda: trials_per_minute(device, 2 if args.tiny else args.trial_jobs, args.tiny, args.out)}
    for key in SECTIONS:
        if key in skip:
            if key in earlier:
                res[key] = earlier[key]
                res["kept_from_earlier"].append(key)
            continue
        if over():
            res["skipped"].append(key)
            continue
        t = time.perf_counter()
        res[key] = runs[key]()
        res.setdefault("section_seconds", {})[key] = time.perf_counter() - t
        if key not in ("epochs", "compile"):  # those print a line per model as they go
            print(json.dumps({key: res[key]}), flush=True)
    res["seconds"] = time.perf_counter() - started
    res["load_end"] = list(os.getloadavg())
    md = report(res)
    fsutil.write_json(args.out / "gpu_check.json", res)
    fsutil.write_text(args.out / "gpu_check.md", "# aerec on one GPU (benchmarks/gpu_check.py)\n\n" + md)
    if args.docs:
        write_docs(Path(args.docs), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
