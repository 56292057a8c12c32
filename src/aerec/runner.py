"""The library side of ``aerec train`` and ``aerec evaluate``: cross-validated runs on disk.

A run directory holds:
- ``config.json``: model, data set (with a fingerprint), protocol + resolved options, seed and
  the full model config; ``config.toml``: the same as ``[run]``, ``[model]`` and ``[protocol]``
  sections, so ``aerec train --config RUN_DIR/config.toml`` repeats the run;
- ``fold-<f>/model/`` (an ``aerec.io`` model directory) and ``fold-<f>/metrics.json`` per fold,
  in the protocol's split order (the order ``aerec split`` exports);
- ``history.csv``: fold, epoch, loss, validation metric, seconds;
- ``metrics.json``: per metric the mean, the **sample** standard deviation over folds
  (ddof=1; null for a single fold) and the per-fold values, plus epochs, train seconds and
  library versions.

Model selection (early stopping) sees only the validation data: ``valid_in``/``valid_out`` of a
ranking fold, the ``valid`` ratings of a rating fold. The test part is used once, after fitting.
``protocol="full"`` fits one model on all the data (binarized for ranking models) and saves it
to ``RUN_DIR/full/model`` for production use, with no test metrics.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io as _io
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from aerec import config as cfgmod
from aerec import distributed, fsutil, ui
from aerec.errors import DataError
from aerec.run_spec import RunSection, RunSpec, _check_task, _protocol, default_out, resolve  # noqa: F401 (re-exported)
from aerec.runs import check_run, run_folder

RANKING_KS = cfgmod.RANKING_KS  # the default cutoffs (--ks overrides)
WEAK_KS = cfgmod.RANKING_KS


def versions() -> dict:
    import scipy
    import torch

    from aerec import __version__

    return {"aerec": __version__, "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def _fingerprint(data) -> dict:
    return {"name": data.name, "users": int(data.n_users), "items": int(data.n_items), "interactions": int(len(data))}


def _load_data(dataset: str, options: dict | None = None):
    from aerec import data as datamod
    from aerec.data import options as dataopts

    return datamod.load(dataset, **dataopts.columns_only(options or {}))


def _apply_feedback(spec: RunSpec, data) -> None:
    """Fold the data's feedback semantics into the protocol options, say what is kept."""
    from aerec.data import feedback

    opts, line = feedback.protocol_options(data, feedback.of(data, spec.data_options), spec.protocol, spec.protocol_options,
                                           set(spec.given_protocol))
    spec.protocol_options = opts
    ui.info(line)


def _titles_for(data, item_ids):
    if data.item_titles is None:
        return None
    lookup = dict(zip(data.item_ids.tolist(), data.item_titles.tolist()))
    return [lookup.get(i) for i in np.asarray(item_ids).tolist()]


# one fold ------------------------------------------------------------------------------------


def _valid_of(fold):
    if fold.kind == "rating":
        return fold.valid if fold.valid.nnz else None
    return fold.valid() if fold.valid_out.nnz else None


def evaluate_fold(model, fold, ks) -> dict:
    """Summary metrics of a fitted model on the fold's test part."""
    from aerec import evaluation

    if fold.kind == "rating":
        return evaluation.summarize(evaluation.evaluate_rating(model, fold.test))
    ctx = distributed.current()
    if ctx is not None:  # each rank scores its share; the per-user arrays are gathered in row order
        return evaluation.summarize(distributed.evaluate_ranking(ctx, model, fold.test_in, fold.test_out, ks=ks,
                                                                 exclude=getattr(fold, "test_exclude", None)))
    per_user = evaluation.evaluate_ranking(model, fold.test_in, fold.test_out, ks=ks,
                                           exclude=getattr(fold, "test_exclude", None))
    return evaluation.summarize(per_user)


def _fit(spec: RunSpec, train, valid, workdir: Path, resume: bool, label: str, progress: bool):
    from aerec import models
    from aerec.models.neural import TorchRecommender

    model = models.create(spec.model, spec.model_config)
    options = {}
    if isinstance(model, TorchRecommender):
        options = {"checkpoint_dir": workdir / "checkpoint", "resume": resume, "label": label, "progress": progress}
    t0 = time.perf_counter()
    model.fit(train, valid, **options)
    return model, time.perf_counter() - t0


def _epochs(model) -> dict:
    run = int(getattr(model, "epochs_run", 0) or 0)
    out = {"run": run, "best": int(getattr(model, "best_epoch", run) or run)}
    if getattr(model, "epoch_limit", None) is not None:  # the ceiling the run could have reached
        out["ceiling"] = int(model.epoch_limit)
        # what `epochs` said (null: unset, the schedule chose the ceiling), and the epochs before
        # which a running schedule held early stopping off
        out["requested"] = getattr(model.config, "epochs", None)
        out["no_stop_before"] = int(getattr(model, "stop_floor", 0) or 0)
    return out


def _weigh(spec: RunSpec, data, fold):
    """Implicit values (counts) as the fold's matrix values for weighted models (WMF's confidence)."""
    from aerec import models
    from aerec.data import feedback

    if fold.kind != "ranking" or not getattr(models.get(spec.model), "weighted", False) or data.rating is None:
        return fold
    if feedback.of(data, spec.data_options).kind != "implicit":
        return fold
    w = lambda m, users: feedback.with_values(data, m, users, fold.item_ids)  # noqa: E731
    return dataclasses.replace(fold, train=w(fold.train, fold.train_user_ids),
                               valid_in=w(fold.valid_in, fold.valid_user_ids),
                               test_in=w(fold.test_in, fold.test_user_ids))


def _train_fold(spec, data, fold, fdir: Path, ks, resume: bool, progress: bool, n_folds: int) -> dict:
    from aerec import io, models

    fold = _weigh(spec, data, models.get(spec.model).prepare_fold(fold, data))
    label = f"{spec.model} fold {fold.index + 1}/{n_folds}"
    model, seconds = _fit(spec, fold.train, _valid_of(fold), fdir, resume, label, progress)
    metrics = evaluate_fold(model, fold, ks)
    record = {"fold": fold.index, "metrics": metrics, "epochs": _epochs(model), "train_seconds": seconds,
              "history": list(getattr(model, "history", []) or [])}
    if not distributed.is_writer():
        return record
    users = fold.user_ids if fold.kind == "rating" else fold.train_user_ids
    from aerec.data import feedback

    for stale in [*fdir.glob(".model.*.tmp"), *fdir.glob(".model.*.old")]:  # a save that a kill interrupted
        shutil.rmtree(stale, ignore_errors=True)
    io.save(model, fdir / "model", item_ids=fold.item_ids, user_ids=users, history=fold.train,
            item_titles=_titles_for(data, fold.item_ids), seen=feedback.seen_matrix(data, users, fold.item_ids),
            extra_meta={"dataset": spec.dataset, "protocol": spec.protocol, "fold": fold.index, "seed": spec.seed})
    fsutil.write_json(fdir / "metrics.json", record)  # written last: its presence marks the fold done
    shutil.rmtree(fdir / "checkpoint", ignore_errors=True)
    return record


# aggregation ---------------------------------------------------------------------------------


def aggregate(per_fold: list[dict]) -> dict:
    """{name: {"mean", "std", "per_fold"}}; std is the sample std over folds (ddof=1), or None
    with a single fold."""
    names = [k for k in per_fold[0] if all(k in m for m in per_fold)]
    out = {}
    for name in names:
        vals = [m[name] for m in per_fold]
        arr = np.asarray(vals, dtype=np.float64)
        out[name] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else None,
                     "per_fold": vals}
    return out


def _history_csv(records: list[dict]) -> str:
    keys = []
    for r in records:
        for h in r["history"]:
            keys += [k for k in h if k.startswith("valid_") and k not in keys]
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["fold", "epoch", "loss", *keys, "seconds"])
    for r in records:
        for h in r["history"]:
            w.writerow([r["fold"], h.get("epoch"), h.get("loss"), *(h.get(k, "") for k in keys), h.get("seconds")])
    return buf.getvalue()


def _ks(spec: RunSpec) -> tuple:
    if spec.ks:
        return tuple(spec.ks)
    return WEAK_KS if spec.protocol == "weak" else RANKING_KS


def _run_json(spec: RunSpec, data, n_folds: int) -> dict:
    out = {"model": spec.model, "dataset": spec.dataset, "data": _fingerprint(data), "protocol": spec.protocol,
           "protocol_options": spec.protocol_options, "folds": n_folds, "seed": spec.seed,
           "config": spec.model_config}
    if spec.data_options:  # only when set, so older run folders keep resuming
        out["data_options"] = spec.data_options
    if spec.ks:
        out["ks"] = list(spec.ks)
    if spec.precision == "tf32":  # only when set, so older run folders keep resuming (bf16 is the config's amp)
        out["precision"] = spec.precision
    return out




def _write_config(work: Path, spec: RunSpec, ident: dict) -> None:
    fsutil.write_json(work / "config.json", {**ident, "aerec_version": versions()["aerec"],
                                             "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")})
    fsutil.write_text(work / "config.toml", spec.toml())


def _full_identity(spec: RunSpec, data) -> dict:
    ident = {"model": spec.model, "dataset": spec.dataset, "data": _fingerprint(data), "protocol": "full",
             "seed": spec.seed, "config": spec.model_config}
    if spec.data_options:  # only when set, so older run folders keep resuming
        ident["data_options"] = spec.data_options
    return ident


def preflight(spec: RunSpec, out: str | Path | None = None, *, resume: bool = False, overwrite: bool = False) -> None:
    """Every check ``train`` makes before training, with no side effect: the data set loads, the
    protocol accepts it, the run folder may be used. ``--nproc`` runs it once in the parent."""
    from aerec import models

    out = Path(out) if out else default_out(spec)
    data = _load_data(spec.dataset, spec.data_options)
    if spec.protocol == "full":
        cls = models.get(spec.model)
        data = _prepare_full(data, cls.task, weighted=getattr(cls, "weighted", False), options=spec.data_options).data
        check_run(out / "full", _full_identity(spec, data), "info.json", resume=resume, overwrite=overwrite)
        return
    _apply_feedback(spec, data)
    protocol = _protocol(spec.protocol, spec.folds, spec.seed, spec.protocol_options)
    next(iter(protocol.split(data)))  # the first fold: a data set the protocol cannot split fails here
    check_run(out, _run_json(spec, data, int(protocol.n_folds)), "metrics.json", resume=resume, overwrite=overwrite)


# train / evaluate ----------------------------------------------------------------------------


def train(spec: RunSpec, out: str | Path | None = None, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> dict:
    """Train on every fold (or on all data for protocol 'full'); return the metrics.json dict.

    The run is built in ``.OUT.partial`` beside ``out`` and moved to ``out`` when every fold is
    done. ``resume`` continues an unfinished run (or reuses a finished one) with the same
    settings; ``overwrite`` replaces whatever run ``out`` holds, once the new one is complete.
    """
    out = Path(out) if out else default_out(spec)
    ctx = distributed.current()
    if ctx is not None:
        from aerec import models

        distributed.check_model(models.get(spec.model))
    writer = distributed.is_writer()  # under torchrun only rank 0 writes; every rank trains
    _announce(spec)
    data = _load_data(spec.dataset, spec.data_options)
    if spec.protocol == "full":
        return train_full(spec, data, out, resume=resume, overwrite=overwrite, progress=progress)
    _apply_feedback(spec, data)
    protocol = _protocol(spec.protocol, spec.folds, spec.seed, spec.protocol_options)
    n_folds = int(protocol.n_folds)
    ident = _run_json(spec, data, n_folds)
    with run_folder(out, ident, "metrics.json", resume=resume, overwrite=overwrite) as (work, reuse):
        if writer and not reuse:
            _write_config(work, spec, ident)
        ks, records = _ks(spec), []
        for fold in protocol.split(data):
            fdir = work / f"fold-{fold.index}"
            done = (fdir / "metrics.json").exists() and (fdir / "model" / "manifest.json").exists()
            if ctx is not None:
                done = ctx.agree(done)  # rank 0's run directory decides
            if done:
                record = json.loads((fdir / "metrics.json").read_text())
                how = "done earlier"
            else:
                record = _train_fold(spec, data, fold, fdir, ks, resume, progress, n_folds)
                how = f"{record['train_seconds']:.1f}s"
            records.append(record)
            if writer:
                fsutil.write_text(work / "history.csv", _history_csv(records))
            ui.info(_status(spec, fold.index, n_folds, record["metrics"], how))
        result = _metrics_json(spec, n_folds, records)
        if writer:
            fsutil.write_json(work / "metrics.json", result)
    return result


def _status(spec, f, n_folds, m, how) -> str:
    keys = ("rmse", "mae") if "rmse" in m else ("recall@20", "recall@50", "ndcg@100")
    shown = "  ".join(f"{k} {m[k]:.4f}" for k in keys if k in m)
    return f"{spec.model} fold {f + 1}/{n_folds}: {shown}  ({how})"


def _metrics_json(spec: RunSpec, n_folds: int, records: list[dict]) -> dict:
    return {"model": spec.model, "dataset": spec.dataset, "protocol": spec.protocol, "folds": n_folds,
            "seed": spec.seed, "metrics": aggregate([r["metrics"] for r in records]),
            "epochs": [r["epochs"] for r in records], "train_seconds": [r["train_seconds"] for r in records],
            "versions": versions(), **_where(spec)}


def _where(spec: RunSpec) -> dict:
    """The device, its GPU and the precision, for metrics.json and info.json."""
    from aerec import devices

    return devices.record(spec.device, spec.precision)


def _announce(spec: RunSpec) -> None:
    """Set the run's matmul precision and say where it runs."""
    from aerec import devices

    devices.apply_precision(spec.precision)
    ui.info(devices.describe(spec.device, spec.precision))


def full_matrix(data, task: str, fb=None, weighted: bool = False):
    """All interactions as one training matrix, under the data's feedback semantics: ratings for
    rating models; for ranking models the rows the feedback rule keeps (explicit 1-5 ratings:
    rating > 3.5, as the strong protocol; implicit: every row), with empty users and items
    dropped. Returns (kept Interactions, train CSR)."""
    prepared = _prepare_full(data, task, fb, weighted)
    return prepared.data, prepared.train


def _prepare_full(data, task: str, fb=None, weighted: bool = False, options: dict | None = None):
    from aerec.data import feedback
    from aerec.protocols.base import dedupe

    data = dedupe(data)
    return feedback.training_data(data, task, fb or feedback.of(data, options), weighted=weighted)


def train_full(spec: RunSpec, data, out: Path, *, resume: bool = False, overwrite: bool = False,
               progress: bool = True) -> dict:
    from aerec import io, models

    cls = models.get(spec.model)
    prepared = _prepare_full(data, cls.task, weighted=getattr(cls, "weighted", False), options=spec.data_options)
    ui.info(prepared.line)
    data, train = prepared.data, prepared.train
    ident = _full_identity(spec, data)
    writer = distributed.is_writer()
    with run_folder(out / "full", ident, "info.json", resume=resume, overwrite=overwrite) as (fdir, reuse):
        if reuse:
            return json.loads((fdir / "info.json").read_text())
        if writer:
            fsutil.write_json(fdir / "config.json", ident)
            fsutil.write_text(fdir / "config.toml", spec.toml())
        # no validation data: the model trains for exactly its configured epochs (pick them from a CV run)
        model, seconds = _fit(spec, train, None, fdir, resume, f"{spec.model} full", progress)
        final = out / "full"
        result = {"model": spec.model, "dataset": spec.dataset, "protocol": "full", "model_dir": str(final / "model"),
                  "users": int(train.shape[0]), "items": int(train.shape[1]), "interactions": int(train.nnz),
                  "seed": spec.seed, "epochs": _epochs(model), "train_seconds": seconds, "versions": versions(),
                  **_where(spec)}
        if not writer:
            return result
        io.save(model, fdir / "model", item_ids=data.item_ids, user_ids=data.user_ids, history=train,
                item_titles=data.item_titles, seen=prepared.seen, below_threshold=prepared.below_threshold(),
                extra_meta={"dataset": spec.dataset, "protocol": "full", "seed": spec.seed})
        shutil.rmtree(fdir / "checkpoint", ignore_errors=True)
        record = {"fold": "full", "history": list(getattr(model, "history", []) or [])}
        fsutil.write_text(fdir / "history.csv", _history_csv([record]))
        fsutil.write_json(fdir / "info.json", result)
    ui.info(f"{spec.model} full: {train.shape[0]} users x {train.shape[1]} items, saved to {final / 'model'} ({seconds:.1f}s)")
    return result


def load_spec(run_dir: str | Path) -> tuple[RunSpec, dict]:
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    try:
        cfg = json.loads(path.read_text())
        spec = RunSpec(model=cfg["model"], dataset=cfg["dataset"], protocol=cfg["protocol"], folds=cfg["folds"],
                       seed=int(cfg["seed"]), model_config=cfg["config"], protocol_options=cfg["protocol_options"],
                       data_options=dict(cfg.get("data_options") or {}),
                       ks=tuple(cfg["ks"]) if cfg.get("ks") else None,
                       precision=cfg.get("precision") or ("bf16" if cfg["config"].get("amp") else "fp32"),
                       device=str(cfg["config"].get("device", "cpu")))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; is {run_dir} a run directory made by 'aerec train'?") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: malformed run config ({type(e).__name__}: {e})") from None
    return spec, cfg


def _check_evaluable(run_dir: Path) -> None:
    """Name what was given when it is not a run of a splitting protocol (issue 24)."""
    from aerec.io import MANIFEST

    full = run_dir / "full" / "model" if (run_dir / "full").is_dir() else run_dir / "model" \
        if run_dir.name == "full" else None
    if full is not None and (full / MANIFEST).exists() and not list(run_dir.glob("fold-*")):
        raise DataError(f"{run_dir}: a full-data run (--protocol full): its model was trained on every "
                        "interaction, so nothing is held out to evaluate; evaluate a run of a splitting protocol "
                        "(strong, weak, temporal, ratings-kfold, ratings-holdout)")
    if (run_dir / MANIFEST).exists():
        raise DataError(f"{run_dir}: a model directory, not a run; aerec evaluate takes the run directory "
                        "'aerec train' wrote (the folder holding config.json and fold-*/)")


def evaluate_run(run_dir: str | Path, *, write: bool = True, ks=None, device: str | None = None) -> dict:
    """Reload each fold's model, rebuild the identical split and evaluate it again.

    Returns the metrics.json layout (epochs and train seconds copied from the saved run) plus
    ``matches_saved``: whether every per-fold value equals the saved metrics.json exactly.
    Writes ``metrics.evaluated.json`` in the run directory unless write=False. ks: cutoffs
    (default: those the run was scored at); only metrics present in both are compared.
    device: where the fold models score (default auto); the result records it.
    """
    from aerec import devices, io

    run_dir = Path(run_dir)
    _check_evaluable(run_dir)
    spec, cfg = load_spec(run_dir)
    spec.device = devices.choose(device) if "device" in spec.model_config else "cpu"
    _announce(spec)
    data = _load_data(spec.dataset, spec.data_options)
    saved_path = run_dir / "metrics.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else None
    if ks is not None:
        from aerec import metrics as metricsmod

        spec.ks = metricsmod.check_ks(ks)
    elif not spec.ks and saved is not None:  # older runs: the cutoffs they were scored at
        found = {int(k.split("@")[1]) for k in saved.get("metrics", {}) if "@" in k and k.split("@")[1].isdigit()}
        spec.ks = tuple(sorted(found)) or None
    if _fingerprint(data) != cfg.get("data"):
        raise DataError(f"data set '{spec.dataset}' changed since the run ({cfg.get('data')} then, {_fingerprint(data)} now)")
    protocol = _protocol(spec.protocol, None, spec.seed, spec.protocol_options)
    records = []
    for fold in protocol.split(data):
        mdir = run_dir / f"fold-{fold.index}" / "model"
        model = io.load(mdir, device=spec.device if "device" in spec.model_config else None)
        if [str(x) for x in model.item_ids.tolist()] != [str(x) for x in np.asarray(fold.item_ids).tolist()]:
            raise DataError(f"{mdir}: item vocabulary differs from the rebuilt split of fold {fold.index}")
        m = evaluate_fold(model, _weigh(spec, data, type(model).prepare_fold(fold, data)), _ks(spec))
        records.append({"metrics": m, "epochs": None, "train_seconds": None})
        ui.info(_status(spec, fold.index, protocol.n_folds, m, "re-evaluated"))
    result = _metrics_json(spec, int(protocol.n_folds), records)
    if saved is not None:
        result["epochs"], result["train_seconds"] = saved.get("epochs"), saved.get("train_seconds")
        common = [k for k in result["metrics"] if k in saved.get("metrics", {})]
        result["matches_saved"] = bool(common) and all(saved["metrics"][k].get("per_fold") ==
                                                       result["metrics"][k]["per_fold"] for k in common)
    else:
        result["matches_saved"] = None
    if write:
        fsutil.write_json(run_dir / "metrics.evaluated.json", result)
    return result
