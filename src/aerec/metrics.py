"""Vectorized ranking and rating metrics: pure functions on arrays, tensors and CSR matrices.

Ranking metrics (per user with at least one target item; T = the user's target set, rel_i = 1
when the item at rank i is in T, ranks 1..k):

- ``recall@k``       hits@k / min(k, |T|)  (Liang et al.; reaches 1 for a perfect ranking)
- ``recall_plain@k`` hits@k / |T|          (RecBole and Cornac)
- ``precision@k``    hits@k / k
- ``ndcg@k``         DCG / IDCG, DCG = sum_i rel_i / log2(i + 1), IDCG over min(|T|, k) ranks
- ``hitrate@k``      1 if hits@k > 0 else 0
- ``mrr@k``          1 / rank of the first hit if it is within k, else 0
- ``map@k``          (1 / min(k, |T|)) * sum_{i<=k} P@i * rel_i   (the normalization RecBole
                     and Liang's recall share; it reaches 1 for a perfect ranking)

Conventions:
- Excluded entries get -inf before ranking. A position whose score is -inf (an excluded item or
  a model's own -inf) never counts as a hit: among -inf scores the order is arbitrary.
- Ties are ordered as ``torch.topk`` orders them, which torch does not specify; use scores
  without exact ties when the order matters.
- A NaN score is an error (``DataError``) unless its entry is excluded; +inf ranks first.
- Users with no target are left out (never NaN); their row indices are absent from ``"users"``.
- k may exceed the number of items: the ranking is then the whole list, and precision still
  divides by k.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from aerec.errors import DataError

RANKING_METRICS = ("recall", "recall_plain", "precision", "ndcg", "hitrate", "mrr", "map")


def check_ks(ks: Sequence[int] | int) -> tuple[int, ...]:
    ks = (ks,) if isinstance(ks, (int, np.integer)) else tuple(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise DataError(f"ks must be positive integers, got {ks!r}")
    return tuple(sorted({int(k) for k in ks}))


def _as_tensor(scores) -> torch.Tensor:
    """Scores as a 2-D float tensor, left on its device (ranking runs where the scores are)."""
    t = scores if isinstance(scores, torch.Tensor) else torch.as_tensor(np.asarray(scores))
    if t.ndim != 2:
        raise DataError(f"scores must be a users x items matrix, got {t.ndim} dimension(s)")
    if not t.is_floating_point():
        t = t.float()
    return t.detach()


def exclude_(scores: torch.Tensor, mask) -> torch.Tensor:
    """Set ``scores`` to -inf, in place and on its device, at the stored entries of the sparse
    ``mask`` (same shape); only the entries' indices travel to the device."""
    coo = mask.tocoo()
    if coo.nnz:
        dev = scores.device
        rows = torch.from_numpy(coo.row.astype(np.int64)).to(dev)
        cols = torch.from_numpy(coo.col.astype(np.int64)).to(dev)
        scores[rows, cols] = -torch.inf
    return scores


def topk(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (indices int64, values) of each row, computed on the scores' device; only the k
    columns per row come back to the host. A NaN score is a DataError."""
    vals, idx = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    vals = vals.cpu()
    vals = (vals.float() if vals.dtype in (torch.bfloat16, torch.float16) else vals).numpy()
    idx = idx.cpu().numpy().astype(np.int64)
    # torch.topk ranks NaN above every number, so a row with a NaN shows it in its first place:
    # checking the top-k values finds any NaN without a pass over the whole block
    if vals.size and np.isnan(vals[:, 0]).any():
        raise DataError("scores contain NaN")
    return idx, vals


def _as_csr(m, name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    if not sp.issparse(m):
        raise DataError(f"{name} must be a scipy sparse matrix, got {type(m).__name__}")
    m = sp.csr_matrix(m, copy=True)
    if m.shape != shape:
        raise DataError(f"{name} has shape {m.shape}, scores have {shape}")
    m.sum_duplicates()
    m.eliminate_zeros()  # a stored 0 is not a target
    m.sort_indices()
    return m


def empty_result(ks: Sequence[int]) -> dict[str, np.ndarray]:
    out = {f"{m}@{k}": np.zeros(0) for k in check_ks(ks) for m in RANKING_METRICS}
    out["users"] = np.zeros(0, dtype=np.int64)
    return out


def ranking(scores, target, exclude=None, ks: Sequence[int] = (20, 50, 100)) -> dict[str, np.ndarray]:
    """Per-user ranking metrics for the rows of ``scores`` that have a target (see module doc).

    Returns float64 arrays under ``"<metric>@<k>"`` for every metric and k, aligned with
    ``"users"``: the row indices (int64, ascending) of the users with at least one target.
    """
    return ranking_with_topk(scores, target, exclude, ks)[0]


def ranking_with_topk(scores, target, exclude=None, ks=(20, 50, 100),
                      owned: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``ranking`` plus the top-max(k) item indices of the evaluated users (-1 where the score
    is -inf), which the evaluator uses for item coverage.

    Exclusion and top-k run on the scores' device (a GPU tensor stays there); only the top-k
    indices and values come back. ``owned``: the caller hands the scores over, so they are
    overwritten instead of copied first (the caller's scores are otherwise never modified)."""
    ks = check_ks(ks)
    t = _as_tensor(scores)
    n_rows, n_items = t.shape
    target = _as_csr(target, "target", (n_rows, n_items))
    n_t = np.diff(target.indptr)
    users = np.flatnonzero(n_t > 0)
    if len(users) == 0 or n_items == 0:
        return empty_result(ks), np.zeros((0, 0), dtype=np.int64)

    if len(users) == n_rows:
        sub = t if owned else t.clone()
    else:  # a gather is a copy already
        sub = t[torch.from_numpy(users).to(t.device)]
    if exclude is not None:
        exclude_(sub, _as_csr(exclude, "exclude", (n_rows, n_items))[users])

    top_k = min(ks[-1], n_items)
    idx, vals = topk(sub, top_k)
    del sub
    finite = vals > -np.inf

    # hits: look each (row, item) of the top-k up among the sorted target keys row * n_items + col
    tsub = target[users]
    t_keys = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(tsub.indptr)) * n_items + tsub.indices
    q = np.arange(len(users), dtype=np.int64)[:, None] * n_items + idx
    pos = np.minimum(np.searchsorted(t_keys, q), len(t_keys) - 1)
    rel = (t_keys[pos] == q) & finite

    n_target = n_t[users].astype(np.float64)
    ranks = np.arange(1, top_k + 1, dtype=np.float64)
    cum_hits = np.cumsum(rel, axis=1, dtype=np.float64)
    disc = 1.0 / np.log2(ranks + 1.0)
    cum_dcg = np.cumsum(rel * disc, axis=1)
    cum_idcg = np.cumsum(disc)
    cum_ap = np.cumsum(rel * (cum_hits / ranks), axis=1)
    any_hit = rel.any(axis=1)
    first_rank = np.where(any_hit, rel.argmax(axis=1) + 1, np.iinfo(np.int64).max)

    out: dict[str, np.ndarray] = {}
    for k in ks:
        c = min(k, top_k) - 1  # column of rank k in the (possibly shorter) list
        hits = cum_hits[:, c]
        denom = np.minimum(k, n_target)
        out[f"recall@{k}"] = hits / denom
        out[f"recall_plain@{k}"] = hits / n_target
        out[f"precision@{k}"] = hits / k
        out[f"ndcg@{k}"] = cum_dcg[:, c] / cum_idcg[np.minimum(denom, top_k).astype(np.int64) - 1]
        out[f"hitrate@{k}"] = (hits > 0).astype(np.float64)
        out[f"mrr@{k}"] = np.where(first_rank <= k, 1.0 / np.minimum(first_rank, top_k), 0.0)
        out[f"map@{k}"] = cum_ap[:, c] / denom
    out["users"] = users.astype(np.int64)
    return out, np.where(finite, idx, -1)


def coverage(topk_indices, n_items: int) -> float:
    """Item coverage: distinct recommended items / n_items (negative indices are ignored)."""
    if n_items < 1:
        raise DataError("coverage needs at least one item")
    idx = np.asarray(topk_indices).ravel()
    return float(np.unique(idx[idx >= 0]).size / n_items)


# rating metrics --------------------------------------------------------------------------------


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    p = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    y = true.detach().cpu().numpy() if isinstance(true, torch.Tensor) else np.asarray(true)
    p, y = p.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    if p.shape != y.shape:
        raise DataError(f"{p.size} predictions for {y.size} true ratings")
    if p.size == 0:
        raise DataError("no ratings to evaluate")
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise DataError("predictions or ratings contain NaN or infinite values")
    return p, y


def squared_errors(pred, true) -> np.ndarray:
    p, y = _pair(pred, true)
    return (p - y) ** 2


def absolute_errors(pred, true) -> np.ndarray:
    p, y = _pair(pred, true)
    return np.abs(p - y)


def rating(pred, true) -> dict[str, float]:
    """RMSE and MAE over paired predictions and true ratings."""
    p, y = _pair(pred, true)
    err = p - y
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


# display ---------------------------------------------------------------------------------------

METRIC_NOTES = {
    "recall": "recall = hits@k / min(k, |T|) (Liang et al.; 1 for a perfect ranking)",
    "recall_plain": "recall_plain = hits@k / |T| (RecBole, Cornac)",
}
COUNT_LABELS = {"n_users": "users evaluated", "n": "test ratings"}
COUNT_KEYS = {"n_users", "n", "n_unseen_users", "n_unseen_items", "users_unseen", "items_unseen"}


def _cell(m) -> tuple[float, float | None]:
    if isinstance(m, dict):
        return float(m["mean"]), (None if m.get("std") is None else float(m["std"]))
    return float(m), None


def _is_count(name: str, m) -> bool:
    vals = m.get("per_fold", [m.get("mean")]) if isinstance(m, dict) else [m]
    return name in COUNT_KEYS or (name.startswith("n_") and all(float(v).is_integer() for v in vals))


def format_grid(metrics: dict, indent: str = "  ") -> str:
    """Metrics as a metric x k grid (mean, and ± sample std over folds where there are several),
    counts as whole numbers, other values one per line, and what the two recalls mean."""
    grid: dict[str, dict[int, tuple]] = {}
    ks: set[int] = set()
    counts, other = [], []
    for name, m in metrics.items():
        base, _, k = name.partition("@")
        if k.isdigit():
            grid.setdefault(base, {})[int(k)] = _cell(m)
            ks.add(int(k))
        elif _is_count(name, m):
            vals = m.get("per_fold") if isinstance(m, dict) else [m]
            vals = [int(round(float(v))) for v in (vals or [m["mean"]])]
            counts.append(f"{COUNT_LABELS.get(name, name.removeprefix('n_').replace('_', ' '))}: " + ", ".join(f"{v:,}" for v in vals)
                          + (" (per fold)" if len(vals) > 1 else ""))
        else:
            other.append((name, _cell(m)))
    lines = []
    fmt = lambda c: f"{c[0]:.4f}" + ("" if c[1] is None else f" ±{c[1]:.4f}")  # noqa: E731
    for name, c in other:
        lines.append(f"{indent}{name:<14} {fmt(c)}")
    if grid:
        order = sorted(ks)
        names = [n for n in (*RANKING_METRICS, "coverage") if n in grid] + sorted(set(grid) - {*RANKING_METRICS, "coverage"})
        cells = {n: [fmt(grid[n][k]) if k in grid[n] else "-" for k in order] for n in names}
        width = max(len(x) for row in cells.values() for x in row)
        label = max(len(n) for n in names)
        lines.append(indent + " " * label + "  " + "  ".join(f"{'@' + str(k):>{width}}" for k in order))
        for n in names:
            lines.append(indent + f"{n:<{label}}  " + "  ".join(f"{x:>{width}}" for x in cells[n]))
        notes = [METRIC_NOTES[n] for n in names if n in METRIC_NOTES]
        if notes:
            lines.append(indent + "; ".join(notes))
    lines += [indent + c for c in counts]
    return "\n".join(lines)
