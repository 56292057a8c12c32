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
