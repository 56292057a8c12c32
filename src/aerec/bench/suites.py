"""Benchmark suites: which models run, with which settings.

`paper` uses each model's reference hyperparameters (its Config defaults, which follow
REFERENCE §4). `quick` cuts epoch budgets so the whole ML-100K grid finishes in minutes on two
CPU cores; its numbers are a smoke test of the pipeline, not a reproduction.
"""

from __future__ import annotations

from aerec.errors import ConfigError

RATING_MODELS = ("autorec", "deeprec")
RANKING_MODELS = ("pop", "ease", "multdae", "multvae", "recvae", "cdae", "ract", "warp", "lambdanet",
                  "wmf", "slim", "svae", "edlae", "sansa")

# model -> config overrides
SUITES: dict[str, dict[str, dict]] = {
    "quick": {
        "pop": {},
        "ease": {},
        "multdae": {"epochs": 60, "patience": 10},
        "multvae": {"epochs": 60, "patience": 10},
        "recvae": {"epochs": 15, "patience": 5},
        "cdae": {"epochs": 30, "patience": 5},
        # RaCT's phases must add up to epochs; patience would count across phase boundaries
        "ract": {"epochs": 60, "actor_epochs": 40, "critic_epochs": 10, "ac_epochs": 10},
        "warp": {"epochs": 60, "patience": 10},
        "lambdanet": {"epochs": 60, "patience": 10},
        "wmf": {"factors": 50, "regularization": 1.0, "alpha": 10.0},
        "slim": {},
        "svae": {"epochs": 5},
        "edlae": {},
        "sansa": {},
        "autorec": {"epochs": 60, "patience": 10},
        "deeprec": {"epochs": 40, "patience": 10},
    },
    "paper": {
        "pop": {},
        "ease": {},
        "multdae": {},
        "multvae": {},
        "recvae": {},
        "cdae": {},
        "ract": {},
        "warp": {},
        "lambdanet": {},
        "wmf": {},
        "slim": {},
        "svae": {},
        "edlae": {},
        "sansa": {},
        "autorec": {},
        "deeprec": {},
    },
}


def suite_models(suite: str) -> dict[str, dict]:
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'; choose from {', '.join(SUITES)}")
    return SUITES[suite]
