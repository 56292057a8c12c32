"""`aerec bench --suite tuned`: every model tuned with the same budget inside every fold.

For each (data set, model, fold), an Optuna study searches the model's own space on that fold's
training part (fitting) and validation users (scoring), with the same budget for every model:
``trials`` finished trials and at most ``timeout`` seconds of trial time per fold. The best
trial's model is then tested on the fold's test users, which no trial of that fold ever read, on
the same folds (seed, protocol) as the paper suite. The report puts each model's reference-
settings row (the paper suite's cells, run here when absent, or a finished paper run given as
``reference``) beside its tuned row, with a paired t-test between them.

Resumable at two levels: finished cells are cached as in the other suites, and each study lives
in an Optuna storage (SQLite per study under OUT/studies by default), so a killed run continues
its studies where they stopped.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from aerec import fsutil, ui
from aerec.bench import _command
from aerec.bench.grid import Cell, cancel_on_failure, evaluate_cell, load_cell, run_cell, save_cell
from aerec.bench.suites import suite_models
from aerec.bench.tuned_report import (  # noqa: F401  (the report's names, as before the split)
    comparison,
    comparison_markdown,
    trial_plots,
    write_report,
)
from aerec.errors import ConfigError

# Base settings that the search starts from (the rest are each model's reference defaults).
# Early stopping bounds every neural trial: each model's `tune_patience` (default PATIENCE).
PATIENCE = 10


def _trial_patience(specs: dict) -> dict:
    """{neural model: its trials' early-stopping patience (None: none)}."""
    from aerec import models as registry

    return {m: s["base"].get("patience") for m, s in specs.items() if hasattr(registry.get(m), "init_network")}


def base_config(cls) -> dict:
    patience = getattr(cls, "tune_patience", None) if hasattr(cls, "init_network") else None
    return {"patience": patience} if patience else {}


def run_tuned(out, datasets=("ml-100k",), models=None, folds: int = 5, seed: int = 0, jobs: int = 1,
              trials: int = 8, timeout: float | None = None, loader=None, overrides: dict | None = None,
              space_overrides: dict | None = None, storage: str | None = None, reference: str = "run",
              clock: str = "wall", report_only: bool = False, final: str = "best-trial",
              tune_on: str = "fold", tune_share: float | None = None, where: dict | None = None,
              trial_jobs: int = 1) -> dict:
    """Run (or resume) the tuned suite and write its report.

    overrides: {model: fixed settings} for both the reference and the tuned cells (tests use it
    to shrink networks); space_overrides: {model: {field: spec or None}}; reference: "run" (run
    the paper suite's cells here when absent), "none", or a finished `--suite paper` directory.
    report_only: run nothing; write the report from the cells finished so far (another process
    may still be running the same command). final: "best-trial" tests the best trial's model as
    the time cap left it; "full" first trains that setting to its own end when the cap cut it.
    tune_on: "fold" (one study per fold, on its training and validation users) or "tuning-users"
    (``tune_share`` of the users, default 15%, set aside and in no fold; one study per model on
    them; every fold, of the other users, trains and tests the chosen setting; reference cells
    run on the same folds).
    trial_jobs: each study runs that many trials at once, in processes sharing its storage (not
    part of the cells' keys: it changes how fast a study runs, not what it searches).
    """
    from aerec import deps, protocols
    from aerec import models as registry
    from aerec import storage as storagemod
    from aerec.bench import _previous, _where, fingerprint, machine, plan, versions
    from aerec.tune import FINAL, search_space

    storage = storagemod.check(storage, allow_memory=True)
    precision = (where or {}).get("precision", "fp32")  # part of the cells' keys and study names when not fp32
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _STUDIES.clear()  # shared by the folds of this run only
    paper = suite_models("paper")
    chosen = list(models) if models else list(paper)
    # unknown names and missing optional libraries fail before any work (a model whose library is
    # missing used to fail only when its cells came up, hours into a run)
    deps.check(*(registry.get(m) for m in chosen))
    if where:
        from aerec import devices

        ui.info(devices.describe(where["device"], where["precision"]))
    if trials < 1:
        raise ConfigError("--trials must be at least 1")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"--tune-timeout must be a positive, finite number of seconds, got {timeout}")
    if final not in FINAL:
        raise ConfigError(f"--tune-final must be one of {', '.join(FINAL)}")
    if tune_on not in TUNE_ON:
        raise ConfigError(f"--tune-on must be one of {', '.join(TUNE_ON)}")
    share = None
    if tune_on == "tuning-users":
        from aerec.protocols.tuning_users import SHARE

        share = float(SHARE if tune_share is None else tune_share)
        if not 0 < share < 1:
            raise ConfigError("--tune-share must be in (0, 1)")
        if reference not in ("run", "none"):
            raise ConfigError("--reference DIR cannot pair with --tune-on tuning-users: its folds hold every user; "
                              "let the suite run the reference cells on the same folds")
    ref_dir = None
    if reference not in ("run", "none"):
        ref_dir = Path(reference)
        if not (ref_dir / "results.json").exists() and not (ref_dir / "cells").exists():
            raise ConfigError(f"--reference {reference}: not a finished `aerec bench --suite paper` directory")
    if loader is None:
        from aerec.data import load as loader
    started = time.time()
    jobs_todo, cells, fingerprints, missing = [], [], {}, 0
    specs = {}
    for dataset in datasets:
        data = loader(dataset)
        fingerprints[dataset] = fingerprint(data)
        tune_data = None
        if share is not None:  # the folds are of the other users; the studies see only these
            from aerec.protocols.tuning_users import set_aside

            tune_data, data = set_aside(data, share, seed)
        label = Path(dataset).stem if ("/" in dataset or "." in dataset) else dataset  # a file: its stem
        for task in ("rating", "ranking"):
            for (proto_name, opts), names in plan(chosen, task, "strong").items():
                proto = protocols.get(proto_name, folds=folds, seed=seed, **dict(opts))
                folds_list = None
                tuning_folds: dict = {}
                for m in names:
                    cls = registry.get(m)
                    fixed = {**base_config(cls), **(overrides or {}).get(m, {})}
                    space = search_space(cls, (space_overrides or {}).get(m))
                    space = {k: v for k, v in space.items() if k not in fixed}
                    ref_cfg = {**paper.get(m, {}), **(overrides or {}).get(m, {})}
                    # select: the paired rule (tune.ALPHA); cells from before it keep "best" (no key)
                    spec = {"base": fixed, "space": space, "trials": trials, "timeout": timeout, "select": "paired"}
                    if timeout is not None and clock != "wall":  # only when set, so wall-clock keys stay
                        spec["clock"] = clock
                    if final != "best-trial" and share is None:  # only when set, so existing cells keep their keys
                        spec["final"] = final
                    specs[m] = spec
                    for f in range(proto.n_folds):
                        order = (f, chosen.index(m), proto_name)  # fold-major: a cut-short run still covers every model
                        ref = Cell(m, label, proto_name, f, proto.n_folds, seed, ref_cfg, dict(opts), tuning_users=share,
                                   precision=precision)
                        tuned = Cell(m, label, proto_name, f, proto.n_folds, seed, {"tuned": spec}, dict(opts),
                                     tuning_users=share, precision=precision)
                        # the study's starting setting (the model's defaults, `scaled` where it has a
                        # schedule, with the trials' early stopping), trained untuned: the middle column
                        default = Cell(m, label, proto_name, f, proto.n_folds, seed, dict(fixed), dict(opts),
                                       tuning_users=share, precision=precision)
                        want = [] if reference == "none" else [("reference", ref)]
                        if space:
                            want.append(("tuned", tuned))
                            if default.key() != ref.key():  # the same setting: the reference row is the default
                                want.append(("default", default))
                        for kind, cell in want:
                            hit = load_cell(cell, out)
                            if hit is None and kind == "reference" and ref_dir is not None:
                                hit = load_cell(cell, ref_dir)
                                if hit is None:
                                    continue  # taken from the reference run's results.json below
                            if hit is not None:
                                hit["variant"] = kind
                                cells.append(hit)
                                continue
                            if report_only:
                                missing += 1
                                continue
                            if folds_list is None:
                                folds_list = proto.folds(data)
                            fold = cls.prepare_fold(folds_list[f], data)
                            name = f"{m}-{dataset}-{proto_name}"
                            store = (_storage_for(storage, out, cell), _log_for(out, cell)) if kind == "tuned" else None
                            if kind == "tuned" and tune_data is not None:  # the one study's fold, per model
                                if m not in tuning_folds:
                                    from aerec.protocols.tuning_users import tuning_fold

                                    tuning_folds[m] = cls.prepare_fold(tuning_fold(proto, tune_data), tune_data)
                                fold = (fold, tuning_folds[m])
                            jobs_todo.append((order, kind, cell, fold, task, store, name, trial_jobs))
    jobs_todo.sort(key=lambda j: (j[0], ("tuned", "reference", "default").index(j[1])))
    ui.info(f"bench tuned: {len(cells)} cells cached, {len(jobs_todo) + missing} to run -> {out}  "
            f"(budget per fold and model: {trials} trials" + (f" or {timeout:g} s of trial time ({clock} clock)" if timeout else "")
            + ")")
    if jobs > 1 and len(jobs_todo) > 1:
        cells += _run_parallel(jobs_todo, out, jobs)
    else:
        for job in jobs_todo:
            cells.append(_finish(out, job, _run_job(job)))
    result = write_report(out, cells, specs, ref_dir, trials, timeout, clock, missing=missing, share=share)
    fsutil.write_json(out / "run.json", {
        "command": _command(), "suite": "tuned", "datasets": list(datasets), "models": chosen, "folds": folds,
        "seed": seed, "jobs": jobs, "trial_jobs": trial_jobs, "reference": reference, "unfinished_cells": missing,
        "tune_on": tune_on, "tuning_users_share": share,
        "budget": {"trials_per_fold": trials, "trial_seconds_per_fold": timeout, "clock": clock, "final": final,
                   "pruner": "MedianPruner(n_startup_trials=2, n_warmup_steps=3) on per-epoch validation scores",
                   "sampler": "TPE, seeded per (seed, fold, trial number); first max(2, trials // 2) trials random",
                   "early_stopping_patience": {"default": PATIENCE, **_trial_patience(specs)}, "storage": _safe(storage) or "OUT/studies/*.db (SQLite)"},
        "search": {m: {"base": s["base"], "space": s["space"]} for m, s in specs.items()},
        "versions": versions(), "machine": machine(), **(where or _where()), "data_sha256": fingerprints,
        "cells": len(cells),
        "seconds": _previous(out / "run.json").get("seconds") if report_only else time.time() - started,
        "plots": result["plots"],
    })
    return result


def _safe(url):
    from aerec.tune import _safe_url

    return _safe_url(url)


TUNE_ON = ("fold", "tuning-users")


def _storage_for(storage: str | None, out: Path, cell: Cell) -> str | None:
    """The study's storage URL: the shared one, "memory" (no study-level resume), or a SQLite
    file per study under OUT/studies (one file each: parallel workers never wait on a lock)."""
    if storage == "memory":
        return None
    return storage or _default_storage(out, cell)


def _log_for(out: Path, cell: Cell) -> Path:
    """The study's log file (failed trials' tracebacks): beside where its default SQLite file goes,
    whatever the storage."""
    where = "tuning-users" if cell.tuning_users is not None else f"fold-{cell.fold}"
    return out / "studies" / cell.dataset / cell.model / f"{cell.protocol}-{where}.log"


def _default_storage(out: Path, cell: Cell) -> str:
    from aerec.tune import sqlite_url

    where = "tuning-users" if cell.tuning_users is not None else f"fold-{cell.fold}"
    return sqlite_url(out / "studies" / cell.dataset / cell.model / f"{cell.protocol}-{where}.db")


# one job ---------------------------------------------------------------------------------------


def _run_job(job) -> dict:
    _, kind, cell, fold, task, store, name, trial_jobs = job
    if kind in ("reference", "default"):
        return run_cell(cell, fold, task)
    if cell.tuning_users is not None:
        return tune_cell_users(cell, *fold, task, *store, trial_jobs=trial_jobs)
    return tune_cell(cell, fold, task, *store, trial_jobs=trial_jobs)


def _finish(out: Path, job, result: dict) -> dict:
    _, kind, cell, *_ = job
    result["variant"] = kind
    save_cell(cell, out, result)
    main = result["metrics"].get("ndcg@100", result["metrics"].get("rmse"))
    extra = ""
    if kind == "tuned":
        t = result["tuning"]
        extra = f", {t['trials']} trials ({t['pruned']} pruned) in {t['seconds']:.0f}s"
    ui.info(f"  done {kind} {cell.label()}: {'ndcg@100' if 'ndcg@100' in result['metrics'] else 'rmse'} "
            f"{main:.4f}{extra}")
    return result


def tune_cell(cell: Cell, fold, task: str, storage: str | None, log_path: Path | None = None,
              trial_jobs: int = 1) -> dict:
    """Tune on the fold's training + validation parts, then test the best trial's model."""
    from aerec import models
    from aerec.tune import defaults_key, run_study, study_name, tuning_users

    cls = models.get(cell.model)
    spec = cell.config["tuned"]
    name = study_name(cell.model, f"{cell.dataset}-{cell.protocol}", cell.fold,
                      {"base": spec["base"], "space": spec["space"], "seed": cell.seed, "n_folds": cell.n_folds,
                       "options": cell.protocol_options, **defaults_key(cls, spec["base"]),
                       **cell.precision_key()})  # not the budget: a bigger one continues the study
    res = run_study(cls, fold, fixed=spec["base"], space=spec["space"], trials=spec["trials"],
                    timeout=spec["timeout"], seed=cell.seed, storage=storage, name=name, label=cell.label(),
                    clock=spec.get("clock", "wall"), final=spec.get("final", "best-trial"),
                    select=spec.get("select", "best"), log_path=log_path, trial_jobs=trial_jobs)
    model = res.pop("model")
    metrics, per_user, eval_s = evaluate_cell(cell, model, fold, task)
    users = tuning_users(fold)
    if not users["disjoint"]:  # cannot happen with the protocols' splits; refuse to report a leak
        raise ConfigError(f"{cell.label()}: tuning and test parts overlap")
    return {
        "model": cell.model, "dataset": cell.dataset, "protocol": cell.protocol,
        "protocol_options": cell.protocol_options, "fold": cell.fold, "seed": cell.seed,
        "config": model.config_dict(), "metrics": metrics,
        "epochs": int(getattr(model, "epochs_run", 0) or 0), "best_epoch": int(getattr(model, "best_epoch", 0) or 0),
        "train_seconds": res["seconds"], "eval_seconds": eval_s, "history": getattr(model, "history", []) or [],
        "per_user": per_user,
        "tuning": {k: res[k] for k in ("best_value", "best_trial", "params", "trials", "complete", "pruned",
                                       "seconds", "budget_seconds", "clock", "log", "metric", "study",
                                       "retrained", "cut_at_epoch", "selection")}
                  | {"users": users, "final_seconds": res.get("final_seconds", 0.0)},
    }


_STUDIES: dict = {}  # study name -> result, so the folds of one process share their model's study


def tune_cell_users(cell: Cell, fold, tuning_fold, task: str, storage: str | None,
                    log_path: Path | None = None, trial_jobs: int = 1) -> dict:
    """The model's one study on the tuning users (run, resumed or reused), then its chosen setting
    trained on this fold's training users (early stopping on its validation users) and tested."""
    from aerec import models
    from aerec.tune import defaults_key, run_study, study_name

    cls = models.get(cell.model)
    spec = cell.config["tuned"]
    name = study_name(cell.model, f"{cell.dataset}-{cell.protocol}-tuning-users", 0,
                      {"base": spec["base"], "space": spec["space"], "seed": cell.seed, "n_folds": cell.n_folds,
                       "options": cell.protocol_options, "tuning_users": cell.tuning_users,
                       **defaults_key(cls, spec["base"]), **cell.precision_key()})
    import hashlib

    parts = (tuning_fold.train, tuning_fold.valid) if task == "rating" else (tuning_fold.train, tuning_fold.valid_out)
    digest = hashlib.sha256(b"".join(m.indices.tobytes() + m.indptr.tobytes() for m in parts)).hexdigest()
    memo = (name, storage, digest)  # the same study on the same users, not one under the same name
    res = _STUDIES.get(memo)
    if res is None:
        res = run_study(cls, tuning_fold, fixed=spec["base"], space=spec["space"], trials=spec["trials"],
                        timeout=spec["timeout"], seed=cell.seed, storage=storage, name=name,
                        label=f"{cell.model} {cell.dataset} tuning users", clock=spec.get("clock", "wall"),
                        select=spec.get("select", "best"), keep_model=False, log_path=log_path,
                        trial_jobs=trial_jobs)
        res.pop("model", None)
        _STUDIES[memo] = res
    config = {k: v for k, v in res["config"].items() if k != "seed"}
    result = run_cell(Cell(cell.model, cell.dataset, cell.protocol, cell.fold, cell.n_folds, cell.seed, config,
                           cell.protocol_options, tuning_users=cell.tuning_users, precision=cell.precision), fold, task)
    users = tuning_users_record(tuning_fold, fold, cell.tuning_users)
    if not users["disjoint"]:  # cannot happen with set_aside; refuse to report a leak
        raise ConfigError(f"{cell.label()}: tuning users appear in the evaluation folds")
    result["tuning"] = {k: res[k] for k in ("best_value", "best_trial", "params", "trials", "complete", "pruned",
                                            "seconds", "budget_seconds", "clock", "log", "metric", "study",
                                            "retrained", "cut_at_epoch", "selection")}
    result["tuning"] |= {"users": users, "final_seconds": result["train_seconds"], "shared_study": True}
    return result


def tuning_users_record(tuning_fold, fold, share: float) -> dict:
    """Counts and digests of the tuning users (fit + score) and of this fold's users; disjoint when
    no tuning user is among the fold's training, validation or test users (ratings: users)."""
    from aerec.tune import _digest

    if getattr(tuning_fold, "kind", "ranking") == "rating":
        tuning, evaluated = set(map(str, tuning_fold.user_ids)), set(map(str, fold.user_ids))
    else:
        tuning = {str(u) for ids in (tuning_fold.train_user_ids, tuning_fold.valid_user_ids) for u in ids}
        evaluated = {str(u) for ids in (fold.train_user_ids, fold.valid_user_ids, fold.test_user_ids) for u in ids}
    return {"fold": int(fold.index), "unit": "users", "mode": "tuning-users", "share": share,
            "tuning_users": len(tuning), "tuning_users_sha256": _digest(tuning),
            "fold_users": len(evaluated), "fold_users_sha256": _digest(evaluated),
            "disjoint": not (tuning & evaluated)}


def _worker(job):
    import torch

    threads = job[-1]
    torch.set_num_threads(threads)
    ui.set_quiet(True)
    return job[:-1], _run_job(job[:-1])


def _run_parallel(jobs_todo, out: Path, jobs: int) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    done = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_worker, (*job, threads)) for job in jobs_todo]
        with cancel_on_failure(pool):
            for fut in as_completed(futures):
                job, result = fut.result()
                done.append(_finish(out, job, result))
    return done


def space_file_overrides(path) -> dict:
    """{model: overrides} from the [space.MODEL] tables of a TOML file."""
    from aerec import config as cfgmod
    from aerec import models
    from aerec.models import space as spacemod

    table = cfgmod.load_toml(path).get("space")
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(f"{path}: expected [space.MODEL] tables")
    return {m: spacemod.table_overrides(t, models.get(m)) for m, t in table.items()}
