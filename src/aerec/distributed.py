"""Multi-process training with PyTorch's own engine: ``torch.distributed`` + torchrun.

``torchrun --nproc_per_node N -m aerec train MODEL ...`` (or ``aerec train ... --nproc N``, which
runs torchrun itself) starts N copies of ``aerec train``. Each copy joins one process group (gloo on
CPU, nccl on GPU) and trains the same model on its share of every global batch:

- every rank draws the same permutation from the shared seed and takes a contiguous slice of each
  global batch of ``batch_size`` rows, so the global batch is the one a single process would use;
- before each optimizer step, the gradients are all-reduced with weight ``rows_on_this_rank /
  global_batch_rows``, which turns each rank's mean loss into the global batch mean exactly (an
  optimizer pre-step hook, so it works for every model, including RecVAE's separate encoder and
  decoder phases; see docs/distributed.md for why not a DistributedDataParallel wrapper);
- every rank steps once per global batch, so step counters (Mult-VAE's KL annealing) count global
  steps;
- the training matrix is written once per node as .npy files and memory-mapped: a rank reads only
  the rows of its slices;
- validation reduces sums and counts; test metrics gather the per-user arrays, so the summary is
  the one a single process computes from the same scores;
- only rank 0 writes files; the other ranks are quiet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from aerec import fsutil, ui
from aerec.errors import AerecError, ConfigError, DataError

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
_current: Context | None = None


class LaunchError(AerecError):
    """torchrun or one of its workers failed; the message is the worker's own (one line)."""


def launched() -> bool:
    """True inside a torchrun worker of a job with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def current() -> Context | None:
    return _current


def is_writer() -> bool:
    """Whether this process writes files: always outside torchrun, only rank 0 inside."""
    return _current is None or _current.rank == 0


@dataclasses.dataclass
class Context:
    rank: int
    world: int
    local_rank: int
    node: int
    device: torch.device  # where collectives' buffers live (CPU for gloo, this rank's GPU for nccl)
    fits: int = 0  # fits started in this process; names each fit's scratch folder

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def bounds(self, n: int) -> tuple[int, int]:
        """This rank's contiguous share of n items (sizes differ by at most one)."""
        return n * self.rank // self.world, n * (self.rank + 1) // self.world

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def sum(self, values) -> np.ndarray:
        """Elementwise sum over ranks, in float64 (exact for counts, order-independent per rank)."""
        import torch.distributed as dist

        t = torch.as_tensor(np.asarray(values, dtype=np.float64), device=self.device).clone()
        dist.all_reduce(t)
        return t.cpu().numpy()

    def gather(self, arr: np.ndarray) -> list[np.ndarray]:
        """Every rank's 1-d float64 or int64 array, in rank order (lengths may differ)."""
        import torch.distributed as dist

        arr = np.ascontiguousarray(arr)
        sizes = self.sum(np.eye(self.world)[self.rank] * len(arr)).astype(np.int64)
        buf = torch.zeros(int(sizes.max()), dtype=torch.from_numpy(arr[:0]).dtype, device=self.device)
        buf[: len(arr)] = torch.from_numpy(arr).to(self.device)
        parts = [torch.empty_like(buf) for _ in range(self.world)]
        dist.all_gather(parts, buf)
        return [p[:n].cpu().numpy() for p, n in zip(parts, sizes)]

    def agree(self, flag: bool) -> bool:
        """Rank 0's answer, on every rank (rank 0 sees the run directory that counts)."""
        return bool(self.sum([float(flag) if self.rank == 0 else 0.0])[0])


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise ConfigError(f"torchrun did not set {name}; start distributed runs with torchrun or --nproc") from None


def init(device_name: str = "cpu") -> Context:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on GPU)."""
    global _current
    import torch.distributed as dist

    from aerec.devices import resolve_device

    if _current is not None:
        return _current
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    device = resolve_device(device_name)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local} has no GPU: this node has {torch.cuda.device_count()}; "
                              "use --nproc_per_node <= the GPU count")
        torch.cuda.set_device(local)  # "cuda" now means this rank's own GPU everywhere
        device = torch.device("cuda", local)
    elif device.type != "cpu":
        raise ConfigError(f"distributed training runs on cpu or cuda, not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group(BACKENDS[device.type], timeout=_dt.timedelta(minutes=30))
    _current = Context(rank, world, local, int(os.environ.get("GROUP_RANK", "0")), device)
    if rank != 0:
        ui.set_quiet(True)  # one progress bar and one set of messages, from rank 0
    return _current


def shutdown(wait: bool = True) -> None:
    """Leave the process group; ``wait`` first meets the other ranks (a rank that leaves while a
    peer still talks to it aborts the peer), so pass False on the way out of an error."""
    global _current
    import torch.distributed as dist

    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
    _current = None


def check_model(cls) -> None:
    # a class attribute, not an import of the models: they import this module (training.py)
    if not getattr(cls, "multi_process", False) or getattr(cls, "task", None) != "ranking":
        raise ConfigError(f"multi-process training supports the neural top-N models; '{cls.name}' "
                          "trains in one process (drop --nproc / torchrun)")


ERROR_DIR = "AEREC_WORKER_ERRORS"  # where workers leave their one-line error for the launcher


def launch(nproc: int, args: list[str]) -> None:
    """Run ``torchrun --standalone --nproc_per_node N -m aerec ARGS`` in this process (torch's own
    launcher, called as a library) and turn a failed worker into one line: the error of the
    lowest rank that reported one, never torchrun's traceback."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if nproc < 1:
        raise ConfigError("--nproc must be at least 1")
    ui.info(f"launching {nproc} processes: torchrun --standalone --nproc_per_node={nproc} -m aerec {' '.join(args)}")
    errors = Path(tempfile.mkdtemp(prefix="aerec-launch-"))
    saved_env = os.environ.get(ERROR_DIR)
    os.environ[ERROR_DIR] = str(errors)  # the workers inherit it
    # the agent's own log lines (rendezvous, SIGTERM to the peers) are noise unless debugging
    debug = os.environ.get("AEREC_DEBUG", "") not in ("", "0")
    loggers = [] if debug else [logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict)
                                if n.startswith("torch.distributed")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        torchrun_args = parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "aerec", *args])
        try:
            run(torchrun_args)
        except ChildFailedError as e:
            raise _worker_error(errors, e) from None
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if saved_env is None:
            os.environ.pop(ERROR_DIR, None)
        else:
            os.environ[ERROR_DIR] = saved_env
        shutil.rmtree(errors, ignore_errors=True)


def report_worker_error(exc: BaseException) -> bool:
    """In a launched worker: leave the error for the launcher instead of printing it (N workers
    would print it N times). False when no launcher listens."""
    folder = os.environ.get(ERROR_DIR)
    if not folder or not Path(folder).is_dir():
        return False
    code = getattr(exc, "exit_code", 1)
    text = str(exc) if isinstance(exc, AerecError) else f"internal error: {type(exc).__name__}: {exc}"
    rank = os.environ.get("RANK", "0")
    with contextlib.suppress(OSError):
        fsutil.write_json(Path(folder) / f"rank-{rank}.json", {"rank": int(rank), "code": code, "message": text})
        return True
    return False


def _worker_error(folder: Path, exc) -> AerecError:
    reports = []
    for p in folder.glob("rank-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            r = json.loads(p.read_text())
            reports.append((int(r["code"]) != 2, int(r["rank"]), int(r["code"]), str(r["message"]).splitlines()[0]))
    if reports:  # input errors (exit 2) first: the others are often peers that lost their partner
        _, rank, code, message = min(reports)
        err = LaunchError(message if code == 2 else f"worker {rank}: {message}")
        err.exit_code = code
        return err
    failures = getattr(exc, "failures", {}) or {}
    codes = sorted({f.exitcode for f in failures.values()})
    return LaunchError(f"a training process failed (exit codes {', '.join(map(str, codes)) or 'unknown'}); "
                       "set AEREC_DEBUG=1 to see torchrun's log")


# the training matrix, memory-mapped ---------------------------------------------------------


class MappedCSR:
    """A CSR matrix whose three arrays are memory-mapped .npy files; ``rows(idx)`` builds the block
    of those rows only, so a rank touches the pages of the rows it trains on and nothing else."""

    def __init__(self, folder: str | Path, shape: tuple[int, int]):
        folder = Path(folder)
        try:
            self.indptr = np.load(folder / "indptr.npy", mmap_mode="r", allow_pickle=False)
            self.indices = np.load(folder / "indices.npy", mmap_mode="r", allow_pickle=False)
            self.data = np.load(folder / "data.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{folder}: the shared training matrix cannot be read ({e})") from None
        self.shape = (int(shape[0]), int(shape[1]))
        if len(self.indptr) != self.shape[0] + 1 or len(self.indices) != len(self.data):
            raise DataError(f"{folder}: the shared training matrix is inconsistent with shape {self.shape}")

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @staticmethod
    def write(csr: sp.csr_matrix, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"indptr": csr.indptr.astype(np.int64), "indices": csr.indices.astype(np.int32),
                  "data": csr.data.astype(np.float32)}
        for name, arr in arrays.items():
            with fsutil.atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)

    def rows(self, idx) -> sp.csr_matrix:
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = np.asarray(self.indptr[idx]), np.asarray(self.indptr[idx + 1])
        counts = ends - starts
        indptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        take = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1])
        return sp.csr_matrix((self.data[take], self.indices[take], indptr), shape=(len(idx), self.shape[1]))

    __getitem__ = rows


def _scratch_root() -> Path:
    return Path(os.environ.get("AEREC_SCRATCH") or tempfile.gettempdir())


# one fit -------------------------------------------------------------------------------------


class TrainSession:
    """What distributed training adds to one ``Trainer.run``: the shared matrix, the sliced batches,
    the gradient all-reduce, per-rank noise, the loss reduction. ``close()`` undoes all of it."""

    def __init__(self, ctx: Context, model, train: sp.csr_matrix, order_rng: np.random.Generator):
        self.ctx, self.model, self.order_rng = ctx, model, order_rng
        self.weight = 1.0  # this rank's rows / the global batch's rows, for the current step
        self.rows_seen = 0
        ctx.fits += 1
        job = os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("MASTER_PORT", "job")
        self.folder = _scratch_root() / f"aerec-{job}-node{ctx.node}-fit{ctx.fits}"
        if ctx.local_rank == 0:  # one copy per node: no shared file system needed
            MappedCSR.write(train, self.folder)
        ctx.barrier()
        self.train = MappedCSR(self.folder, train.shape)
        self._broadcast_parameters()
        self.hooks = [opt.register_step_pre_hook(self._reduce_grads) for opt in model.optimizers.values()]
        model._shard = self

    def _broadcast_parameters(self) -> None:
        """Rank 0's weights everywhere (they match already when the seeded init is deterministic)."""
        import torch.distributed as dist

        for t in self.model.net.state_dict().values():
            dist.broadcast(t.data, src=0)

    def epoch_rng(self, epoch: int) -> np.random.Generator:
        """The rank's own noise for this epoch: torch (dropout, sampling) and a numpy generator
        (CDAE's negatives). Rank 0 keeps the trainer's torch stream; the others reseed per epoch,
        so a resumed run draws what an uninterrupted one would without saving their states."""
        cfg_seed = int(self.model.config.seed)
        if self.ctx.rank:
            seq = np.random.SeedSequence([cfg_seed, epoch, self.ctx.rank])
            torch.manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0] >> 1))
        return np.random.default_rng([cfg_seed, epoch, self.ctx.rank, 1])

    def batches(self, n_rows: int, batch_size: int, shuffle: bool, device):
        """This rank's slice of each global batch. A rank whose slice is empty (a last batch with
        fewer rows than ranks) gets one borrowed row with weight 0, so every rank steps together."""
        from aerec.models.layers import SparseBatch, batch_order

        if n_rows != self.train.shape[0]:
            raise DataError("distributed batches are drawn from the fit's training matrix only")
        for chunk in batch_order(n_rows, batch_size, self.order_rng if shuffle else None):
            lo, hi = self.ctx.bounds(len(chunk))
            rows = chunk[lo:hi] if hi > lo else chunk[:1]
            self.weight = (hi - lo) / len(chunk)
            self.rows_seen += len(rows)
            yield rows, SparseBatch.from_csr(self.train.rows(rows), device)

    def _reduce_grads(self, opt, args, kwargs) -> None:
        """One flat all-reduce of this optimizer's gradients, each rank weighted by its row share:
        sum_k (n_k / B) * mean_{S_k} grad = mean_B grad. A trailing flag per parameter says which
        ranks had a gradient, so a parameter without one anywhere stays without one (as it would
        in one process, where the optimizer skips it)."""
        import torch.distributed as dist

        params = [p for g in opt.param_groups for p in g["params"]]
        if not params:
            return
        ref = params[0]
        parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
        parts.append(torch.tensor([p.grad is not None for p in params], dtype=ref.dtype, device=ref.device))
        flat = torch.cat(parts)
        flat[: -len(params)].mul_(self.weight)
        dist.all_reduce(flat)
        flags = flat[-len(params):]
        offset = 0
        for p, present in zip(params, flags.tolist()):
            seg = flat[offset: offset + p.numel()].view_as(p)
            offset += p.numel()
            if present:
                p.grad = seg.clone() if p.grad is None else p.grad.copy_(seg)

    def reduce_loss(self, loss: float) -> float:
        """The epoch loss over all ranks' rows (each rank reports the mean over its own rows)."""
        loss_sum, rows = self.ctx.sum([loss * self.rows_seen if self.rows_seen else 0.0, self.rows_seen])
        self.rows_seen = 0
        return float(loss_sum / rows) if rows else float("nan")

    def close(self) -> None:
        for h in self.hooks:
            h.remove()
        self.model._shard = None
        self.ctx.barrier()  # nobody still reads the mapped files
        if self.ctx.local_rank == 0:
            shutil.rmtree(self.folder, ignore_errors=True)


# evaluation ------------------------------------------------------------------------------------


def _shard_rows(ctx: Context, target: sp.csr_matrix) -> np.ndarray:
    rows = np.flatnonzero(np.diff(target.indptr) > 0)
    if len(rows) == 0:
        raise DataError("no held-out user has a target item; nothing to evaluate")
    lo, hi = ctx.bounds(len(rows))
    return rows[lo:hi]


def evaluate_ranking(ctx: Context, model, input_csr, target_csr, ks=(20, 50, 100), exclude=None) -> dict:
    """``evaluation.evaluate_ranking`` over all ranks: each scores its share of the held-out users;
    the per-user arrays are gathered in row order (every rank gets them) and coverage is the union
    of the ranks' top-k item sets, so the result equals the one-process result on the same scores."""
    from aerec import evaluation, metrics

    inp, tgt = sp.csr_matrix(input_csr), sp.csr_matrix(target_csr)
    if inp.shape != tgt.shape:
        raise DataError(f"input {inp.shape} and target {tgt.shape} differ in shape")
    ks = metrics.check_ks(ks)
    n_items = inp.shape[1]
    mine = _shard_rows(ctx, tgt)
    covered = {k: np.zeros(n_items, dtype=bool) for k in ks}
    if len(mine):
        ex = None if exclude is None else sp.csr_matrix(exclude)[mine]
        local = evaluation.evaluate_ranking(model, inp[mine], tgt[mine], ks=ks, exclude=ex, covered_out=covered)
        local["users"] = mine[local["users"]]
    else:
        local = metrics.empty_result(ks)
    keys = [k for k in local if np.ndim(local[k]) == 1]
    out = {}
    for key in keys:
        dtype = np.int64 if key == "users" else np.float64
        out[key] = np.concatenate(ctx.gather(np.asarray(local[key], dtype=dtype)))
    counts = ctx.sum(np.concatenate([covered[k] for k in ks]).astype(np.float64))
    for j, k in enumerate(ks):
        out[f"coverage@{k}"] = np.asarray((counts[j * n_items:(j + 1) * n_items] > 0).sum() / n_items)
    return out


def mean_metric(ctx: Context, model, input_csr, target_csr, key: str = "ndcg@100") -> float:
    """The mean of one per-user metric over all ranks' users: all-reduced sum / all-reduced count."""
    from aerec import evaluation

    tgt = sp.csr_matrix(target_csr)
    mine = _shard_rows(ctx, tgt)
    total = count = 0.0
    if len(mine):
        k = int(key.split("@")[1])
        values = evaluation.evaluate_ranking(model, sp.csr_matrix(input_csr)[mine], tgt[mine], ks=(k,))[key]
        total, count = float(values.sum()), float(len(values))
    total, count = ctx.sum([total, count])
    return float(total / count) if count else 0.0
