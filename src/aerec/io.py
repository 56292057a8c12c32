"""Model files: safe save/load of a fitted model, plus recommending by original ids.

A model directory holds:
- ``weights.safetensors``: torch models' ``state_tensors()``, other models' ``state_arrays()``;
- ``config.json``: format version, registry name, class, task, config, sizes, versions, meta;
- ``items.json``: item ids (column order) and titles where the data set has them;
- ``users.json`` + ``history.npz``: ids and training histories (CSR arrays) of the known users,
  so a known user can be served from its stored history;
- ``manifest.json``: SHA-256 and size of every other file, checked on load.

Loading never unpickles: weights go through safetensors, the npz is read with
``allow_pickle=False`` and everything else is JSON. A save is written into a temporary folder
beside the target and renamed into place, so readers never see a half-written model.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aerec import fsutil
from aerec.errors import DataError, ModelFileError

FORMAT_VERSION = 1
WEIGHTS, CONFIG, ITEMS, USERS, HISTORY, MANIFEST = (
    "weights.safetensors", "config.json", "items.json", "users.json", "history.npz", "manifest.json")
SEEN = "seen.npz"  # optional: every item each stored user interacted with (low ratings included)


class UnknownUserError(DataError):
    """A user id that the model has no stored history for (the HTTP service answers 404)."""


# saving -------------------------------------------------------------------------------------


def _jsonable_ids(ids) -> list:
    """Original ids as JSON values: numpy ints/strs become Python ints/strs."""
    return [x.item() if isinstance(x, np.generic) else x for x in np.asarray(ids).tolist()]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_weights(model, path: Path) -> str:
    if hasattr(model, "state_tensors"):
        from safetensors.torch import save_file

        # clone: safetensors refuses tensors that share storage (tied weights, views)
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_tensors().items()}
        save_file(tensors, str(path))
        return "torch"
    if hasattr(model, "state_arrays"):
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in model.state_arrays().items()}, str(path))
        return "numpy"
    raise ModelFileError(f"{type(model).__name__} has neither state_tensors() nor state_arrays(); it cannot be saved")


def _write_csr(path: Path, m: sp.csr_matrix) -> None:
    m.sort_indices()
    with open(path, "wb") as f:
        np.savez(f, indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32),
                 data=m.data.astype(np.float32), shape=np.asarray(m.shape, dtype=np.int64))


def save(model, path, *, item_ids=None, user_ids=None, history=None, item_titles=None, extra_meta=None,
         seen=None) -> Path:
    """Write a fitted model to the directory ``path`` (replaced atomically if it exists).

    item_ids: original id of each item column (defaults to ``model.item_ids`` of a loaded model).
    user_ids + history: ids and CSR training rows of the users to serve from stored history.
    seen: optional CSR of the same shape as history: every item each user interacted with,
    whatever its rating; recommendations exclude these by default.
    """
    from aerec import __version__

    model._check_fitted()
    path = Path(path)
    item_ids = getattr(model, "item_ids", None) if item_ids is None else item_ids
    if item_ids is None:
        raise DataError("save() needs item_ids: the original id of each item column")
    item_ids = np.asarray(item_ids)
    if len(item_ids) != model.n_items:
        raise DataError(f"{len(item_ids)} item ids for a model of {model.n_items} items")
    if item_titles is None:
        item_titles = getattr(model, "item_titles", None)
    if item_titles is not None and len(item_titles) != len(item_ids):
        raise DataError(f"{len(item_titles)} titles for {len(item_ids)} items")
    if history is None and user_ids is None:
        history, user_ids = getattr(model, "histories", None), getattr(model, "user_ids", None)
    if (history is None) != (user_ids is None):
        raise DataError("save() needs user_ids and history together")
    if seen is None and history is not None and getattr(model, "seen", None) is not None \
            and getattr(model, "histories", None) is history:
        seen = model.seen
    if seen is not None:
        if history is None:
            raise DataError("save() takes seen only with user_ids and history")
        seen = sp.csr_matrix(seen, dtype=np.float32)
        if seen.shape != (len(user_ids), model.n_items):
            raise DataError(f"seen has shape {seen.shape}, expected {(len(user_ids), model.n_items)}")
    if history is not None:
        history = sp.csr_matrix(history, dtype=np.float32)
        if history.shape != (len(user_ids), model.n_items):
            raise DataError(f"history has shape {history.shape}, expected {(len(user_ids), model.n_items)}")
    if path.exists() and not (path.is_dir() and ((path / MANIFEST).exists() or not any(path.iterdir()))):
        raise ModelFileError(f"{path}: exists and is not an aerec model directory; refusing to replace it")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        kind = _write_weights(model, tmp / WEIGHTS)
        cls = type(model)
        config = {
            "format_version": FORMAT_VERSION, "model": model.name, "class": f"{cls.__module__}:{cls.__qualname__}",
            "task": model.task, "config": model.config_dict(), "n_users": int(model.n_users),
            "n_items": int(model.n_items), "weights": kind, "has_history": history is not None,
            "aerec_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "meta": dict(extra_meta or getattr(model, "meta", None) or {}),
        }
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=fsutil._json_default) + "\n")
        items = {"ids": _jsonable_ids(item_ids)}
        if item_titles is not None:
            items["titles"] = [None if t is None else str(t) for t in np.asarray(item_titles, dtype=object)]
        (tmp / ITEMS).write_text(json.dumps(items, ensure_ascii=False) + "\n")
        if history is not None:
            (tmp / USERS).write_text(json.dumps({"ids": _jsonable_ids(user_ids)}, ensure_ascii=False) + "\n")
            _write_csr(tmp / HISTORY, history)
            if seen is not None:
                _write_csr(tmp / SEEN, seen)
        files = {p.name: {"sha256": fsutil.sha256_file(p), "bytes": p.stat().st_size}
                 for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, "files": files}, indent=2) + "\n")
        for p in tmp.iterdir():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename tmp to path. An existing model is moved aside first and deleted only afterwards, so
    at every moment either the old or the new complete model is on disk."""
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / "model")
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old / "model", path)
        raise
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# loading ------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing from the model directory") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: not valid JSON ({e})") from None


def verify(path) -> dict:
    """Check the manifest and every checksum; return the parsed config.json."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"{path}: not a model directory")
    manifest = _read_json(path / MANIFEST)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path / MANIFEST}: format version {manifest.get('format_version')!r} is not "
                             f"supported (this aerec reads version {FORMAT_VERSION})")
    files = manifest.get("files")
    if not isinstance(files, dict) or CONFIG not in files or WEIGHTS not in files:
        raise ModelFileError(f"{path / MANIFEST}: malformed (no file list with {CONFIG} and {WEIGHTS})")
    for name, entry in files.items():
        f = path / name
        if Path(name).name != name:
            raise ModelFileError(f"{path / MANIFEST}: bad file name {name!r}")
        if not f.is_file():
            raise ModelFileError(f"{f}: missing from the model directory")
        if f.stat().st_size != entry.get("bytes") or fsutil.sha256_file(f) != entry.get("sha256"):
            raise ModelFileError(f"{f}: checksum mismatch (the file is truncated or was modified)")
    config = _read_json(path / CONFIG)
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path / CONFIG}: format version {config.get('format_version')!r} is not "
                             f"supported (this aerec reads version {FORMAT_VERSION})")
    return config


def load(path, *, device: str | None = None):
    """Load a model directory written by ``save``: a fitted model with its vocabularies attached
    (``item_ids``, ``item_titles``, ``user_ids``, ``histories``, ``meta``).

    device: for torch models, overrides the saved one; by default a model saved on a GPU is
    loaded on the CPU when no GPU is present.
    """
    from aerec import models

    path = Path(path)
    meta = verify(path)
    try:
        cls = models.get(meta["model"])
        cfg = dict(meta["config"])
        n_users, n_items = int(meta["n_users"]), int(meta["n_items"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path / CONFIG}: malformed ({type(e).__name__}: {e})") from None
    if "device" in cfg:
        import torch

        if device is not None:
            cfg["device"] = device
        elif str(cfg["device"]).startswith("cuda") and not torch.cuda.is_available():
            cfg["device"] = "cpu"
    model = cls(cfg)
    model.n_users, model.n_items = n_users, n_items
    try:
        if meta.get("weights") == "torch":
            from safetensors.torch import load_file

            model.init_network()
            model.load_state_tensors(load_file(str(path / WEIGHTS), device="cpu"))
        else:
            from safetensors.numpy import load_file

            model.load_state_arrays(load_file(str(path / WEIGHTS)))
    except ModelFileError:
        raise
    except Exception as e:  # a mismatch between the weights and the rebuilt model
        raise ModelFileError(f"{path / WEIGHTS}: does not fit {meta['model']} ({type(e).__name__}: {e})") from None
    model.fitted = True
    items = _read_json(path / ITEMS)
    model.item_ids = np.asarray(items["ids"])
    model.item_titles = np.asarray(items["titles"], dtype=object) if "titles" in items else None
    if len(model.item_ids) != n_items:
        raise ModelFileError(f"{path / ITEMS}: {len(model.item_ids)} ids for a model of {n_items} items")
    model.user_ids, model.histories, model.seen = None, None, None
    if meta.get("has_history"):
        model.user_ids = np.asarray(_read_json(path / USERS)["ids"])
        try:
            with np.load(path / HISTORY, allow_pickle=False) as z:
                shape = tuple(int(x) for x in z["shape"])
                model.histories = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        except (OSError, ValueError, KeyError) as e:
            raise ModelFileError(f"{path / HISTORY}: cannot be read ({e})") from None
        if shape != (len(model.user_ids), n_items):
            raise ModelFileError(f"{path / HISTORY}: shape {shape} does not match {USERS} and {ITEMS}")
        if (path / SEEN).exists():  # verify() has checked it when the manifest lists it
            try:
                with np.load(path / SEEN, allow_pickle=False) as z:
                    model.seen = sp.csr_matrix((z["data"], z["indices"], z["indptr"]),
                                               shape=tuple(int(x) for x in z["shape"]))
            except (OSError, ValueError, KeyError) as e:
                raise ModelFileError(f"{path / SEEN}: cannot be read ({e})") from None
            if model.seen.shape != shape:
                raise ModelFileError(f"{path / SEEN}: shape {model.seen.shape} does not match {HISTORY}")
    model.meta = dict(meta.get("meta") or {})
    model.model_dir = path
    return model


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


def _top(model, scores: np.ndarray, exclude_cols, k: int, **extra) -> Recommendations:
    scores = np.asarray(scores, dtype=np.float64).copy()
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


def recommend_items(model, item_ids, k: int = 10, exclude=(), ratings=None) -> Recommendations:
    """Top-k for a new user given by original item ids (folded in); the given items are excluded.

    ratings: one value per item for rating models (default: the top of the rating range, see
    liked_value). Unknown ids are reported in
    ``unknown_items``; with no known item the stored-history popularity is used instead.
    """
    if k < 1:
        raise DataError("k must be at least 1")
    vocab = _vocab(model)
    item_ids = list(item_ids)
    values = [liked_value(model)] * len(item_ids) if ratings is None else [float(r) for r in ratings]
    if len(values) != len(item_ids):
        raise DataError(f"{len(values)} ratings for {len(item_ids)} items")
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
    if k < 1:
        raise DataError("k must be at least 1")
    if getattr(model, "histories", None) is None:
        if getattr(model, "model_dir", None) is None:
            raise DataError(f"{model.name} was fitted on a matrix and knows no user ids; fit it on Interactions "
                            "(aerec.data.from_dataframe) or load a saved model with histories")
        raise DataError(f"{model.name} was saved without user histories; pass the user's items instead")
    users = _index(model.user_ids, model, "users")
    u = users.get(str(user_id))
    if u is None:
        raise UnknownUserError(f"unknown user {user_id!r}: the model has no history for it")
    row = model.histories[u]
    excl = seen_columns(model, u) if exclude_seen else set()
    vocab = _vocab(model)
    excl |= {vocab[str(x)] for x in exclude if str(x) in vocab}
    if row.nnz == 0:
        return _top(model, popularity(model), excl, k, fallback="popularity")
    # score_users: models with per-user state (CDAE, AutoRec) use it for their known users
    return _top(model, model.score_users(np.array([u]), model.histories[[u]])[0], excl, k)
