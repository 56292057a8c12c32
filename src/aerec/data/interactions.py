"""Interactions: the one in-memory form of a data set.

Parallel arrays (one entry per interaction) over integer indices, plus the vocabularies that
map indices back to original ids. Matrices are built on demand as scipy CSR; nothing dense of
size users x items is ever made.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from aerec.config import FLOAT32_MAX
from aerec.errors import DataError


@dataclass(frozen=True)
class Interactions:
    user: np.ndarray  # int32 index into user_ids
    item: np.ndarray  # int32 index into item_ids
    user_ids: np.ndarray  # original user id for each index
    item_ids: np.ndarray  # original item id for each index
    rating: np.ndarray | None = None  # float32, explicit feedback
    timestamp: np.ndarray | None = None  # int64 seconds
    item_titles: np.ndarray | None = None  # str per item index, where the data set has them
    name: str = "data"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.user)
        for label, arr in (("item", self.item), ("rating", self.rating), ("timestamp", self.timestamp)):
            if arr is not None and len(arr) != n:
                raise DataError(f"{self.name}: column '{label}' has {len(arr)} rows, expected {n}")
        if self.item_titles is not None and len(self.item_titles) != len(self.item_ids):
            raise DataError(f"{self.name}: {len(self.item_titles)} titles for {len(self.item_ids)} items")
        for label, codes, size in (("user", self.user, len(self.user_ids)), ("item", self.item, len(self.item_ids))):
            codes = np.asarray(codes)
            if n and not np.issubdtype(codes.dtype, np.integer):
                raise DataError(f"{self.name}: {label} codes must be integers, got {codes.dtype}")
            if n and (codes.min() < 0 or codes.max() >= size):
                bad = codes[(codes < 0) | (codes >= size)][0]
                raise DataError(f"{self.name}: {label} code {int(bad)} is outside 0..{size - 1} "
                                f"({size} {label} ids)")
        if self.rating is not None and n:
            r = np.asarray(self.rating)
            if not np.issubdtype(r.dtype, np.number) or not (np.isfinite(r).all() and np.abs(r).max() <= FLOAT32_MAX):
                raise DataError(f"{self.name}: ratings must be finite numbers within the 32-bit float range")

    # sizes -----------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    @property
    def density(self) -> float:
        cells = self.n_users * self.n_items
        return len(self) / cells if cells else 0.0

    def __repr__(self) -> str:
        """One line: sizes and what the values mean (never the ids themselves)."""
        head = f"Interactions({self.name!r}: {self.n_users:,} users x {self.n_items:,} items, {len(self):,} rows"
        extras = [name for name, arr in (("timestamps", self.timestamp), ("titles", self.item_titles))
                  if arr is not None]
        if extras:
            head += ", with " + " and ".join(extras)
        if not len(self):
            return head + ")"
        from aerec.data import feedback

        try:
            fb = feedback.of(self)
        except Exception as e:  # a repr must not raise; the decision's own error says it elsewhere
            return f"{head}; feedback undecided: {e})"
        return f"{head}; {fb.describe()}, keeping {fb.rule()})"

    __str__ = __repr__

    # matrices --------------------------------------------------------------------------------
    def csr(self, values: str = "auto") -> sp.csr_matrix:
        """User x item CSR (float32). values: 'rating', 'ones', or 'auto' (ratings if present)."""
        if values == "rating" or (values == "auto" and self.rating is not None):
            if self.rating is None:
                raise DataError(f"{self.name}: has no ratings")
            data = self.rating.astype(np.float32)
        else:
            data = np.ones(len(self), dtype=np.float32)
        m = sp.csr_matrix(
            (data, (self.user, self.item)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        m.sum_duplicates()
        m.sort_indices()
        return m

    def timestamp_csr(self) -> sp.csr_matrix:
        """User x item CSR of timestamps (int64), same sparsity as csr()."""
        if self.timestamp is None:
            raise DataError(f"{self.name}: has no timestamps")
        m = sp.csr_matrix((self.timestamp.astype(np.int64), (self.user, self.item)),
                          shape=(self.n_users, self.n_items))
        m.sort_indices()
        return m

    # transformations (each returns a new object) --------------------------------------------
    def select(self, mask: np.ndarray) -> Interactions:
        """Keep the interactions where mask is true; vocabularies are unchanged."""
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return replace(self, user=self.user[mask], item=self.item[mask],
                       rating=pick(self.rating), timestamp=pick(self.timestamp))

    def binarize(self, threshold: float = 3.5) -> Interactions:
        """Implicit feedback: keep rating > threshold, drop the rating column."""
        if self.rating is None:
            return self
        out = self.select(self.rating > threshold)
        return replace(out, rating=None, meta={**self.meta, "binarized": f"rating > {threshold}"})

    def dedupe(self) -> Interactions:
        """One interaction per (user, item): the latest by timestamp, else the last one listed."""
        if len(self) == 0:
            raise DataError(f"{self.name}: has no interactions")
        key = self.user.astype(np.int64) * max(self.n_items, 1) + self.item
        n = len(key)
        recency = self.timestamp if self.timestamp is not None else np.arange(n)
        order = np.lexsort((np.arange(n), recency, key))
        k_sorted = key[order]
        last = np.ones(n, dtype=bool)
        last[:-1] = k_sorted[:-1] != k_sorted[1:]
        if last.all():
            return self
        keep = np.zeros(n, dtype=bool)
        keep[order[last]] = True
        return self.select(keep)

    def compact(self) -> Interactions:
        """Drop users and items with no interactions and renumber indices densely."""
        if len(self) == 0:
            raise DataError(f"{self.name}: no interactions left after filtering")
        u_keep, u_new = np.unique(self.user, return_inverse=True)
        i_keep, i_new = np.unique(self.item, return_inverse=True)
        titles = None if self.item_titles is None else self.item_titles[i_keep]
        return replace(self, user=u_new.astype(np.int32), item=i_new.astype(np.int32),
                       user_ids=self.user_ids[u_keep], item_ids=self.item_ids[i_keep], item_titles=titles)

    def filter_users(self, min_count: int) -> Interactions:
        """Keep users with at least min_count interactions (one pass), then compact."""
        counts = np.bincount(self.user, minlength=self.n_users)
        return self.select(counts[self.user] >= min_count).compact()

    def filter_items(self, min_count: int) -> Interactions:
        counts = np.bincount(self.item, minlength=self.n_items)
        return self.select(counts[self.item] >= min_count).compact()

    # id lookups ------------------------------------------------------------------------------
    def user_index(self) -> dict:
        return {uid: i for i, uid in enumerate(self.user_ids.tolist())}

    def item_index(self) -> dict:
        return {iid: i for i, iid in enumerate(self.item_ids.tolist())}

    def summary(self) -> dict:
        out = {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(self),
            "density": self.density,
            "has_ratings": self.rating is not None,
            "has_timestamps": self.timestamp is not None,
            "has_titles": self.item_titles is not None,
        }
        if self.rating is not None and len(self):
            out["rating_histogram"], log = histogram(self.rating)
            if log:
                out["histogram_bins"] = "log"
        from aerec.data import feedback

        out["values"] = "none" if self.rating is None else "ratings"
        if len(self):
            fb = feedback.decide(self, self.meta.get("feedback"), self.meta.get("threshold"))
            out["feedback"] = fb.to_dict()
            if self.rating is not None and fb.kind == "implicit":
                out["values"] = "counts"
            if fb.kind == "explicit" and fb.threshold is not None:
                b = self.binarize(fb.threshold)
                out["binarized"] = {
                    "threshold": f"> {fb.threshold:g}",
                    "interactions": len(b),
                    "users": int(len(np.unique(b.user))),
                    "items": int(len(np.unique(b.item))),
                }
        return out


def histogram(values: np.ndarray) -> tuple[dict, bool]:
    """{label: count} of the values, and whether the bins are logarithmic.

    Up to 20 distinct values get one bin each. Otherwise 10 bins, spaced logarithmically when
    the values are positive with a heavy tail (the top is 50 times the median or more, as play
    counts are), so that the bulk does not all land in the first bin.
    """
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) <= 20:
        return {f"{v:g}": int(c) for v, c in zip(uniq, counts)}, False
    lo, hi, mid = float(uniq[0]), float(uniq[-1]), float(np.median(values))
    if lo > 0 and mid > 0 and hi >= 50 * mid:
        edges = np.geomspace(lo, hi, 11)
        if np.all(np.mod(values, 1) == 0):  # whole numbers: whole edges, no empty repeats
            edges = np.unique(np.r_[np.floor(edges[:-1]), hi])
        hist, edges = np.histogram(values, bins=edges)
        return {f"{a:g}-{b:g}": int(c) for a, b, c in zip(edges[:-1], edges[1:], hist)}, True
    hist, edges = np.histogram(values, bins=10)
    return {f"{a:g}-{b:g}": int(c) for a, b, c in zip(edges[:-1], edges[1:], hist)}, False
