"""Sizes of a model directory's arrays from their file headers, checked before anything is read
or built (issue 24): a small compressed ``history.npz`` can declare an enormous array, and an
edited config can ask for huge layers. ``aerec.io.load`` calls these first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aerec.errors import ModelFileError


def _bad(path: Path, field: str, problem: str) -> ModelFileError:
    return ModelFileError(f"{path}: field '{field}' {problem}")


def _unreadable(path: Path, e: BaseException) -> ModelFileError:
    text = str(e).strip().splitlines()
    return ModelFileError(f"{path}: cannot be read ({type(e).__name__}{': ' + text[0][:200] if text else ''})")


def npz_headers(path: Path) -> dict:
    """{array name: (shape, dtype)} from the .npy headers inside an npz, without reading the data."""
    import zipfile

    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
            out[info.filename[:-4]] = (tuple(shape), np.dtype(dtype))
    return out


def check_history(path: Path, n_users: int, n_items: int, source: str) -> None:
    """A CSR history file's sizes from its headers: 'shape' equal to (n_users, n_items) (``source``
    names the files those come from), indptr n_users + 1 entries, as many indices and values as
    indptr's last entry says (at most one per cell). Only shape and indptr are read."""
    try:
        heads = npz_headers(path)
    except Exception as e:  # not a zip, a bad header
        raise _unreadable(path, e) from None
    for k in ("indptr", "indices", "data", "shape"):
        if k not in heads:
            raise ModelFileError(f"{path}: array '{k}' is missing")
        if len(heads[k][0]) != 1:
            raise _bad(path, k, f"must be a 1-d array, its header says shape {heads[k][0]}")
    size = {k: heads[k][0][0] for k in heads if len(heads[k][0]) == 1}
    if size["shape"] != 2:
        raise _bad(path, "shape", f"must hold 2 numbers, its header says {size['shape']}")
    try:
        with np.load(path, allow_pickle=False) as z:  # two numbers: safe to read now
            shape = tuple(int(x) for x in z["shape"]) if z["shape"].dtype.kind in "iu" else None
    except Exception as e:
        raise _unreadable(path, e) from None
    if shape is not None and shape != (n_users, n_items):
        raise _bad(path, "shape", f"is {shape}, {source} give {(n_users, n_items)}")
    if size["indptr"] != n_users + 1:
        raise _bad(path, "indptr", f"must hold {n_users + 1} entries, its header says {size['indptr']}")
    if size["indices"] > n_users * n_items or size["data"] != size["indices"]:
        raise _bad(path, "data", f"headers give {size['data']} values for {size['indices']} indices "
                                 f"(at most {n_users * n_items} for {n_users} users x {n_items} items)")
    try:
        with np.load(path, allow_pickle=False) as z:  # n_users + 1 numbers, checked above
            indptr = z["indptr"]
    except Exception as e:
        raise _unreadable(path, e) from None
    nnz = int(indptr[-1]) if indptr.dtype.kind in "iu" and len(indptr) else None
    if nnz is not None and size["indices"] != nnz:
        raise _bad(path, "indptr", f"ends at {nnz}, but the headers give {size['indices']} indices")


def check_tensors(model, name: str, path: Path) -> None:
    """Tensor names and shapes from the safetensors header against the network built on the meta
    device (shapes only), before either is allocated."""
    import torch
    from safetensors import safe_open

    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in model._build().state_dict().items()}
    except Exception:  # a network that needs real tensors to build: the checks after loading apply
        return
    with safe_open(str(path), framework="pt") as f:
        have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    for key in sorted(set(want) - set(have)):
        raise ModelFileError(f"{path}: tensor '{key}' is missing")
    for key in sorted(set(have) - set(want)):
        raise ModelFileError(f"{path}: tensor '{key}' is not part of {name}")
    for key, shape in have.items():
        if shape != want[key]:
            raise ModelFileError(f"{path}: tensor '{key}' has shape {shape}, {name} with this config needs {want[key]}")
