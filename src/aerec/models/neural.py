"""Base class for the PyTorch models: the hooks a model file fills in.

A neural model implements:
- ``_build() -> nn.Module``: the network, for ``self.n_users`` x ``self.n_items``;
- ``_train_epoch(train_csr, epoch, rng) -> float``: one pass over the training rows (its own
  batching and schedule, e.g. RecVAE's alternating phases), returning the mean loss;
- ``_forward(batch: SparseBatch) -> Tensor``: scores for a batch of history rows, eval mode;
- optionally ``_optimizers()`` (default: one Adam over all parameters), and
  ``extra_state()`` / ``load_extra_state()`` for counters that must survive a resume.

The epoch loop itself (seeding, validation, early stopping, checkpoints) is in training.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from aerec import config as cfgmod
from aerec.devices import check_device, resolve_device  # noqa: F401  (resolve_device: older imports)
from aerec.errors import ResourceError
from aerec.models.base import BaseConfig, Recommender
from aerec.models.layers import SparseBatch


@dataclasses.dataclass
class NeuralConfig(BaseConfig):
    epochs: int = 200
    batch_size: int = 500
    lr: float = cfgmod.lr_field(1e-3)
    # Stop after this many epochs without a better validation score; 0 never stops early.
    # Either way the best epoch's weights are restored at the end.
    patience: int = 0
    device: str = "cpu"
    eval_block: int = 2048
    amp: bool = False  # bf16 autocast in training; CUDA only
    # torch.compile the network (opt-in): a compiler that fails falls back to eager with one line.
    # "reduce-overhead" also captures CUDA graphs on a GPU.
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"

    def validate(self):
        from aerec.errors import ConfigError

        if self.epochs is not None and self.epochs < 1:  # None: the schedule decides (RecVAE)
            raise ConfigError("'epochs' must be at least 1")
        if self.batch_size < 1:
            raise ConfigError("'batch_size' must be at least 1")
        if self.lr <= 0:
            raise ConfigError("'lr' must be positive")
        if self.patience < 0:
            raise ConfigError("'patience' must be 0 (off) or positive")
        if self.eval_block < 1:
            raise ConfigError("'eval_block' must be at least 1 (users scored per block)")
        check_device(self.device)
        if self.compile_mode not in ("default", "reduce-overhead", "max-autotune"):
            raise ConfigError("'compile_mode' must be 'default', 'reduce-overhead' or 'max-autotune'")


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel: one pass over each parameter per step instead of about ten
    elementwise ops (the same update; 2-3x faster on the items x hidden output layer on CPU)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def add_loss(total: torch.Tensor | None, loss: torch.Tensor, weight: int = 1) -> torch.Tensor:
    """``total + loss x weight``, kept on the loss's device in float64: the same additions, in the
    same order, as summing Python floats, without a device read per step. Read it once per epoch."""
    term = loss.detach().double()
    if weight != 1:
        term = term * weight
    return term if total is None else total + term


def available_memory(device: torch.device) -> int | None:
    """Free bytes on the device: CUDA's free memory, else the host's MemAvailable (None: unknown)."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError, RuntimeError):
        pass
    return None


class TorchRecommender(Recommender):
    Config = NeuralConfig
    multi_process = True  # the trainer's epoch loop runs under torchrun (aerec.distributed)
    # Early-stopping patience of a tuning trial (the tuned suite's base setting; None: the model's
    # own rule). Slow-rising validation curves need more than the default 10 epochs.
    tune_patience: int | None = 10
    net: torch.nn.Module
    _shard = None  # set by aerec.distributed while a multi-process fit runs
    _device_rows = None  # the training matrix on the device (rows_on_device)
    _gather_rows: bool | None = None  # DeviceRows' gather (None: on every device but the CPU; tests force it)
    _rows_on_host = False  # batches stay on the host: a model that builds its inputs there (SVAE's sequences)

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    # hooks -----------------------------------------------------------------------------------
    def _build(self) -> torch.nn.Module:
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": adam(self.net.parameters(), lr=self.config.lr)}

    def _train_epoch(self, train: sp.csr_matrix, epoch: int, rng: np.random.Generator) -> float:
        raise NotImplementedError

    def _forward(self, batch: SparseBatch) -> torch.Tensor:
        raise NotImplementedError

    def epoch_ceiling(self) -> int:
        """Most epochs the Trainer runs (a schedule may raise it above ``epochs``; issue 13)."""
        return self.config.epochs

    def planned_epochs(self) -> int:
        """Epochs the Trainer runs without validation data (no early stopping possible)."""
        return self.config.epochs

    def stop_patience(self) -> int:
        """Early-stopping patience the Trainer uses (0: never stops early)."""
        return self.config.patience

    def no_stop_before(self) -> int:
        """Epochs during which early stopping is off because the model's schedule (KL annealing,
        a warm-up, lr milestones) has not reached its end; patience counts only after them. The
        best epoch is still tracked (and restored) over every epoch. 0: no such schedule."""
        return 0

    def schedule_note(self, ceiling: int, floor: int) -> str | None:
        """One line for the user when a schedule changes the epoch count or holds early stopping
        off (printed by the Trainer); None when there is nothing to say."""
        if floor and self.stop_patience() and floor < ceiling:
            return (f"{self.name}: early stopping waits until epoch {floor} of {ceiling}, when its "
                    "schedule ends; patience counts after that")
        return None

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to score: the network's parameters and buffers."""
        return {k: v for k, v in self.net.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(tensors)

    # contract --------------------------------------------------------------------------------
    def init_network(self) -> None:
        """Seed, then build the network and its optimizers (fresh, untrained)."""
        torch.manual_seed(self.config.seed)
        self.net = self._build().to(self.device)
        self.optimizers = self._optimizers()
        self._compile_state = None
        if getattr(self.config, "compile", False):
            self.compile_network()

    # torch.compile (opt-in) ----------------------------------------------------------------------
    _compile_state: str | None = None  # None: eager; "trying": compiled, no step done yet; "on"

    @property
    def compiled(self) -> bool:
        return self._compile_state is not None

    def compile_modules(self) -> list[torch.nn.Module]:
        """The modules ``compile=True`` compiles: the network, which most models call whole (a
        model that calls its parts, as RecVAE does, names them)."""
        return [self.net]

    def compile_network(self) -> None:
        """Compile the modules' calls in place (``nn.Module.compile``: parameter names and saved
        files stay as they are). Compilation is lazy, so a failure shows at the first call: that
        call, and the first training step's backward (``run_steps``), fall back to eager."""
        self._compile_state = "trying"
        for module in self.compile_modules():
            try:
                # dynamic: a sparse batch's entry count changes with every batch (no recompile each time)
                module.compile(mode=self.config.compile_mode, dynamic=True)
            except Exception as e:  # noqa: BLE001  (any compiler failure: eager is always correct)
                self.compile_failed(e)
                return
            module._compiled_call_impl = self._guarded(module, module._compiled_call_impl)

    def _guarded(self, module: torch.nn.Module, compiled):
        # CUDA graphs write each call's outputs into the same memory: a caller that keeps them
        # (scoring's blocks) would read the next call's numbers. A copy costs one pass over them.
        own = self.config.compile_mode == "reduce-overhead" and self.device.type == "cuda"

        def call(*args, **kwargs):
            if self._compile_state is not None:
                try:
                    out = compiled(*args, **kwargs)
                except Exception as e:  # noqa: BLE001
                    self.compile_failed(e)
                else:
                    if not own:
                        return out
                    copy = lambda t: t.clone() if isinstance(t, torch.Tensor) else t  # noqa: E731
                    return tuple(map(copy, out)) if isinstance(out, tuple) else copy(out)
            return module._call_impl(*args, **kwargs)

        return call  # nn.Module.__call__ routes here while it is set

    def compile_failed(self, error: Exception) -> None:
        from aerec import ui

        self._compile_state = None
        for module in self.compile_modules():
            module._compiled_call_impl = None
        first = (str(error).strip().splitlines() or [""])[0][:160]
        ui.info(f"{self.name}: torch.compile failed ({type(error).__name__}: {first}); continuing uncompiled")

    def check_memory(self) -> None:
        """Refuse a network that cannot be trained in this device's memory, before allocating it
        (the trainer calls it; loading a model for inference does not).

        The network is built on the meta device (shapes only), so its parameter count is exact;
        training holds each float32 parameter four times (weights, gradients, two Adam moments).
        """
        try:
            with torch.device("meta"):
                net = self._build()
        except Exception:  # a model whose build needs real tensors: no estimate, as before
            return
        n = sum(t.numel() for t in (*net.parameters(), *net.buffers()))
        need = n * 4 * 4 + self.activation_bytes()
        free = available_memory(self.device)
        if free is not None and need > free:
            raise ResourceError(f"{self.name}: a network of {n:,} parameters needs about {need / 2**30:,.1f} GiB to "
                                f"train (weights, optimizer state and one batch's activations), more than the "
                                f"{free / 2**30:,.1f} GiB available on {self.device}; choose smaller layers or batches")

    def activation_bytes(self) -> int:
        """Bytes one training step holds beyond the parameters: by default the batch's output
        scores over every item, their softmax and gradients (a model with more overrides it)."""
        return 4 * 4 * min(self.config.batch_size, max(self.n_users, 1)) * self.n_items

    def _fit(self, train: sp.csr_matrix, valid, **trainer_options) -> None:
        from aerec.models.training import Trainer

        Trainer(**trainer_options).run(self, train, valid)

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        self.net.eval()
        step = self.config.eval_block
        if history.shape[0] <= step:  # one block (the evaluator's usual call): no copy into `out`
            with torch.no_grad():
                batch = SparseBatch.from_csr(history, self.device)
                return np.ascontiguousarray(self._forward(batch).float().cpu().numpy())
        out = np.empty(history.shape, dtype=np.float32)
        with torch.no_grad():
            for start in range(0, history.shape[0], step):
                batch = SparseBatch.from_csr(history[start : start + step], self.device)
                out[start : start + step] = self._forward(batch).float().cpu().numpy()
        return out

    def _score_tensor(self, history: sp.csr_matrix) -> torch.Tensor:
        """The network's scores, left on the model's device, in blocks of ``eval_block`` rows."""
        if type(self)._score is not TorchRecommender._score:  # a model with its own scoring
            return super()._score_tensor(history)
        self.net.eval()
        step = self.config.eval_block
        with torch.no_grad():
            if history.shape[0] == 0:
                return torch.zeros(history.shape, device=self.device)
            # contiguous rows, as the host path's numpy copy: top-k orders ties by memory layout
            parts = [self._forward(SparseBatch.from_csr(history[s : s + step], self.device)).float().contiguous()
                     for s in range(0, history.shape[0], step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def train_autocast(self):
        """The autocast context for training steps: bf16 on CUDA when ``amp`` is set (bf16 keeps
        float32's exponent range, so no loss scaling, which would reach into every model's step)."""
        if not getattr(self.config, "amp", False):
            return contextlib.nullcontext()
        if self.device.type != "cuda":
            from aerec.errors import ConfigError

            raise ConfigError(f"--amp (mixed precision) needs a CUDA device; this run trains on {self.device.type}")
        return torch.autocast("cuda", dtype=torch.bfloat16)

    def rows_on_device(self, train: sp.csr_matrix):
        """``train`` held on the model's device (``layers.DeviceRows``), moved once: the Trainer
        keeps it for the whole fit, and it is reused while the same matrix comes back."""
        from aerec.models.layers import DeviceRows

        device = torch.device("cpu") if self._rows_on_host else self.device
        cached = self._device_rows
        if cached is None or cached.source is not train or cached.device != device:
            cached = self._device_rows = DeviceRows(train, device, gather=self._gather_rows)
        return cached

    def release_rows(self) -> None:
        self._device_rows = None

    def batches(self, train: sp.csr_matrix, rng: np.random.Generator | None, batch_size: int | None = None):
        """Yield (row indices, SparseBatch) over shuffled training rows; batches are gathered on
        the model's device from the matrix moved there once (no host copy per step)."""
        from aerec.models.layers import batch_order, pad_entries

        if self._shard is not None:  # multi-process: this rank's slice of each global batch
            yield from self._shard.batches(train.shape[0], batch_size or self.config.batch_size, rng is not None,
                                           self.device)
            return
        size = batch_size or self.config.batch_size
        order = batch_order(train.shape[0], size, rng)
        held = self.rows_on_device(train)
        order_dev = held.order(np.concatenate(order)) if order else None  # one copy per pass
        chunks = zip(order, range(0, train.shape[0], size))
        if rng is not None:  # training: a bar of the batches when an epoch is long
            from aerec import ui

            chunks = ui.batches(chunks, total=len(order))
        pad = rng is not None and self.pads_batches()
        for rows, start in chunks:
            batch = held.batch(rows, None if order_dev is None else order_dev[start : start + len(rows)])
            yield rows, pad_entries(batch) if pad else batch

    def pads_batches(self) -> bool:
        """Training batches padded to a few entry counts (``layers.pad_entries``): only when CUDA
        graphs are captured (compiled, ``reduce-overhead``, on a GPU) and the model's loss reads
        every entry through its value (``entries_may_pad``)."""
        return (self._compile_state is not None and self.config.compile_mode == "reduce-overhead"
                and self.device.type == "cuda" and self.entries_may_pad())

    def entries_may_pad(self) -> bool:
        """True when zero-valued entries appended to a batch change no number of the model's step
        (see ``layers.pad_entries``). Off unless a model says so."""
        return False

    def run_steps(self, train: sp.csr_matrix, rng: np.random.Generator, loss_of, optimizer: str = "main",
                  total: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """Optimizer steps over shuffled batches, ``loss_of(batch)`` giving each batch's mean loss.

        Returns (sum over batches of loss x rows, rows): the sum stays on the device in float64
        (the same additions, in the same order, as summing Python floats), so no step waits for
        the device; ``total`` continues an earlier sum."""
        opt = self.optimizers[optimizer]
        n = 0
        for rows, batch in self.batches(train, rng):
            if self._compile_state is not None:
                loss = self._compiled_step(batch, loss_of, opt)
            else:
                loss = loss_of(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            self.after_step()
            total = add_loss(total, loss, len(rows))
            n += len(rows)
        return (torch.zeros((), dtype=torch.float64) if total is None else total), n

    def _compiled_step(self, batch, loss_of, opt) -> torch.Tensor:
        """Forward and backward of a step with a compiled network. A backward graph is compiled
        at its first use (a new phase can bring a new one), so it can fail here: then the step
        is done again eagerly; on the fit's first step from the same random state, so that such
        a fit equals the eager one."""
        cuda = self.device.type == "cuda"
        first = self._compile_state == "trying"  # reading the RNG state syncs a GPU: only once
        saved = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None) if first else None
        try:
            loss = loss_of(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        except Exception as e:  # noqa: BLE001
            if self._compile_state is None:  # already eager: a real error, not the compiler's
                raise
            self.compile_failed(e)
            if saved is not None:
                torch.set_rng_state(saved[0])
                if cuda:
                    torch.cuda.set_rng_state(saved[1], self.device)
            loss = loss_of(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        if self._compile_state == "trying":
            self._compile_state = "on"
        return loss

    def step_epoch(self, train: sp.csr_matrix, rng: np.random.Generator, loss_of) -> float:
        """One epoch of optimizer steps over shuffled batches, ``loss_of(batch)`` giving each batch's
        loss; returns the mean loss per row (read from the device once, here)."""
        total, n = self.run_steps(train, rng, loss_of)
        return float(total) / max(n, 1)

    def after_step(self) -> None:
        pass


class StepCounted:
    """Mixin for models whose schedule counts gradient steps: the counter survives a resume."""

    update_count: int = 0

    def after_step(self) -> None:
        self.update_count += 1

    def extra_state(self) -> dict:
        return {"update_count": self.update_count}

    def load_extra_state(self, state: dict) -> None:
        self.update_count = int(state.get("update_count", 0))
