"""Significance marks for the comparison tables.

Each metric compares every model with the best one by a paired two-sided test: across users for
top-N metrics (every model is scored on the same held-out users of the same folds), across folds
for RMSE/MAE. A model whose difference from the best has p >= alpha is marked: it is not
distinguishable from the best at that level.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def paired_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value; 1.0 when the pairs are identical or too few."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    d = a - b
    if len(d) < 2 or np.allclose(d, 0):
        return 1.0
    if np.allclose(d, d[0]):  # constant non-zero difference: t is infinite
        return 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def significance(samples: dict[str, np.ndarray], higher_is_better: bool, alpha: float = 0.05) -> dict[str, dict]:
    """For one metric: {model: {"best": bool, "p": p-value vs best, "tie": p >= alpha}}."""
    means = {m: float(np.mean(v)) for m, v in samples.items() if len(v)}
    if not means:
        return {}
    best = max(means, key=means.get) if higher_is_better else min(means, key=means.get)
    out = {}
    for m in means:
        if m == best:
            out[m] = {"best": True, "p": None, "tie": False}
            continue
        p = paired_pvalue(samples[m], samples[best])
        out[m] = {"best": False, "p": p, "tie": p >= alpha}
    return out
