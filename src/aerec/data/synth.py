"""Synthetic interactions with real signal, at any size up to ML-20M scale and beyond.

Generative story (all from one seeded generator, so the same arguments give identical output):
- items get power-law popularity pop_i proportional to rank^-alpha (ranks randomly permuted);
- users and items get low-rank factors whose dot product, the affinity, has unit variance;
- each user's activity k_u is log-normal (a few heavy users, many light ones), scaled so the
  counts sum to n_interactions, and capped at the number of items;
- user u picks k_u distinct items with probability proportional to pop_i * exp(beta * affinity),
  without replacement, by Gumbel-top-k;
- ratings 1..5 come from the standardized affinity plus user and item biases and noise;
  timestamps fall in a per-user activity window.

Memory stays bounded: nothing users x items is built. Users whose k_u is small next to the
catalogue draw `oversample * k_u` candidates from a popularity/uniform mixture q and run
Gumbel-top-k over those, with keys log(pop/q) + beta * affinity + Gumbel noise (importance
weights make this sample from the same distribution). Heavy users score every item, a few rows at
a time. Either way the work is done in chunks of about two million (user, item) scores.
The rare light user whose candidates hold fewer than k_u distinct items gets fewer items, so the
total can fall slightly short of n_interactions (meta["requested"] records the request).
"""

from __future__ import annotations

import numpy as np

from aerec import ui
from aerec.data.interactions import Interactions
from aerec.errors import DataError

_BLOCK = 2_000_000  # candidate scores per chunk: bounds the working memory to ~100 MB


def _activity(rng, n_users: int, n_items: int, n: int) -> np.ndarray:
    w = rng.lognormal(0.0, 1.0, n_users)
    floor = 1 if n >= n_users else 0  # everyone gets an item when there are enough to go round
    k = np.minimum(np.maximum(np.floor(w / w.sum() * n).astype(np.int64), floor), n_items)
    for _ in range(20):  # hand out what rounding and the cap left over, to users with room
        short = n - int(k.sum())
        room = n_items - k
        if short <= 0 or not room.any():
            break
        p = w * (room > 0)
        k = np.minimum(k + rng.multinomial(short, p / p.sum()), n_items)
    while int(k.sum()) > n:  # the minimum of one per user can overshoot a tiny request
        over = int(k.sum()) - n
        big = np.flatnonzero(k > 1)
        if not len(big):
            break
        k[big[np.argsort(-k[big], kind="stable")[:over]]] -= 1
    return k


def _top_k_groups(group: np.ndarray, key: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Indices of the k[g] largest keys within each group g (group sorted ascending, keys finite).

    One float64 argsort on group * 1000 - key (keys are clipped to +-499, far beyond what the
    Gumbel keys reach) beats a two-key lexsort by several times.
    """
    composite = group * 1000.0 - np.clip(key, -499.0, 499.0)
    order = np.argsort(composite)
    g = group[order]
    cut = np.flatnonzero(np.diff(g)) + 1
    starts = np.concatenate(([0], cut))
    rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.append(starts, len(g))))
    return order[rank < k[g]]


def _alias(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table: O(1) vectorized sampling from p (the loop runs once per item)."""
    n = len(p)
    scaled = p * n / p.sum()
    prob = np.ones(n)
    alias = np.arange(n)
    small = list(np.flatnonzero(scaled < 1.0))
    large = list(np.flatnonzero(scaled >= 1.0))
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias


def _draw(rng, prob: np.ndarray, alias: np.ndarray, size: int) -> np.ndarray:
    idx = rng.integers(0, len(prob), size)
    return np.where(rng.random(size) < prob[idx], idx, alias[idx])


def synth(n_users: int, n_items: int, n_interactions: int, seed: int = 0, rank: int = 16, *,
          alpha: float = 1.0, beta: float = 2.0, oversample: float = 3.0, name: str | None = None) -> Interactions:
    """Generate explicit interactions (ratings 1..5, timestamps) with low-rank + popularity signal."""
    if min(n_users, n_items, n_interactions, rank) < 1:
        raise DataError("synth: users, items, interactions and rank must all be at least 1")
    if n_interactions > n_users * n_items:
        raise DataError(f"synth: {n_interactions} interactions do not fit in {n_users} x {n_items} cells")
    rng = np.random.default_rng(seed)
    pop = (rng.permutation(n_items) + 1.0) ** -alpha
    pop /= pop.sum()
    q = 0.5 * pop + 0.5 / n_items  # proposal: popular items plus enough uniform mass to reach the tail
    log_w = (np.log(pop) - np.log(q)).astype(np.float32)
    q_prob, q_alias = _alias(q)
    s = rank ** -0.25  # factor scale that gives the affinity unit variance
    U = rng.normal(0, s, (n_users, rank)).astype(np.float32)
    V = rng.normal(0, s, (n_items, rank)).astype(np.float32)
    k = _activity(rng, n_users, n_items, n_interactions)

    n_cand = np.ceil(oversample * k).astype(np.int64) + 8
    dense = n_cand >= n_items // 2  # heavy users (or a small catalogue): score every item
    out_u, out_i, out_z = [], [], []
    bar = ui.progress(total=int(k.sum()), desc="synth", unit="ia", unit_scale=True)

    light = np.flatnonzero(~dense & (k > 0))
    chunk_id = (np.cumsum(n_cand[light]) - 1) // _BLOCK
    for users in np.split(light, np.flatnonzero(np.diff(chunk_id)) + 1):
        if not len(users):
            continue
        local = np.repeat(np.arange(len(users), dtype=np.int64), n_cand[users])
        items = _draw(rng, q_prob, q_alias, len(local))
        code = local * n_items + items
        _, first = np.unique(code, return_index=True)  # distinct (user, item) candidates
        cu, ci = local[first], items[first]
        aff = np.einsum("ij,ij->i", U[users[cu]], V[ci])
        key = log_w[ci] + beta * aff + rng.gumbel(size=len(ci)).astype(np.float32)
        keep = _top_k_groups(cu, key, k[users])
        out_u.append(users[cu[keep]].astype(np.int32))
        out_i.append(ci[keep].astype(np.int32))
        out_z.append(aff[keep].astype(np.float32))
        bar.update(len(keep))

    heavy = np.flatnonzero(dense & (k > 0))
    rows = max(1, _BLOCK // n_items)
    log_pop = np.log(pop).astype(np.float32)
    for start in range(0, len(heavy), rows):
        users = heavy[start:start + rows]
        aff = U[users] @ V.T
        key = log_pop + beta * aff + rng.gumbel(size=aff.shape).astype(np.float32)
        order = np.argsort(-key, axis=1, kind="stable")
        take = np.arange(n_items) < k[users][:, None]
        r_idx, pos = np.nonzero(take)
        items = order[r_idx, pos]
        out_u.append(users[r_idx].astype(np.int32))
        out_i.append(items.astype(np.int32))
        out_z.append(aff[r_idx, items].astype(np.float32))
        bar.update(len(items))
    bar.close()

    user = np.concatenate(out_u)
    item = np.concatenate(out_i)
    z = np.concatenate(out_z)
    del out_u, out_i, out_z
    z = (z - z.mean()) / (z.std() + 1e-6)  # selection shifts the affinity up; re-centre it

    # ratings: affinity + user bias + popular-items-rate-higher bias + noise, rounded to 1..5
    ub = rng.normal(0, 0.35, n_users).astype(np.float32)
    lp = np.log(pop)
    ib = (0.25 * (lp - lp.mean()) / (lp.std() + 1e-9)).astype(np.float32)
    noise = rng.normal(0, 0.6, len(user)).astype(np.float32)
    signal = 0.9 * z + ub[user] + ib[item]
    signal -= signal.mean()  # mean rating ~3.5 as in MovieLens, whatever the popularity skew
    rating = np.clip(np.rint(3.5 + signal + noise), 1, 5).astype(np.float32)
    del signal, noise

    # timestamps: each user is active in a window of log-normal length inside 2000..2015
    t0, t1 = 946_684_800, 1_420_070_400
    span = np.minimum(rng.lognormal(np.log(90 * 86400), 1.0, n_users), (t1 - t0) / 2).astype(np.int64)
    begin = t0 + (rng.random(n_users) * (t1 - t0 - span)).astype(np.int64)
    ts = begin[user] + (rng.random(len(user)) * span[user]).astype(np.int64)

    # by user, then time (what sequential protocols expect); ts - t0 < 2**29, so one int64 key
    order = np.argsort(user.astype(np.int64) << 32 | (ts - t0), kind="stable")
    meta = {"source": "synthetic", "synth": {"users": n_users, "items": n_items, "requested": n_interactions,
                                             "seed": seed, "rank": rank, "alpha": alpha, "beta": beta}}
    return Interactions(
        user=user[order], item=item[order],
        user_ids=np.arange(n_users, dtype=np.int64), item_ids=np.arange(n_items, dtype=np.int64),
        rating=rating[order], timestamp=ts[order], name=name or f"synth-{n_users}x{n_items}-s{seed}", meta=meta)
