"""Load test of `aerec serve`: N concurrent clients for a bounded time, on 127.0.0.1 only.

Trains Mult-VAE on ML-100K (``aerec train multvae --dataset ml-100k --protocol full``, few epochs)
unless --model-dir is given, starts ``aerec serve`` in a subprocess on a free loopback port, and
runs N async clients (httpx), each sending requests back to back until the time is up: half
known users (``{"user": id}``), half new users (5-20 random known items, every fifth request
with an unknown id too). Reports throughput, p50/p90/p99 latency, the error count (0 expected)
and the mean micro-batch size; writes benchmarks/results/serve_load.{md,json} with the command
and the machine.

    .venv/bin/python benchmarks/serve_load.py --clients 16 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"  # loopback only: the benchmark never talks to another machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def aerec(*args) -> list[str]:
    return [sys.executable, "-m", "aerec", *map(str, args)]


def train(run_dir: Path, epochs: int) -> float:
    t = time.perf_counter()
    subprocess.run(aerec("-q", "train", "multvae", "--dataset", "ml-100k", "--protocol", "full",
                         "--set", f"epochs={epochs}", "--out", run_dir), check=True, timeout=1800)
    return time.perf_counter() - t


def wait_ready(client, proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"aerec serve exited early with code {proc.returncode}")
        try:
            if client.get("/health").status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"aerec serve was not ready after {timeout:.0f} s")


def request_bodies(model, n: int, seed: int, k: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    users, items = model.user_ids.tolist(), model.item_ids.tolist()
    bodies = []
    for i in range(n):
        if i % 2 == 0:
            bodies.append({"user": users[rng.integers(len(users))], "k": k})
        else:
            chosen = [items[j] for j in rng.choice(len(items), size=int(rng.integers(5, 21)), replace=False)]
            if i % 10 == 1:
                chosen.append("no-such-item")
            bodies.append({"items": chosen, "k": k})
    return bodies


async def load(base: str, bodies: list[dict], clients: int, duration: float, max_requests: int) -> dict:
    import httpx

    latencies, errors, samples = [], [], []
    stop_at = time.perf_counter() + duration

    async def one(c, cid: int):
        i = cid
        # bounded twice over: by the deadline and by a request cap per client
        for _ in range(max_requests):
            if time.perf_counter() >= stop_at:
                return
            body = bodies[i % len(bodies)]
            i += clients
            t = time.perf_counter()
            try:
                r = await c.post("/recommend", json=body)
                ok = r.status_code == 200 and len(r.json()["items"]) == body["k"]
                if not ok:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies.append(time.perf_counter() - t)
            if len(samples) < 2 and ok:
                samples.append({"request": body, "response": r.json()})

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(c, i) for i in range(clients)))
        wall = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "wall": wall, "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=20.0, help="Seconds of load.")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--model-dir", type=Path, help="An existing model or run directory (skips training).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import httpx
    import torch

    from aerec import fsutil, serve

    with tempfile.TemporaryDirectory(prefix="aerec-serve-load-") as tmp:
        train_seconds = None
        target = args.model_dir
        if target is None:
            target = Path(tmp) / "run"
            train_seconds = train(target, args.epochs)
        model = serve.load_model(target, announce=False)
        bodies = request_bodies(model, 4096, args.seed, args.k)
        port = free_port()
        proc = subprocess.Popen(aerec("-q", "serve", target, "--host", HOST, "--port", port, "--log-level", "warning",
                                      "--max-batch", args.max_batch, "--batch-wait-ms", args.batch_wait_ms),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://{HOST}:{port}"
        try:
            with httpx.Client(base_url=base, timeout=10.0) as client:
                wait_ready(client, proc)
                for b in bodies[:20]:  # warm-up, not measured
                    client.post("/recommend", json=b).raise_for_status()
                before = client.get("/health").json()
                res = asyncio.run(load(base, bodies, args.clients, args.duration, max_requests=1_000_000))
                after = client.get("/health").json()
                info = client.get("/model").json()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            server_err = proc.stderr.read() if proc.stderr else ""

    lat = np.asarray(res["latencies"]) * 1000
    n = len(lat)
    batches = after["batches"] - before["batches"]
    served = after["requests"] - before["requests"]
    record = {
        "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
        "model": info["model"], "dataset": info["meta"].get("dataset"), "n_items": info["n_items"],
        "n_users": info["n_users"], "epochs": args.epochs if args.model_dir is None else None,
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "clients": args.clients, "duration_s": args.duration, "k": args.k,
        "max_batch": args.max_batch, "batch_wait_ms": args.batch_wait_ms,
        "requests": n, "errors": len(res["errors"]), "error_examples": res["errors"][:5],
        "wall_s": round(res["wall"], 2), "throughput_rps": round(n / res["wall"], 1),
        "latency_ms": {q: round(float(np.percentile(lat, p)), 2) for q, p in
                       (("p50", 50), ("p90", 90), ("p99", 99))} | {"max": round(float(lat.max()), 2)} if n else {},
        "forward_batches": batches, "mean_batch_size": round(served / batches, 2) if batches else None,
        "samples": res["samples"],
        "server_stderr_tail": server_err.strip().splitlines()[-5:],
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
    }
    fsutil.write_json(args.out / "serve_load.json", record)
    m, q = record["machine"], record["latency_ms"]
    md = f"""# `aerec serve` load test

Command: `{record['command']}`

Machine: {m['platform']}, {m['cpu_count']} CPUs (torch threads {m['torch_threads']}), Python {m['python']},
torch {m['torch']}. Server and clients share the machine, over 127.0.0.1.

Model: {record['model']} on {record['dataset']} ({record['n_users']} users x {record['n_items']} items), trained with
`aerec train multvae --dataset ml-100k --protocol full --set epochs={args.epochs}`
{'' if train_seconds is None else f'({train_seconds:.0f} s)'}. Requests: half known users, half new users with 5-20
items (every fifth new user also sends an unknown id), k = {args.k}. {args.clients} async clients
(httpx, keep-alive) send back to back for {args.duration:.0f} s.

| quantity | value |
|---|---|
| requests | {n:,} in {res['wall']:.1f} s |
| throughput | {record['throughput_rps']:,} requests/s |
| latency p50 / p90 / p99 / max | {q.get('p50')} / {q.get('p90')} / {q.get('p99')} / {q.get('max')} ms |
| errors | {len(res['errors'])} |
| forward batches | {batches:,} (mean {record['mean_batch_size']} requests per batch; max {args.max_batch}, wait {args.batch_wait_ms} ms) |

The server, its clients and any other jobs share the same CPUs, so these numbers vary between runs
and are a floor for a dedicated machine.
"""
    fsutil.write_text(args.out / "serve_load.md", md)
    print(md)
    if res["errors"]:
        print("errors, e.g.:", json.dumps(res["errors"][:5], indent=2), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
