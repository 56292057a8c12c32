"""Evaluate a fitted model: stream users in blocks through ``model.score_tensor``, then metrics.

The scores of a block stay on the model's device (a GPU for a GPU model): history exclusion and
the top-k run there, and only the top-k indices come back to the host for the metrics.

Memory stays bounded by ``block_size x n_items`` scores: the full users x items matrix is never
built. Only rows with at least one target item are scored, and per-user results are keyed by
their row index in ``input_csr``, so they do not depend on the block size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from aerec import metrics, ui
from aerec.errors import DataError


def _csr(m, name: str) -> sp.csr_matrix:
    if not sp.issparse(m):
        raise DataError(f"{name} must be a scipy sparse matrix, got {type(m).__name__}")
    return sp.csr_matrix(m)


def evaluate_ranking(model, input_csr, target_csr, ks: Sequence[int] = (20, 50, 100), block_size: int = 1024,
                     exclude_input: bool = True, exclude=None, progress: bool = False,
                     covered_out: dict | None = None) -> dict[str, np.ndarray]:
    """Per-user ranking metrics of ``model`` on held-out rows.

    input_csr: the fold-in history the model sees (rows = held-out users); target_csr: their
    targets, same shape. ``exclude_input`` ranks input items at -inf; ``exclude`` (same shape,
    optional) adds more items to exclude, such as weak generalization's validation items.
    Returns the arrays of ``metrics.ranking`` concatenated over blocks (``"users"`` = row
    indices of input_csr) plus ``"coverage@k"`` as 0-d arrays: distinct items in the evaluated
    users' top-k lists over the number of items. ``covered_out`` (a dict, optional) receives the
    boolean item masks behind coverage, per k, so shards evaluated apart can take their union.
    """
    inp, tgt = _csr(input_csr, "input"), _csr(target_csr, "target")
    if inp.shape != tgt.shape:
        raise DataError(f"input {inp.shape} and target {tgt.shape} differ in shape")
    extra = None if exclude is None else _csr(exclude, "exclude")
    if extra is not None and extra.shape != inp.shape:
        raise DataError(f"exclude {extra.shape} and input {inp.shape} differ in shape")
    if block_size < 1:
        raise DataError(f"block_size must be at least 1, got {block_size}")
    ks = metrics.check_ks(ks)
    n_items = inp.shape[1]
    rows = np.flatnonzero(np.diff(tgt.indptr) > 0)
    if len(rows) == 0:
        raise DataError("no held-out user has a target item; nothing to evaluate")

    parts: list[dict[str, np.ndarray]] = []
    covered = {k: np.zeros(n_items, dtype=bool) for k in ks}
    starts = range(0, len(rows), block_size)
    for s in ui.progress(starts, desc="evaluate", unit="block", disable=not progress or ui.quiet()):
        r = rows[s:s + block_size]
        hist = inp[r]
        # scores stay on the model's device; exclusion and top-k run there, in place
        scores = model.score_tensor(hist) if hasattr(model, "score_tensor") else model.score(hist)
        if tuple(scores.shape) != (len(r), n_items):
            raise DataError(f"model.score returned shape {tuple(scores.shape)}, expected {(len(r), n_items)}")
        ex = hist if exclude_input else None
        if extra is not None:
            ex = extra[r] if ex is None else ex + extra[r]
        res, top = metrics.ranking_with_topk(scores, tgt[r], ex, ks, owned=hasattr(model, "score_tensor"))
        del scores
        res["users"] = r[res["users"]]  # block row -> row of input_csr
        parts.append(res)
        for k in ks:
            covered[k][top[:, :k][top[:, :k] >= 0]] = True

    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    if covered_out is not None:
        covered_out.update(covered)
    for k in ks:
        out[f"coverage@{k}"] = np.asarray(covered[k].sum() / n_items)
    return out


def summarize(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over users of every per-user metric; set-level numbers (0-d arrays, such as
    coverage) pass through; ``"users"`` becomes the count ``"n_users"``. Per-entry error arrays
    of ``evaluate_rating`` are left out (their summaries are already there)."""
    out: dict[str, float] = {}
    for key, v in per_user.items():
        if key == "users":
            out["n_users"] = int(len(v))
        elif key in ("squared_error", "absolute_error"):
            continue
        elif np.ndim(v) == 0:
            out[key] = float(v) if not isinstance(v, (int, np.integer)) else int(v)
        elif len(v):
            out[key] = float(np.mean(v))
        else:
            raise DataError(f"no users to average '{key}' over")
    return out


def evaluate_rating(model, test_csr, block_size: int = 1 << 16) -> dict:
    """RMSE and MAE of ``model.predict`` on the stored entries of test_csr (rows = the model's
    user indices), in blocks of entries.

    Returns ``rmse``, ``mae``, ``n`` and the per-entry ``squared_error`` and ``absolute_error``
    arrays in the CSR's row-major order (the same order for every model on the same fold, so
    paired significance tests can line them up). A model with ``unseen_counts(user_idx,
    item_idx) -> dict[str, int]`` (for example the number of test cases whose user or item had
    no training rating) adds those counts.
    """
    test = _csr(test_csr, "test").tocoo()
    if test.nnz == 0:
        raise DataError("the test matrix holds no ratings")
    if block_size < 1:
        raise DataError(f"block_size must be at least 1, got {block_size}")
    order = np.lexsort((test.col, test.row))
    u, i, y = test.row[order].astype(np.int64), test.col[order].astype(np.int64), test.data[order]
    preds = []
    for s in range(0, len(u), block_size):
        p = np.asarray(model.predict(u[s:s + block_size], i[s:s + block_size]), dtype=np.float64).ravel()
        if p.shape[0] != min(block_size, len(u) - s):
            raise DataError(f"model.predict returned {p.shape[0]} values for {min(block_size, len(u) - s)} pairs")
        preds.append(p)
    pred = np.concatenate(preds)
    out: dict = {**metrics.rating(pred, y), "n": int(len(y)),
                 "squared_error": metrics.squared_errors(pred, y), "absolute_error": metrics.absolute_errors(pred, y)}
    hook = getattr(model, "unseen_counts", None)
    if callable(hook):
        out.update({k: int(v) for k, v in hook(u, i).items()})
    return out
