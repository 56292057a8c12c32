"""Recommending by original ids, many requests at a time.

A request becomes a ``Query`` without touching the model: its fold-in history row (a new user)
or its stored-user index (a known user), the columns it must not get, the ids the model does not
know, and whether it falls back to popularity. ``Engine.score`` then scores a list of queries with
one forward pass for all fold-in rows, plus one ``model.score_users`` call for all known users:
fold-in from their stored histories by default, or the per-user state a model learned for
exactly those users (CDAE's user vectors, AutoRec/DeepRec's stored codes). ``Engine.finish``
turns one score row into ``aerec.io.Recommendations``.

Ids are matched as strings (as ``aerec.io`` does), so ``"42"`` finds the integer id 42. Every
lookup is an in-memory dict: nothing here reads files after the model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from aerec import io, metrics
from aerec.errors import DataError
from aerec.models.base import Recommender


@dataclass
class Query:
    k: int
    exclude: set  # columns never recommended (the history's items and the caller's exclusions)
    row: sp.csr_matrix | None = None  # 1 x n_items history to fold in (new users)
    user: int | None = None  # stored-user index (known users)
    unknown_items: list = field(default_factory=list)
    fallback: str | None = None


class Engine:
    """A loaded model plus its id lookups, the popularity fallback and batched scoring."""

    def __init__(self, model):
        if getattr(model, "item_ids", None) is None:
            raise DataError(f"{model.name} has no item vocabulary; load it from a model directory first")
        self.model = model
        self.n_items = int(model.n_items)
        self.item_ids = np.asarray(model.item_ids)
        self.item_index = {str(x): i for i, x in enumerate(self.item_ids.tolist())}
        titles = getattr(model, "item_titles", None)
        self.titles = None if titles is None else [None if t is None else str(t) for t in titles]
        self.histories = getattr(model, "histories", None)
        self.user_ids = getattr(model, "user_ids", None) if self.histories is not None else None
        self.user_index = {} if self.user_ids is None else {str(x): i for i, x in enumerate(self.user_ids.tolist())}
        self.below, self.below_rule = io.below_threshold_ids(model)  # users the feedback cut left out
        self.popularity = None if self.histories is None else io.popularity(model)
        self.liked = io.liked_value(model)
        self._search_keys = None

    # requests -> queries -------------------------------------------------------------------
    def _exclusions(self, exclude) -> set:
        return {self.item_index[str(x)] for x in exclude if str(x) in self.item_index}

    def prepare_items(self, item_ids, k: int = 10, exclude=(), ratings=None) -> Query:
        """A new user given by original item ids (folded in); the given items are excluded."""
        _check_k(k)
        item_ids = list(item_ids)
        ratings = None if ratings is None else io.ratings_list(ratings)
        if ratings is not None and len(ratings) != len(item_ids):
            raise DataError(f"{len(ratings)} ratings for {len(item_ids)} items")
        # checked per request, in the model's dtype: one bad value must not reach a shared batch
        values = [self.liked] * len(item_ids) if ratings is None else io.check_ratings(self.model, ratings).tolist()
        cols, unknown = {}, []
        for iid, v in zip(item_ids, values):
            j = self.item_index.get(str(iid))
            if j is None:
                unknown.append(iid)
            else:
                cols[j] = v  # a repeated item keeps its last value
        excl = set(cols) | self._exclusions(exclude)
        if not cols:
            self._need_popularity()
            return Query(k=int(k), exclude=excl, unknown_items=unknown, fallback="popularity")
        order = sorted(cols)  # built as CSR arrays directly: the COO route costs ~1 ms a request
        row = sp.csr_matrix((np.array([cols[j] for j in order], dtype=np.float32), np.array(order, dtype=np.int32),
                             np.array([0, len(order)], dtype=np.int32)), shape=(1, self.n_items))
        return Query(k=int(k), exclude=excl, row=row, unknown_items=unknown)

    def prepare_user(self, user_id, k: int = 10, exclude=(), exclude_seen: bool = True) -> Query:
        """A known user, from its stored training history; every item it has interacted with is
        excluded unless exclude_seen is False (repeat purchases)."""
        _check_k(k)
        if self.histories is None:
            raise DataError(f"{self.model.name} was saved without user histories; pass the user's items instead")
        u = self.user_index.get(str(user_id))
        if u is None:
            raise io.unknown_user(user_id, self.below, self.below_rule)
        row = self.histories[u]
        excl = (io.seen_columns(self.model, u) if exclude_seen else set()) | self._exclusions(exclude)
        if row.nnz == 0:
            return Query(k=int(k), exclude=excl, fallback="popularity")
        return Query(k=int(k), exclude=excl, user=u)

    def _need_popularity(self) -> None:
        if self.popularity is None:
            raise DataError(f"none of the items is known, and {self.model.name} was saved without the "
                            "histories a popularity fallback needs")

    # scoring ---------------------------------------------------------------------------------
    def score_stored(self, users: np.ndarray) -> np.ndarray:
        """Scores of stored users (indices) over all items, one forward pass."""
        users = np.asarray(users, dtype=np.int64)
        return self.model.score_users(users, self.histories[users])

    def _score_groups(self, queries: list[Query]):
        """Yield (query positions, score tensor) per forward pass: one for the fold-in rows (and
        the known users of models without per-user state), one for the known users of models with
        it; popularity fallbacks get a None tensor. Fold-in scores stay on the model's device."""
        fold, stored, pop = [], [], []
        for i, q in enumerate(queries):
            (pop if q.fallback else stored if q.user is not None else fold).append(i)
        if pop:
            yield pop, None
        if fold:
            rows = sp.vstack([queries[i].row if queries[i].row is not None else self.histories[queries[i].user]
                              for i in fold], format="csr")
            scorer = getattr(self.model, "score_tensor", None)
            yield fold, scorer(rows) if scorer is not None else torch.from_numpy(np.array(self.model.score(rows)))
        if stored:
            yield stored, self._stored_tensor(np.array([queries[i].user for i in stored]))

    def _stored_tensor(self, users: np.ndarray) -> torch.Tensor:
        """Scores of stored users, a tensor the caller may overwrite: fold-in from their histories
        on the model's device, or the model's own per-user scoring (CDAE, AutoRec) on the host."""
        if type(self.model).score_users is Recommender.score_users and hasattr(self.model, "score_tensor"):
            return self.model.score_tensor(self.histories[users])
        return torch.from_numpy(np.array(self.score_stored(users), dtype=np.float32))

    def score(self, queries: list[Query]) -> list[np.ndarray]:
        """One full score row per query (on the host)."""
        out: list = [None] * len(queries)
        for pos, scores in self._score_groups(queries):
            rows = [self.popularity] * len(pos) if scores is None else scores.float().cpu().numpy()
            for i, s in zip(pos, rows):
                out[i] = s
        return out

    def finish(self, q: Query, scores: np.ndarray) -> io.Recommendations:
        """Top-k of one score row; ties go to the lower column, as aerec.io does."""
        scores = np.asarray(scores, dtype=np.float64).copy()
        io.check_scores(self.model, scores)
        if q.exclude:
            scores[list(q.exclude)] = -np.inf
        return self._rank(q, scores)

    def _rank(self, q: Query, scores: np.ndarray) -> io.Recommendations:
        """Top-k of a checked score row whose excluded columns are -inf."""
        k = int(min(q.k, int(np.isfinite(scores).sum())))
        top = np.argsort(-scores, kind="stable")[:k]
        return self._result(q, top, scores[top])

    def _result(self, q: Query, top: np.ndarray, values: np.ndarray) -> io.Recommendations:
        titles = None if self.titles is None else [self.titles[i] for i in top.tolist()]
        return io.Recommendations(item_ids=_plain(self.item_ids[top]), scores=np.asarray(values).astype(np.float32).tolist(),
                                  titles=titles, unknown_items=list(q.unknown_items), fallback=q.fallback)

    def _finish_block(self, qs: list[Query], scores: torch.Tensor) -> list[io.Recommendations]:
        """``finish`` for a block of score rows, where they are: exclusions and the top-k on the
        scores' device, so only k + 1 columns per row come back. Ties keep ``finish``'s order
        (lower column first); a row whose k-th and (k+1)-th scores tie is finished from its full
        row, since the device's top-k need not keep the lower column at that edge."""
        scores = scores.float()
        if not bool(torch.isfinite(scores).all()):  # refused as finish refuses it (one read per block)
            io.check_scores(self.model, scores.cpu().numpy())
        rows = [j for j, q in enumerate(qs) for _ in q.exclude]
        if rows:
            cols = [c for q in qs for c in q.exclude]
            scores[torch.tensor(rows, device=scores.device), torch.tensor(cols, device=scores.device)] = -torch.inf
        width = min(max(q.k for q in qs) + 1, self.n_items)
        vals, idx = torch.topk(scores, width, dim=1)
        vals, idx = vals.cpu().numpy(), idx.cpu().numpy()
        out = []
        for j, q in enumerate(qs):
            finite = np.isfinite(vals[j])
            v, c = vals[j][finite], idx[j][finite]
            if q.k < len(v) and v[q.k - 1] == v[q.k]:  # a tie across the cut
                out.append(self._rank(q, scores[j].cpu().numpy().astype(np.float64)))
                continue
            order = np.lexsort((c, -v.astype(np.float64)))[: q.k]
            out.append(self._result(q, c[order].astype(np.int64), v[order]))
        return out

    def run(self, queries: list[Query]) -> list[io.Recommendations]:
        out: list = [None] * len(queries)
        for pos, scores in self._score_groups(queries):
            qs = [queries[i] for i in pos]
            recs = [self.finish(q, self.popularity) for q in qs] if scores is None else self._finish_block(qs, scores)
            for i, r in zip(pos, recs):
                out[i] = r
        return out

    def recommend_items(self, item_ids, k: int = 10, exclude=(), ratings=None) -> io.Recommendations:
        return self.run([self.prepare_items(item_ids, k, exclude, ratings)])[0]

    def recommend_user(self, user_id, k: int = 10, exclude=(), exclude_seen: bool = True) -> io.Recommendations:
        return self.run([self.prepare_user(user_id, k, exclude, exclude_seen)])[0]

    # every stored user -------------------------------------------------------------------------
    def top_stored(self, users: np.ndarray, k: int, exclude_cols=(),
                   exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k of a block of stored users: (columns [n, k], scores float32 [n, k], valid [n, k]).

        Seen items and exclude_cols are never recommended; a row with fewer than k candidates
        has invalid tail entries. Users with an empty history get the popularity ranking.
        Scores, exclusions and the top-k stay where the model scores (``_finish_block``'s path):
        only k + 1 columns per row come back. Ties go to the lower column, as in ``finish``; a
        row whose k-th and (k+1)-th scores tie is ranked from its full row."""
        users = np.asarray(users, dtype=np.int64)
        hist = self.histories[users]
        scores = self._stored_tensor(users).float()
        dev = scores.device
        empty = np.flatnonzero(np.diff(hist.indptr) == 0)
        if len(empty):
            scores[torch.from_numpy(empty).to(dev)] = torch.from_numpy(self.popularity).to(dev, torch.float32)
        if not bool(torch.isfinite(scores).all()):  # refused as finish refuses it (one read per block)
            io.check_scores(self.model, scores.cpu().numpy())
        seen = getattr(self.model, "seen", None)
        for m in ([hist] + ([seen[users]] if seen is not None else [])) if exclude_seen else []:
            metrics.exclude_(scores, m)
        if len(exclude_cols):
            scores[:, torch.as_tensor(list(exclude_cols), dtype=torch.int64, device=dev)] = -torch.inf
        k = min(int(k), self.n_items)
        vals, idx = torch.topk(scores, min(k + 1, self.n_items), dim=1)
        vals, idx = vals.cpu().numpy().astype(np.float64), idx.cpu().numpy().astype(np.int64)
        order = np.lexsort((idx, -vals), axis=1)  # score descending, then the lower column
        vals, idx = np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)
        if vals.shape[1] > k:  # a finite tie across the cut: the k-th place is not the lower column's yet
            cut = np.flatnonzero(np.isfinite(vals[:, k - 1]) & (vals[:, k - 1] == vals[:, k]))
            if len(cut):
                full = scores[torch.from_numpy(cut).to(dev)].cpu().numpy().astype(np.float64)
                top = np.argsort(-full, axis=1, kind="stable")[:, :k]
                idx[cut, :k], vals[cut, :k] = top, np.take_along_axis(full, top, axis=1)
        top, vals = idx[:, :k], vals[:, :k]
        return top, vals.astype(np.float32), np.isfinite(vals)

    # lookups ---------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 20) -> tuple[list[dict], int]:
        """Items whose id or title holds ``query`` (case-insensitive): an exact id first, then by
        popularity, then column order; an empty query lists the most popular. (items, matches)."""
        if self._search_keys is None:  # built on first use: "id\0title", casefolded
            titles = self.titles or [None] * self.n_items
            self._search_keys = [f"{x}\0{t or ''}".casefold() for x, t in zip(self.item_ids.tolist(), titles)]
        q = query.casefold()
        cols = [j for j, key in enumerate(self._search_keys) if q in key] if q else list(range(self.n_items))
        exact = self.item_index.get(query)
        pop = self.popularity if self.popularity is not None else np.zeros(self.n_items, np.float32)
        cols.sort(key=lambda j: (j != exact, -pop[j], j))
        return [self.item_info_at(j) for j in cols[:limit]], len(cols)

    def history(self, user_id, limit: int = 100) -> dict:
        """A known user's stored history: items (highest value first), titles and values."""
        if self.histories is None:
            raise DataError(f"{self.model.name} was saved without user histories")
        u = self.user_index.get(str(user_id))
        if u is None:
            raise io.UnknownUserError(f"unknown user {user_id!r}: the model has no history for it")
        row = self.histories[u]
        order = np.lexsort((row.indices, -row.data))[:limit]
        cols = row.indices[order]
        return {"user": _plain(self.user_ids[[u]])[0], "items": _plain(self.item_ids[cols]),
                "titles": None if self.titles is None else [self.titles[j] for j in cols.tolist()],
                "values": row.data[order].astype(np.float64).tolist(), "total": int(row.nnz)}

    def item_info_at(self, j: int) -> dict:
        return {"id": _plain(self.item_ids[[j]])[0], "title": None if self.titles is None else self.titles[j],
                "popularity": None if self.popularity is None else int(self.popularity[j])}

    def item_info(self, item_id) -> dict | None:
        j = self.item_index.get(str(item_id))
        return None if j is None else self.item_info_at(j)


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")


def _plain(ids: np.ndarray) -> list:
    """Original ids as JSON values (numpy ints/strs become Python ones)."""
    return [x.item() if isinstance(x, np.generic) else x for x in np.asarray(ids).tolist()]
