"""Hyperparameter search with Optuna (optional `tune` extra), inside one fold, never on its test users.

A study for fold f fits every trial on fold f's training part and scores it on fold f's own
validation part (valid_in/valid_out for top-N, the validation ratings for rating models). Fold
f's test part is never read, so the setting it picks may be reported on fold f's test users:
that is what `aerec bench --suite tuned` does for every fold. (A setting tuned on fold 0 and then
reported over all folds would leak: fold 0's validation users are fold 1's test users.)

- Search space: the model's own ``space`` (aerec.models.space), optionally overridden.
- Pruning: neural models report the validation score after every epoch; a MedianPruner stops
  trials below the median of earlier trials at the same epoch.
- Start: the first trial of a new study is the model's reference setting (its Config defaults,
  clipped into the space), so the search starts from the paper's point and the best trial is
  never worse on validation than the reference (with the same early stopping).
- Budget: ``trials`` finished trials in the study (earlier runs count, so a rerun resumes), and
  optionally ``timeout`` seconds of trial time in total, on the wall clock or (``clock="cpu"``)
  in this process's CPU seconds, which a machine shared with other work does not shrink; a trial
  still running when the time is up stops at the end of that epoch and keeps its best epoch.
- Storage: an Optuna storage URL (SQLite file by default in the caller's directory; any
  database URL for a study shared by several processes or machines). Each trial draws from a
  sampler seeded by (seed, fold, trial number), so a resumed study draws as a fresh one would;
  the seed is recorded with the trial (``sampler_seed``).
- Parallel trials: ``trial_jobs`` N runs N trials at once, as processes sharing the study's
  storage (a file or database URL; in-memory studies are refused). Trial numbers come from the
  storage, so each trial's seed is the one a sequential study would give it; which trials see
  which finished ones (and so what TPE proposes) depends on timing, so a parallel study is
  reproducible per trial setting, not as a whole. A time budget is shared: each trial may use
  1/N of what is left. The study may end up to N - 1 trials past ``trials``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from aerec import config as cfgmod
from aerec import fsutil, ui
from aerec.errors import AerecError, ConfigError
from aerec.models import space as spacemod
from aerec.tune_select import ALPHA, SELECT, one_sided_p, per_user_validation, select_trial  # noqa: F401


def _optuna():
    from aerec import deps

    deps.check_feature("tune")
    import optuna
    # ERROR: Optuna's "Trial N failed" warning carries the whole traceback; run_study writes it
    # to the study's log file and shows one line instead
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def search_space(model_cls, overrides: dict | None = None) -> dict:
    """The model's declared space with overrides ({field: spec, or None to drop}) applied."""
    base = spacemod.model_space(model_cls)
    return spacemod.apply_overrides(base, overrides, model_cls) if overrides else base


# which users tuning saw -------------------------------------------------------------------------


def _digest(values) -> str:
    return hashlib.sha256("\n".join(sorted(map(str, values))).encode()).hexdigest()


def _pairs(m, user_ids, item_ids) -> set:
    m = m.tocoo()
    return {f"{user_ids[r]}\t{item_ids[c]}" for r, c in zip(m.row.tolist(), m.col.tolist())}


def tuning_users(fold) -> dict:
    """Counts and SHA-256 digests of what tuning read (fit + score) and of the fold's test part.

    Ranking folds: user id sets (fitting = training users, scoring = validation users). Rating
    folds hold the same users in every part, so there the unit is the (user, item) rating pair.
    ``disjoint`` is True when no test user (pair) is among the tuning ones.
    """
    if getattr(fold, "kind", "ranking") == "rating":
        uid, iid = np.asarray(fold.user_ids), np.asarray(fold.item_ids)
        fit, score, test = (_pairs(m, uid, iid) for m in (fold.train, fold.valid, fold.test))
        unit = "ratings"
    else:
        fit, score, test = (set(map(str, np.asarray(ids).tolist()))
                            for ids in (fold.train_user_ids, fold.valid_user_ids, fold.test_user_ids))
        unit = "users"
    return {"fold": int(fold.index), "unit": unit,
            f"fit_{unit}": len(fit), f"fit_{unit}_sha256": _digest(fit),
            f"score_{unit}": len(score), f"score_{unit}_sha256": _digest(score),
            f"test_{unit}": len(test), f"test_{unit}_sha256": _digest(test),
            "disjoint": not (test & (fit | score))}


def refuse_leaky(proto) -> None:
    """Refuse a protocol whose test users are also its training users: no study on it can leave
    the users it reports unread (weak generalization, global temporal)."""
    if getattr(proto, "trains_on_test_users", False):
        mode = f" (mode={proto.mode})" if getattr(proto, "mode", None) else ""
        raise ConfigError(f"protocol '{proto.name}'{mode} trains on its own test users, so tuning on it would fit "
                          "on the users it reports; tune on 'strong' (or 'temporal' with mode=user) instead")


# one study --------------------------------------------------------------------------------------


def study_name(model: str, tag: str, fold: int, payload: dict) -> str:
    """Study names carry a hash of everything that shapes the search, so a changed space or
    budget base starts a new study instead of mixing trials."""
    blob = json.dumps(payload, sort_keys=True, default=str)
    return f"{model}-{tag}-fold{fold}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def defaults_key(cls, fixed: dict | None) -> dict:
    """The full setting the search starts from, for study names: a changed model default (such as
    a new ``schedule``) starts a new study instead of mixing trials run under the old one."""
    return {"defaults": cfgmod.to_dict(cfgmod.build(cls.Config, dict(fixed or {}))), "first_trial": "defaults"}


def sqlite_url(path: str | Path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


# A trial's process writes a heartbeat every HEARTBEAT seconds; one silent for GRACE seconds was
# killed, and the next process to resume the study marks it failed and reruns its setting.
HEARTBEAT, GRACE = 30, 120
RETRIES = 2  # reruns of one killed setting before the study gives up on it


def open_storage(url: str | None, heartbeat: int = HEARTBEAT, grace: int | None = None):
    """An Optuna RDB storage with heartbeats and a retry callback for a database URL (a killed
    trial is rerun on resume); None (in memory) as it is."""
    if url is None:
        return None
    import warnings

    optuna = _optuna()
    grace = int(grace if grace is not None else 4 * heartbeat)
    # SQLite shared by parallel trial processes (--trial-jobs): wait for its lock instead of failing
    wait = {"engine_kwargs": {"connect_args": {"timeout": 120}}} if str(url).startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        new = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
        if new is not None:
            return optuna.storages.RDBStorage(url, heartbeat_interval=int(heartbeat), grace_period=grace, **wait,
                                              heartbeat_stale_trial_callback=new(max_retry=RETRIES))
        return optuna.storages.RDBStorage(url, heartbeat_interval=int(heartbeat), grace_period=grace, **wait,
                                          failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=RETRIES))


def _killed(t, optuna) -> bool:
    """A trial failed by the heartbeat check (its process died): our own failures always record
    their budget seconds, a killed process never reaches that line."""
    return t.state == optuna.trial.TrialState.FAIL and "budget_seconds" not in t.user_attrs


def seeded_sampler(optuna, base_seed: int, n_startup: int):
    """A sampler that draws each trial from a TPE sampler seeded ``base_seed + trial number``.

    Trial numbers are given out by the storage, so trials run at once in several processes get
    the seeds a sequential study would give them (one process: exactly the same draws)."""

    class PerTrialSeed(optuna.samplers.BaseSampler):
        def __init__(self):
            self._by_number: dict[int, object] = {}
            self._skip: dict[int, int] = {}

        def seed_of(self, number: int) -> int:
            return base_seed + int(number) - self._skip.get(int(number), 0)

        def _for(self, trial):
            s = self._by_number.get(trial.number)
            if s is None:
                s = self._by_number[trial.number] = optuna.samplers.TPESampler(seed=self.seed_of(trial.number),
                                                                               n_startup_trials=n_startup)
            return s

        def infer_relative_search_space(self, study, trial):
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial):
            # a killed trial (rerun on resume) uses no seed: the numbers after it draw as an
            # uninterrupted run's would
            self._skip[trial.number] = sum(_killed(t, optuna) for t in study.get_trials(deepcopy=False)
                                           if t.number < trial.number)
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study, trial, state, values):
            self._for(trial).after_trial(study, trial, state, values)
            self._by_number.pop(trial.number, None)

    return PerTrialSeed()


def _finished(study, optuna) -> list:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return [t for t in study.trials if t.state in done and not _killed(t, optuna)]


def _seconds(t) -> float:
    if t.datetime_start is None or t.datetime_complete is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def _spent(t) -> float:
    return float(t.user_attrs.get("budget_seconds", _seconds(t)))


FINAL = ("best-trial", "full")


def run_study(cls, fold, *, fixed: dict | None = None, space: dict | None = None, trials: int = 20,
              timeout: float | None = None, seed: int = 0, storage: str | None = None,
              name: str | None = None, label: str = "", keep_model: bool = True, clock: str = "wall",
              from_defaults: bool = True, final: str = "best-trial", heartbeat: int = HEARTBEAT,
              grace: int | None = None, select: str = "paired", alpha: float = ALPHA,
              log_path=None, trial_jobs: int = 1, _worker_of: int = 0) -> dict:
    """Search on one fold's training + validation parts; returns the best setting, the trial log
    and (keep_model) the best trial's fitted model, retrained when it came from an earlier run.

    trial_jobs: trials run at once, in that many processes sharing ``storage`` (see the module
    doc). ``_worker_of`` is set inside those processes (the number of them).

    final: "best-trial" keeps the best trial's model as the time cap left it; "full" trains the
    best setting again to its own end (epochs, early stopping) when the cap cut that trial short,
    so a slow model's final fit is not truncated by the search budget.
    select: "paired" (default) keeps the starting (reference) setting unless the best trial beats
    it on the validation units by a one-sided paired t-test at ``alpha``; "best" takes the best
    trial's mean, however small its lead. The chosen trial's setting is the result.
    storage: a database URL gets heartbeats (every ``heartbeat`` s): a trial whose process was
    killed is failed after ``grace`` s of silence (default 4 heartbeats) by the next run of the
    study, which reruns its setting (at most RETRIES times); it does not count toward ``trials``.
    log_path: the study's log file; a failed trial's traceback goes there (appended) and one line
    about it to the screen. None: only the line.
    """
    optuna = _optuna()
    from aerec.models.training import monitor_for, validation_score

    if clock not in ("wall", "cpu"):
        raise ConfigError("the tuning clock must be 'wall' or 'cpu'")
    now = time.monotonic if clock == "wall" else time.process_time
    fixed = dict(fixed or {})
    space = search_space(cls) if space is None else space
    if not space:
        raise ConfigError(f"model '{cls.name}' has no search space")
    if trials < 1:
        raise ConfigError("trials must be at least 1")
    if timeout is not None and not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
                                    and np.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"the tuning timeout must be a positive, finite number of seconds, got {timeout!r}")
    if final not in FINAL:
        raise ConfigError(f"final must be one of {', '.join(FINAL)}")
    if select not in SELECT:
        raise ConfigError(f"select must be one of {', '.join(SELECT)}")
    if not 0 < alpha < 1:
        raise ConfigError("alpha must be in (0, 1)")
    if trial_jobs < 1:
        raise ConfigError("trial jobs must be at least 1")
    if trial_jobs > 1 and storage is None:
        raise ConfigError("--trial-jobs runs trials in several processes, which share the study through its storage; "
                          "give a storage (a file or database URL), not an in-memory study")
    rating = cls.task == "rating"
    valid = fold.valid if rating else (fold.valid_in, fold.valid_out)
    if (valid.nnz if rating else valid[1].nnz) == 0:
        raise ConfigError("tuning needs validation data, and this fold has none")
    if not tuning_users(fold)["disjoint"]:  # a study must never fit or score a user (rating) it reports
        raise ConfigError(f"{label or cls.name}: this fold's test users are among its training or validation "
                          "users; tuning on it would read them (tune on a held-out-users protocol such as 'strong')")
    metric, higher = monitor_for(cls)
    neural = hasattr(cls, "init_network")
    kept: dict = {}

    def fit(params: dict, trial=None, deadline=None, stop_epoch=None):
        model = cls({**fixed, **params, "seed": seed})
        opts = {}
        if neural:
            def on_epoch(record):
                value = record.get(f"valid_{metric}")
                if trial is not None and value is not None and np.isfinite(value):
                    trial.report(value, record["epoch"])
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                if stop_epoch is not None and record["epoch"] >= stop_epoch:
                    return "stop"
                if deadline is not None and now() > deadline:
                    if trial is not None:
                        trial.set_user_attr("stopped_at_epoch", record["epoch"])
                    return "stop"
                return None

            opts = {"progress": False, "on_epoch_end": on_epoch}
        model.fit(fold.train, valid, **opts)
        scores = [h[f"valid_{metric}"] for h in getattr(model, "history", []) or [] if f"valid_{metric}" in h]
        value = (max(scores) if higher else min(scores)) if scores else validation_score(model, valid)
        return model, float(value)

    failures: dict = {}
    ran: dict = {}  # the trial this process ran last (other processes add theirs to the study)

    def objective(trial, deadline):
        ran["number"] = trial.number
        try:
            return _objective(trial, deadline)
        except (AerecError, ValueError, RuntimeError) as e:  # the trial fails; the study goes on
            failures[trial.number] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
            _log_failure(log_path, trial.number, label or cls.name)
            raise

    def _objective(trial, deadline):
        trial.set_user_attr("sampler_seed", sampler.seed_of(trial.number))
        params = spacemod.sample(trial, space, cls, fixed)
        trial.set_user_attr("config", cfgmod.to_dict(cfgmod.build(cls.Config, {**fixed, **params, "seed": seed})))
        trial.set_user_attr("params", json.loads(json.dumps(params)))
        t0 = now()
        try:
            model, value = fit(params, trial, deadline)
        finally:  # pruned and failed trials spend the budget too
            trial.set_user_attr("budget_seconds", now() - t0)
        trial.set_user_attr("epochs", int(getattr(model, "epochs_run", 0) or 0))
        trial.set_user_attr("best_epoch", int(getattr(model, "best_epoch", 0) or 0))
        if select == "paired" and np.isfinite(value):  # the pairs for the selection test
            trial.set_user_attr("valid_per_user", [round(float(v), 7) for v in per_user_validation(model, valid)])
        if keep_model:
            best = kept.get("value")
            if np.isfinite(value) and (best is None or (value > best if higher else value < best)):
                kept.update(value=value, number=trial.number, model=model)
            if trial.user_attrs.get("start"):
                kept["start"] = (trial.number, model)
        return value

    log_path = None if log_path is None else Path(log_path)  # written on the first failure only
    parallel = max(trial_jobs, _worker_of)
    base_seed = int(seed) * 1_000_003 + int(getattr(fold, "index", 0)) * 10_007
    sampler = seeded_sampler(optuna, base_seed, max(2, trials // 2))
    study = optuna.create_study(storage=open_storage(storage, heartbeat, grace), study_name=name, load_if_exists=True,
                                direction="maximize" if higher else "minimize", sampler=sampler,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=3))
    if from_defaults and not study.trials:
        study.enqueue_trial(spacemod.default_point(space, cls, fixed), user_attrs={"start": True})
    if trial_jobs > 1:
        _parallel_trials(trial_jobs, cls, fold, fixed=fixed, space=space, trials=trials, timeout=timeout, seed=seed,
                         storage=storage, name=name, label=label, clock=clock, heartbeat=heartbeat, grace=grace,
                         log_path=log_path)
    while trial_jobs == 1:
        done = _finished(study, optuna)
        spent = sum(_spent(t) for t in done)
        # workers also count the trials running in the other processes
        started = len(study.trials) if _worker_of else len(done)  # running and waiting ones too
        if started >= trials or len(done) >= trials or (timeout is not None and spent >= timeout):
            break
        deadline = None if timeout is None else now() + (timeout - spent) / parallel
        t0 = time.perf_counter()
        study.optimize(lambda t, d=deadline: objective(t, d), n_trials=1, catch=(AerecError, ValueError, RuntimeError))
        last = study.trials[ran.get("number", -1)]
        shown = f"{last.value:.4f}" if last.value is not None else "-"
        why = f": {failures[last.number]}" if last.number in failures else ""
        ui.info(f"  {label or cls.name} trial {last.number + 1}: {last.state.name.lower()} {metric} {shown} "
                f"({time.perf_counter() - t0:.1f}s){why}")
    if _worker_of:
        return {}
    log = trial_log(study, optuna)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        if log_path is not None:  # named below, so it exists (also when trials were only pruned)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.touch()
        where = f"see the trial log {log_path}" if log_path is not None else "no trial log was kept"
        last = f"; last failure: {failures[max(failures)]}" if failures else ""
        raise AerecError(f"{label or cls.name}: no trial finished ({where}){last}; widen the budget")
    best, selection = select_trial(study, optuna, select, alpha, higher, fold, fit, valid)
    result = {"best_value": float(best.value), "best_trial": best.number, "config": best.user_attrs["config"],
              "params": best.user_attrs.get("params", {}), "trials": len(_finished(study, optuna)),
              "complete": len(complete), "pruned": sum(t["state"] == "pruned" for t in log),
              "seconds": sum(t["seconds"] for t in log), "budget_seconds": sum(t["budget_seconds"] for t in log),
              "clock": clock, "log": log, "metric": metric, "higher_is_better": higher,
              "study": study.study_name, "space": space, "model": None, "retrained": False,
              "selection": selection}
    cut = best.user_attrs.get("stopped_at_epoch")
    result["cut_at_epoch"] = cut
    if keep_model and final == "full" and cut is not None:  # the cap ended the best trial: fit it to its end
        t0 = now()
        result["model"], _ = fit(best.user_attrs.get("params", {}))
        result["retrained"], result["final_seconds"] = "full", now() - t0
    elif keep_model:
        if kept.get("number") == best.number:
            result["model"] = kept["model"]
        elif kept.get("start", (None,))[0] == best.number:  # the start was kept
            result["model"] = kept["start"][1]
        else:  # the best trial ran in an earlier process: train its setting again (same seed)
            result["model"], _ = fit(best.user_attrs.get("params", {}), stop_epoch=best.user_attrs.get("stopped_at_epoch"))
            result["retrained"] = True
    return result


def _log_failure(log_path, number: int, label: str) -> None:
    """The failed trial's traceback, appended to the study's log file (never to the screen)."""
    if log_path is None:
        return
    import traceback

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as f:
        f.write(f"--- {stamp} {label} trial {number + 1} failed\n{traceback.format_exc()}\n")


def trial_log(study, optuna) -> list[dict]:
    out = []
    for t in study.trials:
        inter = t.intermediate_values
        value = t.value if t.value is not None else (inter[max(inter)] if inter else None)
        out.append({"number": t.number, "state": t.state.name.lower(),
                    "value": None if value is None or not np.isfinite(value) else float(value),
                    "params": t.user_attrs.get("params", {}), "epochs": t.user_attrs.get("epochs"),
                    "stopped_at_epoch": t.user_attrs.get("stopped_at_epoch"), "seconds": _seconds(t),
                    "budget_seconds": _spent(t), "sampler_seed": t.user_attrs.get("sampler_seed")})
    return out


def _study_worker(payload: dict) -> None:
    import torch

    from aerec import models

    torch.set_num_threads(payload.pop("threads"))
    ui.set_quiet(payload.pop("quiet"))
    cls = models.get(payload.pop("model"))
    run_study(cls, payload.pop("fold"), keep_model=False, from_defaults=False, **payload)


def _parallel_trials(jobs: int, cls, fold, **kw) -> None:
    """Run the study's trials in ``jobs`` processes sharing its storage (spawned, so each has its
    own torch and CUDA state); returns when they have all stopped."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // jobs)
    payload = {**kw, "model": cls.name, "fold": fold, "threads": threads, "quiet": ui.quiet(), "_worker_of": jobs}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for fut in [pool.submit(_study_worker, dict(payload)) for _ in range(jobs)]:
            fut.result()


# `aerec tune` -----------------------------------------------------------------------------------


def tune(model_name: str, data, protocol_name: str, trials: int, seed: int = 0, folds: int = 5,
         fixed: dict | None = None, timeout: float | None = None, fold: int = 0,
         space_overrides: dict | None = None, storage: str | None = None, directory=None,
         dataset_label: str | None = None, protocol_options: dict | None = None, select: str = "paired",
         where: dict | None = None, trial_jobs: int = 1) -> dict:
    """Tune on fold `fold`'s training and validation parts (never its test part).

    Storage: `storage` (a URL) if given, else DIRECTORY/study.db when `directory` is given, else
    in memory. The returned setting is leak-free for fold `fold`'s test users only.
    """
    _optuna()
    from aerec import models, protocols

    cls = models.get(model_name)
    refuse_leaky(protocols.get(protocol_name, **{"seed": seed, **(protocol_options or {})}))
    proto = protocols.get(protocol_name, folds=folds, **{"seed": seed, **(protocol_options or {})})
    if proto.task != cls.task:
        raise ConfigError(f"model '{model_name}' is a {cls.task} model; protocol '{protocol_name}' is for {proto.task}")
    if not 0 <= fold < proto.n_folds:
        raise ConfigError(f"--fold must be in 0..{proto.n_folds - 1}")
    the_fold = next(f for f in proto.split(data) if f.index == fold)
    the_fold = cls.prepare_fold(the_fold, data)
    space = search_space(cls, space_overrides)
    precision = (where or {}).get("precision", "fp32")
    fixed = {k: v for k, v in (fixed or {}).items()}
    for k in fixed:
        if k in space:
            space.pop(k)  # a fixed setting is not searched
    if storage is None and directory is not None:
        storage = sqlite_url(Path(directory) / "study.db")
    else:
        from aerec import storage as storagemod

        storage = storagemod.check(storage)
    name = study_name(model_name, dataset_label or getattr(data, "name", "data"), fold,
                      {"protocol": protocol_name, "folds": proto.n_folds, "seed": seed, "fixed": fixed, "space": space,
                       **defaults_key(cls, fixed),
                       # tf32 / bf16 trials never join a float32 study (and fp32 names stay as they were)
                       **({} if precision == "fp32" else {"precision": precision})})
    res = run_study(cls, the_fold, fixed=fixed, space=space, trials=trials, timeout=timeout, seed=seed,
                    storage=storage, name=name, label=model_name, keep_model=False, select=select,
                    log_path=None if directory is None else Path(directory) / "trials.log", trial_jobs=trial_jobs)
    users = tuning_users(the_fold)
    out = {"model": model_name, "best_value": res["best_value"], "trials": res["trials"], "selection": res["selection"],
           "complete": res["complete"], "pruned": res["pruned"], "config": res["config"], "fold": fold,
           "folds": proto.n_folds, "protocol": protocol_name, "seed": seed, "metric": res["metric"],
           "study": res["study"], "storage": _safe_url(storage), "space": spacemod.describe(space),
           "tuning_users": users, "log": res["log"], "trial_jobs": trial_jobs, **(where or {})}
    if directory is not None:
        fsutil.write_json(Path(directory) / "tuning.json", out)
    return out


def _safe_url(url: str | None) -> str | None:
    """A storage URL without its passwords, for reports."""
    from aerec import storage as storagemod

    return storagemod.safe(url)


def write_toml(result: dict, path, dataset: str, protocol: str) -> None:
    users = result.get("tuning_users") or {}
    unit = users.get("unit", "users")
    sel = result.get("selection") or {}
    how = ("" if sel.get("p") is None else
           f" (the starting setting, kept: the best trial's lead had p = {sel['p']:.3g})" if sel.get("kept_start") else
           f" (trial {sel['chosen_trial'] + 1}, ahead of the starting setting at p = {sel['p']:.3g})")
    lines = [f"# aerec tune {result['model']}: chosen setting's validation score {result['best_value']:.5f} "
             f"over {result['trials']} trials{how}"]
    if users:
        lines += [f"# tuned on fold {result.get('fold', 0)} only: fit on {users.get(f'fit_{unit}')} {unit}, scored on "
                  f"{users.get(f'score_{unit}')} validation {unit}; its {users.get(f'test_{unit}')} test {unit} were never read.",
                  f"# Report this setting on fold {result.get('fold', 0)}'s test part only (other folds' test {unit} "
                  "were seen in tuning); `aerec bench --suite tuned` tunes every fold on its own."]
    text = "\n".join(lines) + "\n" + cfgmod.dumps_toml(
        {"run": {"model": result["model"], "dataset": dataset, "protocol": protocol}, "model": result["config"]})
    fsutil.write_text(path, text)
