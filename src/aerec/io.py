"""Model files: safe save/load of a fitted model (recommending by original ids: aerec.by_id).

A model directory holds:
- ``weights.safetensors``: torch models' ``state_tensors()``, other models' ``state_arrays()``;
- ``config.json``: format version, registry name, class, task, config, sizes, versions, meta;
- ``items.json``: item ids (column order) and titles where the data set has them;
- ``users.json`` + ``history.npz``: ids and training histories (CSR arrays) of the known users,
  so a known user can be served from its stored history;
- ``manifest.json``: SHA-256 and size of every other file; ``load`` reads no file it does not list;
- ``manifest.hmac``: only with $AEREC_MODEL_KEY set, an HMAC-SHA256 of the manifest under that key.

Loading never unpickles: weights go through safetensors, the npz is read with
``allow_pickle=False`` and everything else is JSON. The checksums detect corruption, not a
malicious author, so the content is checked too (schemas, index ranges, finite weights); the
HMAC adds authenticity for those who need it. A save is written into a temporary folder beside
the target and renamed into place, so readers never see a half-written model.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aerec import fsutil
from aerec import model_headers as headers
from aerec.by_id import (  # noqa: F401  (re-exported: aerec.io's public names before the split)
    RatingsError,
    Recommendations,
    UnknownUserError,
    _check_unique,
    _jsonable_ids,
    _short,
    below_threshold_ids,
    check_id,
    check_ratings,
    check_scores,
    id_list,
    liked_value,
    popularity,
    rating_range,
    ratings_list,
    recommend_items,
    recommend_user,
    seen_columns,
    unknown_user,
)
from aerec.errors import AerecError, DataError, ModelFileError

FORMAT_VERSION = 1
WEIGHTS, CONFIG, ITEMS, USERS, HISTORY, MANIFEST = (
    "weights.safetensors", "config.json", "items.json", "users.json", "history.npz", "manifest.json")
SIGNATURE = "manifest.hmac"  # written only when $AEREC_MODEL_KEY is set
KEY_ENV = "AEREC_MODEL_KEY"
SEEN = "seen.npz"  # optional: every item each stored user interacted with (low ratings included)
LISTED = (WEIGHTS, CONFIG, ITEMS, USERS, HISTORY, SEEN)  # the files a manifest may (and load does) cover



# saving -------------------------------------------------------------------------------------



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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def model_key() -> bytes | None:
    """The HMAC key from $AEREC_MODEL_KEY, or None when it is unset or empty."""
    key = os.environ.get(KEY_ENV, "")
    return key.encode() if key else None


def _signature(key: bytes, manifest_bytes: bytes) -> str:
    return hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()


def _write_csr(path: Path, m: sp.csr_matrix) -> None:
    m.sort_indices()
    with open(path, "wb") as f:
        np.savez(f, indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32),
                 data=m.data.astype(np.float32), shape=np.asarray(m.shape, dtype=np.int64))


def save(model, path, *, item_ids=None, user_ids=None, history=None, item_titles=None, extra_meta=None,
         seen=None, below_threshold=None) -> Path:
    """Write a fitted model to the directory ``path`` (replaced atomically if it exists).

    item_ids: original id of each item column (defaults to ``model.item_ids`` of a loaded model).
    user_ids + history: ids and CSR training rows of the users to serve from stored history.
    With $AEREC_MODEL_KEY set, ``manifest.hmac`` signs the manifest (see ``load``).
    Files are 0644 and the folder 0755 (less what the umask removes), so a service account can read them.
    seen: optional CSR of the same shape as history: every item each user interacted with,
    whatever its rating; recommendations exclude these by default.
    below_threshold: optional {"rule": "value > 3.5", "ids": [...]}: the users the feedback cut
    left out, so a request for one is answered with that reason rather than "unknown user".
    """
    from aerec import __version__

    model._check_fitted()
    path = Path(path)
    item_ids = getattr(model, "item_ids", None) if item_ids is None else item_ids
    if item_ids is None:
        raise DataError("save() needs item_ids: the original id of each item column")
    item_ids = np.asarray(item_ids)
    if item_ids.ndim != 1:
        raise DataError("item ids must be a flat list of integers or strings")
    if len(item_ids) != model.n_items:
        raise DataError(f"{len(item_ids)} item ids for a model of {model.n_items} items")
    ids_json = _jsonable_ids(item_ids)
    if item_titles is None:
        item_titles = getattr(model, "item_titles", None)
    if item_titles is not None and len(item_titles) != len(item_ids):
        raise DataError(f"{len(item_titles)} titles for {len(item_ids)} items")
    if history is None and user_ids is None:
        history, user_ids = getattr(model, "histories", None), getattr(model, "user_ids", None)
        if below_threshold is None:
            below_threshold = getattr(model, "below_threshold", None)
    if (history is None) != (user_ids is None):
        raise DataError("save() needs user_ids and history together")
    users_json = None
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
        if np.asarray(user_ids).ndim != 1:
            raise DataError("user ids must be a flat list of integers or strings")
        if history.shape != (len(user_ids), model.n_items):
            raise DataError(f"history has shape {history.shape}, expected {(len(user_ids), model.n_items)}")
        users_json = {"ids": _jsonable_ids(user_ids, "user ids")}
        if below_threshold:
            users_json["below_threshold"] = {"rule": str(below_threshold["rule"]),
                                             "ids": _jsonable_ids(below_threshold["ids"], "user ids")}
    try:
        if path.exists() and not (path.is_dir() and ((path / MANIFEST).exists() or not any(path.iterdir()))):
            raise ModelFileError(f"{path}: exists and is not an aerec model directory; refusing to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be written ({e.strerror or e})") from None
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
        try:
            text = json.dumps(config, indent=2, default=fsutil._json_default, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise DataError(f"{path}: the model's config or meta holds a value JSON cannot store ({e})") from None
        (tmp / CONFIG).write_text(text + "\n")
        items = {"ids": ids_json}
        if item_titles is not None:
            items["titles"] = [None if t is None else str(t) for t in np.asarray(item_titles, dtype=object)]
        (tmp / ITEMS).write_text(json.dumps(items, ensure_ascii=False) + "\n")
        if history is not None:
            (tmp / USERS).write_text(json.dumps(users_json, ensure_ascii=False) + "\n")
            _write_csr(tmp / HISTORY, history)
            if seen is not None:
                _write_csr(tmp / SEEN, seen)
        files = {p.name: {"sha256": fsutil.sha256_file(p), "bytes": p.stat().st_size}
                 for p in sorted(tmp.iterdir())}
        manifest = (json.dumps({"format_version": FORMAT_VERSION, "files": files}, indent=2) + "\n").encode()
        (tmp / MANIFEST).write_bytes(manifest)
        key = model_key()
        if key is not None:
            (tmp / SIGNATURE).write_text(_signature(key, manifest) + "\n")
        mask = _umask()
        for p in tmp.iterdir():
            os.chmod(p, 0o644 & ~mask)
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o755 & ~mask)  # mkdtemp makes 0700 folders
        _fsync_dir(tmp)
        _swap_into_place(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelFileError(f"{path}: cannot be written ({e.strerror or e})") from None
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
#
# A model directory is untrusted input: the checksums catch corruption, not a deliberate edit
# (whoever edits a file can rewrite the manifest too). So every file is also checked for what it
# must hold (types, lengths, index ranges, finite numbers) and each error is one line naming the
# file and field. $AEREC_MODEL_KEY adds authenticity: an HMAC over the manifest.


def _read_bytes(path: Path) -> bytes:
    try:
        if not path.is_file():
            raise FileNotFoundError
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing from the model directory") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be read ({e.strerror or e})") from None


def _read_json(path: Path, raw: bytes | None = None):
    raw = _read_bytes(path) if raw is None else raw
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: not valid JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _bad(path: Path, field: str, problem: str) -> ModelFileError:
    return ModelFileError(f"{path}: field '{field}' {problem}")


def _expect(path: Path, obj: dict, field: str, types, what: str, required: bool = True):
    if field not in obj:
        if required:
            raise _bad(path, field, "is missing")
        return None
    v = obj[field]
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _bad(path, field, f"must be {what}, got {_short(v)}")
    if not isinstance(v, types):
        raise _bad(path, field, f"must be {what}, got {type(v).__name__}")
    return v


def _count(path: Path, obj: dict, field: str, low: int) -> int:
    v = _expect(path, obj, field, int, "an integer")
    if v < low:
        raise _bad(path, field, f"must be at least {low}, got {v}")
    return v


def _id_list(path: Path, obj: dict, field: str, n: int | None) -> list:
    ids = _expect(path, obj, field, list, "a list of ids")
    if n is not None and len(ids) != n:
        raise _bad(path, field, f"holds {len(ids)} ids, expected {n}")
    for i, x in enumerate(ids):
        if isinstance(x, bool) or not isinstance(x, (int, str)):
            raise _bad(path, f"{field}[{i}]", f"must be an integer or a string, got {type(x).__name__}")
    _check_unique(ids, f"field '{field}'", f"{path}: ")
    return ids


def _id_array(ids: list) -> np.ndarray:
    """Ids as an array that keeps every value: integers beyond int64 (uint64 ids of 2^63 and
    above) would otherwise become inexact floats."""
    if ids and all(isinstance(x, int) for x in ids) and not all(-2**63 <= x < 2**63 for x in ids):
        if all(0 <= x < 2**64 for x in ids):
            return np.asarray(ids, dtype=np.uint64)
        return np.asarray(ids, dtype=object)
    return np.asarray(ids)


def _check_manifest(path: Path) -> dict:
    """The manifest's schema and the HMAC; returns its file table."""
    mpath = path / MANIFEST
    raw = _read_bytes(mpath)
    key = model_key()
    if key is not None:
        sig_path = path / SIGNATURE
        if not sig_path.is_file():
            raise ModelFileError(f"{sig_path}: missing, and ${KEY_ENV} is set: the model is not signed with a key")
        try:
            sig = sig_path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            sig = ""
        if not hmac.compare_digest(sig.encode(), _signature(key, raw).encode()):
            raise ModelFileError(f"{sig_path}: does not match the manifest under ${KEY_ENV} "
                                 "(another key, or the model was modified)")
    manifest = _read_json(mpath, raw)
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{mpath}: must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{mpath}: format version {_short(manifest.get('format_version'))} is not "
                             f"supported (this aerec reads version {FORMAT_VERSION})")
    files = _expect(mpath, manifest, "files", dict, "an object of file entries")
    for name, entry in files.items():
        if name not in LISTED:
            raise _bad(mpath, f"files.{_short(name)}", f"is not a model file (expected some of {', '.join(LISTED)})")
        if not isinstance(entry, dict):
            raise _bad(mpath, f"files.{name}", f"must be an object, got {type(entry).__name__}")
        sha, size = entry.get("sha256"), entry.get("bytes")
        if not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
            raise _bad(mpath, f"files.{name}.sha256", "must be 64 lowercase hex digits")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _bad(mpath, f"files.{name}.bytes", "must be a non-negative integer")
    for name in (CONFIG, WEIGHTS, ITEMS):
        if name not in files:
            raise _bad(mpath, "files", f"does not list {name}")
    return files


def _verified(path: Path, files: dict, name: str) -> Path:
    """path/name after checking that the manifest lists it and that its size and SHA-256 match."""
    f = path / name
    entry = files.get(name)
    if entry is None:
        raise ModelFileError(f"{path / MANIFEST}: field 'files' does not list {name}, which the model needs")
    try:
        if not f.is_file():
            raise ModelFileError(f"{f}: missing from the model directory")
        if f.stat().st_size != entry["bytes"] or fsutil.sha256_file(f) != entry["sha256"]:
            raise ModelFileError(f"{f}: checksum mismatch (the file is truncated or was modified)")
    except OSError as e:
        raise ModelFileError(f"{f}: cannot be read ({e.strerror or e})") from None
    return f


def _check_config(path: Path, config) -> dict:
    cpath = path / CONFIG
    if not isinstance(config, dict):
        raise ModelFileError(f"{cpath}: must be a JSON object, got {type(config).__name__}")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{cpath}: format version {_short(config.get('format_version'))} is not "
                             f"supported (this aerec reads version {FORMAT_VERSION})")
    _expect(cpath, config, "model", str, "a model name")
    _expect(cpath, config, "task", str, "'ranking' or 'rating'")
    _expect(cpath, config, "config", dict, "an object of settings")
    _count(cpath, config, "n_users", 0)
    _count(cpath, config, "n_items", 1)
    if config.get("weights") not in ("torch", "numpy"):
        raise _bad(cpath, "weights", f"must be 'torch' or 'numpy', got {_short(config.get('weights'))}")
    _expect(cpath, config, "has_history", bool, "true or false")
    _expect(cpath, config, "meta", dict, "an object", required=False)
    for name in ("aerec_version", "created", "class"):
        _expect(cpath, config, name, str, "a string", required=False)
    return config


def verify(path) -> dict:
    """Check the manifest (schema, HMAC when $AEREC_MODEL_KEY is set) and the checksum of every
    file that ``load`` reads; return the parsed, schema-checked config.json."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"{path}: not a model directory")
    files = _check_manifest(path)
    config = _check_config(path, _read_json(_verified(path, files, CONFIG)))
    for name in (WEIGHTS, ITEMS) + ((USERS, HISTORY) if config["has_history"] else ()):
        _verified(path, files, name)
    if config["has_history"] and SEEN in files:  # optional: read only when listed, so always checked
        _verified(path, files, SEEN)
    return config


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _load_weights(model, meta: dict, wpath: Path) -> None:
    """Weights into the rebuilt model: names, shapes and dtypes must match it, values be finite."""
    try:
        if meta["weights"] == "torch":
            import torch
            from safetensors.torch import load_file

            if not hasattr(model, "load_state_tensors"):
                raise ModelFileError(f"{wpath}: holds torch weights, but {meta['model']} is not a torch model")
            headers.check_tensors(model, meta["model"], wpath)
            tensors = load_file(str(wpath), device="cpu")
            model.init_network()
            want = {k: (tuple(v.shape), v.dtype) for k, v in model.state_tensors().items()}
            for name in sorted(set(want) - set(tensors)):
                raise ModelFileError(f"{wpath}: tensor '{name}' is missing")
            for name in sorted(set(tensors) - set(want)):
                raise ModelFileError(f"{wpath}: tensor '{name}' is not part of {meta['model']}")
            for name, t in tensors.items():
                shape, dtype = want[name]
                if tuple(t.shape) != shape:
                    raise ModelFileError(f"{wpath}: tensor '{name}' has shape {tuple(t.shape)}, "
                                         f"{meta['model']} with this config needs {shape}")
                if t.dtype != dtype:
                    raise ModelFileError(f"{wpath}: tensor '{name}' is {t.dtype}, expected {dtype}")
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise ModelFileError(f"{wpath}: tensor '{name}' holds NaN or infinite values")
            model.load_state_tensors(tensors)
        else:
            from safetensors.numpy import load_file

            if not hasattr(model, "load_state_arrays"):
                raise ModelFileError(f"{wpath}: holds numpy weights, but {meta['model']} is not a numpy model")
            arrays = load_file(str(wpath))
            for name, a in arrays.items():
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    raise ModelFileError(f"{wpath}: array '{name}' holds NaN or infinite values")
            model.load_state_arrays(arrays)
            model.fitted = True
            # numpy models keep no shape list to compare with: score an empty row to check the fit
            probe = np.asarray(model.score(sp.csr_matrix((1, model.n_items), dtype=np.float32)))
            if probe.shape != (1, model.n_items):
                raise ModelFileError(f"{wpath}: weights score {probe.shape[-1]} items, "
                                     f"the model has {model.n_items}")
    except ModelFileError:
        raise
    except KeyError as e:
        raise ModelFileError(f"{wpath}: array {e} is missing") from None
    except Exception as e:  # safetensors header errors, a mismatch the checks above do not foresee
        raise ModelFileError(f"{wpath}: does not fit {meta['model']} ({_first_line(e)})") from None


def _load_history(hpath: Path, n_users: int, n_items: int) -> sp.csr_matrix:
    headers.check_history(hpath, n_users, n_items, f"{USERS} and {ITEMS}")
    try:
        with np.load(hpath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("indptr", "indices", "data", "shape")}
    except KeyError as e:
        raise ModelFileError(f"{hpath}: array {e} is missing") from None
    except Exception as e:  # not a zip, a pickled array, a bad header
        raise ModelFileError(f"{hpath}: cannot be read ({_first_line(e)})") from None
    for k in ("indptr", "indices", "shape"):
        if arrays[k].ndim != 1 or arrays[k].dtype.kind not in "iu":
            raise _bad(hpath, k, "must be a 1-d integer array")
    data = arrays["data"]
    if data.ndim != 1 or data.dtype.kind != "f":
        raise _bad(hpath, "data", "must be a 1-d float array")
    shape = tuple(int(x) for x in arrays["shape"])
    if shape != (n_users, n_items):
        raise _bad(hpath, "shape", f"is {shape}, {USERS} and {ITEMS} give {(n_users, n_items)}")
    indptr, indices = arrays["indptr"].astype(np.int64), arrays["indices"].astype(np.int64)
    if len(indptr) != n_users + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices):
        raise _bad(hpath, "indptr", f"must rise from 0 to {len(indices)} in {n_users + 1} steps")
    if len(data) != len(indices):
        raise _bad(hpath, "data", f"holds {len(data)} values for {len(indices)} indices")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
        raise _bad(hpath, "indices", f"holds item indices outside 0..{n_items - 1}")
    if not np.isfinite(data).all():
        raise _bad(hpath, "data", "holds NaN or infinite values")
    return sp.csr_matrix((data.astype(np.float32), indices.astype(np.int32), indptr), shape=shape)


def load(path, *, device: str | None = None):
    """Load a model directory written by ``save``: a fitted model with its vocabularies attached
    (``item_ids``, ``item_titles``, ``user_ids``, ``histories``, ``meta``).

    device: for torch models, overrides the saved one; by default a model saved on a GPU is
    loaded on the CPU when no GPU is present.
    """
    from aerec import model_registry

    path = Path(path)
    meta = verify(path)
    listed = _check_manifest(path)
    cpath = path / CONFIG
    try:
        cls = model_registry.get(meta["model"])
    except AerecError as e:
        raise _bad(cpath, "model", f"names no model aerec knows ({e})") from None
    if meta["task"] != cls.task:
        raise _bad(cpath, "task", f"is {_short(meta['task'])}, but {meta['model']} is a {cls.task} model")
    cfg = dict(meta["config"])
    n_users, n_items = meta["n_users"], meta["n_items"]
    if "device" in cfg:
        import torch

        if device is not None:
            cfg["device"] = device
        elif str(cfg["device"]).startswith("cuda") and not torch.cuda.is_available():
            cfg["device"] = "cpu"
    try:
        model = cls(cfg)
    except Exception as e:  # an unknown key or a bad value
        raise _bad(cpath, "config", f"is not a valid {meta['model']} config ({_first_line(e)})") from None
    model.n_users, model.n_items = n_users, n_items
    _load_weights(model, meta, path / WEIGHTS)
    model.fitted = True
    scale = rating_range(model) if getattr(model, "net", None) is not None else None
    if scale is not None and not scale[0] <= scale[1]:
        raise ModelFileError(f"{path / WEIGHTS}: tensor 'stats' gives an empty rating range {scale[0]:g}..{scale[1]:g}")
    ipath = path / ITEMS
    items = _read_json(ipath)
    if not isinstance(items, dict):
        raise ModelFileError(f"{ipath}: must be a JSON object, got {type(items).__name__}")
    model.item_ids = _id_array(_id_list(ipath, items, "ids", n_items))
    titles = _expect(ipath, items, "titles", list, "a list of titles", required=False)
    if titles is not None:
        if len(titles) != n_items:
            raise _bad(ipath, "titles", f"holds {len(titles)} titles for {n_items} items")
        for i, t in enumerate(titles):
            if t is not None and not isinstance(t, str):
                raise _bad(ipath, f"titles[{i}]", f"must be a string or null, got {type(t).__name__}")
        model.item_titles = np.asarray(titles, dtype=object)
    else:
        model.item_titles = None
    model.user_ids, model.histories, model.seen, model.below_threshold = None, None, None, None
    if meta["has_history"]:
        upath = path / USERS
        users = _read_json(upath)
        if not isinstance(users, dict):
            raise ModelFileError(f"{upath}: must be a JSON object, got {type(users).__name__}")
        model.user_ids = _id_array(_id_list(upath, users, "ids", None))
        below = _expect(upath, users, "below_threshold", dict, "an object", required=False)
        if below is not None:
            rule = _expect(upath, below, "rule", str, "a string")
            model.below_threshold = {"rule": rule, "ids": _id_list(upath, below, "ids", None)}
        model.histories = _load_history(path / HISTORY, len(model.user_ids), n_items)
        if SEEN in listed:  # optional; verify() has checked its checksum
            model.seen = _load_history(path / SEEN, len(model.user_ids), n_items)
    model.meta = dict(meta.get("meta") or {})
    model.model_dir = path
    return model
