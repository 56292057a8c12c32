"""Small data builders shared by the model test files (plain functions, not fixtures).

Import as ``from helpers import block_data``: pytest puts ``tests/`` on ``sys.path``.

- ``block_data``: users x items with a planted block structure; each user holds every item of its
  block but one, returned as the held-out item.
- ``sampled_blocks``: the same block layout, each user holding a random ``per_user`` of its
  block's items (no held-out item).
- ``lowrank_ratings``: a low-rank explicit rating matrix (1..5) cut into train and test.
- ``hostile_ids``: distinct text ids that break careless readers (quotes, separators, spaces,
  unicode, leading zeros, "NaN", "None", empty-looking, long); ``write_raw_table`` writes them
  unquoted wherever a reader following the RFC keeps them as written.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def block_data(n_users: int, n_blocks: int = 3, block: int = 8,
               seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """(x, held): user u lives in block u % n_blocks and has every item of it but ``held[u]``."""
    rng = np.random.default_rng(seed)
    rows, cols, held = [], [], []
    for u in range(n_users):
        items = rng.permutation(block) + (u % n_blocks) * block
        rows += [u] * (block - 1)
        cols += list(items[:-1])
        held.append(items[-1])
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_blocks * block))
    return x, np.array(held)


def sampled_blocks(n_users: int = 60, block: int = 10, n_blocks: int = 3, per_user: int = 8, seed: int = 0,
                   dtype=np.float64) -> sp.csr_matrix:
    """User u holds ``per_user`` random items of block u % n_blocks."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        items = rng.choice(block, per_user, replace=False) + block * (u % n_blocks)
        rows += [u] * per_user
        cols += items.tolist()
    return sp.csr_matrix((np.ones(len(rows), dtype), (rows, cols)), shape=(n_users, block * n_blocks))


def lowrank_ratings(seed: int = 0, n_users: int = 50, n_items: int = 36,
                    density: float = 0.6) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test): ratings 1..5 from a rank-2 model, ~`density` observed, ~15% of them in test."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    full = np.clip(np.round(3.0 + 0.9 * p @ q.T), 1, 5)
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    test = rng.random(len(u)) < 0.15

    def make(mask):
        values = full[u[mask], i[mask]].astype(np.float32)
        return sp.csr_matrix((values, (u[mask], i[mask])), shape=full.shape)

    return make(~test), make(test)


# every id below must come back exactly, from every input format
HOSTILE_FIXED = [
    '"Weird Al" Yankovic', "Weird Al Yankovic", "Sigur Rós ", "Sigur Rós", " Sigur Rós", "AC/DC",
    "Crosby, Stills, Nash & Young", "Artist 174", "a\tb", "a;b", "a|b", "a::b", "a,b,c", '"quoted"', 'say "hi"',
    '5" floppy', "'single'", "''", '""', '"', "\\", "back\\slash", " ", "  ", "\u00a0", "\u3000", "\u200b",
    "007", "0", "00", "7", "-0", "+1", "1e3", "1.0", "0x10", "1２", "1٢", "١٢", "12", "NaN", "nan", "None", "none",
    "NA", "N/A", "n/a", "null", "NULL", "#N/A", "<NA>", "True", "False", "inf", "-inf", "[]", "{}", "()", "#comment",
    "=1+1", "@user", "日本語", "Ünïcödé", "emoji 🎸", "e\u0301", "\u00e9", "عربي", "\ufeffbom", "x" * 300,
    "long " * 150, "C-00042", "SKU-0001", "Björk", "Motörhead", "Sigur Rós", "trailing\t", "\tleading",
    "line\nbreak", "carriage\rreturn", "crlf\r\n", "a\u2028b", "a\u2029b", "a\x85b", "a\x0bb", "\u202eevil",
    '"Weird Al"\nYankovic', '"two\nlines" glued',
]


def hostile_ids(n: int = 1000, seed: int = 0) -> list[str]:
    """n distinct, deterministic text ids: the fixed hostile ones (line breaks inside ids
    included), then random mixes of the same ingredients (no NUL or lone surrogate: those are
    refused by design)."""
    rng = np.random.default_rng(seed)
    parts = ['"', ",", ";", "|", "\t", " ", "  ", "0", "007", "NaN", "None", "ü", "日", "🎸", "'", "\\", "::", "x",
             "Rós", "A", "-", ".", "e"]
    out = list(dict.fromkeys(HOSTILE_FIXED))
    seen = set(out)
    while len(out) < n:
        k = int(rng.integers(1, 6))
        text = "".join(parts[int(j)] for j in rng.integers(0, len(parts), size=k))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out[:n]


def write_raw_table(path, rows, sep: str, header=("user", "item")) -> None:
    """A table written as a person would: fields raw, quoted only where a reader could not
    otherwise tell them apart (a separator or quote-wrapped field), quotes inside doubled."""

    def glued(x: str) -> bool:  # '"Weird Al" Yankovic': a quote closes before the field ends
        j = 1
        while (k := x.find('"', j)) >= 0:
            if x[k + 1:k + 2] == '"':
                j = k + 2
                continue
            return k + 1 < len(x)
        return False

    def field(x: str) -> str:
        if sep in x or "\n" in x or "\r" in x or (x.startswith('"') and not glued(x)):
            return '"' + x.replace('"', '""') + '"'
        return x

    lines = [sep.join(header)] + [sep.join(field(str(v)) for v in row) for row in rows]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
