"""Models by name (``aerec.model_registry``); a model's module is imported only when it is used."""

from __future__ import annotations

from aerec.model_registry import REGISTRY, get, names  # noqa: F401  (the registry lives below io)
from aerec.models.base import Recommender


def create(name: str, config=None, **kwargs) -> Recommender:
    """A new, unfitted model by registry name (``aerec models`` lists them).

    config: a dict (or the model's Config dataclass) of settings; kwargs override single
    settings. Unknown keys or bad values raise ConfigError listing the valid keys.

        model = models.create("ease", lam=500.0).fit(aerec.data.from_dataframe(df))
        model.recommend_user("u1", k=10)
    """
    return get(name)(config, **kwargs)
