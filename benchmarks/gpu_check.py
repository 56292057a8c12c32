"""Mult-VAE on ML-20M-shaped synthetic data on one CUDA GPU: seconds per epoch against the GPU
matmul floor, written to benchmarks/results/gpu_check.{md,json}.

The floor is the epoch's dense-layer FLOPs (forward + backward, counted from the layer sizes) over
the GPU's measured float32 matmul rate (a large ``torch.mm`` timed in the same process; TF32 off,
so it is true float32). With ``--amp`` training runs under bf16 autocast and the rate is the bf16
``torch.mm`` rate. The first epoch (allocator and kernel warm-up) is reported but not in the ratio.

    .venv/bin/python benchmarks/gpu_check.py            # 136,677 x 20,108, 10M interactions, 3 epochs
    .venv/bin/python benchmarks/gpu_check.py --amp

Needs a CUDA GPU; without one it stops with a one-line error (exit status 2).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE = (136_677, 20_108, 10_000_000)  # ML-20M after the usual preprocessing


def dense_layers(n_items: int, hidden: tuple[int, ...], latent: int) -> list[tuple[int, int]]:
    """(in, out) of Mult-VAE's dense layers: the encoder after its sparse first layer, then the
    decoder. The first layer (items -> hidden[0]) reads sparse rows and is not a dense matmul."""
    q = [*hidden, 2 * latent]
    p = [latent, *reversed(hidden), n_items]
    return list(zip(q[:-1], q[1:])) + list(zip(p[:-1], p[1:]))


def epoch_flops(n_users: int, n_items: int, nnz: int, hidden: tuple[int, ...] = (600,), latent: int = 200) -> dict:
    """FLOPs of one epoch. A dense layer costs 2*in*out per row forward and twice that backward
    (input and weight gradients): 6*in*out per row. The sparse first layer costs 2*nnz*hidden
    forward and as much for its weight gradient; it is reported apart, not in the dense floor."""
    dense = 6 * n_users * sum(a * b for a, b in dense_layers(n_items, hidden, latent))
    return {"dense": int(dense), "sparse_first_layer": int(4 * nnz * hidden[0])}


def matmul_rate(dtype, n: int = 8192, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n torch.mm on the current GPU (best of the timed repeats)."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (and the bf16 matmul rate as the floor)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("error: gpu_check needs a CUDA GPU and torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # the floor and the run both in true float32
    torch.backends.cudnn.allow_tf32 = False

    from aerec import data, fsutil, models

    n_users, n_items, n = SHAPE
    t = time.perf_counter()
    train = data.synth(n_users, n_items, n, seed=0).csr("ones")
    synth_s = time.perf_counter() - t
    dtype = torch.bfloat16 if args.amp else torch.float32
    rate = matmul_rate(dtype)
    model = models.create("multvae", {"epochs": args.epochs, "batch_size": args.batch_size, "device": "cuda",
                                      "amp": args.amp, "seed": 0})
    model.fit(train, None, progress=False)
    epochs = [h["train_seconds"] for h in model.history]
    flops = epoch_flops(train.shape[0], train.shape[1], train.nnz)
    floor = flops["dense"] / rate
    steady = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
    result = {
        "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "python": platform.python_version(),
        "data": {"users": train.shape[0], "items": train.shape[1], "interactions": int(train.nnz),
                 "synth_seconds": synth_s},
        "model": "multvae", "config": model.config_dict(), "precision": "bf16 autocast" if args.amp else "float32",
        "matmul_tflops": rate / 1e12, "epoch_dense_tflop": flops["dense"] / 1e12,
        "epoch_sparse_first_layer_tflop": flops["sparse_first_layer"] / 1e12,
        "floor_seconds": floor, "epoch_seconds": epochs, "steady_epoch_seconds": steady,
        "ratio_to_floor": steady / floor,
        "command": "python benchmarks/gpu_check.py" + (" --amp" if args.amp else ""),
    }
    suffix = "-amp" if args.amp else ""
    fsutil.write_json(args.out / f"gpu_check{suffix}.json", result)
    md = [
        f"# Mult-VAE on ML-20M-shaped data, one GPU ({result['precision']})", "",
        f"`{result['command']}` on {result['gpu']}, torch {result['torch']}.", "",
        f"- data: {train.shape[0]:,} users x {train.shape[1]:,} items, {train.nnz:,} interactions (aerec.data.synth, seed 0)",
        f"- torch.mm rate: {rate / 1e12:.1f} TFLOP/s; dense FLOPs per epoch (fwd+bwd): {flops['dense'] / 1e12:.2f} T",
        f"- floor: {floor:.3f} s per epoch; measured (median after the first): {steady:.3f} s: **{steady / floor:.2f}x**",
        f"- every epoch: {', '.join(f'{s:.3f}' for s in epochs)} s",
        "",
    ]
    fsutil.write_text(args.out / f"gpu_check{suffix}.md", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
