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


def load_model(path, *, announce: bool = True):
    """Resolve ``path`` (model or run directory) and load the model (never unpickles)."""
    from aerec import io

    return io.load(resolve_model_dir(path, announce=announce))
