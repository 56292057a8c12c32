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
    "macridvae": "aerec.models.macridvae:MacridVAE",
    "hvamp": "aerec.models.hvamp:HVamp",
    "bivae": "aerec.models.bivae:BiVAE",
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
    """A new, unfitted model by registry name (``aerec models`` lists them).

    config: a dict (or the model's Config dataclass) of settings; kwargs override single
    settings. Unknown keys or bad values raise ConfigError listing the valid keys.

        model = models.create("ease", lam=500.0).fit(aerec.data.from_dataframe(df))
        model.recommend_user("u1", k=10)
    """
    return get(name)(config, **kwargs)
