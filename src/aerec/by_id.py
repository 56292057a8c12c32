"""Recommending by original ids: what `model.recommend_items` and `recommend_user` answer, the
errors they raise for unknown users and ratings, and the id checks a model file shares.

Split out of aerec.io (model files), which re-exports these names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from aerec.errors import DataError, ModelFileError


class UnknownUserError(DataError):
    """A user id that the model has no stored history for (the HTTP service answers 404).

    below_threshold: the user is in the training data, but none of its interactions passed the
    feedback cut; `hint` says how to fold it in, in the caller's words (CLI, HTTP or Python)."""

    def __init__(self, message: str, hint: str | None = None, below_threshold: bool = False):
        super().__init__(message)
        self.message, self.hint, self.below_threshold = message, hint, below_threshold

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


def unknown_user(user_id, below: set | None = None, rule: str | None = None) -> UnknownUserError:
    """The error for a user with no stored history; `below` holds the ids (as strings) of the
    users the feedback cut (`rule`) left out."""
    if below and str(user_id) in below:
        return UnknownUserError(f"user {user_id} has no interactions above the threshold ({rule}), so the model "
                                "holds no history for it", "fold it in from its items with recommend_items([...])",
                                below_threshold=True)
    return UnknownUserError(f"unknown user {user_id!r}: the model has no history for it")


def below_threshold_ids(model) -> tuple[set, str | None]:
    """(ids as strings, rule) of the users the model's feedback cut left out."""
    below = getattr(model, "below_threshold", None)
    if not below:
        return set(), None
    return {str(x) for x in np.asarray(below["ids"]).tolist()}, str(below["rule"])


class RatingsError(DataError):
    """Ratings the model cannot take: for an implicit model, out of range or not finite (HTTP 422)."""


# original ids as JSON values --------------------------------------------------------------


def _jsonable_ids(ids, what: str = "item ids") -> list:
    """Original ids as JSON values: numpy ints/strs become Python ints/strs. Anything else
    (objects, floats, nested lists) and ids that collide as strings are refused."""
    out = [x.item() if isinstance(x, np.generic) else x for x in np.asarray(ids).tolist()]
    for x in out:
        if isinstance(x, bool) or not isinstance(x, (int, str)):
            raise DataError(f"{what} must be integers or strings, got {type(x).__name__} {_short(x)}")
    _check_unique(out, what)
    return out


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 40 else r[:37] + "..."


def _check_unique(ids: list, what: str, where: str = "") -> None:
    # ids are matched as strings, so 1 and "1" name the same id
    seen = set()
    for x in ids:
        key = str(x)
        if key in seen:
            raise (ModelFileError if where else DataError)(f"{where}{what}: {_short(x)} appears more than once")
        seen.add(key)



# recommending by original ids ---------------------------------------------------------------


@dataclass
class Recommendations:
    item_ids: list
    scores: list[float]
    titles: list | None = None
    unknown_items: list = field(default_factory=list)
    fallback: str | None = None  # "popularity" when no known item was given

    def to_dict(self) -> dict:
        return {"items": self.item_ids, "scores": self.scores, "titles": self.titles,
                "unknown_items": self.unknown_items, "fallback": self.fallback}


def _index(ids: np.ndarray, attr_owner, name: str) -> dict:
    # ids are compared as strings so "42" from a command line finds the integer id 42
    cache = attr_owner.__dict__.setdefault("_id_index", {})
    if name not in cache or cache[name][0] is not ids:  # rebuilt when the vocabulary is replaced
        cache[name] = (ids, {str(x): i for i, x in enumerate(ids.tolist())})
    return cache[name][1]


def _vocab(model):
    if getattr(model, "item_ids", None) is None:
        raise DataError(f"{model.name} has no item vocabulary; load it from a model directory first")
    return _index(model.item_ids, model, "items")


def check_scores(model, scores: np.ndarray) -> None:
    """Refuse to rank from NaN or infinite scores: an empty or arbitrary answer would pass for a
    real one. Finite weights can still overflow (a tampered or diverged model file)."""
    if not np.isfinite(scores).all():
        raise ModelFileError(f"{model.name}: the model's scores are NaN or infinite (its weights overflow); "
                             "it cannot rank items; retrain it or restore its files")


def _top(model, scores: np.ndarray, exclude_cols, k: int, **extra) -> Recommendations:
    scores = np.asarray(scores, dtype=np.float64).copy()
    check_scores(model, scores)
    scores[list(exclude_cols)] = -np.inf
    k = int(min(k, int(np.isfinite(scores).sum())))
    top = np.argsort(-scores, kind="stable")[:k]
    titles = None
    if getattr(model, "item_titles", None) is not None:
        titles = [model.item_titles[i] for i in top.tolist()]
    return Recommendations(item_ids=_jsonable_ids(model.item_ids[top]), scores=scores[top].astype(np.float32).tolist(),
                           titles=titles, **extra)


def popularity(model) -> np.ndarray:
    """Item counts over the stored histories (the fallback for a user with no known items)."""
    if getattr(model, "histories", None) is None:
        raise DataError(f"{model.name} has no stored histories to compute a popularity fallback from")
    return np.bincount(model.histories.indices, minlength=model.n_items).astype(np.float32)


def liked_value(model) -> float:
    """The value a named item counts as when no rating is given: 1 for implicit models, the top
    of the rating range for rating models (an item a new user names is one it liked)."""
    if model.task != "rating":
        return 1.0
    stats = getattr(getattr(model, "net", None), "stats", None)
    if stats is not None:
        return float(stats[1])
    hist = getattr(model, "histories", None)
    return float(hist.data.max()) if hist is not None and hist.nnz else 1.0


def rating_range(model) -> tuple[float, float] | None:
    """(lowest, highest) rating a rating model was trained on (stored with it), else None."""
    if model.task != "rating":
        return None
    stats = getattr(getattr(model, "net", None), "stats", None)
    if stats is not None:
        return float(stats[0]), float(stats[1])
    hist = getattr(model, "histories", None)
    return (float(hist.data.min()), float(hist.data.max())) if hist is not None and hist.nnz else None


def ratings_list(ratings) -> list:
    if isinstance(ratings, str | bytes | dict):
        raise RatingsError("ratings must be a list of numbers")
    try:
        return list(ratings)
    except TypeError:
        raise RatingsError("ratings must be a list of numbers") from None


def check_ratings(model, ratings) -> np.ndarray:
    """A new user's ratings as float32, refused (RatingsError) unless the model is a rating
    model and every value is finite in float32 and within the model's rating range."""
    if model.task != "rating":
        raise RatingsError(f"{model.name} learns from implicit feedback and takes no ratings; give item ids only")
    try:
        wide = np.asarray([float(r) for r in ratings], dtype=np.float64)
    except (TypeError, ValueError):
        raise RatingsError("ratings must be numbers") from None
    with np.errstate(over="ignore", invalid="ignore"):
        values = wide.astype(np.float32)  # the model's dtype: 1e308 becomes inf here
    if not np.isfinite(values).all():
        raise RatingsError("ratings must be finite numbers (as 32-bit floats)")
    scale = rating_range(model)
    if scale is not None and len(values):
        lo, hi = scale
        bad = values[(values < np.float32(lo)) | (values > np.float32(hi))]
        if len(bad):
            raise RatingsError(f"ratings must lie within the model's rating range {lo:g}..{hi:g}, got {float(bad[0]):g}")
    return values


def check_id(x, what: str):
    """One original id: a string or an integer. A tuple, list, float or None would be looked up by
    its text and silently match nothing (or the wrong id)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (str, int, np.integer, np.str_)):
        raise DataError(f"{what} {x!r} is not an id: give a string or an integer")
    return x


def id_list(ids, what: str) -> list:
    """A list of original ids (a single string is not a list of its characters)."""
    if isinstance(ids, (str, bytes, dict)) or not hasattr(ids, "__iter__"):
        raise DataError(f"{what}s must be a list of ids, got {type(ids).__name__}")
    return [check_id(x, what) for x in ids]


def recommend_items(model, item_ids, k: int = 10, exclude=(), ratings=None) -> Recommendations:
    """Top-k for a new user given by original item ids (folded in); the given items are excluded.

    ratings: one value per item for rating models (default: the top of the rating range, see
    liked_value). Unknown ids are reported in
    ``unknown_items``; with no known item the stored-history popularity is used instead.
    """
    from aerec.config import check_k

    k = check_k(k)
    vocab = _vocab(model)
    item_ids = id_list(item_ids, "item id")
    exclude = id_list(exclude, "excluded item id")
    ratings = None if ratings is None else ratings_list(ratings)
    if ratings is not None and len(ratings) != len(item_ids):
        raise DataError(f"{len(ratings)} ratings for {len(item_ids)} items")
    values = [liked_value(model)] * len(item_ids) if ratings is None else check_ratings(model, ratings).tolist()
    cols, unknown = {}, []
    for iid, v in zip(item_ids, values):
        j = vocab.get(str(iid))
        if j is None:
            unknown.append(iid)
        else:
            cols[j] = v
    excl = set(cols) | {vocab[str(x)] for x in exclude if str(x) in vocab}
    if not cols:
        return _top(model, popularity(model), excl, k, unknown_items=unknown, fallback="popularity")
    row = sp.csr_matrix((list(cols.values()), ([0] * len(cols), list(cols))), shape=(1, model.n_items), dtype=np.float32)
    return _top(model, model.score(row)[0], excl, k, unknown_items=unknown)


def seen_columns(model, u: int) -> set:
    """Item columns a stored user has interacted with: its training row plus every other item it
    rated or touched (model.seen, when the model was saved with it)."""
    cols = set(model.histories[u].indices.tolist())
    seen = getattr(model, "seen", None)
    if seen is not None:
        cols |= set(seen[u].indices.tolist())
    return cols


def recommend_user(model, user_id, k: int = 10, exclude=(), exclude_seen: bool = True) -> Recommendations:
    """Top-k for a known user from its stored training history.

    exclude_seen (default): every item in the user's stored history is excluded, whatever its
    rating; False allows re-recommending them (repeat purchases).
    """
    from aerec.config import check_k

    k = check_k(k)
    check_id(user_id, "user id")
    exclude = id_list(exclude, "excluded item id")
    if getattr(model, "histories", None) is None:
        if getattr(model, "model_dir", None) is None:
            raise DataError(f"{model.name} was fitted on a matrix and knows no user ids; fit it on Interactions "
                            "(aerec.data.from_dataframe) or load a saved model with histories")
        raise DataError(f"{model.name} was saved without user histories; pass the user's items instead")
    users = _index(model.user_ids, model, "users")
    u = users.get(str(user_id))
    if u is None:
        raise unknown_user(user_id, *below_threshold_ids(model))
    row = model.histories[u]
    excl = seen_columns(model, u) if exclude_seen else set()
    vocab = _vocab(model)
    excl |= {vocab[str(x)] for x in exclude if str(x) in vocab}
    if row.nnz == 0:
        return _top(model, popularity(model), excl, k, fallback="popularity")
    # score_users: models with per-user state (CDAE, AutoRec) use it for their known users
    return _top(model, model.score_users(np.array([u]), model.histories[[u]])[0], excl, k)
