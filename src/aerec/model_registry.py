"""Model names -> "module:Class". A model's module is imported only when it is asked for.

This sits below both ``aerec.io`` and ``aerec.models`` so that loading a model file can find
its class without ``aerec.io`` importing the models package (which imports ``io`` back).
"""

from __future__ import annotations

import importlib

from aerec.errors import ConfigError

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
    "macridvae": "aerec.models.macridvae:MacridVAE",
    "hvamp": "aerec.models.hvamp:HVamp",
    "bivae": "aerec.models.bivae:BiVAE",
    "edlae": "aerec.models.edlae:EDLAE",
    "sansa": "aerec.models.sansa:SANSA",
}


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> type:
    """The model class registered under ``name`` (a ``aerec.models.base.Recommender``)."""
    key = name.lower().replace("_", "-")
    if key not in REGISTRY:
        raise ConfigError(f"unknown model '{name}'; known models: {', '.join(names())}")
    module, cls = REGISTRY[key].split(":")
    return getattr(importlib.import_module(module), cls)
