"""The shared epoch loop for neural models: seeding, validation, early stopping, checkpoints.

Training state (optimizers, best weights, counters) lives here and in the model's hooks; a
checkpoint holds all of it, so ``resume=True`` continues a killed run to exactly the result an
uninterrupted run with the same seed would reach.

Checkpoint layout (in ``checkpoint_dir``): ``ckpt-<epoch>.safetensors`` with every tensor, then
``checkpoint.json`` naming it, written last and atomically, so a kill at any moment leaves the
previous complete checkpoint in force. No pickle anywhere.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from aerec import distributed, fsutil, ui
from aerec.errors import ModelFileError

CHECKPOINT_VERSION = 1


def monitor_for(model) -> tuple[str, bool]:
    """(metric name, higher is better) used for model selection."""
    return ("rmse", False) if model.task == "rating" else ("ndcg@100", True)


def validation_score(model, valid) -> float:
    from aerec import distributed, evaluation

    ctx = distributed.current()
    # the public score/predict refuse an unfitted model; mid-training scoring is deliberate here
    was_fitted, model.fitted = model.fitted, True
    try:
        if ctx is not None and model.task == "ranking":  # every rank scores its share; sums and counts reduce
            return distributed.mean_metric(ctx, model, valid[0], valid[1], "ndcg@100")
        if model.task == "rating":
            return float(evaluation.evaluate_rating(model, valid)["rmse"])
        per_user = evaluation.evaluate_ranking(model, valid[0], valid[1], ks=(100,))
    finally:
        model.fitted = was_fitted
    values = per_user["ndcg@100"]
    return float(values.mean()) if len(values) else 0.0


class Trainer:
    def __init__(
        self,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        on_epoch_end: Callable[[dict], None] | None = None,
        label: str = "",
    ):
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.resume = resume
        self.progress = progress
        self.on_epoch_end = on_epoch_end
        self.label = label

    def run(self, model, train, valid) -> list[dict]:
        cfg = model.config
        metric, higher = monitor_for(model)
        model.check_memory()  # a network too large for the device fails here, not half-way in
        model.init_network()
        rng = np.random.default_rng(cfg.seed)
        state = {"epoch": 0, "best_value": None, "best_epoch": -1, "bad_epochs": 0, "history": []}
        best = None
        ctx = distributed.current()
        writer = ctx is None or ctx.is_writer  # only rank 0 writes checkpoints
        model.train_autocast()  # a wrong --amp fails before any work
        found = bool(self.resume and self.checkpoint_dir and (self.checkpoint_dir / "checkpoint.json").exists())
        if ctx is not None and ctx.sum([float(found), 1.0])[0] not in (0.0, ctx.world):
            raise ModelFileError(f"{self.checkpoint_dir}: only some ranks see the checkpoint; resuming a "
                                 "multi-node run needs the run directory on a shared file system")
        if found:
            state, best = self._load(model, rng)
            ui.info(f"resuming {self.label or model.name} after epoch {state['epoch']}")
        # Seed torch again after building so a resumed run and a fresh one draw from the same place.
        if state["epoch"] == 0:
            torch.manual_seed(cfg.seed + 1)

        # a ceiling above `epochs` needs validation to stop early; without it, the planned epochs
        ceiling = model.epoch_ceiling() if valid is not None else model.planned_epochs()
        patience = model.stop_patience() if valid is not None else 0
        floor = min(model.no_stop_before(), ceiling) if patience else 0  # schedule still running: no stop
        note = model.schedule_note(ceiling, floor) if valid is not None else None
        if note and self.progress and state["epoch"] == 0:
            ui.info(note)
        bar = ui.progress(total=ceiling, initial=state["epoch"], desc=self.label or model.name,
                          disable=ui.quiet() or not self.progress)
        # multi-process: sliced batches from a memory-mapped matrix, gradients all-reduced per step
        session = distributed.TrainSession(ctx, model, train, rng) if ctx is not None else None
        inner = ui.batch_bars(self.progress and (ctx is None or ctx.is_writer))
        inner.__enter__()
        try:
            for epoch in range(state["epoch"], ceiling):
                if state["bad_epochs"] and patience and state["bad_epochs"] >= patience:
                    break
                t0 = time.perf_counter()
                model.net.train()
                with model.train_autocast():
                    if session is None:
                        loss = float(model._train_epoch(train, epoch, rng))
                    else:  # batch order from the shared rng; the model's own draws from a per-rank one
                        loss = session.reduce_loss(float(model._train_epoch(session.train, epoch, session.epoch_rng(epoch))))
                train_s = time.perf_counter() - t0
                record = {"epoch": epoch + 1, "loss": loss, "train_seconds": train_s}
                if valid is not None:
                    model.net.eval()
                    value = validation_score(model, valid)
                    record[f"valid_{metric}"] = value
                    improved = state["best_value"] is None or (value > state["best_value"] if higher else value < state["best_value"])
                    if improved:
                        state.update(best_value=value, best_epoch=epoch + 1, bad_epochs=0)
                        best = {k: v.detach().clone() for k, v in model.state_tensors().items()}
                    elif epoch + 1 > floor:  # patience counts once the schedule has ended
                        state["bad_epochs"] += 1
                record["seconds"] = time.perf_counter() - t0
                state["history"].append(record)
                state["epoch"] = epoch + 1
                if self.checkpoint_dir and writer:
                    self._save(model, rng, state, best)
                postfix = {"loss": f"{loss:.4g}"}
                if valid is not None:
                    postfix[metric] = f"{record[f'valid_{metric}']:.4f}"
                bar.set_postfix(postfix)
                bar.update(1)
                if self.on_epoch_end and self.on_epoch_end(record) == "stop":
                    break  # the caller's budget ran out (aerec tune); the best epoch's weights are kept
                if not math.isfinite(loss):
                    ui.info(f"{model.name}: loss became {loss} at epoch {epoch + 1}; stopping")
                    break
                if patience and state["bad_epochs"] >= patience:
                    break
        finally:
            inner.__exit__(None, None, None)
            bar.close()
            release = getattr(model, "release_rows", None)
            if release is not None:  # the device copy of the training matrix lives for one fit
                release()
            if session is not None:
                session.close()
        if best is not None:
            model.load_state_tensors(best)
        model.history = state["history"]
        model.best_epoch = state["best_epoch"] if state["best_epoch"] > 0 else state["epoch"]
        model.epochs_run = state["epoch"]
        model.epoch_limit = ceiling
        model.stop_floor = floor
        return state["history"]

    # checkpoints -----------------------------------------------------------------------------
    def _save(self, model, rng, state, best) -> None:
        d = self.checkpoint_dir
        d.mkdir(parents=True, exist_ok=True)
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in model.state_tensors().items()}
        if best is not None:
            tensors.update({f"best.{k}": v.cpu().contiguous() for k, v in best.items()})
        opt_meta = {}
        for name, opt in model.optimizers.items():
            sd = opt.state_dict()
            scalars = {}
            for pid, pstate in sd["state"].items():
                for key, val in pstate.items():
                    if torch.is_tensor(val):
                        tensors[f"opt.{name}.{pid}.{key}"] = val.detach().cpu().contiguous()
                    else:
                        scalars[f"{pid}.{key}"] = val
            opt_meta[name] = {"param_groups": sd["param_groups"], "scalars": scalars,
                              "ids": sorted(sd["state"].keys())}
        tensors["rng.torch"] = torch.get_rng_state()
        fname = f"ckpt-{state['epoch']}.safetensors"
        with fsutil.atomic_path(d / fname) as tmp:
            save_file(tensors, str(tmp))
        meta = {"version": CHECKPOINT_VERSION, "model": model.name, "config": model.config_dict(),
                "file": fname, "state": state, "numpy_rng": rng.bit_generator.state,
                "optimizers": opt_meta, "extra": model.extra_state(), "has_best": best is not None}
        fsutil.write_json(d / "checkpoint.json", meta)
        for old in d.glob("ckpt-*.safetensors"):
            if old.name != fname:
                old.unlink(missing_ok=True)

    def _load(self, model, rng):
        d = self.checkpoint_dir
        try:
            meta = json.loads((d / "checkpoint.json").read_text())
            tensors = load_file(str(d / meta["file"]))
        except (OSError, ValueError, KeyError) as e:
            raise ModelFileError(f"{d}: checkpoint cannot be read ({e}); delete it to start afresh") from None
        if meta.get("version") != CHECKPOINT_VERSION:
            raise ModelFileError(f"{d / 'checkpoint.json'}: checkpoint format {meta.get('version')} is not supported")
        if meta.get("config") != model.config_dict():
            raise ModelFileError(f"{d / 'checkpoint.json'}: checkpoint was made with another config; delete it or drop --resume")
        model.load_state_tensors({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} if meta["has_best"] else None
        for name, opt in model.optimizers.items():
            om = meta["optimizers"][name]
            st = {}
            for pid in om["ids"]:
                entry = {}
                prefix = f"opt.{name}.{pid}."
                for k, v in tensors.items():
                    if k.startswith(prefix):
                        entry[k[len(prefix):]] = v
                for k, v in om["scalars"].items():
                    p, key = k.split(".", 1)
                    if int(p) == pid:
                        entry[key] = v
                st[pid] = entry
            opt.load_state_dict({"state": st, "param_groups": om["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        rng.bit_generator.state = meta["numpy_rng"]
        model.load_extra_state(meta["extra"])
        return meta["state"], best
