"""Evaluation scenarios as objects; each yields folds in a fixed order from ``split(data)``.

    >>> p = protocols.get("strong", folds=5, seed=0)
    >>> for fold in p.split(interactions): ...

CLI names: ``strong``, ``weak``, ``ratings-kfold``, ``ratings-holdout``, ``temporal``.
"""

from __future__ import annotations

from aerec import config as cfgmod
from aerec.errors import ConfigError
from aerec.protocols import export
from aerec.protocols.base import Protocol, RankingFold, RatingFold
from aerec.protocols.ratings import RatingHoldout, RatingKFold
from aerec.protocols.strong import StrongGeneralization
from aerec.protocols.temporal import Temporal
from aerec.protocols.weak import WeakGeneralization

PROTOCOLS: dict[str, type] = {
    "strong": StrongGeneralization,
    "weak": WeakGeneralization,
    "ratings-kfold": RatingKFold,
    "ratings-holdout": RatingHoldout,
    "temporal": Temporal,
}


def names() -> list[str]:
    return list(PROTOCOLS)


def get(name: str, folds: int | None = None, **options) -> Protocol:
    """Build a protocol by CLI name. ``folds`` is the CLI's --folds: n_folds, or the number of
    repeats for ratings-holdout; weak and global temporal splits have exactly one fold. Other
    options (strings from --set are fine) are checked against the protocol's fields."""
    cls = PROTOCOLS.get(name)
    if cls is None:
        raise ConfigError(f"unknown protocol '{name}'; choose one of: {', '.join(PROTOCOLS)}")
    if folds is not None:
        if cls is RatingHoldout:
            options.setdefault("repeats", folds)
        elif cls is WeakGeneralization or (cls is Temporal and options.get("mode", "global") == "global"):
            if int(folds) != 1:
                raise ConfigError(f"protocol '{name}' makes one fold; --folds {folds} does not apply")
        else:
            options.setdefault("n_folds", folds)
    try:
        return cfgmod.build(cls, options)
    except TypeError as e:  # a dataclass refusing an argument combination
        raise ConfigError(f"protocol '{name}': {e}") from None


__all__ = ["PROTOCOLS", "export", "Protocol", "RankingFold", "RatingFold", "RatingHoldout", "RatingKFold",
           "StrongGeneralization", "Temporal", "WeakGeneralization", "get", "names"]
