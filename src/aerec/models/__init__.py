"""Model registry: CLI name -> "module:Class". Modules are imported only when a model is used."""

from __future__ import annotations

import importlib

from aerec.errors import ConfigError
from aerec.models.base import Recommender

REGISTRY: dict[str, str] = {
    "pop": "aerec.models.pop:Popularity",
    "cdae": "aerec.models.cdae:CDAE",
    "ease": "aerec.models.ease:EASE",
    "autorec": "aerec.models.autorec:AutoRec",
    "deeprec": "aerec.models.deeprec:DeepRec",
    "multdae": "aerec.models.multdae:MultDAE",
    "multvae": "aerec.models.multvae:MultVAE",
    "recvae": "aerec.models.recvae:RecVAE",
    "wmf": "aerec.models.wmf:WMF",
    "slim": "aerec.models.slim:SLIM",
    "svae": "aerec.models.svae:SVAE",
    "ract": "aerec.models.ract:RaCT",
    "warp": "aerec.models.warp:WARP",
    "lambdanet": "aerec.models.lambdanet:LambdaNet",
    "edlae": "aerec.models.edlae:EDLAE",
    "sansa": "aerec.models.sansa:SANSA",
}


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> type[Recommender]:
    key = name.lower().replace("_", "-")
    if key not in REGISTRY:
        raise ConfigError(f"unknown model '{name}'; known models: {', '.join(names())}")
    module, cls = REGISTRY[key].split(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, config=None, **kwargs) -> Recommender:
    return get(name)(config, **kwargs)
