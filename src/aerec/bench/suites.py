"""Benchmark suites: which models run, with which settings.

`paper` uses each model's reference hyperparameters (its Config defaults, which follow
REFERENCE §4). `quick` cuts epoch budgets so the whole ML-100K grid finishes in minutes on two
CPU cores; its numbers are a smoke test of the pipeline, not a reproduction.
"""

from __future__ import annotations

from aerec.errors import ConfigError

RATING_MODELS = ("autorec", "deeprec")
RANKING_MODELS = ("pop", "ease", "multdae", "multvae", "recvae", "cdae")

# model -> config overrides
SUITES: dict[str, dict[str, dict]] = {
    "quick": {
        "pop": {},
        "ease": {},
        "multdae": {"epochs": 60, "patience": 10},
        "multvae": {"epochs": 60, "patience": 10},
        "recvae": {"epochs": 15, "patience": 5},
        "cdae": {"epochs": 30, "patience": 5},
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
        "autorec": {},
        "deeprec": {},
    },
}


def suite_models(suite: str) -> dict[str, dict]:
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'; choose from {', '.join(SUITES)}")
    return SUITES[suite]
