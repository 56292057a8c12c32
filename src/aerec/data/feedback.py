"""What a data set's value column means, decided once and said out loud.

A data set is either **explicit** feedback (ratings on a scale: a top-N model learns from the
ratings above a threshold) or **implicit** feedback (counts, plays, clicks or plain pairs: every
row is an interaction and the value, when there is one, is a strength). The user declares it
with ``feedback="explicit"|"implicit"`` and ``threshold=X`` (keep value > X); otherwise
`decide` guesses and says what it guessed:

- no value column: implicit, every row kept;
- a value column named like a count (count, plays, clicks, ...): implicit;
- values on a bounded star scale (whole or half steps from 0 up to a top of 5, 7 or 10: the
  smallest of those at or above the largest value, which must exceed 1; a column of 0s and 1s
  is a flag): explicit, keeping ratings above 0.7 of the
  top. That is MovieLens's cut (rating > 3.5 of 5, Liang et al.) carried to other scales:
  > 4.9 of 7 (5, 6, 7) and > 7 of 10 (8, 9, 10), always above the scale's midpoint;
- anything else (values past 10, fractions, negatives, 0/1 flags): implicit, every row kept.

A guessed cut that would drop more than half of the rows or users of a user's file is refused
with a message naming the option to change. A threshold the user gave is applied, with a
warning (one line, with counts) when it drops more than half of the rows or users.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from aerec.config import check_threshold
from aerec.data.interactions import Interactions
from aerec.data.notes import warn
from aerec.errors import ConfigError, DataError

KINDS = ("explicit", "implicit")
STAR_THRESHOLD = 3.5  # MovieLens's cut (Liang et al.): rating > 3.5
SCALE_TOPS = (5, 7, 10)  # the star scales a value column is taken for (1-5, 1-7, 1-10, halves)
CUT_SHARE = 0.7  # the default cut as a share of the scale's top: 0.7 x 5 = MovieLens's 3.5
IMPLICIT_NAMES = {"count", "counts", "plays", "play_count", "playcount", "clicks", "click", "views", "listens",
                  "purchases", "quantity", "qty", "freq", "frequency", "n", "times", "weight", "visits"}


@dataclass(frozen=True)
class Feedback:
    kind: str  # "explicit" or "implicit"
    threshold: float | None  # keep value > threshold; None keeps every row
    reason: str  # why, in words ("declared", "values 1-5 in column 'rating'", ...)
    guessed: bool = False
    threshold_given: bool = False

    def rule(self) -> str:
        return "every row" if self.threshold is None else f"value > {self.threshold:g}"

    def describe(self) -> str:
        how = "guessed" if self.guessed else "declared"
        return f"{self.kind} feedback ({how}: {self.reason})"

    def to_dict(self) -> dict:
        return {"feedback": self.kind, "threshold": self.threshold, "guessed": self.guessed, "reason": self.reason}


def star_scale(values: np.ndarray) -> int | None:
    """The top of the bounded star scale `values` lie on (5, 7 or 10), or None.

    Whole or half steps, nothing below 0, largest value above 1 (0s and 1s are flags, not stars)
    and at most 10; the top is the smallest of SCALE_TOPS at or above the largest value (a 1-10
    file whose best rating is 9 is still a 10-point scale)."""
    if values is None or not len(values):
        return None
    lo, hi = float(values.min()), float(values.max())
    if lo < 0 or hi <= 1 or hi > SCALE_TOPS[-1] or not bool(np.all(np.mod(values * 2, 1) == 0)):
        return None
    return next(top for top in SCALE_TOPS if hi <= top)


def default_cut(top: int) -> float:
    """Keep ratings above this on a scale topped at `top`: 3.5 of 5, 4.9 of 7, 7 of 10."""
    return round(CUT_SHARE * top, 6)


def _scale_reason(span: str, col: str, top: int) -> str:
    return f"ratings {span} in column '{col}', a {top}-point scale: default cut {CUT_SHARE:g} x {top}, as MovieLens's 3.5 of 5"


def _value_column(data: Interactions) -> str:
    col = (data.meta.get("columns") or {}).get("rating")
    return str(col) if col else "rating"


def decide(data: Interactions, feedback: str | None = None, threshold: float | None = None) -> Feedback:
    """The feedback semantics of `data`: declared (feedback/threshold) or guessed from its values."""
    if feedback is not None and feedback not in KINDS:
        raise ConfigError(f"feedback must be 'explicit' or 'implicit', got {feedback!r}")
    if threshold is not None:
        threshold = check_threshold(threshold)
    given = threshold is not None
    values = None if data.rating is None else np.unique(data.rating)
    col = _value_column(data)
    span = "" if values is None or not len(values) else f"{values.min():g} to {values.max():g}"
    if feedback == "explicit":
        if data.rating is None:
            raise ConfigError(f"{data.name}: --feedback explicit needs a rating column, and this data has none "
                              "(name it with --rating-col)")
        if not given:
            top = star_scale(values)
            if top is None:
                raise ConfigError(f"{data.name}: ratings from {span} are not on a star scale (whole or half steps "
                                  "from 0 up to 5, 7 or 10); give --threshold X (a top-N model learns from the "
                                  "ratings above X)")
            return Feedback("explicit", default_cut(top), _scale_reason(span, col, top))
        return Feedback("explicit", threshold, f"ratings {span} in column '{col}'", threshold_given=given)
    if feedback == "implicit":
        what = "plain (user, item) pairs" if data.rating is None else f"values {span} in column '{col}' as strengths"
        return Feedback("implicit", threshold, what, threshold_given=given)
    # guessing
    if data.rating is None:
        return Feedback("implicit", threshold, "no rating column: every row is an interaction", True, given)
    if col.split(":")[0].strip().lower() in IMPLICIT_NAMES:
        return Feedback("implicit", threshold, f"column '{col}' holds counts ({span})", True, given)
    top = star_scale(values)
    if top is not None:
        if given:
            return Feedback("explicit", threshold, f"ratings {span} in column '{col}'", True, given)
        return Feedback("explicit", default_cut(top), _scale_reason(span, col, top), True, given)
    return Feedback("implicit", threshold, f"values {span} in column '{col}' are not on a star scale (0 to 10 "
                    "in whole or half steps)", True, given)


def of(data: Interactions, options: dict | None = None) -> Feedback:
    """The decision from options (a data section: feedback, threshold), else from the data's
    meta (data.load(..., feedback=...) keeps them there), else a guess."""
    options = options or {}
    pick = lambda k: options[k] if options.get(k) is not None else data.meta.get(k)  # noqa: E731
    return decide(data, pick("feedback"), pick("threshold"))


def keep_mask(data: Interactions, threshold: float | None = None, min_rating: float | None = None) -> np.ndarray:
    """Rows a ranking protocol keeps: value >= min_rating, or value > threshold, or every row."""
    if data.rating is None or (threshold is None and min_rating is None):
        return np.ones(len(data), dtype=bool)
    if min_rating is not None:
        return data.rating >= min_rating
    return data.rating > threshold


def _registered(data: Interactions) -> bool:
    from aerec.data import registry

    return data.name in registry.REGISTRY and "ids" in data.meta


def kept_line(data: Interactions, mask: np.ndarray, fb: Feedback, rule: str) -> str:
    users = len(np.unique(data.user[mask]))
    total_users = len(np.unique(data.user))
    return (f"{data.name}: {fb.describe()}; keeping {rule}: {int(mask.sum()):,} of {len(data):,} rows, "
            f"{users:,} of {total_users:,} users")


def check_drop(data: Interactions, mask: np.ndarray, fb: Feedback, rule: str, forced: bool = False) -> None:
    """Refuse a guessed filter that drops more than half of the rows or users; a filter the user
    asked for (an explicit threshold or protocol option) is applied with a one-line warning."""
    if not len(data):
        return
    asked = forced or fb.threshold_given
    if not asked and _registered(data):
        return
    rows, total = int(mask.sum()), len(data)
    users, total_users = len(np.unique(data.user[mask])), len(np.unique(data.user))
    if rows * 2 >= total and users * 2 >= total_users:
        return
    kept = f"keeps only {rows:,} of {total:,} rows ({rows / total:.0%}) and {users:,} of {total_users:,} users"
    if asked:
        warn(f"{data.name}: the cut {rule} {kept}; most of the data is left out")
        return
    hint = ("if the values are counts, plays or clicks pass --feedback implicit (every row kept); "
            "to keep this cut anyway give --threshold explicitly")
    raise DataError(f"{data.name}: {fb.describe()} with {rule} would keep only {rows:,} of {total:,} rows and "
                    f"{users:,} of {total_users:,} users; {hint}")


RANKING_KEYS = ("threshold", "min_rating")


def protocol_options(data: Interactions, fb: Feedback, protocol: str, options: dict,
                     given: set | frozenset = frozenset()) -> tuple[dict, str]:
    """Protocol options with the feedback decision applied, and a line saying what is kept.

    options: the protocol's resolved options (defaults filled); given: the keys the user set. A
    protocol option the user set (threshold, min_rating) wins over the data-level threshold, and
    the two must not disagree.
    """
    options = dict(options)
    if not any(k in options for k in RANKING_KEYS):  # a rating protocol: it needs ratings
        if fb.kind != "explicit":
            raise ConfigError(f"protocol '{protocol}' predicts ratings and needs explicit ratings, but {data.name} "
                              f"is {fb.describe()}; pass --feedback explicit if the values are ratings")
        return options, f"{data.name}: {fb.describe()}; every rating is used ({len(data):,} rows)"
    user_set = [k for k in RANKING_KEYS if k in given]
    if user_set:
        if fb.threshold_given and options.get("threshold") != fb.threshold:
            raise ConfigError(f"--threshold {fb.threshold:g} and the protocol option "
                              f"{user_set[0]}={options.get(user_set[0])} disagree; set one of them")
    elif fb.kind == "implicit" or fb.threshold_given or fb.threshold != STAR_THRESHOLD:
        # the protocols' own cuts (strong's > 3.5, weak's >= 3) are for 1-5 stars; another
        # scale's cut (> 7 of 10) replaces them, as a given threshold does
        options["threshold"] = fb.threshold
        if "min_rating" in options:
            options["min_rating"] = None
    t, m = options.get("threshold"), options.get("min_rating")
    mask = keep_mask(data, t, m)
    rule = "every row" if data.rating is None or (t is None and m is None) else (
        f"value >= {m:g}" if m is not None else f"value > {t:g}")
    check_drop(data, mask, fb, rule, forced=bool(user_set))
    return options, kept_line(data, mask, fb, rule)


@dataclass
class Prepared:
    """All of a data set turned into what one model trains on (protocol 'full', library fit)."""

    data: Interactions  # the kept interactions, compacted: row/column ids of train
    train: sp.csr_matrix  # users x items: ratings, ones, or implicit strengths
    seen: sp.csr_matrix  # same shape: every item each user interacted with, whatever its value
    line: str  # what was decided and kept, for the user
    rule: str = "every row"  # the cut, in words ("value > 3.5")
    below: np.ndarray | None = None  # ids of the users none of whose interactions passed the cut

    def below_threshold(self) -> dict | None:
        """The users the cut left out, as io.save stores them, or None."""
        if self.below is None or not len(self.below):
            return None
        return {"rule": self.rule, "ids": self.below}


def training_data(data: Interactions, task: str, fb: Feedback | None = None, *, weighted: bool = False,
                  forced: bool = False) -> Prepared:
    """The training matrix for a model of `task` on all of `data`.

    Rating models get the ratings (explicit feedback only). Ranking models get the rows kept by
    the feedback rule as ones, or as the implicit values when `weighted` (WMF's confidence).
    `seen` holds every interaction of the kept users over the kept items, low ratings included,
    so recommendations can exclude them.
    """
    data = data.dedupe()
    fb = fb or decide(data)
    if task == "rating":
        if fb.kind != "explicit" or data.rating is None:
            raise ConfigError(f"a rating model needs explicit ratings, but {data.name} is {fb.describe()}")
        return Prepared(data, data.csr("rating"), data.csr("ones"),
                        f"{data.name}: {fb.describe()}; every rating is used ({len(data):,} rows)")
    mask = keep_mask(data, fb.threshold)
    rule = fb.rule() if data.rating is not None else "every row"
    check_drop(data, mask, fb, rule, forced=forced)
    line = kept_line(data, mask, fb, rule)
    kept = data.select(mask)
    if len(kept) == 0:
        raise DataError(f"{data.name}: no interactions left with {rule}; lower --threshold or pass --feedback implicit")
    users, items = np.unique(kept.user), np.unique(kept.item)
    compact = kept.compact()
    use_values = weighted and fb.kind == "implicit" and kept.rating is not None
    train = compact.csr("rating" if use_values else "ones")
    below = data.user_ids[np.setdiff1d(np.unique(data.user), users)]
    if use_values and train.nnz and train.data.min() < 0:
        raise DataError(f"{data.name}: implicit values must be non-negative to serve as weights")
    # every interaction of the kept users with the kept items, whatever its value
    row = np.full(data.n_users, -1, dtype=np.int64)
    row[users] = np.arange(len(users))
    col = np.full(data.n_items, -1, dtype=np.int64)
    col[items] = np.arange(len(items))
    ok = (row[data.user] >= 0) & (col[data.item] >= 0)
    seen = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (row[data.user[ok]], col[data.item[ok]])),
                         shape=train.shape, dtype=np.float32)
    seen.sum_duplicates()
    seen.data[:] = 1.0
    seen.sort_indices()
    if not use_values:
        compact = replace(compact, rating=None)
    return Prepared(compact, train, seen, line, rule, below)


def _positions(data: Interactions, user_ids, item_ids):
    """Each interaction's (row, column) among the given ids, and which of them are present."""
    urow = {u: r for r, u in enumerate(np.asarray(user_ids).tolist())}
    icol = {i: c for c, i in enumerate(np.asarray(item_ids).tolist())}
    row = np.array([urow.get(u, -1) for u in data.user_ids.tolist()], dtype=np.int64)
    col = np.array([icol.get(i, -1) for i in data.item_ids.tolist()], dtype=np.int64)
    r, c = row[data.user], col[data.item]
    return r, c, (r >= 0) & (c >= 0)


def seen_matrix(data: Interactions, user_ids, item_ids) -> sp.csr_matrix:
    """users x items (given original ids, in their order): 1 where `data` holds any interaction
    of that user with that item, whatever its value; ids absent from `data` give empty rows."""
    user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
    r, c, ok = _positions(data, user_ids, item_ids)
    m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (r[ok], c[ok])),
                      shape=(len(user_ids), len(item_ids)), dtype=np.float32)
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def with_values(data: Interactions, m: sp.csr_matrix, user_ids, item_ids) -> sp.csr_matrix:
    """m (rows = user_ids, columns = item_ids) with each stored entry replaced by the value
    `data` holds for that (user, item): implicit counts as weights for a fold's matrices."""
    if data.rating is None or m.nnz == 0:
        return m
    user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
    r, c, ok = _positions(data, user_ids, item_ids)
    values = sp.csr_matrix((data.rating[ok].astype(np.float32), (r[ok], c[ok])), shape=m.shape, dtype=np.float32)
    values.sum_duplicates()
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.sort_indices()
    values.sort_indices()
    picked = values.multiply(out != 0).tocsr()  # the value of every entry m stores
    picked.sort_indices()
    if picked.nnz != out.nnz:  # an entry with no value in data keeps its own
        picked = (picked + out.multiply(picked == 0)).tocsr()
    return picked
