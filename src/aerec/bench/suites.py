"""Benchmark suites: which models run, with which settings.

`paper` uses each model's reference hyperparameters (its Config defaults, which follow
REFERENCE §4, with ``schedule = "reference"`` where a model has that setting). `quick` cuts epoch budgets so the whole ML-100K grid finishes in minutes on two
CPU cores; its numbers are a smoke test of the pipeline, not a reproduction.
"""

from __future__ import annotations

from aerec.errors import ConfigError

RATING_MODELS = ("autorec", "deeprec")
RANKING_MODELS = ("pop", "ease", "multdae", "multvae", "recvae", "cdae", "ract", "warp", "lambdanet",
                  "wmf", "slim", "svae", "macridvae", "hvamp", "bivae", "edlae", "sansa")

# model -> config overrides
SUITES: dict[str, dict[str, dict]] = {
    "quick": {
        # Cut so that 5 folds of every model finish within 5 minutes on 2 cores (`make demo`,
        # --jobs 2); the README lists the cuts.
        "pop": {},
        "ease": {},
        "multdae": {"epochs": 60, "patience": 10},
        "multvae": {"epochs": 60, "patience": 10},
        # reference: scaled would lift the 10-epoch cut to its ML-20M-equivalent ceiling
        "recvae": {"epochs": 10, "patience": 5, "schedule": "reference"},
        "cdae": {"epochs": 30, "patience": 5},
        # RaCT's phases must add up to epochs; patience would count across phase boundaries
        "ract": {"epochs": 60, "actor_epochs": 40, "critic_epochs": 10, "ac_epochs": 10},
        "warp": {"epochs": 30, "patience": 10},
        "lambdanet": {"epochs": 30, "patience": 10},
        "wmf": {"factors": 50, "regularization": 1.0, "alpha": 10.0},
        "slim": {},
        "svae": {"epochs": 2},
        "autorec": {"epochs": 40, "patience": 5},
        "deeprec": {"epochs": 15, "patience": 5},
        "macridvae": {"epochs": 30, "patience": 10},
        "hvamp": {"epochs": 15, "patience": 10, "warmup": 5},  # about 4x a Mult-VAE epoch
        "bivae": {"epochs": 30, "patience": 10},
        "edlae": {},
        # no sansa: it needs the `sansa` extra (SuiteSparse from apt), which `make demo` does not install
    },
    # schedule=reference: the references' literal step-counted schedules, whatever the defaults are
    "paper": {
        "pop": {},
        "ease": {},
        "multdae": {},
        "multvae": {"schedule": "reference"},
        "recvae": {"schedule": "reference"},
        "cdae": {},
        "ract": {"schedule": "reference"},
        "warp": {"schedule": "reference"},
        "lambdanet": {"schedule": "reference"},
        "wmf": {},
        "slim": {},
        "svae": {"schedule": "reference"},
        "macridvae": {},
        "hvamp": {},
        "bivae": {},
        "edlae": {},
        "sansa": {},
        "autorec": {},
        "deeprec": {"schedule": "reference"},
    },
}


def suite_models(suite: str) -> dict[str, dict]:
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'; choose from {', '.join(SUITES)}")
    return SUITES[suite]


# `aerec bench --smoke`: every model of the suite on SMOKE_FOLDS folds with a token budget. It
# proves the installation and the whole pipeline (CI runs it in a fresh environment); its numbers
# mean nothing. Models not listed here get one epoch when they have an `epochs` setting.
SMOKE_FOLDS = 3
SMOKE: dict[str, dict] = {
    "ract": {"epochs": 3, "actor_epochs": 1, "critic_epochs": 1, "ac_epochs": 1},
    "recvae": {"epochs": 1},
    "wmf": {"iterations": 2},
    "slim": {"max_iter": 20},
    "autorec": {"epochs": 2},
    "deeprec": {"epochs": 2},
    "multdae": {"epochs": 2},
    "multvae": {"epochs": 2},
    "cdae": {"epochs": 2},
    "warp": {"epochs": 2},
    "lambdanet": {"epochs": 2},
    "svae": {"epochs": 1},
}


def smoke_config(model: str, config: dict) -> dict:
    """The suite's config for `model` cut to the smoke budget."""
    import dataclasses

    from aerec import models as registry

    if model in SMOKE:
        return {**config, **SMOKE[model]}
    fields = {f.name for f in dataclasses.fields(registry.get(model).Config)}
    return {**config, "epochs": 1} if "epochs" in fields else dict(config)


# CPU seconds per (model, fold) cell, training and evaluation, one thread, quick budgets, ML-100K
# (100,000 ratings; the cells' `cpu_seconds` in a quick run): the ETA's start before a cell ends.
QUICK_SECONDS = {
    "pop": 0.1, "ease": 1.7, "multdae": 2.2, "multvae": 5.7, "recvae": 5.8, "cdae": 2.9, "ract": 5.6,
    "warp": 6.6, "lambdanet": 9.7, "wmf": 1.1, "slim": 2.7, "svae": 13.5, "autorec": 6.5, "deeprec": 14.2,
}
_QUICK_EPOCHS = {m: c["epochs"] for m, c in SUITES["quick"].items() if "epochs" in c}


def expected_seconds(model: str, config: dict, n_interactions: int) -> float:
    """A rough cost of one cell: the quick-suite time, scaled by epochs and by data size."""
    import dataclasses

    from aerec import models as registry

    base = QUICK_SECONDS.get(model, sum(QUICK_SECONDS.values()) / len(QUICK_SECONDS))
    if model in _QUICK_EPOCHS:
        defaults = {f.name: f.default for f in dataclasses.fields(registry.get(model).Config)}
        epochs = config.get("epochs", defaults.get("epochs"))
        if isinstance(epochs, int) and epochs > 0:
            base *= epochs / _QUICK_EPOCHS[model]
    return base * max(n_interactions, 1) / 100_000
