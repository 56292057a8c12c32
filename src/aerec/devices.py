"""Device names for the neural models: checked when a config is built, resolved when used.

Known names: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` and ``auto`` (CUDA when available, else CPU).
A config only checks the spelling (a model trained on a GPU must still load on a laptop);
``resolve_device`` checks that the hardware is there.
"""

from __future__ import annotations

import re

from aerec.errors import ConfigError

_NAME = re.compile(r"cpu|cuda(:\d+)?|mps|auto")


def check_device(name) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"'device' must be cpu, cuda, cuda:N, mps or auto, got {name!r}")


def resolve_device(name: str):
    """The torch.device for a device name, refusing hardware this machine does not have."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' was asked for but no GPU is available (use --device cpu or auto)")
        index = int(name.split(":")[1]) if ":" in name else None
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}': this machine has {torch.cuda.device_count()} GPU(s)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but Apple's MPS backend is not available here")
    return torch.device(name)


PRECISIONS = ("fp32", "tf32", "bf16")


def choose(name: str | None) -> str:
    """The concrete device a command runs on: ``auto`` (or None) becomes ``cuda`` when a GPU is
    there, else ``cpu``; other names are checked against the hardware and kept as given."""
    name = "auto" if name is None else name
    device = resolve_device(name)
    return device.type if name == "auto" else name


def gpu_name(name: str) -> str | None:
    """The GPU behind a device name (None for the CPU)."""
    import torch

    device = resolve_device(name)
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_name(device.index if device.index is not None else torch.cuda.current_device())


def check_precision(precision: str, device: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "fp32" and resolve_device(device).type != "cuda":
        raise ConfigError(f"--precision {precision} needs a CUDA device; this run is on {device}")


def apply_precision(precision: str) -> None:
    """Set this process's float32 matmul mode: TF32 tensor cores for ``tf32``, true float32
    otherwise (``bf16`` runs float32 outside its autocast regions)."""
    import torch

    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def record(device: str, precision: str = "fp32") -> dict:
    """What metrics.json and run.json say about where a run ran."""
    return {"device": device, "gpu": gpu_name(device), "precision": precision}


def describe(device: str, precision: str = "fp32") -> str:
    """One line for the console: the device chosen, its GPU and the precision."""
    gpu = gpu_name(device)
    return f"device {device}" + (f" ({gpu})" if gpu else "") + f", precision {precision}"


def model_settings(device: str | None, precision: str | None, classes) -> tuple[dict, dict]:
    """For commands that run many models (bench, tune): per model name the settings that put it
    on the chosen device and precision, and the record of where the run ran.

    A setting equal to the model's default is left out, so on a CPU machine nothing changes and
    cached cells and study names stay as they were. Sets this process's precision; ``tf32`` is
    also put in the environment for worker processes."""
    import dataclasses
    import os

    chosen = choose(device)
    precision = precision or "fp32"
    check_precision(precision, chosen)
    apply_precision(precision)
    if precision == "tf32":
        os.environ["TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"] = "1"
    out = {}
    for cls in classes:
        defaults = {f.name: f.default for f in dataclasses.fields(cls.Config)}
        o = {}
        if "device" in defaults and defaults["device"] != chosen:
            o["device"] = chosen
        if precision == "bf16" and "amp" in defaults:
            o["amp"] = True
        out[cls.name] = o
    return out, record(chosen, precision)
