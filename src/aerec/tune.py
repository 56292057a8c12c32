"""Hyperparameter search with Optuna (optional `tune` extra), on validation data only.

Each trial fits the model on fold 0's training part and scores it on that fold's validation part
(valid_in/valid_out for top-N, the validation ratings for rating models). Test data are never
touched. The best settings are written as TOML that `aerec train --config` accepts.
"""

from __future__ import annotations

import dataclasses
import typing

from aerec import config as cfgmod
from aerec import fsutil, ui
from aerec.errors import AerecError

# field name -> (low, high, log scale); only fields that the model's Config has are searched
SPACE: dict[str, tuple[float, float, bool]] = {
    "lr": (1e-4, 1e-2, True),
    "dropout": (0.0, 0.8, False),
    "anneal_cap": (0.05, 1.0, False),
    "lam": (1e-3, 1e3, True),
    "l2": (1.0, 1e4, True),
    "gamma": (1e-3, 5e-2, True),
    "weight_decay": (1e-7, 1e-2, True),
    "regularization": (1e-3, 1e2, True),  # WMF's ALS ridge
    "alpha": (1.0, 100.0, True),  # WMF's confidence weight
}
SPACE_INT: dict[str, tuple[int, int]] = {"latent": (32, 400), "hidden_size": (50, 1000), "factors": (16, 256)}


def search_space(model_cls) -> dict:
    hints = typing.get_type_hints(model_cls.Config)
    fields = {f.name for f in dataclasses.fields(model_cls.Config)}
    space = {k: v for k, v in SPACE.items() if k in fields and hints[k] in (float, float | None)}
    space.update({k: v for k, v in SPACE_INT.items() if k in fields and hints[k] is int})
    return space


def tune(model_name: str, data, protocol_name: str, trials: int, seed: int = 0, folds: int = 5,
         fixed: dict | None = None, timeout: float | None = None, protocol_options: dict | None = None) -> dict:
    try:
        import optuna
    except ImportError:
        raise AerecError("aerec tune needs Optuna: pip install 'aerec[tune]'") from None
    from aerec import models, protocols
    from aerec.models.training import monitor_for, validation_score

    cls = models.get(model_name)
    proto = protocols.get(protocol_name, folds=folds, **{"seed": seed, **(protocol_options or {})})
    if proto.task != cls.task:
        raise AerecError(f"model '{model_name}' is a {cls.task} model; protocol '{protocol_name}' is for {proto.task}")
    fold = next(iter(proto.split(data)))
    valid = fold.valid if cls.task == "rating" else (fold.valid_in, fold.valid_out)
    space = search_space(cls)
    if not space:
        raise AerecError(f"model '{model_name}' has no tunable settings")
    _, higher = monitor_for(cls)

    def objective(trial):
        params = {}
        for k, spec in space.items():
            if len(spec) == 3:
                params[k] = trial.suggest_float(k, spec[0], spec[1], log=spec[2])
            else:
                params[k] = trial.suggest_int(k, spec[0], spec[1])
        model = cls({**(fixed or {}), **params, "seed": seed})
        model.fit(fold.train, valid, **({"progress": False} if hasattr(model, "init_network") else {}))
        return validation_score(model, valid)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if higher else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, timeout=timeout, show_progress_bar=not ui.quiet())
    best = {**(fixed or {}), **study.best_params, "seed": seed}
    cfg = cfgmod.to_dict(cfgmod.build(cls.Config, best))
    return {"model": model_name, "best_value": study.best_value, "trials": len(study.trials), "config": cfg}


def write_toml(result: dict, path, dataset: str, protocol: str) -> None:
    text = (f"# aerec tune {result['model']}: best validation score {result['best_value']:.5f} "
            f"over {result['trials']} trials\n"
            + cfgmod.dumps_toml({"run": {"model": result["model"], "dataset": dataset, "protocol": protocol},
                                 "model": result["config"]}))
    fsutil.write_text(path, text)
