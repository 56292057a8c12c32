"""The benchmark grid: every (model, data set, fold) cell, cached by a hash of its config.

A finished cell is written atomically to DIR/cells/, so an interrupted bench loses no finished
cell and a rerun skips them. Per-user metric arrays are kept for the paired significance tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aerec import __version__, fsutil, ui
from aerec.config import RANKING_KS

WEAK_KS = RANKING_KS


def file_tag(dataset: str) -> str:
    """A data set's name as one file-name component: a registry name stays as it is; a path
    (`--datasets my/ratings.csv`) gives its file name, never a path that escapes the output folder."""
    if "/" not in dataset and "\\" not in dataset:
        return dataset
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(dataset).name) or "data"


@dataclass
class Cell:
    model: str
    dataset: str
    protocol: str
    fold: int
    n_folds: int
    seed: int
    config: dict = field(default_factory=dict)
    protocol_options: dict = field(default_factory=dict)
    weight: float = 0.0  # expected seconds, for the progress ETA only; not part of the key
    ks: tuple | None = None  # metric cutoffs (--ks); None: RANKING_KS
    tuning_users: float | None = None  # share of users set aside for tuning: folds are of the rest
    # float32 matmul mode of the run (devices.PRECISIONS). The device needs no field of its own: a
    # model's device is in its config whenever it is not the default CPU (devices.model_settings)
    precision: str = "fp32"


    def key(self) -> str:
        fields = {"model": self.model, "dataset": self.dataset, "protocol": self.protocol,
                  "fold": self.fold, "n_folds": self.n_folds, "seed": self.seed,
                  "config": self.config, "version": __version__}
        if self.protocol_options:  # only when set, so existing cells keep their keys
            fields["protocol_options"] = self.protocol_options
        if self.ks:
            fields["ks"] = list(self.ks)
        if self.tuning_users is not None:
            fields["tuning_users"] = self.tuning_users
        fields.update(self.precision_key())
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def precision_key(self) -> dict:
        """The precision for keys and study names, only when not fp32 (so existing ones stay): a
        cell run in float32 never serves a tf32 / bf16 run, nor the reverse."""
        return {} if self.precision == "fp32" else {"precision": self.precision}

    def path(self, out: Path) -> Path:
        return out / "cells" / _folder_name(self.dataset) / self.model / f"fold-{self.fold}-{self.key()}"

    def label(self) -> str:
        return f"{self.model} {self.dataset} fold {self.fold + 1}/{self.n_folds}"


def _folder_name(dataset: str) -> str:
    """A data set as one folder name inside DIR/cells: a path (absolute ones too) never leaves DIR."""
    if "/" not in dataset and "\\" not in dataset and dataset not in (".", ".."):
        return dataset
    return f"{Path(dataset).name or 'data'}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}"


def load_cell(cell: Cell, out: Path) -> dict | None:
    base = cell.path(out)
    meta, arrays = base.with_suffix(".json"), base.with_suffix(".npz")
    if not (meta.exists() and arrays.exists()):
        return None
    try:
        result = json.loads(meta.read_text())
        with np.load(arrays, allow_pickle=False) as z:
            result["per_user"] = {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None  # a damaged cell is recomputed
    return result


def save_cell(cell: Cell, out: Path, result: dict) -> None:
    base = cell.path(out)
    with fsutil.atomic_path(base.with_suffix(".npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **result["per_user"])
    # The JSON is written last: a cell counts as finished only once both files exist.
    fsutil.write_json(base.with_suffix(".json"), {k: v for k, v in result.items() if k != "per_user"})


def run_cell(cell: Cell, fold, task: str, position: int | None = None) -> dict:
    """Fit one model on one fold and evaluate it on the fold's test part."""
    from aerec import models
    from aerec.models.neural import TorchRecommender

    model = models.create(cell.model, {**cell.config, "seed": cell.seed})
    options = {}
    bar = None
    if isinstance(model, TorchRecommender):
        bar = ui.progress(total=model.config.epochs, desc=cell.label(), leave=False, position=position)

        def on_epoch(record):
            bar.update(1)
            bar.set_postfix({k.replace("valid_", ""): f"{v:.4f}" for k, v in record.items() if k.startswith("valid_")})

        options = {"on_epoch_end": on_epoch, "progress": False, "label": cell.label()}
    t0, c0 = time.perf_counter(), time.process_time()  # CPU time: what the cell costs on a quiet machine
    if task == "rating":
        model.fit(fold.train, fold.valid, **options)
    else:
        model.fit(fold.train, (fold.valid_in, fold.valid_out), **options)
    train_seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    metrics, per_user, eval_seconds = evaluate_cell(cell, model, fold, task)
    history = getattr(model, "history", []) or []
    return {
        "model": cell.model, "dataset": cell.dataset, "protocol": cell.protocol,
        "protocol_options": cell.protocol_options, "fold": cell.fold,
        "seed": cell.seed, "config": model.config_dict(), "metrics": metrics,
        "epochs": int(getattr(model, "epochs_run", 0) or 0),
        "best_epoch": int(getattr(model, "best_epoch", 0) or 0),
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "cpu_seconds": time.process_time() - c0,
        "history": history, "per_user": per_user,
    }


def evaluate_cell(cell: Cell, model, fold, task: str):
    """(metrics, per-user arrays, seconds) of a fitted model on the fold's test part."""
    from aerec import evaluation

    t0 = time.perf_counter()
    if task == "rating":
        res = evaluation.evaluate_rating(model, fold.test)
        metrics = {"rmse": float(res["rmse"]), "mae": float(res["mae"])}
        per_user = {"squared_error": np.asarray(res["squared_error"], dtype=np.float64)}
    else:
        ks = tuple(cell.ks) if cell.ks else (WEAK_KS if cell.protocol == "weak" else RANKING_KS)
        raw = evaluation.evaluate_ranking(model, fold.test_in, fold.test_out, ks=ks,
                                          exclude=getattr(fold, "test_exclude", None))
        metrics = {k: float(v) for k, v in evaluation.summarize(raw).items()}
        per_user = {k: np.asarray(v) for k, v in raw.items()}
    return metrics, per_user, time.perf_counter() - t0


@contextlib.contextmanager
def cancel_on_failure(pool):
    """A cell that fails ends the run at once: the cells still queued are cancelled. (Leaving the
    pool's block with the error would first run every queued cell and throw their results away.)"""
    try:
        yield
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
