"""Selection that survives noise (issue 22): the study's starting setting stays unless the best
trial beats it by a one-sided paired t-test across the validation users.

An ML-1M fold has about 1,200 validation users, so a trial's NDCG@100 carries a standard error
near 0.006, and the best mean of 20-30 trials wins partly by luck.
"""

from __future__ import annotations

import numpy as np

from aerec.errors import AerecError

SELECT = ("paired", "best")
ALPHA = 0.05  # a trial replaces the starting setting only if a one-sided paired t-test gives p < ALPHA


def per_user_validation(model, valid) -> np.ndarray:
    """The fitted model's validation values per user, the pairs of the selection test: NDCG@100 per
    validation user with a target (ranking); the mean squared error over each user's validation
    ratings (rating: one value per user keeps the stored arrays small and the pairs across users)."""
    from aerec import evaluation

    if model.task == "rating":
        se = np.asarray(evaluation.evaluate_rating(model, valid)["squared_error"], dtype=np.float64)
        rows = np.sort(valid.tocoo().row)  # evaluate_rating's row-major order
        counts = np.bincount(rows)
        keep = counts > 0
        return np.bincount(rows, weights=se)[keep] / counts[keep]
    return np.asarray(evaluation.evaluate_ranking(model, valid[0], valid[1], ks=(100,))["ndcg@100"], dtype=np.float64)


def one_sided_p(a, b, higher: bool) -> float:
    """p of 'a is better than b' by a one-sided paired t-test across units (1.0 when equal)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = a - b if higher else b - a
    if len(d) < 2 or np.allclose(d, 0):
        return 1.0
    if np.allclose(d, d[0]):
        return 0.0 if d[0] > 0 else 1.0
    return float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)


def select_trial(study, optuna, select: str, alpha: float, higher: bool, fold, fit, valid):
    """(chosen trial, selection record): the best trial, or under "paired" the starting setting
    unless the best beats it by a one-sided paired t-test on the validation units at alpha."""
    best = study.best_trial
    record = {"rule": select, "alpha": alpha if select == "paired" else None, "best_trial": best.number,
              "best_value": float(best.value), "start_trial": None, "start_value": None, "p": None,
              "chosen_trial": best.number, "kept_start": False, "pairs": None}
    complete = optuna.trial.TrialState.COMPLETE
    start = next((t for t in study.trials if t.state == complete and (t.user_attrs.get("start") or (
        t.number == 0 and "fixed_params" in t.system_attrs))), None)  # older studies: the enqueued trial 0
    if start is None:
        return best, record
    record.update(start_trial=start.number, start_value=float(start.value))
    if select != "paired" or start.number == best.number:
        record["kept_start"] = start.number == best.number
        return best, record

    def values(t):
        got = t.user_attrs.get("valid_per_user")
        if got is None:  # a trial from before the selection rule: fit its setting again (same seed)
            model, _ = fit(t.user_attrs.get("params", {}), stop_epoch=t.user_attrs.get("stopped_at_epoch"))
            got = per_user_validation(model, valid)
        return np.asarray(got, dtype=np.float64)

    a, b = values(best), values(start)
    if a.shape != b.shape:
        raise AerecError("the selection test needs the same validation units for both settings")
    p = one_sided_p(a, b, higher)
    chosen = best if p < alpha else start
    record.update(p=p, chosen_trial=chosen.number, kept_start=chosen is start, pairs=int(len(a)))
    return chosen, record
