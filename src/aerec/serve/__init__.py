"""Using a trained model: the shared core of ``aerec recommend``, ``aerec serve`` and ``aerec export``.

- ``resolve_model_dir``: a model directory, or a run directory (its ``full/model``, else
  ``fold-0/model``);
- ``engine.Engine``: requests by original ids -> queries -> batched scoring -> top-k;
- ``batching.MicroBatcher``: concurrent requests collected into one forward pass;
- ``app.create_app``: the FastAPI service (FastAPI is imported only there).
"""

from __future__ import annotations

from pathlib import Path

from aerec import ui
from aerec.errors import ModelFileError

MANIFEST = "manifest.json"  # the file that marks an aerec.io model directory


def resolve_model_dir(path, *, announce: bool = True) -> Path:
    """A model directory as is; for a run directory its ``full/model`` if present, else
    ``fold-0/model``. Says which on stderr (one status line) unless announce=False."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    for sub, why in (("full/model", "the full-data model"), ("fold-0/model", "fold 0's model (no full model; "
                                                                           "train with --protocol full for production)")):
        if (path / sub / MANIFEST).is_file():
            if announce:
                ui.info(f"using {why}: {path / sub}")
            return path / sub
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such directory")
    raise ModelFileError(f"{path}: neither a model directory (no {MANIFEST}) nor a run directory "
                         "(no full/model or fold-0/model)")


def load_model(path, *, announce: bool = True, device: str | None = None):
    """Resolve ``path`` (model or run directory) and load the model (never unpickles).

    device: where a model with a device setting scores (default auto: the GPU when there is
    one). Models without one score on the CPU; ``scoring_device`` names where a model scores."""
    from aerec import devices, io

    return io.load(resolve_model_dir(path, announce=announce), device=devices.choose(device))


def scoring_device(model) -> str:
    """'cpu', or the device and its GPU ('cuda (NVIDIA H200)'), for the commands' output."""
    from aerec import devices

    where = str(getattr(model.config, "device", "cpu"))
    gpu = devices.gpu_name(where)
    return where + (f" ({gpu})" if gpu else "")
